#!/usr/bin/env bash
# N processes on one host, one GPU each (or N CPU processes with fake devices for testing):
#   NPROC=2 launch/local_multiprocess.sh configs/digits/kd.py runs/kd2 [overrides...]
# On a CPU machine, give each process 4 fake devices with
#   XLA_FLAGS=--xla_force_host_platform_device_count=4 JAX_PLATFORMS=cpu
# If one process fails (or on Ctrl-C) the others are stopped instead of waiting at the coordinator.
set -euo pipefail
[ $# -ge 2 ] || { echo "usage: NPROC=N $0 CONFIG WORKDIR [overrides...]" >&2; exit 2; }
config=$1; workdir=$2; shift 2
if [ -z "${NPROC:-}" ]; then
  NPROC=$(nvidia-smi -L 2>/dev/null | wc -l || true)
fi
nproc=${NPROC:-0}
if ! [ "$nproc" -ge 1 ] 2>/dev/null; then
  echo "$0: found no GPU to give each process; set NPROC=N (e.g. NPROC=2 with fake CPU devices)" >&2
  exit 2
fi
port=${PORT:-$((20000 + RANDOM % 20000))}
pids=()
stop_all() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; }
trap 'stop_all; exit 130' INT TERM
for ((i = 0; i < nproc; i++)); do
  if command -v nvidia-smi >/dev/null; then export CUDA_VISIBLE_DEVICES=$i; fi
  JKA_COORDINATOR_ADDRESS=localhost:$port JKA_NUM_PROCESSES=$nproc JKA_PROCESS_ID=$i \
    jka train "$config" "$@" --workdir "$workdir" &
  pids+=($!)
done
status=0
remaining=$nproc
while [ "$remaining" -gt 0 ]; do
  if wait -n; then :; else status=$?; stop_all; fi
  remaining=$((remaining - 1))
done
exit $status
