"""Numbers a researcher checks before training on a dataset: stats.json and the closing table."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from statistics import mean
from typing import NamedTuple

from trajfusion.core.build import DROP_REASONS, FusionSettings, Outcome


class ProblemSummary(NamedTuple):
    """One problem's outcome as stats.json and the plots read it: numbers only (about 0.2 KB)."""

    dropped: str | None
    n_judged: int
    n_wrong: int
    u: int
    entropy_bits: float
    k: int
    n_errors: int
    errors_dropped_for_budget: int
    n_tokens: int | None
    rft_tokens: int | None

    @property
    def error_rate(self) -> float:
        return self.n_wrong / self.n_judged if self.n_judged else 0.0  # ProblemStats.error_rate, the same float


class Outcomes:
    """The outcomes of a dataset's problems, collected while its rows stream to disk: a summary per
    problem, and the fused errors counted per teacher model (not a list of names per row)."""

    def __init__(self) -> None:
        self.problems: list[ProblemSummary] = []
        self.error_models: Counter[str] = Counter()

    def add(self, o: Outcome) -> None:
        s = o.stats
        self.problems.append(ProblemSummary(o.dropped, s.n_judged, s.n_wrong, s.u, s.entropy_bits, o.k, o.n_errors,
                                            o.errors_dropped_for_budget, o.n_tokens, o.rft_tokens))
        if o.dropped is None:
            self.error_models.update(o.error_models)  # in row order: ties of most_common() keep first appearance


def _ranks(values: Sequence[float]) -> list[float]:
    order = sorted(range(len(values)), key=values.__getitem__)
    ranks = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for t in range(i, j + 1):
            ranks[order[t]] = (i + j) / 2 + 1  # average rank for ties
        i = j + 1
    return ranks


def spearman(x: Sequence[float], y: Sequence[float]) -> float | None:
    """Spearman's ρ (Pearson on average ranks); None when undefined."""
    if len(x) < 3:
        return None
    rx, ry = _ranks(x), _ranks(y)
    mx, my = mean(rx), mean(ry)
    cov = sum((a - mx) * (b - my) for a, b in zip(rx, ry))
    var = (sum((a - mx) ** 2 for a in rx) * sum((b - my) ** 2 for b in ry)) ** 0.5
    return round(cov / var, 4) if var else None


def _mean(values: Sequence[float]) -> float | None:
    return round(mean(values), 4) if values else None


def dataset_stats(outcomes: Outcomes, settings: FusionSettings) -> dict:
    problems = outcomes.problems
    kept = [o for o in problems if o.dropped is None]
    erring = [o for o in problems if o.n_wrong > 0]
    dropped = Counter(o.dropped for o in problems if o.dropped)
    n_errors = [o.n_errors for o in kept]
    return {
        "counts": {
            "problems_in": len(problems),
            "kept": len(kept),
            "dropped": {reason: dropped.get(reason, 0) for reason in DROP_REASONS},
            "errors_dropped_for_budget": sum(o.errors_dropped_for_budget for o in kept),
            "rows_capped_by_groups": sum(o.n_errors + o.errors_dropped_for_budget < o.k for o in kept),
        },
        "fusion": settings.fusion,
        "k_max": settings.k_max,
        "alpha": settings.alpha,
        "mean": {
            "r": _mean([o.error_rate for o in kept]),
            "u": _mean([o.u for o in kept]),
            "entropy_bits": _mean([o.entropy_bits for o in kept]),
            "k": _mean([o.k for o in kept]),
            "n_errors": _mean(n_errors),
            "tokens": _mean([o.n_tokens for o in kept if o.n_tokens is not None]),
            "rft_tokens": _mean([o.rft_tokens for o in kept if o.rft_tokens is not None]),
        },
        "p_errors_at_least": {str(j): _mean([n >= j for n in n_errors]) for j in range(1, settings.k_max + 1)},
        "n_errors_histogram": {str(k): v for k, v in sorted(Counter(n_errors).items())},
        "spearman_error_rate_vs_entropy": spearman([o.error_rate for o in erring], [o.entropy_bits for o in erring]),
        "tokens_total": sum(o.n_tokens or 0 for o in kept),
        "error_models": dict(outcomes.error_models.most_common()),
    }


def summary_table(stats: dict, out_dir: Path) -> str:
    c, m = stats["counts"], stats["mean"]
    drops = ", ".join(f"{k}={v}" for k, v in c["dropped"].items())
    fused = stats["fusion"] != "rft"
    lines = [
        f"dataset  {out_dir}",
        f"  fusion {stats['fusion']}" + (f"  k_max={stats['k_max']}  alpha={stats['alpha']}" if fused else ""),
        f"  problems in {c['problems_in']}  kept {c['kept']}  dropped: {drops}",
        f"  mean r={m['r']}  u={m['u']}  entropy={m['entropy_bits']} bits" + (f"  k={m['k']}  #Err={m['n_errors']}" if fused else ""),
    ]
    if fused:
        lines += [
            "  P(#Err>=j): " + "  ".join(f"{j}:{p}" for j, p in stats["p_errors_at_least"].items()),
            f"  errors dropped for the token budget: {c['errors_dropped_for_budget']}",
        ]
    lines.append(f"  tokens/row: {m['tokens']} (RFT layout of the same problems: {m['rft_tokens']}); total {stats['tokens_total']}")
    return "\n".join(lines)
