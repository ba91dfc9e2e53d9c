#!/usr/bin/env bash
# Cloud TPU VM or pod slice: the same command on every TPU host, started from your machine with
#   gcloud compute tpus tpu-vm ssh NAME --zone ZONE --worker=all --command \
#     "cd ~/jka && launch/tpu_pod.sh CONFIG /mnt/shared/runs/NAME [overrides...]"
# Install first on all workers (same path everywhere): python3 -m venv ~/jka/.venv &&
#   ~/jka/.venv/bin/pip install -e ~/jka "jax[tpu]"   (the script uses that venv's jka, else jka on PATH)
# WORKDIR must be one directory that every host sees: a Filestore (NFS) share or a bucket mounted
# with gcsfuse at the same path on each host; a gs:// URL is refused (jka uses plain file I/O).
# JAX detects the slice's hosts by itself; each host reads only its slice of every batch.
set -euo pipefail
config=$1; workdir=$2; shift 2
here=$(cd "$(dirname "$0")/.." && pwd)
jka=${JKA:-$here/.venv/bin/jka}
[ -x "$jka" ] || jka=jka
export JKA_DISTRIBUTED=auto
exec "$jka" train "$config" train.dtype=bfloat16 "$@" --workdir "$workdir"
