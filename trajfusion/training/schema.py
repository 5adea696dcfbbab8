"""Schemas of train.py's config: the data-stage nodes (shared with build_data.py) plus the student,
DeepSpeed, runtime and W&B nodes. Registered as `train_schema`; values are checked in `__post_init__`
when the entry point calls `to_train_config`, so a bad value fails before any model is loaded.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf

from trajfusion.config import BUILD_KEYS, BuildDataConfig, to_build_config
from trajfusion.training.kernels import FUSED_LOSS_OPTIONS as FUSED_LOSS

TEMPLATES = ("base_plain", "chatml")
DROP_OVERLONG = ("error", "paired")
BATCH_UNITS = ("packs", "samples")
DEEPSPEED_STAGES = (0, 1, 2, 3)


class StudentSource(str, Enum):
    hf = "hf"  # a HF model id or directory (vLLM/lm-eval load the same)
    gguf = "gguf"  # a GGUF file inside an installed wheel (SmolLM2 on CPU)
    tiny_random = "tiny_random"  # a random-init Llama built in code (tests)


class RopeScaling(str, Enum):
    none = "none"
    yarn = "yarn"


def _require(ok: bool, where: str, message: str) -> None:
    if not ok:
        raise ValueError(f"{where}: {message}")


@dataclass
class StudentConfig:
    """The model trained, its tokenizer and template, and the paper's hyperparameters (Table 4)."""

    name: str = MISSING
    source: StudentSource = StudentSource.hf
    model: Optional[str] = None  # hf: id or directory; gguf: python package holding the file
    gguf_file: Optional[str] = None
    # Hub id or directory of the tokenizer that counts the data stage's token budget (exact). Where it does
    # not load (offline), and when null, the data stage budgets with its bytes/3 proxy (manifest: token_counter).
    tokenizer: Optional[str] = None
    template: str = "base_plain"  # trajfusion/templates/<template>.jinja, also written into the checkpoint
    max_seq_len: int = 4096
    rope_scaling: RopeScaling = RopeScaling.none
    rope_factor: float = 1.0  # YaRN: max_seq_len / original context
    original_max_position_embeddings: Optional[int] = None
    lr: float = 5e-5
    epochs: float = 5.0
    global_batch_size: int = 64  # sequences per optimizer step, whatever the number of ranks
    micro_batch_size: int = 1  # sequences per rank per forward pass; accumulation is computed
    warmup_ratio: float = 0.03
    weight_decay: float = 0.0
    lr_scheduler: str = "cosine"
    max_grad_norm: float = 1.0
    bf16: bool = True
    gradient_checkpointing: bool = True
    attn_implementation: str = "flash_attention_2"  # on CPU the trainer falls back to sdpa (packed mask)
    tiny: dict[str, Any] = field(default_factory=dict)  # tiny_random: LlamaConfig overrides

    def __post_init__(self) -> None:
        where = f"student ({self.name})"
        _require(self.template in TEMPLATES, f"{where}.template", f"unknown {self.template!r}; supported: {', '.join(TEMPLATES)}")
        _require(self.max_seq_len > 0, f"{where}.max_seq_len", "must be positive")
        _require(self.lr > 0 and self.epochs > 0, where, "lr and epochs must be positive")
        _require(self.global_batch_size > 0 and self.micro_batch_size > 0, where, "batch sizes must be positive")
        _require(0 <= self.warmup_ratio < 1, f"{where}.warmup_ratio", "must be in [0, 1)")
        if self.source != StudentSource.tiny_random:
            _require(bool(self.model), f"{where}.model", f"the {self.source.value} source needs a model")
        if self.source == StudentSource.gguf:
            _require(bool(self.gguf_file), f"{where}.gguf_file", "the gguf source needs the file name")
        if self.rope_scaling == RopeScaling.yarn:
            _require(self.rope_factor > 1 and bool(self.original_max_position_embeddings), where,
                     "YaRN needs rope_factor > 1 and original_max_position_embeddings")


@dataclass
class DeepSpeedConfig:
    """A DeepSpeed JSON config as a mapping, with HF "auto" fields filled by the Trainer; `none`: no DeepSpeed."""

    name: str = MISSING
    stage: int = 0
    config: Optional[dict[str, Any]] = None

    def __post_init__(self) -> None:
        _require(self.stage in DEEPSPEED_STAGES, f"deepspeed ({self.name}).stage", f"must be one of {DEEPSPEED_STAGES}")
        _require((self.config is None) == (self.name == "none"), f"deepspeed ({self.name})", "only `none` has no config")


