"""Compare evaluation runs the way the paper does: per benchmark, each run's score, the difference to
the first run with a paired-bootstrap 95% interval (resampling problems), and the paper's own numbers.

    python -m trajfusion.evaluation.compare RUN_RFT RUN_TF [RUN_C ...] [--paper llama3_8b/15k] [--out DIR]
    python -m trajfusion.evaluation.compare --group table2_kmax4 [--root outputs]     # every local run of a W&B group
    python -m trajfusion.evaluation.compare --group table2_kmax4 --wandb ENTITY/PROJECT   # ... pulled from the W&B API
    python -m trajfusion.evaluation.compare --table table1 [--root outputs | --wandb ENTITY/PROJECT]

Writes compare.md, compare.json and compare.png (bar chart) to --out (default: outputs/compare). With
--table: the paper's table in its printed layout, our runs beneath the rows they reproduce
(table1.md/.json/.png; `paper_table.py`).
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
from pathlib import Path

import yaml

from trajfusion.evaluation.metrics import bootstrap_means, mean, paired_deltas, percentile_interval, problem_scores
from trajfusion.evaluation import paper_table
from trajfusion.evaluation.outputs import load_results, load_run, wandb_group
from trajfusion.io import atomic_write_bytes, write_json

log = logging.getLogger(__name__)

PAPER_NUMBERS = Path(__file__).resolve().parent / "paper_numbers.yaml"
AVERAGE = "average"


def paper_numbers() -> dict:
    return yaml.safe_load(PAPER_NUMBERS.read_text(encoding="utf-8"))


def paper_pair(name: str | None) -> tuple[dict, dict] | None:
    """(baseline row, method row) of the paper for a comparison name such as llama3_8b/15k."""
    if not name:
        return None
    numbers = paper_numbers()
    if name not in numbers["comparisons"]:
        raise ValueError(f"--paper {name!r}: unknown; supported: {', '.join(numbers['comparisons'])}")
    base, method = numbers["comparisons"][name]
    return numbers["rows"][base], numbers["rows"][method]


def baseline_first(named_dirs: list[tuple[str, Path]], group: str, where: str) -> list[Path]:
    """Run directories with RFT runs first (the baseline), then by run name."""
    if len(named_dirs) < 2:
        raise ValueError(f"--group {group!r}: found {len(named_dirs)} evaluation run(s) in {where}; need two or more")
    return [directory for _, _, directory in sorted(("rft" not in name, name, d) for name, d in named_dirs)]


def group_runs(group: str, root: str | Path) -> list[Path]:
    """The evaluation run directories under `<root>/eval` logged to W&B group `group`, baseline first."""
    found = []
    for results_file in sorted(Path(root, "eval").rglob("results.json")):
        results = load_results(results_file.parent)
        if wandb_group(results) == group:
            found.append((results["run_name"], results_file.parent))
    return baseline_first(found, group, str(Path(root, "eval")))


def wandb_group_runs(group: str, path: str, into: Path, api=None) -> list[Path]:
    """The same from the W&B API: the group's finished evaluation runs, downloaded under `into`."""
    from trajfusion.evaluation.wandb_runs import group_run_dirs

    return baseline_first(group_run_dirs(path, group, into, api), group, f"W&B {path}")


