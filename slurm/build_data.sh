#!/bin/bash
# Sample a teacher pool as a SLURM array of N shards, then merge + verify + fuse both arms once all
# shards succeeded (afterok). Every other argument is a Hydra override passed to both jobs.
#   slurm/build_data.sh 16 data=math_train teacher=qwen2p5_math_7b_instruct
#   DRY_RUN=1 slurm/build_data.sh 16 ...      # print the sbatch commands only
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
shards=${1:?usage: slurm/build_data.sh NUM_SHARDS [hydra overrides...]}
shift
run() { if [ -n "${DRY_RUN:-}" ]; then echo "$*" >&2; echo 1000; else "$@"; fi; }
sample_id=$(run sbatch --parsable --array=0-$((shards - 1)) "$here/build_data.sbatch" shard.count="$shards" "$@")
fuse_id=$(run sbatch --parsable --dependency=afterok:"${sample_id%%;*}" "$here/fuse.sbatch" shard.count="$shards" "$@")
echo "sampling array ${sample_id%%;*} (${shards} shards) -> fuse ${fuse_id%%;*}"
