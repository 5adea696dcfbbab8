"""Closing summaries: a dataset, a training run, an evaluation, and the demo's whole picture.

Read only from the files each stage writes (stats.json, manifest.json, results.json, compare.md), so
a summary can be printed again later with

    python -m trajfusion.summary --datasets outputs/fused/* --runs outputs/runs/demo-* --evals outputs/eval/demo-* --compare outputs/demo
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from trajfusion.console import where


def _json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def dataset_line(dataset_dir: Path) -> str:
    stats = _json(dataset_dir / "stats.json")
    m = stats["mean"]
    n_err = "-" if stats["fusion"] == "rft" or m["n_errors"] is None else f"{m['n_errors']:.2f}"
    tokens = "-" if m["tokens"] is None else f"{m['tokens']:.0f}"
    return (f"{dataset_dir.name:<24} {stats['counts']['kept']:>5} rows  mean #Err {n_err:<5} "
            f"{tokens:>5} tokens/row ({stats['tokens_total']} in all)")


def dataset_lines(dataset_dir: Path) -> list[str]:
    """What build_data.py ends with: the numbers, where the files are and how to look inside."""
    return [dataset_line(dataset_dir), f"files  {where(dataset_dir)}/  (data.jsonl, stats.json, README.md card, plots)",
            f"look   python -m trajfusion.show {where(dataset_dir)} --n 1"]


def run_line(run_dir: Path) -> str:
    manifest = _json(run_dir / "manifest.json")
    metrics = manifest.get("train_metrics") or {}
    loss = metrics.get("train_loss")
    loss_text = f"loss {loss:.3f}" if isinstance(loss, (int, float)) else "loss -"
    final = manifest.get("final_checkpoint")
    return (f"{manifest['run_name']:<28} {manifest['global_step']:>4} steps  {loss_text}  on {Path(manifest['dataset_dir']).name}"
            f"  → {where(final) if final else '(no final checkpoint: pre-empted)'}")


def eval_line(eval_dir: Path) -> str:
    results = _json(eval_dir / "results.json")
    scores = "  ".join(f"{task} {t['metric']} {100 * t['accuracy']:.1f}% of {t['n_problems']}" for task, t in results["tasks"].items())
    return f"{results['run_name']:<28} {scores}  → {where(eval_dir)}"


def compare_block(compare_dir: Path) -> list[str]:
    path = compare_dir / "compare.md"
    return [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()] if path.exists() else []


def render(datasets: list[Path], runs: list[Path], evals: list[Path], compare: Path | None) -> list[str]:
    lines = ["datasets"] + [f"  {dataset_line(d)}" for d in datasets]
    lines += ["runs"] + [f"  {run_line(r)}" for r in runs]
    lines += ["evaluations"] + [f"  {eval_line(e)}" for e in evals]
    if compare is not None:
        lines += ["comparison"] + [f"  {line}" for line in compare_block(compare)]
    lines += ["outputs"]
    if datasets:
        lines.append(f"  datasets     {where(datasets[0].parent)}/   look inside: python -m trajfusion.show {where(datasets[-1])} --n 1")
    if runs:
        lines.append(f"  runs         {', '.join(where(r) for r in runs)}   (checkpoint in final/, W&B in wandb/)")
    if evals:
        lines.append(f"  evaluations  {', '.join(where(e) for e in evals)}   (results.md, samples/)")
    if compare is not None:
        lines.append(f"  comparison   {where(compare)}/compare.md, compare.png")
    if datasets or runs:
        lines.append("  cards        README.md in each dataset and final/; share one: python -m trajfusion.publish DIR --repo ORG/NAME")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Print the summary of datasets, training runs and evaluations.")
    parser.add_argument("--datasets", nargs="*", type=Path, default=[])
    parser.add_argument("--runs", nargs="*", type=Path, default=[])
    parser.add_argument("--evals", nargs="*", type=Path, default=[])
    parser.add_argument("--compare", type=Path)
    args = parser.parse_args(argv)
    datasets = list(args.datasets)
    for run in args.runs:  # the dataset each run trained on, when not given
        dataset = Path(_json(run / "manifest.json")["dataset_dir"])
        if dataset not in datasets:
            datasets.append(dataset)
    sys.stdout.write("\n".join(render(datasets, args.runs, args.evals, args.compare)) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
