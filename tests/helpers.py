"""Small builders for hand-made pools, shared by the tests."""

from __future__ import annotations

import os
from pathlib import Path

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


def cuda_available() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except ImportError:
        return False


def fake_sbatch(tmp_path: Path, suffix: str = "") -> tuple[Path, dict]:
    """A `sbatch` on PATH that logs its arguments and answers job ids 4201, 4202, … (+ suffix)."""
    log = tmp_path / "sbatch.log"
    fake = tmp_path / "bin" / "sbatch"
    fake.parent.mkdir()
    fake.write_text(f'#!/bin/bash\necho "$@" >> {log}\nn=$(wc -l < {log}); echo "$((4200 + n)){suffix}"\n')
    fake.chmod(0o755)
    return log, {**os.environ, "PATH": f"{fake.parent}:{os.environ['PATH']}"}
