"""Where each stage's output lives, keyed by a hash of what decides it, so selector / length_policy /
fusion sweeps never resample or re-verify:

    <data_root>/pools/<teacher>-<pool_id>/verified-<verifier_id>.jsonl.gz
    <data_root>/cache/verify.sqlite                     (every check, resumable)
    <data_root>/fused/<fusion>-<data_id>/{data.jsonl, manifest.json, stats.json, *.png}
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

from trajfusion.config import BuildDataConfig
from trajfusion.core.verify import VERIFIER_VERSION
from trajfusion.data.budget import budget_counter, tokenizer_identity
from trajfusion.data.calibration import alpha_identity
from trajfusion.io import content_hash, resolve_path, sha256_file


def data_root(cfg: BuildDataConfig) -> Path:
    return Path(cfg.paths.data_root).expanduser().resolve()


def input_files(cfg: BuildDataConfig) -> dict[str, str]:
    paths = {p for p in (cfg.data.path, cfg.teacher.pool_path) if p}
    return {str(p): sha256_file(resolve_path(p)) for p in sorted(paths)}


# engine and batching knobs: they change speed, not samples
_TEACHER_RUNTIME_KEYS = ("pool_path", "tensor_parallel_size", "gpu_memory_utilization",
                         "enable_prefix_caching", "problems_per_batch")


def pool_identity(cfg: BuildDataConfig) -> dict:
    """What decides the teacher pool: problem and pool *contents* (not paths) and the teacher settings."""
    data = {k: v for k, v in asdict(cfg.data).items() if k != "path"}
    teacher = {k: v for k, v in asdict(cfg.teacher).items() if k not in _TEACHER_RUNTIME_KEYS}
    teacher["backend"] = cfg.teacher.backend.value
    return {"data": data, "teacher": teacher, "files": sorted(input_files(cfg).values())}


def verifier_identity(cfg: BuildDataConfig) -> dict:
    return {"version": VERIFIER_VERSION, "strategies": list(cfg.verifier.strategies), "timeout_s": cfg.verifier.timeout_s}


def data_identity(cfg: BuildDataConfig, prompts: dict) -> dict:
    """What decides a dataset's bytes. RFT leaves out the knobs that do not shape its rows, so one
    RFT dataset serves every selector / length_policy sweep of the same pool."""
    lp = cfg.length_policy
    identity = {
        "pool": content_hash(pool_identity(cfg)),
        "verifier": content_hash(verifier_identity(cfg)),
        "fusion": {k: v for k, v in asdict(cfg.fusion).items() if k not in ("prompts_file", "loss_on_errors")},
        "prompts": content_hash(prompts),
        "budget": {"max_tokens": lp.max_tokens, "tokenizer": tokenizer_identity(budget_counter(lp.tokenizer)[1]),
                   "overhead_tokens": lp.overhead_tokens},
        "correct": cfg.selector.correct,
        "seed": cfg.seed,
    }
    if cfg.fusion.name != "rft":
        identity["selector"] = asdict(cfg.selector)
        identity["length_policy"] = {"name": lp.name, "k_max": lp.k_max, "alpha": alpha_identity(cfg)}
    return identity


def dataset_dir(cfg: BuildDataConfig, prompts: dict) -> tuple[str, Path]:
    data_id = content_hash(data_identity(cfg, prompts))
    return data_id, data_root(cfg) / "fused" / f"{cfg.fusion.name}-{data_id}"


def pool_dir(cfg: BuildDataConfig) -> Path:
    return data_root(cfg) / "pools" / f"{cfg.teacher.name}-{content_hash(pool_identity(cfg))}"
