#!/usr/bin/env bash
# jka's accelerator benchmarks, in the groups one 10-minute session slot can hold.
#
#   bash benchmarks/gpu_suite.sh kd          # KD step vs PyTorch eager / torch.compile, batch 1024 and 256, bf16
#   bash benchmarks/gpu_suite.sh families    # every family's compiled step (jka) + one-stage DFAD/GAN + transfer matrix
#   bash benchmarks/gpu_suite.sh profile     # where the KD step's device time goes; DeepInversion / CMI rounds (jka)
#   bash benchmarks/gpu_suite.sh datafree    # KD b1024 again, then DFAD and CMI's round, jka vs PyTorch
#   bash benchmarks/gpu_suite.sh bridge      # torchvision checkpoints convert within 1e-4; one-stage GAN at CIFAR size
#   bash benchmarks/gpu_suite.sh diagnose    # KD b1024: per-kernel profile without command buffers, HLO, XLA flag variants
#   bash benchmarks/gpu_suite.sh strong      # KD b1024, DFAD unit and CMI round (b256) against the strongest PyTorch
#                                            # (tuned eager, max-autotune); KD also with command buffers taking convolutions
#
# Each benchmark writes its JSON under benchmarks/results/ (see benchmarks/README.md) and its log
# under LOGDIR (default /tmp/jka_bench). A benchmark that fails or runs past its time limit does not
# stop the others. Run from the repository root on a machine with a GPU and torch installed.
set -u
group=${1:?usage: bash benchmarks/gpu_suite.sh kd|families|profile|datafree|bridge|diagnose|strong [LOGDIR]}
log=${2:-/tmp/jka_bench}
mkdir -p "$log" benchmarks/results
export PYTHONUNBUFFERED=1
py=${PYTHON:-python3}
kind=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -n 1 | tr 'A-Z ' 'a-z_')

bench() {  # bench NAME SECONDS ARGS...
  local name=$1 limit=$2
  shift 2
  echo "== $name (limit ${limit}s)"
  timeout "$limit" "$py" "$@" >"$log/$name.log" 2>&1
  local rc=$?
  tail -n 25 "$log/$name.log"
  echo "== $name exit $rc"
}

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null
"$py" -c "import jax, flax, optax; print('jax', jax.__version__, 'flax', flax.__version__, jax.devices())"
"$py" -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name(0))" 2>/dev/null

