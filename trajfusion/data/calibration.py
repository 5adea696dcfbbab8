"""α for the dataset being built (DESIGN §5.1): a number given on the command line is used as
given; `length_policy.alpha=auto` (the default) calibrates α on the verified pool about to be fused,
for the configured selector, k_max and token budget, to the target mean #Err.

The calibration is cached beside the verified pool as `calibration-<key>.json`, keyed by everything
that decides the fused-count table (pool and verifier by location, selector, policy, k_max, target,
budget, fusion settings, prompts, seed, calibration version), so every later build and training run
of the same pool reuses it. data_id hashes "auto" + target + version, never the resulting α, so a
dataset can be looked up before its α is known.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from trajfusion.config import BuildDataConfig
from trajfusion.core.build import FusionSettings, TokenCounter
from trajfusion.core.calibrate import CALIBRATION_VERSION, calibrate, curve, fused_error_table, paper_target, sweep
from trajfusion.core.records import ProblemPool
from trajfusion.io import content_hash, read_json, write_json

log = logging.getLogger(__name__)

AUTO = "auto"


def is_auto(cfg: BuildDataConfig) -> bool:
    return cfg.length_policy.alpha == AUTO


def calibrates(cfg: BuildDataConfig) -> bool:
    """Only the adaptive policy of a fused arm reads α; RFT, `fixed` and `none` never need it."""
    return is_auto(cfg) and cfg.fusion.name != "rft" and cfg.length_policy.name == "adaptive"


def target_errors(cfg: BuildDataConfig) -> float:
    lp = cfg.length_policy
    return float(lp.target_errors) if lp.target_errors is not None else paper_target(lp.k_max)


def alpha_identity(cfg: BuildDataConfig) -> Any:
    """What data_id records for α: the number as given, or what auto calibrates to (never its result)."""
    if not is_auto(cfg):
        return cfg.length_policy.alpha
    if not calibrates(cfg):
        return AUTO
    return {"auto": target_errors(cfg), "calibration_version": CALIBRATION_VERSION}


def _round(values) -> list[float]:
    return [round(v, 4) for v in values]


def calibration_key(identity: dict) -> str:
    return content_hash(identity)


def resolve_alpha(
    cfg: BuildDataConfig, pools: Iterable[ProblemPool], verified_path: Path, settings: FusionSettings, count: TokenCounter,
    identity: dict,
) -> tuple[float | None, dict]:
    """(α for the fusion settings, the record that goes into manifest.json / stats.json / W&B).

    `pools` is read (once, as a stream) only when the calibration is not cached; `settings` are the
    build's settings (α unset); `identity` what decides the fused-count table.
    """
    given = cfg.length_policy.alpha
    if not is_auto(cfg):
        return given, {"setting": given, "alpha": given, "source": "given"}
    if not calibrates(cfg):
        return None, {"setting": AUTO, "alpha": None, "source": f"unused by {cfg.fusion.name}/{cfg.length_policy.name}"}
    target = target_errors(cfg)
    identity = identity | {"target_errors": target, "version": CALIBRATION_VERSION}
    path = verified_path.parent / f"calibration-{calibration_key(identity)}.json"
    if path.exists():
        record = read_json(path)
        log.info("α=%s from the cached calibration %s (mean #Err %.4f, target %.4g)", record["alpha"], path,
                 record["mean_errors"], target)
    else:
        k_max = cfg.length_policy.k_max
        table = fused_error_table(pools, settings, count)
        result = calibrate(table, k_max, target)
        record = {
            "alpha": result.alpha, "mean_errors": round(result.mean_errors, 4), "p_at_least": _round(result.p_at_least),
            "reachable_max": round(result.reachable_max, 4), "target": target, "version": CALIBRATION_VERSION,
            "problems": result.problems, "breakpoints": result.breakpoints, "selector": cfg.selector.name, "k_max": k_max,
            "identity": identity,
        }
        write_json(path, record)
        log.info("α calibrated on %d problems (selector=%s, k_max=%d): α=%s gives mean #Err %.4f for target %.4g "
                 "(%d breakpoints searched) → %s", result.problems, cfg.selector.name, k_max, result.alpha,
                 result.mean_errors, target, result.breakpoints, path)
    if record["reachable_max"] < target:
        log.warning(
            "α calibration: this pool cannot reach mean #Err %.4g with selector=%s, k_max=%d: at most %.4f (every "
            "problem at k = k_max); using α=%s, mean #Err %.4f. Lower length_policy.target_errors, raise k_max, or "
            "sample more (or more diverse) errors per problem.",
            target, cfg.selector.name, cfg.length_policy.k_max, record["reachable_max"], record["alpha"], record["mean_errors"],
        )
    return record["alpha"], {"setting": AUTO, "alpha": record["alpha"], "source": "calibrated", "file": path.name,
                             **{k: record[k] for k in ("mean_errors", "p_at_least", "reachable_max", "target", "version")}}


def calibration_report(cfg: BuildDataConfig, pools: Iterable[ProblemPool], settings: FusionSettings, count: TokenCounter) -> dict:
    """calibrate_alpha.py: the whole curve (every breakpoint), a grid view, and the pick for the target."""
    if cfg.fusion.name == "rft" or cfg.length_policy.name != "adaptive":
        raise ValueError(f"α shapes only fusion=adaptive with length_policy=adaptive, not fusion={cfg.fusion.name}, "
                         f"length_policy={cfg.length_policy.name}")
    k_max = cfg.length_policy.k_max
    target = target_errors(cfg)
    table = fused_error_table(pools, settings, count)
    points = curve(table, k_max)
    best = calibrate(table, k_max, target)
    return {
        "problems": len(table), "k_max": k_max, "selector": cfg.selector.name, "target": target,
        "alpha": best.alpha, "mean_errors": round(best.mean_errors, 4), "p_at_least": _round(best.p_at_least),
        "reachable_max": round(best.reachable_max, 4), "version": CALIBRATION_VERSION,
        "curve": [{"alpha": p.alpha, "mean_errors": round(p.mean_errors, 4), "p_at_least": _round(p.p_at_least)} for p in points],
        "grid": [{"alpha": p.alpha, "mean_errors": round(p.mean_errors, 4), "p_at_least": _round(p.p_at_least)}
                 for p in sweep(table, k_max)],
    }
