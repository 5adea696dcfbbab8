"""A resumed run reports what the uninterrupted run would: the same metrics.jsonl, the same train_loss.

Two things do not survive a checkpoint in the HF Trainer: the loss summed over the steps before it
(so its final `train_loss` averages the resumed part only), and the run's log (the steps after the
checkpoint were logged by the killed process and are logged again). The loss sum is saved beside
each checkpoint and restored before the first resumed step; metrics.jsonl is cut back to the
checkpoint's step when training (re)starts. Exact as long as `save_steps` is a multiple of
`logging_steps` (the defaults: every step is logged), since a logging window cut by a checkpoint
restarts after the resume.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from transformers import TrainerCallback

from trajfusion.io import atomic_write_bytes, read_json, write_json

log = logging.getLogger(__name__)

LOSS_FILE = "trajfusion_loss.json"  # in each checkpoint-<step>/ directory
SUMMARY_KEY = "train/train_runtime"  # a metrics.jsonl line holding the summary of one train() call


def save_loss_sum(checkpoint_dir: Path, global_step: int, loss_sum: float) -> None:
    write_json(checkpoint_dir / LOSS_FILE, {"global_step": global_step, "loss_sum": loss_sum})


def load_loss_sum(checkpoint_dir: Path, global_step: int) -> float | None:
    path = checkpoint_dir / LOSS_FILE
    if not path.exists():
        return None
    saved = read_json(path)
    return float(saved["loss_sum"]) if saved.get("global_step") == global_step else None


def truncate_metrics(path: Path, step: int) -> int:
    """Keep the lines of steps up to `step` (the checkpoint resumed from), minus any earlier call's
    summary line; returns how many lines were dropped."""
    if not path.exists():
        return 0
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    kept = []
    for line in lines:
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:  # a line cut by the kill
            continue
        if rec.get("step", 0) <= step and SUMMARY_KEY not in rec:
            kept.append(line if line.endswith("\n") else line + "\n")
    if len(kept) != len(lines):
        atomic_write_bytes(path, "".join(kept).encode("utf-8"))
    return len(lines) - len(kept)


class LossCarry(TrainerCallback):
    """Restores the loss sum of the steps before the checkpoint into the trainer at train begin, so
    the running sum (and the final train_loss = sum / global_step) continues bit for bit."""

    def __init__(self, trainer) -> None:
        self.trainer = trainer

    def on_train_begin(self, args, state, control, **kwargs):
        if state.global_step == 0:
            return
        checkpoint = Path(args.output_dir) / f"checkpoint-{state.global_step}"
        loss_sum = load_loss_sum(checkpoint, state.global_step)
        if loss_sum is None:
            log.warning("%s has no %s: train_loss will average the resumed steps only", checkpoint, LOSS_FILE)
            self.trainer.loss_sum_restored = False
            return
        self.trainer._total_loss_scalar = loss_sum
        self.trainer.loss_sum_restored = True
