"""The fused dataset: verified pool → α → one row per problem → <data_root>/fused/<fusion>-<data_id>/,
and calibrate_alpha.py's curve.

Streamed, never the pool in memory: α=auto reads the verified pool once for its fused-count table
(a few numbers per problem), then a second pass fuses one problem at a time and writes its row; what
stats.json and the plots need is a small summary per problem (report.Outcomes).
"""

from __future__ import annotations

import logging
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

from omegaconf import OmegaConf

from trajfusion import __version__
from trajfusion.cards import write_dataset_card
from trajfusion.config import BuildDataConfig
from trajfusion.console import stage
from trajfusion.core.build import FusionSettings, fuse_problem
from trajfusion.core.records import ProblemPool
from trajfusion.data.budget import PROXY_COUNTER, budget_counter
from trajfusion.data.calibration import calibration_report, resolve_alpha
from trajfusion.data.identity import data_identity, data_root, dataset_dir, input_files, pool_dir
from trajfusion.data.report import Outcomes, dataset_stats, summary_table
from trajfusion.data.verified import to_problem_pool, verified_pool, verified_rows
from trajfusion.io import JsonlWriter, atomic_directory, read_json, resolve_path, write_json
from trajfusion.locks import output_lock

log = logging.getLogger(__name__)


def load_prompts(cfg: BuildDataConfig) -> dict:
    prompts = read_json(resolve_path(cfg.fusion.prompts_file))
    if len(prompts.get("reflections", [])) < 1 or len(prompts.get("feedback", [])) < 1:
        raise ValueError(f"{cfg.fusion.prompts_file}: needs non-empty 'reflections' and 'feedback' lists")
    return {k: prompts[k] for k in ("version", "reflections", "feedback")}



def fusion_settings(cfg: BuildDataConfig, prompts: dict, alpha: float | None = None, policy: str | None = None) -> FusionSettings:
    lp = cfg.length_policy
    return FusionSettings(
        fusion=cfg.fusion.name, selector=cfg.selector.name, correct_choice=cfg.selector.correct,
        length_policy=policy or lp.name, k_max=lp.k_max, alpha=alpha, max_tokens=lp.max_tokens,
        overhead_tokens=lp.overhead_tokens, use_truncated_errors=cfg.fusion.use_truncated_errors, seed=cfg.seed,
        system_prompt=cfg.fusion.system_prompt, reflections=tuple(prompts["reflections"]), feedback=tuple(prompts["feedback"]),
    )


def problem_pools(verified_path: Path) -> Iterator[ProblemPool]:
    """The verified pool's problems, one at a time, in pool order (each call reads the file again)."""
    for row in verified_rows(verified_path):
        yield to_problem_pool(row)


def _git_sha() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True, cwd=resolve_path("."))
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def build_dataset(cfg: BuildDataConfig, resolved_config: dict | None = None, allow_sampling: bool = True) -> Path:
    """build_data.py: the dataset directory for this config (built, or reused when it exists).

    train.py calls it with `allow_sampling=False`: fusing a cached pool is cheap, sampling is not.
    """
    started = time.perf_counter()
    prompts = load_prompts(cfg)
    data_id, out_dir = dataset_dir(cfg, prompts)
    if (out_dir / "manifest.json").exists() and (out_dir / "data.jsonl").exists():
        stage("data     dataset %s exists: reusing %s", data_id, out_dir)
        if not (out_dir / "README.md").exists():  # built before datasets had cards
            write_dataset_card(out_dir)
        return out_dir
    with output_lock(data_root(cfg), f"fused-{out_dir.name}"):  # a concurrent build of it waits, then reuses
        if (out_dir / "manifest.json").exists() and (out_dir / "data.jsonl").exists():
            stage("data     dataset %s was built by another process: reusing %s", data_id, out_dir)
            return out_dir
        return _build_dataset(cfg, resolved_config, allow_sampling, started, prompts, data_id, out_dir)


