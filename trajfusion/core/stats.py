"""Per-problem statistics of the paper (§3.1): error rate r, error diversity u, answer entropy.

Wrong answers are grouped by *verified* equivalence, not by string (DESIGN §5.6): "1/2" and "0.5"
are one error mode. Grader timeouts (`unknown`) are outside r and outside the error pool (§5.5).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from trajfusion.core.records import Sample


@dataclass(frozen=True, slots=True)  # slots: the α table keeps one per problem (100K at the paper's scale)
class ProblemStats:
    K: int  # samples drawn
    n_correct: int
    n_wrong: int  # incorrect verdicts, including truncated and answer-less outputs
    n_unknown: int  # grader timeouts / unparseable gold: excluded from r
    u: int  # distinct wrong final answers (verified groups)
    entropy_bits: float  # Shannon entropy of the wrong answers over their groups
    group_sizes: tuple[int, ...]  # size of each wrong-answer group, indexed by group id

    @property
    def n_judged(self) -> int:
        return self.n_correct + self.n_wrong

    @property
    def error_rate(self) -> float:
        """r(x) = |Y−| / K, counted over judged samples (unknown verdicts are left out)."""
        return self.n_wrong / self.n_judged if self.n_judged else 0.0


def group_answers(answers: Sequence[str], equivalent: Callable[[str, str], bool]) -> list[int]:
    """Union-find of `answers` under `equivalent`; returns one group id per answer.

    Group ids are numbered by first appearance, so the result depends only on the input order.
    `equivalent` is asked once per unordered pair of distinct strings, (earlier, later).
    """
    distinct = list(dict.fromkeys(answers))
    parent = list(range(len(distinct)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for j in range(len(distinct)):
        for i in range(j):
            if find(i) != find(j) and equivalent(distinct[i], distinct[j]):
                parent[max(find(i), find(j))] = min(find(i), find(j))
    root_to_group: dict[int, int] = {}
    of_distinct = [root_to_group.setdefault(find(i), len(root_to_group)) for i in range(len(distinct))]
    index = {a: of_distinct[i] for i, a in enumerate(distinct)}
    return [index[a] for a in answers]


def problem_stats(samples: Sequence[Sample]) -> ProblemStats:
    """Statistics of one problem's verified samples (groups must already be assigned)."""
    n_correct = sum(s.is_correct for s in samples)
    n_wrong = sum(s.is_wrong for s in samples)
    groups = Counter(s.group for s in samples if s.is_wrong and s.group is not None)
    sizes = tuple(groups.get(g, 0) for g in range(max(groups, default=-1) + 1))
    total = sum(sizes)
    entropy = -sum(c / total * math.log2(c / total) for c in sizes if c) if total else 0.0
    return ProblemStats(
        K=len(samples),
        n_correct=n_correct,
        n_wrong=n_wrong,
        n_unknown=len(samples) - n_correct - n_wrong,
        u=len(groups),
        entropy_bits=round(entropy + 0.0, 12),
        group_sizes=sizes,
    )
