"""Which wrong trajectories enter a fused sample, and which correct one closes it (paper §3.2, A.2).

Selectors are registered by name (`SELECTORS`); the YAML file name of a `selector` option is its key.
Every selector returns errors in fusion order and never more than `k`.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence

from trajfusion.core.records import Sample

Selector = Callable[[Sequence[Sample], Sequence[int], int, random.Random], list[Sample]]


def _shortest_first(sample: Sample) -> tuple[int, int]:
    return (len(sample.text), sample.index)


def eligible_errors(samples: Sequence[Sample], use_truncated: bool = False) -> list[Sample]:
    """Wrong samples usable as fused errors: they have an answer and (by default) were not cut off.

    Answer-less and truncated outputs still count as wrong for r (DESIGN §5.5); they only stay out
    of the fused text, where they would teach the student to stop mid-thought.
    """
    return [
        s
        for s in samples
        if s.is_wrong and s.has_answer and s.group is not None and (use_truncated or not s.truncated)
    ]


def ranked_groups(errors: Sequence[Sample], group_sizes: Sequence[int]) -> list[list[Sample]]:
    """Eligible errors bucketed by answer group, most frequent group first.

    Frequency counts every wrong sample of the group (the paper's ranking); ties go to the group
    whose shortest member is shorter, then to the lower sample index, so order is deterministic.
    """
    buckets: dict[int, list[Sample]] = {}
    for s in sorted(errors, key=_shortest_first):
        buckets.setdefault(s.group, []).append(s)  # type: ignore[arg-type]
    return sorted(buckets.values(), key=lambda b: (-group_sizes[b[0].group], *_shortest_first(b[0])))


def select_diverse(errors: Sequence[Sample], group_sizes: Sequence[int], k: int, rng: random.Random) -> list[Sample]:
    """Paper (HighDiv): the shortest member of each of the k most frequent groups; k_eff = min(k, u)."""
    return [bucket[0] for bucket in ranked_groups(errors, group_sizes)[:k]]


def select_low_div(errors: Sequence[Sample], group_sizes: Sequence[int], k: int, rng: random.Random) -> list[Sample]:
    """Ablation (LowDiv): the k shortest members of the single most frequent group."""
    groups = ranked_groups(errors, group_sizes)
    return groups[0][:k] if groups and k > 0 else []


def select_random(errors: Sequence[Sample], group_sizes: Sequence[int], k: int, rng: random.Random) -> list[Sample]:
    """Control: k eligible errors drawn uniformly (seeded per problem), ignoring answer groups."""
    pool = sorted(errors, key=lambda s: s.index)
    return rng.sample(pool, min(k, len(pool)))


SELECTORS: dict[str, Selector] = {
    "diverse": select_diverse,
    "low_div": select_low_div,
    "random": select_random,
}


def choose_correct(samples: Sequence[Sample], how: str, rng: random.Random) -> Sample | None:
    """y*: the correct trajectory that ends the fused sample and is the whole RFT sample (DESIGN §5.4)."""
    candidates = sorted((s for s in samples if s.is_correct and not s.truncated), key=lambda s: s.index)
    if not candidates:
        return None
    if how == "shortest":
        return min(candidates, key=_shortest_first)
    if how == "first":
        return candidates[0]
    if how == "random":
        return rng.choice(candidates)
    raise ValueError(f"unknown correct-trajectory choice {how!r}; supported: {', '.join(CORRECT_CHOICES)}")


CORRECT_CHOICES = ("shortest", "first", "random")
