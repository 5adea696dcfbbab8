"""What an evaluation run leaves in its directory: results.json, results.md, samples/<task>.jsonl."""

from __future__ import annotations

import math
from pathlib import Path

from trajfusion.io import atomic_write_bytes, read_json, read_jsonl, write_json, write_jsonl

RESULTS = "results.json"
TABLE = "results.md"
SAMPLES_DIR = "samples"


def percent(x: float | None) -> str:
    return "—" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.1f}"


def markdown_table(results: dict) -> str:
    """Per task: the paper's metric (Pass@1 or Avg@k, %), problems, grader unknowns, no-answer share, tokens."""
    lines = [f"# {results['run_name']} — {results['benchmark']}", "",
             f"model: `{results['model']}` · template: `{results['template']}` · backend: {results['backend']}", "",
             "| task | metric | score (%) | problems | samples/problem | unknown (%) | no answer (%) | mean tokens | hit max tokens (%) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for task, t in results["tasks"].items():
        lines.append(f"| {task} | {t['metric']} | {percent(t['accuracy'])} | {t['n_problems']} | {t['samples_per_problem']} "
                     f"| {percent(t['unknown_rate'])} | {percent(t['no_answer_rate'])} | {t['mean_output_tokens']:.0f} "
                     f"| {percent(t['hit_max_new_tokens_rate'])} |")
    if results.get("average_pass_at_1") is not None:
        lines += ["", f"Average Pass@1 over the greedy tasks: **{percent(results['average_pass_at_1'])}**"]
    return "\n".join(lines) + "\n"


def write_run(run_dir: Path, results: dict, samples_by_task: dict[str, list[dict]]) -> None:
    for task, rows in samples_by_task.items():
        write_jsonl(run_dir / SAMPLES_DIR / f"{task}.jsonl", rows)
    write_json(run_dir / RESULTS, results)
    atomic_write_bytes(run_dir / TABLE, markdown_table(results).encode("utf-8"))


def wandb_group(results: dict) -> str:
    """The W&B group an evaluation run logs to: `wandb.group`, else its run name (tracking.py's rule)."""
    return (results.get("config", {}).get("wandb") or {}).get("group") or results["run_name"]


def load_results(run_dir: str | Path) -> dict:
    """results.json of a finished run directory."""
    run_dir = Path(run_dir)
    if not (run_dir / RESULTS).exists():
        raise ValueError(f"{run_dir}: no {RESULTS} (not a finished evaluate.py run directory)")
    return read_json(run_dir / RESULTS)


def load_run(run_dir: str | Path) -> tuple[dict, dict[str, list[dict]]]:
    """(results.json, samples per task) of a finished run directory."""
    run_dir = Path(run_dir)
    results = load_results(run_dir)
    samples = {p.stem: [row for _, row in read_jsonl(p)] for p in sorted((run_dir / SAMPLES_DIR).glob("*.jsonl"))}
    return results, samples
