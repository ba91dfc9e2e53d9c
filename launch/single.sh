#!/usr/bin/env bash
# One process that uses every local device (one GPU, all GPUs of the host, or a single TPU host).
#   launch/single.sh configs/cifar/kd.py runs/kd [overrides...]
set -euo pipefail
config=$1; workdir=$2; shift 2
# Let XLA take most of the GPU memory up front (faster than growing it) and keep a margin.
export XLA_PYTHON_CLIENT_MEM_FRACTION=${XLA_PYTHON_CLIENT_MEM_FRACTION:-0.9}
exec jka train "$config" train.dtype=bfloat16 "$@" --workdir "$workdir"
