"""Small builders for hand-made pools, shared by the tests."""

from __future__ import annotations

import os
import random
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


def fake_eval_run(run_dir: Path, name: str, accuracy_by_task: dict[str, float], n: int = 120, seed: int = 0,
                  group: str | None = None, limit: int | None = None, training_data: dict | None = None) -> Path:
    """A finished evaluate.py run directory (results.json + samples/) with exact per-task accuracies."""
    from trajfusion.evaluation.outputs import write_run

    rng = random.Random(seed)
    samples, tasks = {}, {}
    for task, acc in accuracy_by_task.items():
        rows = [{"task": task, "problem_id": f"{task}-{i}", "sample_index": 0, "verdict": "correct" if i < round(acc * n) else "incorrect",
                 "n_tokens": rng.randint(10, 20)} for i in range(n)]
        samples[task] = rows
        tasks[task] = {"metric": "pass@1", "accuracy": acc, "n_problems": n, "samples_per_problem": 1, "unknown_rate": 0.0,
                       "no_answer_rate": 0.0, "mean_output_tokens": sum(r["n_tokens"] for r in rows) / n,
                       "hit_max_new_tokens_rate": 0.0}
    write_run(run_dir, {"run_name": name, "benchmark": "paper_main", "model": name, "template": "base_plain",
                        "backend": "hf", "limit": limit, "tasks": tasks,
                        "average_pass_at_1": sum(accuracy_by_task.values()) / len(tasks), "training_data": training_data,
                        "config": {"wandb": {"group": group}, "benchmark": {"limit": limit}}},
              samples)
    return run_dir


def vllm_test_model(what: str) -> str:
    """The model the GPU tests run vLLM on (TRAJFUSION_GPU_TEST_MODEL); skips the test without vLLM or one."""
    import pytest

    pytest.importorskip("vllm")
    model = os.environ.get("TRAJFUSION_GPU_TEST_MODEL")
    if not model:
        pytest.skip(f"set TRAJFUSION_GPU_TEST_MODEL to {what}")
    return model


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
    sinfo = fake.parent / "sinfo"  # a GPU cluster (the pipeline fits its jobs to a CPU-only one)
    sinfo.write_text("#!/bin/bash\necho 'gpu:8(S:0-1)'\n")
    sinfo.chmod(0o755)
    return log, {**os.environ, "PATH": f"{fake.parent}:{os.environ['PATH']}"}
