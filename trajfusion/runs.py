"""What defines a training run: the part of train.py's config that a run directory and its name stand for.

Two runs that differ in any of it (k_max, α, the selector's options, the preset's W&B group, the student's
hyperparameters, …) get different run names (`run_name` ends with `run_id`, an 8-character hash of it), so W&B
sweep points and presets that share a student and fusion never share a directory; and a directory refuses to be
resumed by a config whose defining part differs (`config_fingerprint`, `differing_keys`). Runtime knobs (logging,
checkpoint cadence, worker counts, where the data lives, W&B's mode) are left out: changing them resumes.
"""

from __future__ import annotations

from typing import Any

from trajfusion.io import content_hash

RUNTIME_ROOT_KEYS = ("run_name", "hydra", "paths", "progress", "plots", "verbose", "stage", "shard")
RUNTIME_KEYS = {
    "training": ("resume", "logging_steps", "save_steps", "save_total_limit", "dataloader_workers", "stop_file",
                 "save_final", "dist_timeout_s", "fused_loss", "tokenise_workers", "tokenise_wait_s"),
    "wandb": ("enabled", "mode", "tags"),
    "verifier": ("workers", "chunk_problems"),
    "teacher": ("problems_per_batch", "tensor_parallel_size", "gpu_memory_utilization", "enable_prefix_caching"),
}
DATA_ROOT_PLACEHOLDER = "<data_root>"


def defining_config(resolved: dict[str, Any]) -> dict[str, Any]:
    """The resolved config without its runtime-only keys."""
    kept = {k: v for k, v in resolved.items() if k not in RUNTIME_ROOT_KEYS}
    for node, keys in RUNTIME_KEYS.items():
        if isinstance(kept.get(node), dict):
            kept[node] = {k: v for k, v in kept[node].items() if k not in keys}
    return kept


def config_fingerprint(resolved: dict[str, Any]) -> str:
    return content_hash(defining_config(resolved))


def run_id(resolved: dict[str, Any]) -> str:
    """8 hex characters that name the run's defining config (the tail of the default run_name)."""
    return content_hash(defining_config(resolved), length=8)


def _leaves(node: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(node, dict) and node:
        out: dict[str, Any] = {}
        for key, value in node.items():
            out.update(_leaves(value, f"{prefix}{key}."))
        return out
    return {prefix[:-1]: node}


def differing_keys(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """Dotted keys whose defining values differ, as `key: before → after`, sorted."""
    old, new = _leaves(defining_config(before)), _leaves(defining_config(after))
    missing = object()
    return [f"{k}: {old.get(k, '<absent>')!r} → {new.get(k, '<absent>')!r}" for k in sorted(set(old) | set(new))
            if old.get(k, missing) != new.get(k, missing)]


def _run_id_resolver(*, _root_) -> str:
    """`${tf_run_id:}`: run_id_of the config being composed."""
    return run_id_of(_root_)


def run_id_of(cfg) -> str:
    """run_id of a composed (unresolved) config: run_name and hydra left out, so no cycle; the data root
    replaced by a placeholder, so moving the data keeps the name."""
    from omegaconf import OmegaConf

    container = OmegaConf.to_container(cfg, resolve=False, enum_to_str=True)
    for key in ("run_name", "hydra"):
        container.pop(key, None)
    if isinstance(container.get("paths"), dict):
        container["paths"]["data_root"] = DATA_ROOT_PLACEHOLDER
    return run_id(OmegaConf.to_container(OmegaConf.create(container), resolve=True))


def register_run_id_resolver() -> None:
    from omegaconf import OmegaConf

    if not OmegaConf.has_resolver("tf_run_id"):
        OmegaConf.register_new_resolver("tf_run_id", _run_id_resolver)
