# Sourced by every sbatch script, from the repository root (the submit directory): the project's
# environment and the variables every compute-node process wants.
#   HF_HUB_OFFLINE=0 sbatch slurm/train.sbatch ...   # let the jobs reach the hub (default: off, so 16 ranks
#                                                    # never download gated weights at once; cache them first)
if [ -f .venv/bin/activate ]; then
  # shellcheck disable=SC1091
  source .venv/bin/activate
elif ! python -c "import trajfusion" 2>/dev/null; then
  echo "slurm/env.sh: no .venv in $PWD and no trajfusion on PATH's python; submit from the repository root" >&2
  exit 1
fi
export HF_HUB_OFFLINE=${HF_HUB_OFFLINE:-1}
export HF_DATASETS_OFFLINE=${HF_DATASETS_OFFLINE:-$HF_HUB_OFFLINE}
export TOKENIZERS_PARALLELISM=false
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-${SLURM_CPUS_PER_TASK:-1}}   # torch threads = the cores SLURM gave the job
export TORCH_NCCL_ASYNC_ERROR_HANDLING=${TORCH_NCCL_ASYNC_ERROR_HANDLING:-1}  # a failed collective ends the job, not hangs it
# CPU-only nodes (no GPU allocated): DeepSpeed's CPU accelerator, gloo between ranks
if [ "${SLURM_GPUS_ON_NODE:-0}" = 0 ] && ! command -v nvidia-smi >/dev/null 2>&1; then
  export DS_ACCELERATOR=${DS_ACCELERATOR:-cpu} DS_BUILD_OPS=${DS_BUILD_OPS:-0}
fi