def _build_dataset(cfg: BuildDataConfig, resolved_config: dict | None, allow_sampling: bool, started: float,
                   prompts: dict, data_id: str, out_dir: Path) -> Path:
    verified_path, verify_report = verified_pool(cfg, allow_sampling)
    if verify_report["verdicts"].get("unknown"):
        log.warning("%d of %d samples could not be judged (unknown: outside r, never fused): %s",
                    verify_report["verdicts"]["unknown"], verify_report["samples"],
                    ", ".join(f"{k}={v}" for k, v in verify_report.get("unknown_reasons", {}).items()))
    count, counter_used = budget_counter(cfg.length_policy.tokenizer)
    calibration_identity = {k: v for k, v in data_identity(cfg, prompts).items() if k != "pool"}
    alpha, alpha_record = resolve_alpha(cfg, problem_pools(verified_path), verified_path,
                                        fusion_settings(cfg, prompts, policy="none"), count, calibration_identity)
    settings = fusion_settings(cfg, prompts, alpha)
    manifest = {
        "data_id": data_id,
        "identity": data_identity(cfg, prompts),
        "config": resolved_config if resolved_config is not None else OmegaConf.to_container(OmegaConf.structured(cfg)),
        "git_sha": _git_sha(),
        "trajfusion_version": __version__,
        "input_files": input_files(cfg),
        "verified_pool": str(verified_path),
        "verification": verify_report,
        "alpha": alpha_record,
        "token_counter": {"configured": cfg.length_policy.tokenizer, "used": counter_used or PROXY_COUNTER},
        "counts": None,
        "rows": None,
        "wall_time_s": None,
    }
    with atomic_directory(out_dir) as tmp:
        outcomes = Outcomes()
        with JsonlWriter(tmp / "data.jsonl") as out:
            for pool in problem_pools(verified_path):
                row, outcome = fuse_problem(pool, settings, count)
                outcomes.add(outcome)
                if row is not None:
                    row["data_id"] = data_id
                    out.write(row)
        stats = dataset_stats(outcomes, settings) | {"alpha_calibration": alpha_record}
        stats["unknown_reasons"] = verify_report.get("unknown_reasons", {})
        manifest["counts"], manifest["rows"] = stats["counts"], out.rows
        write_json(tmp / "stats.json", stats)
        if cfg.plots:
            from trajfusion.data.plots import plot_dataset

            manifest["plots"] = plot_dataset(outcomes, settings, tmp)
        manifest["wall_time_s"] = round(time.perf_counter() - started, 2)
        write_json(tmp / "manifest.json", manifest)
        write_dataset_card(tmp, manifest, stats)  # README.md for the hub and load_dataset(DIR)
    log.info("\n%s", summary_table(stats, out_dir))
    stage("data     built %s: %d rows in %.1fs", out_dir.name, manifest["rows"], manifest["wall_time_s"])
    from trajfusion.lineage import log_data_run

    log_data_run((resolved_config or {}).get("wandb"), out_dir, data_root(cfg), (resolved_config or {}).get("run_name"))
    return out_dir



# ----------------------------------------------------------------------------- α calibration


def calibrate(cfg: BuildDataConfig) -> dict:
    """calibrate_alpha.py: mean #Err and P(#Err ≥ j) at every breakpoint of α, a grid view, and the α that
    `length_policy.alpha=auto` picks for the target (the same search, the same fused-count table)."""
    prompts = load_prompts(cfg)
    verified_path, _ = verified_pool(cfg)
    lp = cfg.length_policy
    result = calibration_report(cfg, problem_pools(verified_path), fusion_settings(cfg, prompts, policy="none"),
                                budget_counter(lp.tokenizer)[0])
    result["pool"] = str(verified_path)
    out = pool_dir(cfg) / f"calibration-curve-{cfg.selector.name}-kmax{lp.k_max}.json"
    write_json(out, result)
    header = "  alpha     mean#Err  " + "  ".join(f"P(#Err>={j})" for j in range(1, lp.k_max + 1))
    lines = [f"α calibration on {result['problems']} problems (selector={cfg.selector.name}, k_max={lp.k_max}, "
             f"target #Err={result['target']}, reachable max {result['reachable_max']})", "grid:", header]
    for p in result["grid"]:
        lines.append(f"  {p['alpha']:<8.4g}  {p['mean_errors']:8.3f}  " + "  ".join(f"{q:10.3f}" for q in p["p_at_least"]))
    lines.append(f"picked (closest of {len(result['curve'])} steps): α={result['alpha']}  mean #Err {result['mean_errors']}  "
                 f"P(#Err>=j) {result['p_at_least']}")
    if result["reachable_max"] < result["target"]:
        lines.append(f"WARNING: the pool cannot reach {result['target']}; at most {result['reachable_max']}")
    lines.append(f"every breakpoint in {out}; `length_policy.alpha=auto` (the default) uses this α when building")
    log.info("\n%s", "\n".join(lines))
    return result
