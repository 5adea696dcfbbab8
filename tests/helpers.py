"""Small builders for hand-made pools, shared by the tests."""

from __future__ import annotations

from trajfusion.core.records import ProblemPool, Sample
from trajfusion.core.verify import Verdict


def make_pool(pid: str, spec: list[tuple[str, str | None, int | None]], answer: str = "42") -> ProblemPool:
    """spec: (verdict letter c/w/u/t, pred, group) per sample; text length grows with the index
    unless the pred says otherwise, so "shortest" is predictable. 't' = truncated wrong."""
    samples = []
    for i, (v, pred, group) in enumerate(spec):
        verdict = {"c": Verdict.CORRECT, "w": Verdict.INCORRECT, "t": Verdict.INCORRECT, "u": Verdict.UNKNOWN}[v]
        text = f"attempt {i} " + "x" * (10 + i) + (f" so the answer is \\boxed{{{pred}}}" if pred else "")
        samples.append(Sample(i, f"{pid}:{i:03d}", text, f"model-{i % 3}", verdict, pred, v == "t", group))
    return ProblemPool(pid, f"Problem {pid}: what is 6 times 7?", answer, samples)
