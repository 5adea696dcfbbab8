"""Choosing α for a pool (DESIGN §5.1): the paper gives no α, only the mean number of fused errors
(#Err, Table 2: 0.62 / 1.02 / 1.49 / 1.74 at k_max = 1 / 2 / 4 / 6). α depends on the pool
(problems × teacher × K), so it is calibrated on the pool being fused, to such a target.

k = min(k_max, ⌊α·r·u⌋) is a step function of α: a problem's k changes only at the smallest α
where ⌊α·r·u⌋ reaches 1, 2, …, k_max. Those breakpoints are found exactly, with the very float
expression of the length policy, so the curve below is the dataset's own, not a grid's. At each
breakpoint the mean #Err is the *fused* count, read from a per-problem table of how many errors
the row really gets when the policy says k (the selector may find fewer errors than k, the token
budget may drop some): the number stats.json will report.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from decimal import ROUND_CEILING, Decimal

from trajfusion.core.build import FusionSettings, TokenCounter, fuse_problem
from trajfusion.core.length import LENGTH_POLICIES
from trajfusion.core.records import ProblemPool
from trajfusion.core.stats import ProblemStats

CALIBRATION_VERSION = 1  # bump when the search or the fused-count table changes meaning
PAPER_MEAN_ERRORS = {1: 0.62, 2: 1.02, 4: 1.49, 6: 1.74}
DEFAULT_ALPHA_GRID = (
    0.02, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0,
    1.25, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 16.0, 32.0,
)  # fmt: skip


def paper_target(k_max: int) -> float:
    """Table 2's #Err for this k_max, linear between the published k_max (1, 2, 4, 6)."""
    if k_max in PAPER_MEAN_ERRORS:
        return PAPER_MEAN_ERRORS[k_max]
    known = sorted(PAPER_MEAN_ERRORS)
    if not known[0] < k_max < known[-1]:
        raise ValueError(
            f"length_policy.target_errors: the paper gives #Err only for k_max 1–6, not {k_max}; set a target "
            "(e.g. length_policy.target_errors=1.5) or an explicit length_policy.alpha"
        )
    lo = max(k for k in known if k < k_max)
    hi = min(k for k in known if k > k_max)
    t = (k_max - lo) / (hi - lo)
    return round(PAPER_MEAN_ERRORS[lo] + t * (PAPER_MEAN_ERRORS[hi] - PAPER_MEAN_ERRORS[lo]), 4)


@dataclass(frozen=True, slots=True)
class ProblemErrors:
    """A kept problem: its statistics and `fused[k]`, the errors its row holds when the policy says k."""

    stats: ProblemStats
    fused: tuple[int, ...]  # k = 0 … k_max


@dataclass(frozen=True)
class CalibrationPoint:
    alpha: float
    mean_errors: float
    p_at_least: tuple[float, ...]  # P(#errors ≥ j) for j = 1 … k_max


@dataclass(frozen=True)
class Calibration:
    """The α picked for a target, and what the pool allows."""

    alpha: float
    mean_errors: float
    p_at_least: tuple[float, ...]
    target: float
    reachable_max: float  # mean #Err with every problem at k = k_max (α → ∞)
    problems: int
    breakpoints: int

    @property
    def reachable(self) -> bool:
        return self.reachable_max >= self.target


def fused_error_table(pools: Iterable[ProblemPool], settings: FusionSettings, count: TokenCounter) -> list[ProblemErrors]:
    """Per problem that yields a row, the errors fused for each k = 0 … k_max: the real build (selection,
    u-cap, token budget, seeded draws) with k forced, so the table is what `fuse_problem` writes.

    `pools` is consumed once, one problem at a time: only the table (a ProblemStats and k_max + 1
    counts per kept problem, about 0.3 KB) outlives a problem's samples."""
    table = []
    for pool in pools:
        row, outcome = fuse_problem(pool, replace(settings, length_policy="none"), count)
        if row is None:
            continue
        fused = [0]
        for k in range(1, settings.k_max + 1):  # `fixed` gives k = k_max whenever the teacher erred
            _, forced = fuse_problem(pool, replace(settings, length_policy="fixed", k_max=k), count)
            fused.append(forced.n_errors)
        table.append(ProblemErrors(outcome.stats, tuple(fused)))
    return table


