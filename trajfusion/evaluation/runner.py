"""evaluate.py's one function: student/checkpoint → generation on the project's tasks → verdicts → files + W&B.

Generation runs through lm-eval (tasks from trajfusion/tasks); grading is the project's verifier, done in
one batch per task after generation (inside lm-eval by the `verified` filter and, for vLLM shards, in this
process) by a shared VerifierPool whose memo makes the second pass over the same outputs free. The
scores written are computed here from the per-sample verdicts (`metrics.py`), so a run split over
vLLM shards is scored exactly like one that was not; lm-eval's own per-problem `acc` is kept as a check.
"""

from __future__ import annotations

import logging
import tempfile
import time
from pathlib import Path

from trajfusion.console import stage
from trajfusion.evaluation import backends
from trajfusion.evaluation.metrics import mean, summarize_task
from trajfusion.evaluation.outputs import write_run
from trajfusion.evaluation.schema import BackendName, EvalConfig
from trajfusion.evaluation.training_api import load_student, training_manifest
from trajfusion.tasks import utils as task_utils

log = logging.getLogger(__name__)


def resolve_system_prompt(configured: str | None, manifest: dict) -> str | None:
    """The configured prompt; null: the one the checkpoint was trained with, else the project default."""
    if configured is not None:
        return configured or None
    trained = (manifest.get("config") or {}).get("fusion", {}).get("system_prompt")
    return trained if trained is not None else task_utils.DEFAULT_SYSTEM_PROMPT


def prompt_metadata(template: str, system_prompt: str | None, tokenizer, limit: int | None) -> dict:
    """What the tasks' loader needs to render prompts as training did (lm-eval passes metadata through)."""
    return {"template": template, "system_prompt": system_prompt, "bos_token": tokenizer.bos_token or "",
            "eos_token": tokenizer.eos_token or "", "limit": limit}


def count_tokens(tokenizer, texts: list[str]) -> list[int]:
    if not texts:
        return []
    return [len(ids) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]]


def grade_rows(rows: list[dict], run: backends.TaskRun, tokenizer) -> list[dict]:
    """Per-output records (prompt, output, extracted answer, reference, verdict, tokens), graded in one batch."""
    flat = [(row, i, out) for row in rows for i, out in enumerate(row["outputs"])]
    graded = task_utils.grade((row["reference"], out) for row, _, out in flat)
    tokens = count_tokens(tokenizer, [out for _, _, out in flat])
    return [{"task": run.task, "problem_id": row["problem_id"], "sample_index": i, "prompt": row["prompt"], "output": out,
             "extracted": g["pred"], "reference": row["reference"], "verdict": g["verdict"], "n_tokens": n,
             "hit_max_new_tokens": n >= run.max_new_tokens}
            for (row, i, out), g, n in zip(flat, graded, tokens)]


def training_data_summary(manifest: dict) -> dict | None:
    """Rows and #Err (mean fused wrong paths per row, the paper's Table 2 column) of the set the checkpoint
    was trained on, from the dataset's stats.json when that is on this machine."""
    if not manifest.get("dataset_dir"):
        return None
    stats_path = Path(manifest["dataset_dir"]) / "stats.json"
    if not stats_path.exists():
        return None
    from trajfusion.io import read_json

    stats = read_json(stats_path)
    summary = {"data_id": manifest.get("data_id"), "fusion": stats.get("fusion"), "rows": stats["counts"]["kept"],
               "mean_errors": stats["mean"]["n_errors"], "mean_tokens": stats["mean"]["tokens"]}
    trained = manifest.get("training_data")  # what the run itself used: rows after paired drops, updates
    if trained:
        summary |= {"alpha": stats.get("alpha"), **{f"trained_{k}": v for k, v in trained.items()}}
    return summary


