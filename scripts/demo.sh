#!/usr/bin/env bash
# The whole pipeline on a laptop CPU, offline, in minutes: verify the bundled pool, build the RFT and
# TrajFusion datasets, fine-tune SmolLM2-135M-Instruct briefly on each, evaluate both on a MATH-500
# slice, and print the comparison table.
#
# A 135M model trained for a few steps on 2 CPU cores shows that every stage runs end to end; its
# scores say nothing about the method. The paper's numbers need the presets in conf/experiment/.
#
#   bash scripts/demo.sh            # (make demo runs this inside the project's virtualenv)
#   DEMO_STEPS=8 DEMO_PROBLEMS=20 bash scripts/demo.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-python}
export TRAJFUSION_DATA_ROOT=${TRAJFUSION_DATA_ROOT:-outputs}
root=$TRAJFUSION_DATA_ROOT
steps=${DEMO_STEPS:-4}
problems=${DEMO_PROBLEMS:-10}
tokens=${DEMO_MAX_NEW_TOKENS:-160}
start=$(date +%s)

echo "== 1/4  α for the bundled pool (verifies the pool once; later stages reuse it)"
$PY calibrate_alpha.py progress=false

for arm in rft adaptive; do
  echo "== 2/4  train smollm2_135m on the ${arm} dataset (${steps} steps; the dataset is built for its budget)"
  $PY train.py student=smollm2_135m fusion=$arm student.global_batch_size=1 training.max_steps=$steps \
      training.save_steps=1000 run_name=demo-$arm wandb.group=cpu_demo progress=false
  echo "== 3/4  evaluate demo-${arm} on ${problems} MATH-500 problems"
  $PY evaluate.py student=smollm2_135m ckpt=$root/runs/demo-$arm/final benchmark=math500 \
      benchmark.limit=$problems benchmark.max_new_tokens=$tokens run_name=demo-$arm wandb.group=cpu_demo \
      hydra.run.dir=$root/eval/demo-$arm
done

echo "== 4/4  compare"
for arm in rft adaptive; do sed -n '/^| task/,/^$/p' "$root/eval/demo-$arm/results.md" | sed "s/^/[$arm] /"; done
$PY -m trajfusion.evaluation.compare $root/eval/demo-rft $root/eval/demo-adaptive --labels RFT TrajFusion --out $root/demo
echo "datasets: $root/fused/   runs: $root/runs/demo-*   evaluations: $root/eval/demo-*   comparison: $root/demo/"
echo "demo finished in $(( $(date +%s) - start ))s: a 135M model on CPU shows the pipeline, not the paper's numbers"
