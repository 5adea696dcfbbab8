"""Schemas of evaluate.py's config (registered as `evaluate_schema`), checked in `__post_init__` when the
entry point calls `to_eval_config`, so a bad value fails before a model is loaded."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf

from trajfusion.config import PathsConfig, VerifierConfig
from trajfusion.evaluation.training_api import deepspeed_schema, student_schema, wandb_schema
from trajfusion.tasks import TASK_DIR

StudentConfig = student_schema()
DeepSpeedConfig = deepspeed_schema()
WandbConfig = wandb_schema()


def _require(ok: bool, where: str, message: str) -> None:
    if not ok:
        raise ValueError(f"{where}: {message}")


def shipped_tasks() -> list[str]:
    """Task names of trajfusion/tasks (file name = task name; files starting with `_` are bases)."""
    return sorted(p.stem for p in TASK_DIR.glob("tf_*.yaml") if p.stem not in ("tf_paper_main", "tf_long_form"))


@dataclass
class SamplingConfig:
    """Decoding of the Avg@k tasks (`*_avg16`): k samples per problem, mean accuracy (not pass@k)."""

    n: int = 16
    temperature: float = 0.7
    top_p: float = 0.95

    def __post_init__(self) -> None:
        _require(self.n >= 1, "benchmark.sampling.n", "must be >= 1")
        _require(self.temperature > 0 and 0 < self.top_p <= 1, "benchmark.sampling", "needs temperature > 0 and top_p in (0, 1]")


@dataclass
class BenchmarkConfig:
    """Which tasks, how many problems, how long the outputs; greedy tasks give Pass@1, `*_avg16` Avg@k."""

    name: str = MISSING
    tasks: list[str] = MISSING
    limit: Optional[int] = None  # first N problems of every task (null: all)
    max_new_tokens: int = 2048
    sampling: SamplingConfig = field(default_factory=SamplingConfig)

    def __post_init__(self) -> None:
        known = shipped_tasks()
        _require(bool(self.tasks), f"benchmark ({self.name}).tasks", "is empty")
        for task in self.tasks:
            _require(task in known, f"benchmark ({self.name}).tasks", f"unknown task {task!r}; shipped: {', '.join(known)}")
        _require(self.limit is None or self.limit > 0, "benchmark.limit", "must be positive or null")
        _require(self.max_new_tokens > 0, "benchmark.max_new_tokens", "must be positive")


class BackendName(str, Enum):
    hf = "hf"  # transformers through lm-eval's HFLM (CPU or one GPU), in process
    vllm = "vllm"  # lm-eval's vLLM model, one process per data-parallel shard (GPU; `gpu` extra)


@dataclass
class BackendConfig:
    name: BackendName = BackendName.hf
    batch_size: int = 8
    device: Optional[str] = None  # hf: null = cuda if available else cpu
    dtype: str = "auto"  # vllm: auto | bfloat16 | float16 | float32
    tensor_parallel_size: int = 1  # vllm: GPUs per shard
    data_parallel_size: int = 1  # vllm: independent shards (not lm-eval's Ray data parallelism, which hangs)
    gpu_memory_utilization: float = 0.9
    max_model_len: Optional[int] = None  # null: student.max_seq_len
    seed: int = 1234  # vllm sampling seed (each shard adds its index)

    def __post_init__(self) -> None:
        _require(self.batch_size > 0, "backend.batch_size", "must be positive")
        _require(self.tensor_parallel_size > 0 and self.data_parallel_size > 0, "backend",
                 "tensor_parallel_size and data_parallel_size must be positive")
        _require(0 < self.gpu_memory_utilization <= 1, "backend.gpu_memory_utilization", "must be in (0, 1]")


@dataclass
class PromptConfig:
    # null: the fused dataset's system prompt recorded in the checkpoint's training manifest, else the
    # project default (conf/fusion/*.yaml); "" : none.
    system_prompt: Optional[str] = None


@dataclass
class EvalConfig:
    student: StudentConfig = MISSING
    benchmark: BenchmarkConfig = MISSING
    ckpt: Optional[str] = None  # HF checkpoint directory (train.py's <run>/final); null: the student's own weights
    backend: BackendConfig = field(default_factory=BackendConfig)
    prompt: PromptConfig = field(default_factory=PromptConfig)
    verifier: VerifierConfig = field(default_factory=VerifierConfig)
    paths: PathsConfig = field(default_factory=PathsConfig)
    wandb: WandbConfig = field(default_factory=WandbConfig)
    deepspeed: Optional[DeepSpeedConfig] = None  # students select a DeepSpeed default; evaluation ignores it
    seed: int = 0
    run_name: str = MISSING
    wandb_table_rows: int = 2000  # per task, in the W&B samples table (the JSONL has all)
    verbose: bool = False  # console: every library's output instead of one line per stage

    def __post_init__(self) -> None:
        if self.backend.name == BackendName.vllm:
            _require(self.ckpt is not None or self.student.source.value == "hf", "backend=vllm",
                     "needs a HF checkpoint: ckpt=PATH or a student with source hf")


def register_eval_configs() -> None:
    ConfigStore.instance().store(name="evaluate_schema", node=EvalConfig)


def to_eval_config(cfg: DictConfig | dict[str, Any]) -> EvalConfig:
    node = OmegaConf.merge(OmegaConf.structured(EvalConfig), cfg)
    return OmegaConf.to_object(node)  # type: ignore[return-value]
