"""Choosing α for a pool (DESIGN §5.1): the paper gives no α, only the mean number of fused errors
(#Err, Table 2: 0.62 / 1.02 / 1.49 / 1.74 at k_max = 1 / 2 / 4 / 6). α is picked so that a pool's
mean #Err matches such a target; the sweep also reports P(k ≥ j) so the adaptive rule stays visible.

The token budget is left out here (it is applied, and counted, when the dataset is built).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from trajfusion.core.length import LENGTH_POLICIES
from trajfusion.core.records import ProblemPool
from trajfusion.core.select import choose_correct, eligible_errors, ranked_groups
from trajfusion.core.stats import ProblemStats, problem_stats

PAPER_MEAN_ERRORS = {1: 0.62, 2: 1.02, 4: 1.49, 6: 1.74}
DEFAULT_ALPHA_GRID = (
    0.02, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0,
    1.25, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 16.0, 32.0,
)  # fmt: skip


@dataclass(frozen=True)
class ErrorCap:
    """A kept problem's statistics and the most errors its selector could ever fuse."""

    stats: ProblemStats
    cap: int


@dataclass(frozen=True)
class CalibrationPoint:
    alpha: float
    mean_errors: float
    p_at_least: tuple[float, ...]  # P(#errors ≥ j) for j = 1 … k_max


def error_caps(pools: Iterable[ProblemPool], selector: str, use_truncated: bool = False) -> list[ErrorCap]:
    """Per kept problem (one with a usable correct trajectory), the selector's ceiling on k."""
    caps = []
    for pool in pools:
        if choose_correct(pool.samples, "first", None) is None:  # type: ignore[arg-type]
            continue
        stats = problem_stats(pool.samples)
        groups = ranked_groups(eligible_errors(pool.samples, use_truncated), stats.group_sizes)
        if selector == "diverse":
            cap = len(groups)
        elif selector == "low_div":
            cap = len(groups[0]) if groups else 0
        else:
            cap = sum(len(g) for g in groups)
        caps.append(ErrorCap(stats, cap))
    return caps


def evaluate_alpha(caps: Sequence[ErrorCap], policy: str, k_max: int, alpha: float) -> CalibrationPoint:
    counts = [min(c.cap, LENGTH_POLICIES[policy](c.stats, k_max, alpha)) for c in caps]
    n = max(len(counts), 1)
    p = tuple(sum(c >= j for c in counts) / n for j in range(1, k_max + 1))
    return CalibrationPoint(alpha, sum(counts) / n, p)


def sweep(caps: Sequence[ErrorCap], policy: str, k_max: int, alphas: Sequence[float] = DEFAULT_ALPHA_GRID) -> list[CalibrationPoint]:
    return [evaluate_alpha(caps, policy, k_max, a) for a in alphas]


def pick_alpha(caps: Sequence[ErrorCap], k_max: int, target: float, lo: float = 0.0, hi: float = 64.0, steps: int = 40) -> CalibrationPoint:
    """The α (to 4 decimals) whose mean #Err is closest to `target` under the adaptive rule.

    Mean #Err is a non-decreasing step function of α, so bisection finds the step that crosses
    the target; the closer of its two sides wins (ties: the smaller α).
    """
    for _ in range(steps):
        mid = (lo + hi) / 2
        if evaluate_alpha(caps, "adaptive", k_max, mid).mean_errors < target:
            lo = mid
        else:
            hi = mid
    # Round outwards so each side stays on its own step.
    below = evaluate_alpha(caps, "adaptive", k_max, math.floor(lo * 1e4) / 1e4)
    above = evaluate_alpha(caps, "adaptive", k_max, math.ceil(hi * 1e4) / 1e4)
    return below if abs(below.mean_errors - target) <= abs(above.mean_errors - target) else above
