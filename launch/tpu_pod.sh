#!/usr/bin/env bash
# Cloud TPU VM or pod slice: the same command on every TPU host, started from your machine with
#   gcloud compute tpus tpu-vm ssh NAME --zone ZONE --worker=all --command \
#     "cd jka && launch/tpu_pod.sh CONFIG gs://BUCKET/runs/NAME [overrides...]"
# (install first on all workers: pip install -e . "jax[tpu]")
# JAX detects the slice's hosts by itself; each host reads only its slice of every batch.
set -euo pipefail
config=$1; workdir=$2; shift 2
export JKA_DISTRIBUTED=auto
exec jka train "$config" train.dtype=bfloat16 "$@" --workdir "$workdir"