def threshold(stats: ProblemStats, j: int, policy: str = "adaptive") -> float | None:
    """The smallest float α with k ≥ j under the policy's own float expression (None: never)."""
    k_of = LENGTH_POLICIES[policy]
    product = stats.error_rate * stats.u
    if product <= 0 or j <= 0:
        return None if j > 0 else 0.0
    alpha = j / product
    while k_of(stats, j, alpha) < j:  # the division rounded below the step
        alpha = math.nextafter(alpha, math.inf)
    while alpha > 0 and k_of(stats, j, math.nextafter(alpha, 0.0)) >= j:
        alpha = math.nextafter(alpha, 0.0)
    return alpha


def _point(alpha: float, counts: Sequence[int], n: int, k_max: int) -> CalibrationPoint:
    total = sum(i * c for i, c in enumerate(counts))
    return CalibrationPoint(alpha, total / n, tuple(sum(counts[j:]) / n for j in range(1, k_max + 1)))


def curve(problems: Sequence[ProblemErrors], k_max: int) -> list[CalibrationPoint]:
    """Mean #Err at α = 0 and at every breakpoint (ascending): the whole step function, exactly."""
    if not problems:
        raise ValueError("no problem yields a row: nothing to calibrate α on")
    events: dict[float, list[tuple[int, int]]] = {}
    for i, p in enumerate(problems):
        for j in range(1, k_max + 1):
            a = threshold(p.stats, j)
            if a is not None:
                events.setdefault(a, []).append((i, j))
    n = len(problems)
    k = [0] * n
    counts = [0] * (k_max + 1)  # rows per number of fused errors
    for p in problems:
        counts[p.fused[0]] += 1
    points = [_point(0.0, counts, n, k_max)]
    for alpha in sorted(events):
        for i, j in events[alpha]:
            if j > k[i]:
                counts[problems[i].fused[k[i]]] -= 1
                k[i] = j
                counts[problems[i].fused[j]] += 1
        points.append(_point(alpha, counts, n, k_max))
    return points


def _round_alpha(low: float, high: float | None) -> float:
    """The shortest decimal in [low, high): a readable α on the same step (the same k for every problem)."""
    for digits in range(1, 18):
        candidate = float(Decimal(low).quantize(Decimal(1).scaleb(-digits), rounding=ROUND_CEILING))
        if candidate >= low and (high is None or candidate < high):
            return candidate
    return low


def calibrate(problems: Sequence[ProblemErrors], k_max: int, target: float) -> Calibration:
    """The step of mean #Err closest to `target` (ties: the smaller α), and a readable α on it."""
    points = curve(problems, k_max)
    best = min(range(len(points)), key=lambda i: (abs(points[i].mean_errors - target), i))
    high = points[best + 1].alpha if best + 1 < len(points) else None
    chosen = points[best]
    alpha = _round_alpha(chosen.alpha, high) if chosen.alpha > 0 else 0.0
    return Calibration(alpha, chosen.mean_errors, chosen.p_at_least, target, points[-1].mean_errors, len(problems), len(points) - 1)


def evaluate_alpha(problems: Sequence[ProblemErrors], k_max: int, alpha: float, policy: str = "adaptive") -> CalibrationPoint:
    """Mean #Err and P(#Err ≥ j) at one α, by direct evaluation (the grid view, and the reference the
    breakpoint search is tested against)."""
    n = max(len(problems), 1)
    counts = [p.fused[min(k_max, LENGTH_POLICIES[policy](p.stats, k_max, alpha))] for p in problems]
    return CalibrationPoint(alpha, sum(counts) / n, tuple(sum(c >= j for c in counts) / n for j in range(1, k_max + 1)))


def sweep(problems: Sequence[ProblemErrors], k_max: int, alphas: Sequence[float] = DEFAULT_ALPHA_GRID) -> list[CalibrationPoint]:
    return [evaluate_alpha(problems, k_max, a) for a in alphas]