def compare_runs(run_dirs: list[str | Path], labels: list[str] | None = None, paper: str | None = None,
                 iterations: int = 10000, seed: int = 0) -> dict:
    """Scores (%), differences to the first run with paired-bootstrap intervals, and paper numbers."""
    if len(run_dirs) < 2:
        raise ValueError("compare needs at least two runs")
    runs = [load_run(d) for d in run_dirs]
    labels = labels or [results["run_name"] + f" ({Path(d).name})" for d, (results, _) in zip(run_dirs, runs)]
    if len(labels) != len(runs):
        raise ValueError("one label per run")
    tasks = [t for t in runs[0][0]["tasks"] if all(t in results["tasks"] for results, _ in runs[1:])]
    if not tasks:
        raise ValueError("the runs share no task")
    scores = [{t: problem_scores(samples[t]) for t in tasks} for _, samples in runs]
    pair = paper_pair(paper)
    rows, average_means = [], {label: [] for label in labels[1:]}
    for task in tasks:
        row = {"task": task, "metric": runs[0][0]["tasks"][task]["metric"],
               "scores": {label: 100 * mean(list(s[task].values())) for label, s in zip(labels, scores)}, "diffs": {}}
        for i, label in enumerate(labels[1:], start=1):
            deltas = paired_deltas(scores[0][task], scores[i][task])
            means = bootstrap_means(deltas, iterations, seed)
            average_means[label].append(means)
            ci = percentile_interval(means, mean(deltas), len(deltas))
            row["diffs"][label] = {"diff": 100 * ci.diff, "low": 100 * ci.low, "high": 100 * ci.high,
                                   "n_problems": ci.n_problems}
        if pair:
            row["paper"] = [pair[0].get(task), pair[1].get(task)]
        rows.append(row)
    average = {"task": AVERAGE, "metric": "mean over tasks",
               "scores": {label: mean([r["scores"][label] for r in rows]) for label in labels}, "diffs": {}}
    for label in labels[1:]:
        means = sum(average_means[label]) / len(tasks)  # each bootstrap draw averaged over tasks
        observed = mean([r["diffs"][label]["diff"] for r in rows]) / 100
        ci = percentile_interval(means, observed, sum(r["diffs"][label]["n_problems"] for r in rows))
        average["diffs"][label] = {"diff": 100 * ci.diff, "low": 100 * ci.low, "high": 100 * ci.high,
                                   "n_problems": ci.n_problems}
    if pair:
        average["paper"] = [mean([pair[0][t] for t in tasks if t in pair[0]]) if any(t in pair[0] for t in tasks) else None,
                            mean([pair[1][t] for t in tasks if t in pair[1]]) if any(t in pair[1] for t in tasks) else None]
    return {"runs": [str(d) for d in run_dirs], "labels": labels, "paper": paper, "bootstrap_iterations": iterations,
            "rows": rows + [average], "training_data": {label: results.get("training_data") for label, (results, _) in zip(labels, runs)}}


def _num(x) -> str:
    return "—" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.1f}"


