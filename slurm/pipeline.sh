#!/bin/bash
# One paper preset end to end on SLURM: sampling array -> fuse -> train -> evaluate (afterok chain).
#   slurm/pipeline.sh experiment=table1_trajfusion_llama3_8b_15k
#   slurm/pipeline.sh --dry-run --shards 32 --nodes 2 experiment=table3_trajfusion_32k   # graph, commands, GPU-hours
# Options: --shards N (sampling array tasks), --nodes N (training nodes); the rest are Hydra overrides of train.py.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f .venv/bin/activate ] && source .venv/bin/activate
exec python -m trajfusion.pipeline "$@"
