"""GPU-hours of a paper preset from token counts and the throughputs assumed in conf/cost_model.yaml,
and the CPU time of its data stage from the rate benchmarks/data_scale.py measured.

    python -m trajfusion.cost_model              # markdown table of every preset (pasted in README)

Why a model and not a measurement: no GPU run exists yet; the figures are only as good as the
assumptions file, which names the benchmark scripts whose outputs should replace them.
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass
from pathlib import Path

import yaml
from omegaconf import DictConfig

ROOT = Path(__file__).resolve().parent.parent
ASSUMPTIONS = ROOT / "conf" / "cost_model.yaml"
LONG_CONTEXT = 4096  # a student above this context uses the long-context throughputs


def load_assumptions(path: Path = ASSUMPTIONS) -> dict:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


@dataclass
class Cost:
    problems: int
    samples: int
    sampling_tokens: float
    train_rows: int
    train_tokens: float
    eval_generations: int
    eval_tokens: float
    sampling_tps: float
    train_tps: float
    eval_tps: float
    verify_cpu_s: float = 0.0  # data stage, pool → verified pool (extract, verify, group)
    fuse_cpu_s: float = 0.0  # data stage, verified pool → dataset (α table, fusion, write)

    def gpu_hours(self) -> dict[str, float]:
        return {
            "sampling": self.sampling_tokens / self.sampling_tps / 3600,
            "training": self.train_tokens / self.train_tps / 3600,
            "evaluation": self.eval_tokens / self.eval_tps / 3600,
        }

    def data_hours(self, shards: int = 1) -> dict[str, float]:
        """CPU-hours of the data stage, and its wall-clock hours when each of `shards` array tasks verifies
        its share (one core each) and the fuse job then fuses alone."""
        return {"cpu": (self.verify_cpu_s + self.fuse_cpu_s) / 3600,
                "wall": (self.verify_cpu_s / shards + self.fuse_cpu_s) / 3600}


def benchmark_problems(task: str) -> int:
    """Problems of a tf_* task, counted in its bundled test file (an avg16 task reads its base file)."""
    name = task.removeprefix("tf_").removesuffix("_avg16")
    with gzip.open(ROOT / "data" / "benchmarks" / f"{name}.jsonl.gz", "rt", encoding="utf-8") as handle:
        return sum(1 for line in handle if line.strip())


def evaluation_generations(eval_overrides: list[str]) -> dict[str, int]:
    """Generations per task for the benchmark the pipeline passes to evaluate.py."""
    values = dict(o.split("=", 1) for o in eval_overrides)
    benchmark = yaml.safe_load((ROOT / "conf" / "benchmark" / f"{values['benchmark']}.yaml").read_text(encoding="utf-8"))
    tasks = values["benchmark.tasks"].strip("[]").split(",") if "benchmark.tasks" in values else benchmark["tasks"]
    samples = (benchmark.get("sampling") or {}).get("n", 1)
    return {task: benchmark_problems(task) * (samples if task.endswith("_avg16") else 1) for task in tasks}


def estimate(experiment: str, cfg: DictConfig, assumptions: dict) -> Cost:
    """Sampling: problems × K × output tokens; training: rows × tokens/row × epochs; evaluation: generations × output tokens."""
    from trajfusion.pipeline import evaluation_overrides

    sampling, training, evaluation = assumptions["sampling"], assumptions["training"], assumptions["evaluation"]
    data_rates = assumptions["data"]["cpu_ms_per_sample"]
    teacher, data_name = cfg.teacher.name, cfg.data.name
    problems = sampling["problems"][data_name]
    if cfg.data.limit:
        problems = min(problems, int(cfg.data.limit))
    samples = problems * int(cfg.teacher.num_samples or 0)
    replayed = cfg.teacher.backend == "replay"
    sampling_tokens = 0.0 if replayed else samples * sampling["mean_output_tokens"][teacher]
    rows = round(problems * sampling["kept_fraction"])
    long_context = int(cfg.student.max_seq_len) > LONG_CONTEXT
    row_tokens = training["mean_tokens_per_row"][teacher]["rft" if cfg.fusion.name == "rft" else "adaptive"]
    train_tokens = rows * row_tokens * int(cfg.student.epochs)
    generations = evaluation_generations(evaluation_overrides(experiment, int(cfg.student.max_seq_len)))
    per_task = evaluation["mean_output_tokens"]
    eval_tokens = sum(n * (per_task["long_context"] if long_context else per_task.get(task, per_task["default"]))
                      for task, n in generations.items())
    return Cost(
        problems=problems, samples=samples, sampling_tokens=sampling_tokens, train_rows=rows, train_tokens=train_tokens,
        eval_generations=sum(generations.values()), eval_tokens=eval_tokens,
        sampling_tps=sampling["tokens_per_s"].get(teacher, 1.0),
        train_tps=training["tokens_per_s_per_gpu"]["long_context" if long_context else "standard"],
        eval_tps=evaluation["tokens_per_s"],
        verify_cpu_s=samples * data_rates.get(teacher, data_rates["default"])["verify"] / 1000,
        fuse_cpu_s=samples * data_rates.get(teacher, data_rates["default"])["fuse"] / 1000,
    )


def presets() -> list[str]:
    """The paper's presets (conf/experiment/table*; cpu_* are CPU smoke presets with no paper row)."""
    return sorted(p.stem for p in (ROOT / "conf" / "experiment").glob("table*.yaml"))


def markdown_table() -> str:
    """One row per preset; the sampling of presets that share a pool is counted once per row (no sharing)."""
    from trajfusion.pipeline import compose

    assumptions = load_assumptions()
    lines = ["| experiment | problems | samples | train rows × epochs | eval generations | GPU-h sampling | GPU-h training | GPU-h evaluation | CPU-h data |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name in presets():
        cfg, _ = compose("train", [f"experiment={name}"])
        cost = estimate(name, cfg, assumptions)
        hours = cost.gpu_hours()
        lines.append(f"| `{name}` | {cost.problems:,} | {cost.samples:,} | {cost.train_rows:,} × {int(cfg.student.epochs)} | "
                     f"{cost.eval_generations:,} | {hours['sampling']:,.1f} | {hours['training']:,.1f} | {hours['evaluation']:,.1f} | "
                     f"{cost.data_hours()['cpu']:,.2f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(markdown_table())