@dataclass
class TrainingConfig:
    """Runtime knobs that do not change what is learned (except max_steps, for smoke runs)."""

    packing: bool = True  # paper: input sequence packing; false = one padded sample per sequence
    max_steps: int = -1  # -1: student.epochs
    logging_steps: int = 1
    save_steps: int = 200
    save_total_limit: int = 2
    resume: bool = True  # restart from the newest checkpoint in the run directory
    stop_file: str = "PREEMPT"  # run-dir file that makes every rank save and stop (SLURM pre-timeout signal)
    dataloader_workers: int = 0
    save_final: bool = True
    dist_timeout_s: int = 7200  # collectives incl. the barrier while rank 0 verifies + fuses a missing dataset
    # A row longer than student.max_seq_len: `error` stops with its problem ids; `paired` drops those problem
    # ids (overflowing in this arm or in its RFT/fused twin of the same pool) from both arms and records them.
    drop_overlong: str = "error"
    # What student.global_batch_size counts: `packs` (packed sequences of whole samples, as ms-swift's
    # packing; the paper's setting) or `samples` (equal optimizer updates for both arms: the control).
    batch_unit: str = "packs"
    # Liger's fused linear + cross-entropy (no full fp32 logits): auto = on CUDA when installed and the model
    # family is supported, else the plain loss; liger = required; none = plain loss (trajfusion.training.kernels)
    fused_loss: str = "auto"
    # Tokenising into the shared Arrow cache (trajfusion.training.token_cache): map worker processes
    # (0: the CPUs this process may use, at most 32), and how long ranks > 0 wait for rank 0 to build it.
    tokenise_workers: int = 0
    tokenise_wait_s: int = 14400

    def __post_init__(self) -> None:
        _require(self.logging_steps > 0 and self.save_steps > 0, "training", "logging_steps and save_steps must be positive")
        _require(self.dist_timeout_s > 0, "training.dist_timeout_s", "must be positive")
        _require(self.tokenise_workers >= 0, "training.tokenise_workers", "must be 0 (auto) or positive")
        _require(self.tokenise_wait_s > 0, "training.tokenise_wait_s", "must be positive")
        _require(self.drop_overlong in DROP_OVERLONG, "training.drop_overlong",
                 f"unknown option {self.drop_overlong!r}; supported: {', '.join(DROP_OVERLONG)}")
        _require(self.batch_unit in BATCH_UNITS, "training.batch_unit",
                 f"unknown option {self.batch_unit!r}; supported: {', '.join(BATCH_UNITS)}")
        _require(self.max_steps == -1 or self.max_steps > 0, "training.max_steps", "must be -1 or positive")
        _require(self.fused_loss in FUSED_LOSS, "training.fused_loss",
                 f"unknown option {self.fused_loss!r}; supported: {', '.join(FUSED_LOSS)}")


@dataclass
class WandbConfig:
    """W&B on rank 0: group = experiment, tags from the group choices; offline when no API key is set."""

    enabled: bool = True
    project: str = "trajfusion"
    entity: Optional[str] = None
    group: Optional[str] = None  # null: the run name
    job_type: str = "train"
    mode: Optional[str] = None  # online | offline | disabled; null: online with an API key, else offline
    tags: list[str] = field(default_factory=list)


@dataclass
class TrainConfig(BuildDataConfig):
    student: StudentConfig = MISSING
    deepspeed: DeepSpeedConfig = MISSING
    training: TrainingConfig = field(default_factory=TrainingConfig)
    wandb: WandbConfig = field(default_factory=WandbConfig)
    run_name: str = MISSING


def register_train_configs() -> None:
    from trajfusion.runs import register_run_id_resolver

    register_run_id_resolver()  # run_name's ${tf_run_id:}
    ConfigStore.instance().store(name="train_schema", node=TrainConfig)


def to_train_config(cfg: DictConfig | dict[str, Any]) -> TrainConfig:
    node = OmegaConf.merge(OmegaConf.structured(TrainConfig), cfg)
    return OmegaConf.to_object(node)  # type: ignore[return-value]


def build_config_of(cfg: DictConfig) -> BuildDataConfig:
    """The data-stage config inside a train config (the same nodes build_data.py would compose)."""
    container = OmegaConf.to_container(cfg, resolve=True)
    return to_build_config({k: container[k] for k in BUILD_KEYS if k in container})


def gradient_accumulation_steps(global_batch_size: int, micro_batch_size: int, world_size: int) -> int:
    """Accumulation that keeps the global batch fixed for any number of ranks; refuses a remainder."""
    per_step = micro_batch_size * world_size
    if global_batch_size % per_step:
        raise ValueError(
            f"student.global_batch_size={global_batch_size} is not a multiple of micro_batch_size × world_size "
            f"= {micro_batch_size} × {world_size}; change student.micro_batch_size or the number of ranks"
        )
    return global_batch_size // per_step
