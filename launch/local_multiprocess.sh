#!/usr/bin/env bash
# N processes on one host, one GPU each (or N CPU processes with fake devices for testing):
#   NPROC=2 launch/local_multiprocess.sh configs/digits/kd_two_teachers.py runs/kd2 [overrides...]
# On a CPU machine, give each process 4 fake devices with
#   XLA_FLAGS=--xla_force_host_platform_device_count=4 JAX_PLATFORMS=cpu
set -euo pipefail
config=$1; workdir=$2; shift 2
nproc=${NPROC:-$(nvidia-smi -L 2>/dev/null | wc -l)}
port=${PORT:-$((20000 + RANDOM % 20000))}
pids=()
for ((i = 0; i < nproc; i++)); do
  if command -v nvidia-smi >/dev/null; then export CUDA_VISIBLE_DEVICES=$i; fi
  JKA_COORDINATOR_ADDRESS=localhost:$port JKA_NUM_PROCESSES=$nproc JKA_PROCESS_ID=$i \
    jka train "$config" "$@" --workdir "$workdir" &
  pids+=($!)
done
status=0
for pid in "${pids[@]}"; do wait "$pid" || status=$?; done
exit $status