def format_table(comparison: dict) -> str:
    labels = comparison["labels"]
    head = ["task", "metric", *labels]
    head += [f"Δ {label} − {labels[0]} [95% CI]" for label in labels[1:]]
    if comparison["paper"]:
        head += ["paper baseline", "paper method", "paper Δ"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in comparison["rows"]:
        cells = [row["task"], row["metric"], *[_num(row["scores"][label]) for label in labels]]
        for label in labels[1:]:
            d = row["diffs"][label]
            cells.append(f"{d['diff']:+.1f} [{d['low']:+.1f}, {d['high']:+.1f}]")
        if comparison["paper"]:
            base, method = row.get("paper") or [None, None]
            cells += [_num(base), _num(method), f"{method - base:+.1f}" if base is not None and method is not None else "—"]
        lines.append("| " + " | ".join(cells) + " |")
    note = (f"\nScores in %. Intervals: paired bootstrap over problems ({comparison['bootstrap_iterations']} draws)."
            + (f" Paper: {comparison['paper']} (PAPER.md Tables 1/3)." if comparison["paper"] else ""))
    return "\n".join(lines) + "\n" + note + training_note(comparison.get("training_data") or {}) + "\n"


def training_note(by_label: dict) -> str:
    """One footnote line per run: what its checkpoint trained on (the arms should match in rows)."""
    lines = []
    for label, t in by_label.items():
        if t and t.get("trained_rows") is not None:
            lines.append(f"\nTraining data, {label}: {t['trained_rows']} rows, {t['trained_tokens']} tokens, "
                         f"{t['trained_optimizer_steps']} optimizer steps, {t['trained_samples_per_step']} samples/step "
                         f"(batch unit: {t['trained_batch_unit']}), #Err {t.get('mean_errors')}"
                         + (f", {t['trained_dropped_overlong']} over-long problems dropped from both arms" if t.get("trained_dropped_overlong") else ""))
    return "".join(lines)


def plot(comparison: dict, path: Path) -> None:
    """Grouped bars: one group per task, one bar per run; the paper's values as markers when given."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows, labels = comparison["rows"], comparison["labels"]
    width = 0.8 / len(labels)
    fig, ax = plt.subplots(figsize=(max(6, 1.2 * len(rows) * len(labels)), 4))
    for i, label in enumerate(labels):
        xs = [j + (i - (len(labels) - 1) / 2) * width for j in range(len(rows))]
        ax.bar(xs, [r["scores"][label] for r in rows], width, label=label)
        if comparison["paper"] and i < 2:
            paper = [(x, (r.get("paper") or [None, None])[i]) for x, r in zip(xs, rows)]
            paper = [(x, v) for x, v in paper if v is not None]
            if paper:
                ax.scatter(*zip(*paper), marker="_", s=300, color="black", zorder=3,
                           label="paper" if i == 0 else None)
    ax.set_xticks(range(len(rows)), [r["task"].removeprefix("tf_") for r in rows], rotation=30, ha="right")
    ax.set_ylabel("accuracy (%)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def table_main(args, api=None) -> int:
    """--table: the paper's table, our newest run of each preset's group beneath the row it reproduces."""
    if args.wandb:
        from trajfusion.evaluation.wandb_runs import eval_runs, run_values

        runs = [run_values(r) for r in eval_runs(args.wandb, paper_table.table_groups(paper_numbers(), args.table), api)]
    else:
        runs = paper_table.local_runs(args.root)
    text, filled = paper_table.render(args.table, paper_numbers(), runs)
    out = Path(args.out)
    atomic_write_bytes(out / f"{args.table}.md", text.encode("utf-8"))
    write_json(out / f"{args.table}.json", {"table": args.table, "source": args.wandb or str(args.root), "filled": filled})
    if filled:
        paper_table.plot(args.table, filled, out / f"{args.table}.png")
    sys.stdout.write(text)
    log.info("%d row(s) of ours from %s; wrote %s", len(filled), args.wandb or Path(args.root, "eval"), out)
    return 0


def main(argv: list[str] | None = None, api=None) -> int:
    """`api`: a W&B API object (tests pass a stand-in); default `wandb.Api()` when --wandb is given."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="*", help="evaluate.py run directories; the first is the baseline")
    parser.add_argument("--group", help="compare every evaluation run of this W&B group (under --root, or --wandb)")
    parser.add_argument("--table", choices=sorted(paper_numbers()["tables"]),
                        help="the paper's table in its layout, with our runs of each preset beneath")
    parser.add_argument("--root", default="outputs", help="data root holding eval/ (with --group or --table)")
    parser.add_argument("--wandb", metavar="ENTITY/PROJECT", help="pull runs from the W&B API instead of --root")
    parser.add_argument("--labels", nargs="+", help="one name per run (default: run name and directory)")
    parser.add_argument("--paper", help="the paper's comparison to show beside, e.g. llama3_8b/15k")
    parser.add_argument("--out", default="outputs/compare", help="directory for compare.md/.json/.png")
    parser.add_argument("--iterations", type=int, default=10000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if sum(map(bool, (args.runs, args.group, args.table))) != 1:
        parser.error("give run directories, --group NAME or --table NAME (one of them)")
    try:
        if args.table:
            return table_main(args, api)
        if args.group:
            runs = (wandb_group_runs(args.group, args.wandb, Path(args.out) / "wandb_runs", api) if args.wandb
                    else group_runs(args.group, args.root))
        else:
            runs = args.runs
        comparison = compare_runs(runs, args.labels, args.paper, args.iterations, args.seed)
    except ValueError as exc:
        log.error("%s", exc)
        return 2
    out = Path(args.out)
    table = format_table(comparison)
    atomic_write_bytes(out / "compare.md", table.encode("utf-8"))
    write_json(out / "compare.json", comparison)
    plot(comparison, out / "compare.png")
    sys.stdout.write(table)
    log.info("wrote %s", out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
