"""train.py's work: config → dataset (resolved by data_id) → tokens → packed sequences → HF Trainer
(+ DeepSpeed) → HF-format checkpoint, metrics.jsonl and manifest in the run directory.

The run directory is the resume key: re-running the same command finds the newest complete
checkpoint there and continues (optimizer, scheduler, RNG, data position, W&B run). A different
config in the same directory is refused rather than silently mixed.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import time
from dataclasses import asdict
from pathlib import Path

import torch
from transformers import Trainer, TrainerCallback, TrainingArguments

from trajfusion.cards import write_model_card
from trajfusion.console import quiet_trainer, stage
from trajfusion.io import read_json, write_json
from trajfusion.runs import config_fingerprint, differing_keys
from trajfusion.training.packing import STAT_KEYS, PackedCollator, PaddedCollator, SequenceDataset
from trajfusion.training.resume import LossCarry, save_loss_sum
from trajfusion.training.schema import TrainConfig, build_config_of, gradient_accumulation_steps
from trajfusion.training.students import load_model, load_tokenizer, prepare_tokenizer
from trajfusion.training.token_cache import CachedRows, tokenised_rows
from trajfusion.training.tokenise import load_template
from trajfusion.training.tracking import RunTracker

log = logging.getLogger(__name__)

TRAINER_STATE = "trainer_state.json"  # written last in an HF checkpoint: its presence means complete


def world() -> tuple[int, int]:
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


def claim_run_dir(run_dir: Path, resolved: dict) -> None:
    marker = run_dir / "run_config.json"
    fingerprint = config_fingerprint(resolved)
    if marker.exists():
        previous = read_json(marker)
        if previous["fingerprint"] != fingerprint:
            differ = differing_keys(previous.get("config", {}), resolved) or ["(a key the fingerprint no longer covers)"]
            raise ValueError(
                f"{run_dir} holds a run with a different config (fingerprint {previous['fingerprint']} ≠ {fingerprint}); "
                f"differing keys: {'; '.join(differ)}. Pick another run_name=… or hydra.run.dir=…"
            )
    else:
        write_json(marker, {"fingerprint": fingerprint, "config": resolved})


def last_complete_checkpoint(run_dir: Path) -> Path | None:
    done = [p for p in run_dir.glob("checkpoint-*") if (p / TRAINER_STATE).exists() and p.name.split("-")[-1].isdigit()]
    return max(done, key=lambda p: int(p.name.split("-")[-1]), default=None)


def check_zero_world_size(checkpoint: Path, world_size: int) -> None:
    """ZeRO shards optimizer state per rank: a checkpoint saved by N ranks resumes only on N ranks."""
    saved = len(list(checkpoint.glob("global_step*/*zero_pp_rank_*_mp_rank_*_optim_states.pt")))
    if saved and saved != world_size:
        raise ValueError(
            f"{checkpoint}: DeepSpeed ZeRO optimizer state saved by {saved} ranks cannot be resumed on {world_size}; "
            f"resume with {saved} ranks (nodes × GPUs per node), or start a new run (training.resume=false, another run_name)"
        )


def _tokenised(dataset_dir: Path, tokenizer, template: str, cfg: TrainConfig) -> CachedRows:
    rank, world_size = world()
    return tokenised_rows(dataset_dir, tokenizer, template, cfg.fusion.loss_on_errors, rank=rank, world_size=world_size,
                          workers=cfg.training.tokenise_workers, wait_s=cfg.training.tokenise_wait_s, progress=cfg.progress)


def tokenise_dataset(dataset_dir: Path, tokenizer, template: str, cfg: TrainConfig,
                     twin_dir: Path | None = None) -> tuple[CachedRows, dict]:
    """Tokenised rows (memory-mapped from the shared cache, trajfusion.training.token_cache) and what
    happened to them. No row is dropped silently: a row longer than
    max_seq_len (the data stage's budget counter was the proxy, or another tokenizer) is an error that
    names its problems, unless training.drop_overlong=paired, which drops the problems that overflow
    here or in the twin arm (`twin_dir`: the RFT / fused dataset of the same pool) from this arm, so
    both arms, run the same way, train on the same problems."""
    limit = cfg.student.max_seq_len
    tokenised = _tokenised(dataset_dir, tokenizer, template, cfg)
    overlong = tokenised.ids_over(limit)
    if cfg.training.drop_overlong == "paired":
        assert twin_dir is not None, "paired dropping needs the twin arm's dataset"
        overlong |= _tokenised(twin_dir, tokenizer, template, cfg).ids_over(limit)
    elif overlong:
        ids = sorted(overlong)
        counter = (read_json(dataset_dir / "manifest.json").get("token_counter") or {}).get("used", "unknown")
        raise ValueError(
            f"{dataset_dir}: {len(ids)} rows exceed student.max_seq_len={limit} tokens (the data stage counted with "
            f"{counter}); problem ids: {', '.join(ids[:20])}{' …' if len(ids) > 20 else ''}. Budget with the student's "
            "tokenizer, or set training.drop_overlong=paired to drop these problems from both arms"
        )
    rows = tokenised.without(overlong)
    dropped = sorted(set(tokenised.row_ids()) & overlong)
    if dropped:
        log.warning("training.drop_overlong=paired: dropped %d problems that exceed %d tokens in this arm or its twin "
                    "(%s): %s", len(dropped), limit, twin_dir, ", ".join(dropped[:20]))
    report = {"rows": len(rows), "tokens": rows.tokens, "labelled_tokens": rows.labelled_tokens,
              "drop_overlong": cfg.training.drop_overlong, "dropped_overlong": len(dropped), "dropped_overlong_ids": dropped,
              "twin_dataset_dir": str(twin_dir) if twin_dir else None, "cache_dir": str(tokenised.path)}
    return rows, report


def twin_config(cfg):
    """The data-stage config of the other arm (RFT ↔ fused) of the same pool, selector and length policy."""
    from dataclasses import replace

    build = build_config_of_train(cfg)
    return replace(build, fusion=replace(build.fusion, name="adaptive" if build.fusion.name == "rft" else "rft"))


def training_data(cfg: TrainConfig, token_report: dict, sequences: SequenceDataset, optimizer_steps: int) -> dict:
    """What a run trained on, comparable across arms: rows, real tokens, updates and samples per update."""
    rows = token_report["rows"]
    return {
        "rows": rows, "tokens": token_report["tokens"], "labelled_tokens": token_report["labelled_tokens"],
        "optimizer_steps": optimizer_steps, "batch_unit": cfg.training.batch_unit,
        "sequences_per_step": cfg.student.global_batch_size,
        "samples_per_step": round(rows / max(len(sequences), 1) * cfg.student.global_batch_size, 3),
        "dropped_overlong": token_report["dropped_overlong"],
    }


class ThroughputTrainer(Trainer):
    """HF Trainer that strips the collators' statistics from the inputs and logs tokens/s, the real
    (non-pad) share of the batch tensors and the fill of the packed sequences."""

    def __init__(self, *args, capacity: int, **kwargs):
        super().__init__(*args, **kwargs)
        self.capacity = capacity
        self._counts = torch.zeros(3, dtype=torch.float64)
        self._since = time.perf_counter()
        self.loss_sum_restored = False
        self.add_callback(LossCarry(self))  # a resumed run's train_loss covers the steps before the checkpoint too

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        stats = [inputs.pop(k) for k in STAT_KEYS]
        self._counts += torch.tensor([float(s) for s in stats], dtype=torch.float64)
        return super().compute_loss(model, inputs, return_outputs=return_outputs, num_items_in_batch=num_items_in_batch)

    def log(self, logs: dict, start_time: float | None = None) -> None:
        if "loss" in logs:  # a training log: every rank reaches it at the same step
            counts = self._counts.to(self.args.device)
            if self.args.world_size > 1:
                counts = self.accelerator.reduce(counts, reduction="sum")
            real, tensor, sequences = counts.tolist()
            elapsed = time.perf_counter() - self._since
            logs["tokens_per_s"] = round(real / elapsed, 1) if elapsed > 0 else 0.0
            logs["real_token_share"] = round(real / tensor, 4) if tensor else 0.0
            logs["pack_fill"] = round(real / (sequences * self.capacity), 4) if sequences else 0.0
            logs["tokens"] = int(real)
            self._counts.zero_()
            self._since = time.perf_counter()
        if "train_loss" in logs and self.loss_sum_restored:  # HF divides by this call's steps only
            logs["train_loss"] = self._total_loss_scalar / max(self.state.global_step, 1)
        super().log(logs, start_time)

    def _save_checkpoint(self, model, trial) -> None:
        # before HF's files: trainer_state.json, written last, then implies the loss sum is there
        if self.args.process_index == 0:
            folder = Path(self._get_output_dir(trial=trial)) / f"checkpoint-{self.state.global_step}"
            save_loss_sum(folder, self.state.global_step, self._total_loss_scalar + self._tr_loss.item())
        super()._save_checkpoint(model, trial)


class PreemptionCallback(TrainerCallback):
    """Save and stop at the next step boundary when SLURM wants the job gone: the pre-timeout SIGUSR1
    (train.sbatch), SIGTERM (pre-emption, scancel, requeue), SIGUSR2 (submitit's pre-timeout signal), or
    the stop file the sbatch trap writes to the shared run directory. The flag is all-reduced so every
    rank saves the same step. `hand_over` then gives the signal to the handler that was there before
    (submitit's, which requeues the job), once the checkpoint is on disk."""

    SIGNALS = (signal.SIGUSR1, signal.SIGTERM, signal.SIGUSR2)

    def __init__(self, stop_file: Path):
        self.stop_file = stop_file
        self.signalled: int | None = None
        self.preempted = False
        self.previous: dict[int, object] = {}
        try:
            for signum in self.SIGNALS:
                self.previous[signum] = signal.signal(signum, self._handle)
        except ValueError:  # not the main thread (e.g. some test runners)
            pass

    def _handle(self, signum, frame) -> None:
        self.signalled = signum

    def hand_over(self) -> None:
        previous = self.previous.get(self.signalled) if self.signalled else None
        if callable(previous):
            log.warning("checkpoint saved: handing %s to the launcher's handler", signal.Signals(self.signalled).name)
            previous(self.signalled, None)
        if self.signalled == signal.SIGTERM and "SUBMITIT_EXECUTOR" in os.environ:
            # SLURM is ending this job (requeue, pre-emption): no result, or the sweep would take this stopped point
            # for a finished one; the requeued job resumes from the checkpoint and returns the result
            log.warning("checkpoint saved: leaving on SIGTERM without a result for submitit")
            raise SystemExit(-1)

    def on_step_end(self, args, state, control, **kwargs):
        flag = torch.tensor([float(self.signalled is not None or self.stop_file.exists())])
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            flag = flag.to(args.device)
            torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
        if flag.item() > 0:
            log.warning("pre-emption requested: saving a checkpoint at step %d and stopping", state.global_step)
            self.preempted = True
            control.should_save = True
            control.should_training_stop = True
        return control


def training_arguments(cfg: TrainConfig, run_dir: Path, world_size: int) -> TrainingArguments:
    s, t = cfg.student, cfg.training
    cuda = torch.cuda.is_available()
    deepspeed = dict(cfg.deepspeed.config) if cfg.deepspeed.config else None
    # On CPU, several ranks talk through gloo (with DeepSpeed too: DS_ACCELERATOR=cpu).
    return TrainingArguments(
        output_dir=str(run_dir),
        per_device_train_batch_size=s.micro_batch_size,
        gradient_accumulation_steps=gradient_accumulation_steps(s.global_batch_size, s.micro_batch_size, world_size),
        learning_rate=s.lr, num_train_epochs=s.epochs, max_steps=t.max_steps, warmup_steps=s.warmup_ratio,
        lr_scheduler_type=s.lr_scheduler, weight_decay=s.weight_decay, max_grad_norm=s.max_grad_norm,
        bf16=s.bf16 and cuda, gradient_checkpointing=s.gradient_checkpointing and cuda,
        gradient_checkpointing_kwargs={"use_reentrant": False},  # PyTorch's recommended variant (works with ZeRO-3)
        logging_steps=t.logging_steps, save_steps=t.save_steps, save_total_limit=t.save_total_limit,
        seed=cfg.seed, data_seed=cfg.seed, report_to="none", remove_unused_columns=False,
        dataloader_num_workers=t.dataloader_workers, use_cpu=not cuda,
        ddp_backend="gloo" if not cuda and world_size > 1 else None, deepspeed=deepspeed,
        disable_tqdm=not cfg.progress, ddp_timeout=t.dist_timeout_s,
    )


def save_final(trainer: Trainer, tokenizer, template: str, out_dir: Path) -> None:
    """HF-format model + tokenizer whose chat template is the training template (vLLM, lm-eval)."""
    trainer.model.config.use_cache = True  # off for packed training only; generation wants it
    trainer.save_model(str(out_dir))
    if trainer.args.process_index == 0:
        tokenizer.chat_template = template
        tokenizer.save_pretrained(str(out_dir))
        (out_dir / "chat_template.jinja").write_text(template, encoding="utf-8")


def train(cfg: TrainConfig, resolved: dict, run_dir: Path, choices: dict[str, str]) -> Path:
    """Train one student; returns the final checkpoint directory (or the run directory if pre-empted)."""
    from trajfusion.data.dataset import build_dataset

    started = time.perf_counter()
    rank, world_size = world()
    run_dir.mkdir(parents=True, exist_ok=True)
    args = training_arguments(cfg, run_dir, world_size)  # initialises torch.distributed when launched by torchrun
    template = load_template(cfg.student.template)
    stop_file = run_dir / cfg.training.stop_file
    with args.main_process_first(local=False, desc="dataset and tokenizer"):  # global rank 0 builds, the others reuse
        if rank == 0:
            claim_run_dir(run_dir, resolved)
            stop_file.unlink(missing_ok=True)  # a stop file from the previous (pre-empted) job
        prepare_tokenizer(cfg.student)  # the data stage counts the budget with it
        dataset_dir = build_dataset(build_config_of_train(cfg), resolved, allow_sampling=False)
        paired = cfg.training.drop_overlong == "paired"
        twin_dir = build_dataset(twin_config(cfg), None, allow_sampling=False) if paired else None
    data_id = read_json(dataset_dir / "manifest.json")["data_id"]
    tokenizer = load_tokenizer(cfg.student)
    rows, token_report = tokenise_dataset(dataset_dir, tokenizer, template, cfg, twin_dir)
    if not rows:
        raise ValueError(f"{dataset_dir}: no trainable rows")
    # batch_unit=samples: one sample per sequence (still padding-free when packing), so global_batch_size counts samples
    sequences = SequenceDataset(rows, cfg.student.max_seq_len, cfg.training.packing and cfg.training.batch_unit == "packs")
    collator = PackedCollator() if cfg.training.packing else PaddedCollator(tokenizer.pad_token_id)
    stage("train    dataset %s: %d rows → %d sequences (fill %.4f of %d tokens); ranks=%d, accumulation=%d",
             data_id, len(rows), len(sequences), sequences.fill, cfg.student.max_seq_len, world_size,
             args.gradient_accumulation_steps)

    model = load_model(cfg.student, tokenizer, cfg.seed, packed=cfg.training.packing,
                       fused_loss=cfg.training.fused_loss)
    tags = [f"{group}:{choice}" for group, choice in sorted(choices.items()) if choice and not group.startswith("hydra")]
    tracker = RunTracker(run_dir, cfg.wandb, cfg.run_name, resolved, tags, dataset_dir, data_id, is_main=rank == 0)
    preemption = PreemptionCallback(stop_file)
    trainer = ThroughputTrainer(
        model=model, args=args, train_dataset=sequences, data_collator=collator, processing_class=tokenizer,
        callbacks=[tracker, preemption], capacity=cfg.student.max_seq_len,
    )
    quiet_trainer(trainer)
    checkpoint = last_complete_checkpoint(run_dir) if cfg.training.resume else None
    if checkpoint is not None:
        log.info("resuming from %s", checkpoint)
        check_zero_world_size(checkpoint, world_size)
    result = trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)

    final_dir = run_dir / "final"
    if not preemption.preempted and cfg.training.save_final:
        save_final(trainer, tokenizer, template, final_dir)
    manifest = {
        "data_id": data_id, "dataset_dir": str(dataset_dir), "run_name": cfg.run_name, "run_dir": str(run_dir),
        "final_checkpoint": str(final_dir) if final_dir.exists() else None, "preempted": preemption.preempted,
        "resumed_from": str(checkpoint) if checkpoint else None, "global_step": trainer.state.global_step,
        "world_size": world_size, "gradient_accumulation_steps": args.gradient_accumulation_steps,
        "tokenisation": token_report, "sequences": len(sequences), "pack_fill": round(sequences.fill, 4),
        "training_data": training_data(cfg, token_report, sequences, trainer.state.global_step),
        "train_metrics": result.metrics, "deepspeed": asdict(cfg.deepspeed), "wall_time_s": round(time.perf_counter() - started, 2),
        "config": resolved,
    }
    if rank == 0:
        write_json(run_dir / "manifest.json", manifest)
        if final_dir.exists():
            shutil.copy(run_dir / "manifest.json", final_dir / "training_manifest.json")
            write_model_card(final_dir)
    tracker.finish({"data_id": data_id, "preempted": preemption.preempted, **result.metrics,
                    **{f"train_data/{k}": v for k, v in manifest["training_data"].items()}},
                   final_dir if final_dir.exists() else None, preempted=preemption.preempted)
    if preemption.preempted:
        preemption.hand_over()  # under submitit: requeue this job (it resumes from the checkpoint just saved)
    return final_dir if final_dir.exists() else run_dir


def build_config_of_train(cfg: TrainConfig):
    """The data-stage config of this train config (the nodes build_data.py composes)."""
    from omegaconf import OmegaConf

    return build_config_of(OmegaConf.structured(cfg))
