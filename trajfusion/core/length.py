"""How many wrong trajectories a fused sample gets (paper §3.2): k = min(k_max, ⌊α·r·u⌋).

Length policies are registered by name (`LENGTH_POLICIES`). k is computed in floating point as
`floor(alpha * r * u)`, the very expression anyone recomputes from a row's stored `alpha`, `r`, `u`.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from trajfusion.core.stats import ProblemStats

LengthPolicy = Callable[[ProblemStats, int, float], int]


def adaptive_k(stats: ProblemStats, k_max: int, alpha: float) -> int:
    """Paper: more errors for problems whose failures are frequent and diverse; 0 below r·u = 1/α."""
    return max(0, min(k_max, math.floor(alpha * stats.error_rate * stats.u)))


def fixed_k(stats: ProblemStats, k_max: int, alpha: float) -> int:
    """Ablation: k_max errors whenever the teacher made any error."""
    return k_max if stats.u > 0 else 0


def no_errors(stats: ProblemStats, k_max: int, alpha: float) -> int:
    """k = 0 everywhere: TrajFusion's layout with RFT content."""
    return 0


LENGTH_POLICIES: dict[str, LengthPolicy] = {
    "adaptive": adaptive_k,
    "fixed": fixed_k,
    "none": no_errors,
}