case "$group" in
  kd)
    bench kd_b1024 260 -m benchmarks.throughput --task kd --batch 1024 --steps 30 --dtype bfloat16 --torch-compile on
    bench kd_b256 200 -m benchmarks.throughput --task kd --batch 256 --steps 50 --dtype bfloat16 --torch-compile on
    bench onestage 90 -m benchmarks.onestage --batch 256 --steps 30 --json benchmarks/results/onestage_b256_digits_${kind:-unknown}.json
    ;;
  families)
    bench families 330 -m benchmarks.families --batch 256 --steps 5 --warmup 1 --dtype bfloat16
    bench transfer_matrix 60 -m benchmarks.transfer_matrix --out benchmarks/results/transfer_matrix_10x500_${kind:-unknown}.json
    # where the KD step's time goes: the student's step alone (the rest is the teacher's forward + the KD term)
    bench supervised_b1024 100 -m benchmarks.throughput --task supervised --batch 1024 --steps 30 --dtype bfloat16 --torch-compile off
    # the optimised HLO of jka's KD step, for reading offline
    XLA_FLAGS="--xla_dump_to=$log/hlo --xla_dump_hlo_as_text --xla_dump_hlo_module_re=.*train_step.*" \
      bench kd_hlo 60 -m benchmarks.throughput --task kd --batch 1024 --steps 3 --dtype bfloat16 --framework jax --json "$log/kd_hlo.json"
    ;;
  profile)
    bench profile_kd_b1024 150 -m benchmarks.profile_step --task kd --batch 1024 --dtype bfloat16 --steps 5 \
      --json "benchmarks/results/profile_kd_cifar_resnet34-cifar_resnet18_b1024_bfloat16_${kind:-unknown}.json"
    bench inversion_rounds 270 -m benchmarks.families --only deepinversion_round,cmi_round --batch 256 --steps 3 \
      --warmup 1 --dtype bfloat16 --json "benchmarks/results/families_inversion_b256_bfloat16_${kind:-unknown}.json"
    ;;
  datafree)
    bench kd_b1024 170 -m benchmarks.throughput --task kd --batch 1024 --steps 30 --dtype bfloat16 --torch-compile on
    bench datafree 320 -m benchmarks.datafree_torch --only dfad,cmi --batch 256 --steps 2 --warmup 1 --dtype bfloat16
    ;;
  bridge)
    # conversion of checkpoints jka did not write (torchvision's models); needs torchvision matching torch
    echo "== torchvision conversion test"
    timeout 90 "$py" -m pytest -q -rs -p no:cacheprovider tests/convert/test_convert.py -k torchvision 2>&1 | tail -n 8
    bench onestage_gan32 130 -m benchmarks.onestage --only gan32 --batch 256 --steps 30 \
      --json benchmarks/results/onestage_gan32_b256_${kind:-unknown}.json
    ;;
  strong)
    # jka vs the strongest PyTorch: cudnn.benchmark + channels_last + bf16 + the teacher folded and in bf16, eager and
    # torch.compile(mode="max-autotune"), writing speedup_vs_torch_tuned_eager / _compile and mfu (the plain PyTorch
    # rows are the kd and datafree groups'). Limits sum to 450 s (≤ 8 minutes with the checks above); the data-free
    # runs write their JSON after every row, so a max-autotune compile cut off by its limit keeps the rows before it.
    bench kd_b1024_strong 200 -m benchmarks.throughput --task kd --batch 1024 --steps 30 --dtype bfloat16 \
      --torch-compile on --torch-tuned --tuned-only
    XLA_FLAGS="--xla_gpu_enable_command_buffer=+CONVOLUTION" bench kd_b1024_cmdbuf_conv 60 -m benchmarks.throughput \
      --task kd --batch 1024 --steps 30 --dtype bfloat16 --framework jax --json "$log/kd_cmdbuf_conv.json"
    # DFAD's unit (1 G + 5 student steps) and CMI's round cut to 20 synthesis iterations + 20 student steps
    # (the JSON's iterations_override), batch 256 as the datafree group
    bench dfad_b256_strong 100 -m benchmarks.datafree_torch --only dfad --batch 256 --steps 5 --warmup 1 \
      --dtype bfloat16 --torch-compile on --torch-tuned --tuned-only \
      --json "benchmarks/results/datafree_tuned_dfad_b256_bfloat16_${kind:-unknown}.json"
    bench cmi_b256_strong 90 -m benchmarks.datafree_torch --only cmi --batch 256 --steps 2 --warmup 1 --iterations 20 \
      --dtype bfloat16 --torch-compile on --torch-tuned --tuned-only \
      --json "benchmarks/results/datafree_tuned_cmi20_b256_bfloat16_${kind:-unknown}.json"
    ;;
  diagnose)
    # With CUDA command buffers off every fusion is its own kernel in the trace, so the profile names
    # which BatchNorm / elementwise fusions cost what (timings differ a little from the default).
    XLA_FLAGS="--xla_gpu_enable_command_buffer= --xla_dump_to=$log/hlo --xla_dump_hlo_as_text --xla_dump_hlo_module_re=.*train_step.*" \
      bench profile_kd_ops 150 -m benchmarks.profile_step --task kd --batch 1024 --dtype bfloat16 --steps 5 --top 80 \
      --json "$log/profile_kd_ops.json"
    # jka's KD step alone under XLA flags that change convolution fusion, layouts or tiling
    for flags in "" "--xla_gpu_enable_command_buffer=" "--xla_gpu_exhaustive_tiling_search=true" \
                 "--xla_gpu_use_runtime_fusion=true" "--xla_gpu_force_conv_nhwc=true"; do
      XLA_FLAGS="$flags" bench "kd_flags_${flags//[^a-z_]/}" 70 -m benchmarks.throughput --task kd --batch 1024 \
        --steps 30 --dtype bfloat16 --framework jax --json "$log/kd_flags.json"
    done
    ;;
  *)
    echo "unknown group $group (kd|families|profile|datafree|bridge|diagnose|strong)" >&2
    exit 2
    ;;
esac
