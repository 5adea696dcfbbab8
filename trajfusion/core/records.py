"""Small records the pure algorithm works on: verified teacher samples and one problem's pool.

They mirror the pool contract (DESIGN §4) but carry only what fusion needs, so the core never
touches files or frameworks.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field

from trajfusion.core.verify import Verdict


@dataclass
class Sample:
    """One teacher trajectory after verification.

    `group` is the id of its wrong-answer group (verified equivalence, DESIGN §5.6); it is set only
    for wrong samples that have an extracted answer.
    """

    index: int
    sample_id: str
    text: str
    model: str
    verdict: Verdict
    pred: str | None = None
    truncated: bool = False
    group: int | None = None

    @property
    def is_correct(self) -> bool:
        return self.verdict == Verdict.CORRECT

    @property
    def is_wrong(self) -> bool:
        return self.verdict == Verdict.INCORRECT

    @property
    def has_answer(self) -> bool:
        return bool(self.pred)


@dataclass
class ProblemPool:
    """A training problem with its K verified teacher samples."""

    id: str
    problem: str
    answer: str
    samples: list[Sample] = field(default_factory=list)


def seeded_rng(seed: int, *keys: str) -> random.Random:
    """A RNG that depends only on (seed, keys), never on process, order or sharding."""
    digest = hashlib.sha256("\x1f".join([str(seed), *keys]).encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))
