"""Scores from per-sample verdicts (pure; no I/O): Pass@1, Avg@k, the paper's average, paired bootstrap.

Every score is computed per problem first (the mean over that problem's samples) and then averaged over
problems, so a problem weighs the same whatever its number of samples, and two runs can be compared
problem by problem. `unknown` (grader timeout, unparseable reference) counts as not correct in the score
and is reported beside it: dropping it from the denominator would reward outputs that hang the grader.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

CORRECT, INCORRECT, UNKNOWN = "correct", "incorrect", "unknown"


def metric_name(samples_per_problem: int, sampled: bool) -> str:
    """`pass@1` for one greedy output per problem, `avg@k` for k sampled ones (mean accuracy, not pass@k)."""
    return f"avg@{samples_per_problem}" if sampled else "pass@1"


def problem_scores(rows: Iterable[Mapping]) -> dict[str, float]:
    """Problem id → fraction of its samples judged correct."""
    verdicts: dict[str, list[str]] = defaultdict(list)
    for row in rows:
        verdicts[str(row["problem_id"])].append(row["verdict"])
    return {pid: sum(v == CORRECT for v in vs) / len(vs) for pid, vs in verdicts.items()}


def mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else float("nan")


@dataclass
class TaskSummary:
    metric: str  # pass@1 | avg@k
    accuracy: float  # mean over problems of the per-problem mean accuracy, in [0, 1]
    n_problems: int
    samples_per_problem: int
    unknown_rate: float  # share of outputs the grader could not decide
    no_answer_rate: float  # share of outputs with no extractable final answer
    mean_output_tokens: float  # the paper's Table 2 "Tokens"
    hit_max_new_tokens_rate: float  # outputs that stopped at the token limit (likely cut off)

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def summarize_task(rows: Sequence[Mapping], sampled: bool) -> TaskSummary:
    """One task's scores from its per-sample rows (problem_id, verdict, extracted, n_tokens, hit_max_new_tokens)."""
    if not rows:
        raise ValueError("no samples to score")
    per_problem = problem_scores(rows)
    counts = defaultdict(int)
    for row in rows:
        counts[str(row["problem_id"])] += 1
    sizes = set(counts.values())
    if len(sizes) != 1:
        raise ValueError(f"problems have different numbers of samples: {sorted(sizes)}")
    k = sizes.pop()
    return TaskSummary(
        metric=metric_name(k, sampled), accuracy=mean(list(per_problem.values())), n_problems=len(per_problem),
        samples_per_problem=k, unknown_rate=mean([r["verdict"] == UNKNOWN for r in rows]),
        no_answer_rate=mean([r.get("extracted") is None for r in rows]),
        mean_output_tokens=mean([float(r["n_tokens"]) for r in rows]),
        hit_max_new_tokens_rate=mean([bool(r.get("hit_max_new_tokens")) for r in rows]),
    )


@dataclass
class PairedDifference:
    """Score of B minus score of A on the problems both runs answered, with a paired-bootstrap interval."""

    diff: float
    low: float
    high: float
    n_problems: int
    confidence: float


def paired_deltas(scores_a: Mapping[str, float], scores_b: Mapping[str, float]) -> list[float]:
    """Per-problem B − A on the problems both runs answered (in id order)."""
    shared = sorted(set(scores_a) & set(scores_b))
    if not shared:
        raise ValueError("the two runs share no problem ids")
    return [scores_b[p] - scores_a[p] for p in shared]


def bootstrap_means(deltas: Sequence[float], iterations: int = 10000, seed: int = 0):
    """Means of `iterations` resamples (with replacement) of the per-problem differences (numpy array)."""
    import numpy as np

    values = np.asarray(deltas, dtype=float)
    n = len(values)
    rng = np.random.default_rng(seed)
    chunk = max(1, 2_000_000 // n)  # bounded memory for 5,000-problem benchmarks
    return np.concatenate([
        values[rng.integers(0, n, size=(min(chunk, iterations - start), n))].mean(axis=1)
        for start in range(0, iterations, chunk)
    ])


def percentile_interval(means, observed: float, n_problems: int, confidence: float = 0.95) -> PairedDifference:
    import numpy as np

    tail = (1 - confidence) / 2
    low, high = np.quantile(means, [tail, 1 - tail])
    return PairedDifference(float(observed), float(low), float(high), n_problems, confidence)


def paired_bootstrap(scores_a: Mapping[str, float], scores_b: Mapping[str, float], iterations: int = 10000,
                     confidence: float = 0.95, seed: int = 0) -> PairedDifference:
    """Percentile interval of mean(B − A) resampling *problems* (pairs), which keeps the per-problem
    correlation between two models (both solve the easy ones) and so gives narrower, honest intervals."""
    deltas = paired_deltas(scores_a, scores_b)
    return percentile_interval(bootstrap_means(deltas, iterations, seed), mean(deltas), len(deltas), confidence)
