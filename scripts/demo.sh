#!/usr/bin/env bash
# The whole pipeline on a laptop CPU, offline, in minutes: verify the bundled pool, build the RFT and
# TrajFusion datasets, fine-tune SmolLM2-135M-Instruct briefly on each, evaluate both on a MATH-500
# slice, and print one summary (datasets, runs, comparison, where everything is).
#
# A 135M model trained for a few steps on 2 CPU cores shows that every stage runs end to end; its
# scores say nothing about the method. The paper's numbers need the presets in conf/experiment/.
# Each command prints one line per stage; the libraries' output is in each run's log file
# (DEMO_VERBOSE=1 shows it here too).
#
#   bash scripts/demo.sh            # (make demo runs this inside the project's virtualenv)
#   DEMO_STEPS=8 DEMO_PROBLEMS=20 bash scripts/demo.sh
#   DEMO_STEPS=1 DEMO_PROBLEMS=2 DEMO_MAX_NEW_TOKENS=16 bash scripts/demo.sh   # a quick check that it all runs
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-python}
export TRAJFUSION_DATA_ROOT=${TRAJFUSION_DATA_ROOT:-outputs}
root=$TRAJFUSION_DATA_ROOT
steps=${DEMO_STEPS:-4}
problems=${DEMO_PROBLEMS:-10}
tokens=${DEMO_MAX_NEW_TOKENS:-160}
verbose=$([ -n "${DEMO_VERBOSE:-}" ] && echo true || echo false)
start=$(date +%s)

echo "== 1/4  α for the bundled pool (verifies the pool once; later stages reuse it)"
$PY calibrate_alpha.py progress=false verbose=$verbose

for arm in rft adaptive; do
  echo "== 2/4  train smollm2_135m on the ${arm} dataset (${steps} steps; the dataset is built for its budget)"
  $PY train.py student=smollm2_135m fusion=$arm student.global_batch_size=1 training.max_steps=$steps \
      training.save_steps=1000 run_name=demo-$arm wandb.group=cpu_demo progress=false verbose=$verbose
  echo "== 3/4  evaluate demo-${arm} on ${problems} MATH-500 problems"
  $PY evaluate.py student=smollm2_135m ckpt=$root/runs/demo-$arm/final benchmark=math500 \
      benchmark.limit=$problems benchmark.max_new_tokens=$tokens run_name=demo-$arm wandb.group=cpu_demo \
      hydra.run.dir=$root/eval/demo-$arm verbose=$verbose
done

echo "== 4/4  compare"
$PY -m trajfusion.evaluation.compare $root/eval/demo-rft $root/eval/demo-adaptive --labels RFT TrajFusion \
    --out $root/demo > $root/demo.compare.log 2>&1 || { cat $root/demo.compare.log; exit 1; }
echo
echo "== summary (demo finished in $(( $(date +%s) - start ))s: a 135M model on CPU shows the pipeline, not the paper's numbers)"
$PY -m trajfusion.summary --runs $root/runs/demo-rft $root/runs/demo-adaptive \
    --evals $root/eval/demo-rft $root/eval/demo-adaptive --compare $root/demo
echo "W&B lineage (offline; python -m trajfusion.wandb_records $root lists it): wandb sync $root/runs/demo-*/wandb/offline-run-* $root/eval/demo-*/wandb/offline-run-* $root/logs/data/wandb/offline-run-*"
