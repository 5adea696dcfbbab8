#!/bin/bash
# Sample and verify a teacher pool as a SLURM array of N shards, then merge + fuse both arms once all
# shards succeeded (afterok). Every other argument is a Hydra override passed to both jobs.
#   slurm/build_data.sh 16 data=math_train teacher=qwen2p5_math_7b_instruct
#   STAGE=verify slurm/build_data.sh 16 teacher=replay_math_l5   # a stored pool: a CPU verify array instead
#   DRY_RUN=1 slurm/build_data.sh 16 ...      # print the sbatch commands only
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
shards=${1:?usage: slurm/build_data.sh NUM_SHARDS [hydra overrides...]}
shift
run() { if [ -n "${DRY_RUN:-}" ]; then echo "$*" >&2; echo 1000; else "$@"; fi; }
case "${STAGE:-sample}" in
  sample) array_script=build_data.sbatch ;;
  verify) array_script=verify.sbatch ;;
  *) echo "STAGE must be sample or verify, got ${STAGE}" >&2; exit 2 ;;
esac
sample_id=$(run sbatch --parsable --array=0-$((shards - 1)) "$here/$array_script" shard.count="$shards" "$@")
fuse_id=$(run sbatch --parsable --dependency=afterok:"${sample_id%%;*}" "$here/fuse.sbatch" shard.count="$shards" "$@")
echo "${STAGE:-sample} array ${sample_id%%;*} (${shards} shards) -> fuse ${fuse_id%%;*}"