def _generate(cfg: EvalConfig, runs, system_prompt, run_dir: Path):
    """(rows per task, tokenizer, the runs as generated, what was capped) from the configured backend;
    each task's max_new_tokens is capped to the context its longest prompt leaves."""
    from trajfusion.evaluation.context import cap_to_context

    max_model_len = cfg.backend.max_model_len or cfg.student.max_seq_len
    if cfg.backend.name == BackendName.hf:
        model, tokenizer = load_student(cfg.student, cfg.ckpt, cfg.seed)
        metadata = prompt_metadata(cfg.student.template, system_prompt, tokenizer, cfg.benchmark.limit)
        runs, capped = cap_to_context(runs, metadata, tokenizer, max_model_len)
        lm = backends.hf_lm(model, tokenizer, cfg.backend.batch_size, max_model_len, cfg.backend.device)
        return backends.generate_with_lm(lm, runs, metadata, cfg.seed), tokenizer, runs, capped
    from transformers import AutoTokenizer

    model_path = str(Path(cfg.ckpt).expanduser()) if cfg.ckpt else cfg.student.model
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    metadata = prompt_metadata(cfg.student.template, system_prompt, tokenizer, cfg.benchmark.limit)
    runs, capped = cap_to_context(runs, metadata, tokenizer, max_model_len)
    with tempfile.TemporaryDirectory(dir=run_dir, prefix=".shards-") as work_dir:
        launches = backends.shard_launches(Path(work_dir), model_path, cfg.backend, runs, metadata, cfg.seed,
                                           max_model_len, backends.visible_devices())
        return backends.run_vllm_shards(launches), tokenizer, runs, capped


def evaluate(cfg: EvalConfig, resolved: dict, run_dir: Path, choices: dict[str, str]) -> dict:
    """Run the benchmark, write results.json / results.md / samples/, log W&B; returns results.json's content."""
    started = time.perf_counter()
    run_dir.mkdir(parents=True, exist_ok=True)
    manifest = training_manifest(cfg.ckpt)
    trained_template = ((manifest.get("config") or {}).get("student") or {}).get("template")
    if trained_template and trained_template != cfg.student.template:
        raise ValueError(f"ckpt={cfg.ckpt} was trained with template {trained_template!r}, student.template is "
                         f"{cfg.student.template!r}: pass the student it was trained as")
    system_prompt = resolve_system_prompt(cfg.prompt.system_prompt, manifest)
    task_utils.configure_verifier(cfg.verifier.strategies, cfg.verifier.timeout_s, cfg.verifier.workers,
                                  Path(cfg.paths.data_root) / "cache" / "verify.sqlite")
    runs = backends.plan_task_runs(cfg.benchmark)
    generated, tokenizer, runs, capped = _generate(cfg, runs, system_prompt, run_dir)

    samples, tasks = {}, {}
    for run in runs:
        rows = generated[run.task]
        samples[run.task] = grade_rows(rows, run, tokenizer)
        summary = summarize_task(samples[run.task], run.sampled).as_dict()
        summary["lm_eval_acc"] = mean([r["lm_eval_acc"] for r in rows]) if rows and "lm_eval_acc" in rows[0] else None
        summary["decoding"] = {"n": run.n, "temperature": run.temperature, "top_p": run.top_p,
                               "max_new_tokens": run.max_new_tokens}
        tasks[run.task] = summary
        stage("eval     %s: %s = %.2f%% (%d problems, unknown %.1f%%, %.0f tokens)", run.task, summary["metric"],
                 100 * summary["accuracy"], summary["n_problems"], 100 * summary["unknown_rate"],
                 summary["mean_output_tokens"])
    greedy = [t["accuracy"] for t in tasks.values() if t["metric"] == "pass@1"]
    results = {
        "run_name": cfg.run_name, "benchmark": cfg.benchmark.name, "student": cfg.student.name,
        "model": cfg.ckpt or cfg.student.model or cfg.student.name, "ckpt": cfg.ckpt, "template": cfg.student.template,
        "system_prompt": system_prompt, "backend": cfg.backend.name.value, "limit": cfg.benchmark.limit,
        "max_new_tokens_capped": capped,  # tasks whose budget was cut to fit the context after the prompt
        "tasks": tasks, "average_pass_at_1": mean(greedy) if greedy else None,
        "grader": {"strategies": list(cfg.verifier.strategies), "timeout_s": cfg.verifier.timeout_s,
                   "stats": dict(task_utils.shared_verifier().stats)},
        "training_data_id": manifest.get("data_id"), "training_data": training_data_summary(manifest), "wall_time_s": round(time.perf_counter() - started, 2),
        "config": resolved,
    }
    write_run(run_dir, results, samples)
    from trajfusion.evaluation.tracking import log_to_wandb

    tags = [f"{group}:{choice}" for group, choice in sorted(choices.items()) if choice and not group.startswith("hydra")]
    log_to_wandb(cfg.wandb, run_dir, resolved, tags, results, samples, cfg.wandb_table_rows)
    task_utils.close_verifier()
    log.info("results in %s", run_dir)
    return results
