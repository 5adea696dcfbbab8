"""W&B for an evaluation run: `eval/<task>/<metric>` scalars (also in the summary), one samples table, and
results.json + samples/*.jsonl as run files (what `compare --wandb` downloads).
Offline without an API key (`wandb sync <run_dir>/wandb/offline-run-*` later), like training."""

from __future__ import annotations

import logging
from pathlib import Path

from trajfusion.evaluation.outputs import RESULTS, SAMPLES_DIR, wandb_group
from trajfusion.evaluation.training_api import wandb_mode

log = logging.getLogger(__name__)

TABLE_COLUMNS = ("task", "problem_id", "sample_index", "prompt", "output", "extracted", "reference", "verdict", "n_tokens")


def scalar_metrics(results: dict) -> dict[str, float]:
    metrics = {}
    for task, t in results["tasks"].items():
        metrics[f"eval/{task}/{t['metric']}"] = t["accuracy"]
        for key in ("unknown_rate", "no_answer_rate", "mean_output_tokens", "hit_max_new_tokens_rate"):
            metrics[f"eval/{task}/{key}"] = t[key]
    if results.get("average_pass_at_1") is not None:
        metrics["eval/average/pass@1"] = results["average_pass_at_1"]
    if (results.get("training_data") or {}).get("mean_errors") is not None:
        metrics["train_data/mean_errors"] = results["training_data"]["mean_errors"]  # Table 2's #Err
    for key in ("rows", "tokens", "optimizer_steps", "samples_per_step"):  # what the checkpoint's run trained on
        if (results.get("training_data") or {}).get(f"trained_{key}") is not None:
            metrics[f"train_data/{key}"] = results["training_data"][f"trained_{key}"]
    return metrics


def log_to_wandb(cfg, run_dir: Path, resolved: dict, tags: list[str], results: dict,
                 samples_by_task: dict[str, list[dict]], rows_per_task: int) -> str | None:
    """Returns the W&B mode used (None when disabled)."""
    mode = wandb_mode(cfg)
    if mode == "disabled":
        return None
    import wandb

    run = wandb.init(project=cfg.project, entity=cfg.entity, group=wandb_group(results), job_type=cfg.job_type,
                     name=results["run_name"], tags=sorted(set(tags) | set(cfg.tags)), config=resolved, dir=str(run_dir),
                     mode=mode)
    if results.get("ckpt") and (Path(results["ckpt"]).expanduser() / "training_manifest.json").exists():
        from trajfusion.lineage import checkpoint_artifact, declare_input

        declare_input(run, checkpoint_artifact(wandb, Path(results["ckpt"]).expanduser()))  # checkpoint → evaluation
    metrics = scalar_metrics(results)
    table = wandb.Table(columns=list(TABLE_COLUMNS))
    for rows in samples_by_task.values():
        for row in rows[:rows_per_task]:
            table.add_data(*[row.get(c) for c in TABLE_COLUMNS])
    run.log({**metrics, "eval/samples": table})
    run.summary.update(metrics)
    # the whole run directory's verdicts, so `compare --wandb` can pull a group and bootstrap it like local runs
    run.save(str(run_dir / RESULTS), base_path=str(run_dir), policy="now")
    run.save(str(run_dir / SAMPLES_DIR / "*.jsonl"), base_path=str(run_dir), policy="now")
    run.finish()
    log.info("W&B (%s) in %s", mode, run_dir / "wandb")
    return mode
