#!/usr/bin/env bash
# Run on EVERY host, with the same arguments, one process per host:
#   COORDINATOR=host0:12355 NUM_HOSTS=4 HOST_ID=<0..3> launch/multihost.sh CONFIG WORKDIR [overrides...]
# WORKDIR must be on a file system all hosts share.
set -euo pipefail
config=$1; workdir=$2; shift 2
export JKA_COORDINATOR_ADDRESS=${COORDINATOR:?set COORDINATOR=host:port of host 0}
export JKA_NUM_PROCESSES=${NUM_HOSTS:?set NUM_HOSTS}
export JKA_PROCESS_ID=${HOST_ID:?set HOST_ID (0-based)}
exec jka train "$config" train.dtype=bfloat16 "$@" --workdir "$workdir"
