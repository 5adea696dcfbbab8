"""Metrics on rank 0: every logged value goes to `metrics.jsonl` in the run directory and to W&B.

W&B conventions: project `wandb.project`, group = the experiment (`wandb.group`, default the run
name), job_type `train`, name = run name, tags = the config group choices (`fusion:adaptive`, …),
config = the resolved config plus `data_id`, the dataset's α (and calibration) and token counter; the dataset is its
input artifact and the final checkpoint its output (trajfusion/lineage.py). The run id is
kept in the run directory, so a resumed run continues the same W&B run. With no API key (and no
`wandb.mode`), W&B runs offline: `wandb sync <run_dir>/wandb/offline-run-*` uploads it later.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from pathlib import Path

from transformers import TrainerCallback

from trajfusion import lineage
from trajfusion.training.schema import WandbConfig

log = logging.getLogger(__name__)


def wandb_mode(cfg: WandbConfig) -> str:
    return lineage.wandb_mode(cfg.enabled, cfg.mode)


def dataset_config(dataset_dir: Path) -> dict:
    """What the dataset decided that the resolved config cannot say: the α it was built with (the
    calibrated number when length_policy.alpha=auto) and its calibration, and the token counter used."""
    manifest_path = dataset_dir / "manifest.json"
    manifest = json.loads(manifest_path.read_text(encoding="utf-8")) if manifest_path.exists() else {}
    record = manifest.get("alpha") or {}
    return {"alpha": record.get("alpha"), "alpha_calibration": record or None, "token_counter": manifest.get("token_counter")}


class RunTracker(TrainerCallback):
    """Writes metrics.jsonl and mirrors it to W&B; does nothing on ranks other than 0."""

    def __init__(self, run_dir: Path, cfg: WandbConfig, run_name: str, resolved: dict, tags: list[str],
                 dataset_dir: Path, data_id: str, is_main: bool):
        self.run_dir, self.cfg, self.is_main = run_dir, cfg, is_main
        self.metrics_path = run_dir / "metrics.jsonl"
        self.run = None
        if not is_main:
            return
        mode = wandb_mode(cfg)
        if mode == "disabled":
            return
        import wandb

        id_file = run_dir / "wandb_run_id"
        run_id = id_file.read_text().strip() if id_file.exists() else uuid.uuid4().hex[:12]
        id_file.write_text(run_id)
        self.run = wandb.init(
            project=cfg.project, entity=cfg.entity, group=cfg.group or run_name, job_type=cfg.job_type, name=run_name,
            tags=sorted(set(tags) | set(cfg.tags)), config=resolved, id=run_id, resume="allow", dir=str(run_dir),
            mode=mode,
        )
        self.run.config.update({"data_id": data_id, "dataset_dir": str(dataset_dir), **dataset_config(dataset_dir)},
                               allow_val_change=True)
        lineage.declare_input(self.run, lineage.dataset_artifact(wandb, dataset_dir)[0], [data_id])
        self.data_id = data_id
        log.info("W&B run %s (%s mode) in %s", run_id, mode, run_dir)

    def record(self, metrics: dict, step: int) -> None:
        if not self.is_main:
            return
        line = {"step": step, "time": round(time.time(), 3), **metrics}
        with open(self.metrics_path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(line, sort_keys=True) + "\n")
        if self.run is not None:
            self.to_wandb(lambda: self.run.log(metrics, step=step))

    def to_wandb(self, call) -> None:
        """One W&B call. Pre-emption and `scontrol requeue` send SIGTERM to every process of the job, the W&B
        service too: the rank must still save its checkpoint at the step end, so a lost service ends W&B logging
        for this job (metrics.jsonl keeps every value; the requeued job continues the W&B run)."""
        try:
            call()
        except ConnectionError as exc:
            log.warning("W&B service lost (%s: killed with the job on pre-emption?); logging to metrics.jsonl only", exc)
            self.run = None

    def on_train_begin(self, args, state, control, **kwargs):
        # resumed: the steps after the checkpoint are logged again; from scratch (killed before its first
        # checkpoint, or resume=false): every step is
        if self.is_main:
            from trajfusion.training.resume import truncate_metrics

            dropped = truncate_metrics(self.metrics_path, state.global_step)
            if dropped:
                log.info("metrics.jsonl: dropped %d lines logged after checkpoint-%d", dropped, state.global_step)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs:
            self.record({f"train/{k}" if "/" not in k else k: v for k, v in logs.items()}, state.global_step)

    def finish(self, summary: dict, checkpoint: Path | None = None, preempted: bool = False) -> None:
        """Close the run; a final checkpoint becomes its output artifact (model-<run_name>, alias data_id).
        A preempted W&B sweep point is marked so the next agent resumes this run."""
        if self.run is not None:
            self.to_wandb(lambda: self._finish(summary, checkpoint, preempted))

    def _finish(self, summary: dict, checkpoint: Path | None, preempted: bool) -> None:
        self.run.summary.update(summary)
        if checkpoint is not None:
            import wandb

            self.run.log_artifact(lineage.checkpoint_artifact(wandb, checkpoint), aliases=["final", self.data_id])
        if preempted:
            self.run.mark_preempting()
        self.run.finish(exit_code=75 if preempted else None)
