"""lm-eval tasks of this project: one base YAML (`_tf_base.yaml`) and a short variant per bundled benchmark.

Load them with `lm_eval.tasks.TaskManager(include_path=TASK_DIR)` (or `lm_eval --include_path`); the data
comes from `data/benchmarks/<name>.jsonl.gz`, never from the hub.
"""

from pathlib import Path

TASK_DIR = Path(__file__).resolve().parent
