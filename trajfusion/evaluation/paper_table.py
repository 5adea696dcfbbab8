"""The paper's Tables 1–3 in their printed layout, with this project's runs filled in beneath the rows
they reproduce.

Each paper row that a preset reproduces names the preset's W&B group (`paper_numbers.yaml`, `tables`).
Our value for that row comes from the newest evaluation run of that group, found under a local data
root (`<root>/eval/**/results.json`) or pulled from the W&B API (`wandb_runs.py`). Without runs the
output is the paper's table exactly as PAPER.md prints it.

    python -m trajfusion.evaluation.compare --table table1 --root outputs
    python -m trajfusion.evaluation.compare --table table2 --wandb my-entity/trajfusion
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from trajfusion.evaluation.outputs import RESULTS, load_results, wandb_group

AVERAGE = "average"
TOKENS_SUFFIX = "/tokens"
MEAN_ERRORS = "mean_errors"
DASH = "—"


@dataclass(frozen=True)
class RunValues:
    """One evaluation run reduced to the values a paper table shows (scores in %, tokens, #Err)."""

    group: str
    name: str
    where: str  # run directory or W&B URL
    created: str  # sortable timestamp; the newest run of a group fills its row
    limit: int | None  # benchmark.limit: a slice of each benchmark, not comparable to the paper
    values: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Row:
    labels: list[str]
    key: str  # paper_numbers.yaml rows
    group: str | None  # the preset's W&B group, None for the paper's quoted baselines


def values_of_results(results: dict) -> dict[str, float]:
    """Scores (%), mean output tokens per task and the training set's #Err from a results.json."""
    values: dict[str, float] = {}
    for task, t in results["tasks"].items():
        values[task] = 100 * t["accuracy"]
        values[task + TOKENS_SUFFIX] = t["mean_output_tokens"]
    mean_errors = (results.get("training_data") or {}).get(MEAN_ERRORS)
    if mean_errors is not None:
        values[MEAN_ERRORS] = mean_errors
    return values


def local_runs(root: str | Path) -> list[RunValues]:
    """Every finished evaluate.py run under `<root>/eval`, with the W&B group it logged to."""
    runs = []
    for results_file in sorted(Path(root, "eval").rglob(RESULTS)):
        results = load_results(results_file.parent)
        limit = (results.get("config", {}).get("benchmark") or {}).get("limit", results.get("limit"))
        runs.append(RunValues(wandb_group(results), results["run_name"], str(results_file.parent),
                              f"{results_file.stat().st_mtime:020.6f}", limit, values_of_results(results)))
    return runs


def table_spec(numbers: dict, name: str) -> dict:
    if name not in numbers["tables"]:
        raise ValueError(f"--table {name!r}: unknown; supported: {', '.join(numbers['tables'])}")
    return numbers["tables"][name]


def table_rows(spec: dict, rows: list) -> list[Row]:
    n = len(spec["labels"])
    return [Row([str(x) for x in r[:n]], r[n], r[n + 1] if len(r) > n + 1 else None) for r in rows]


def table_groups(numbers: dict, name: str) -> list[str]:
    """The W&B groups (presets) whose runs fill a table."""
    spec = table_spec(numbers, name)
    return [row.group for section in spec["sections"] for row in table_rows(spec, section["rows"]) if row.group]


def newest_by_group(runs: list[RunValues]) -> dict[str, tuple[RunValues, int]]:
    """group → (newest run, number of runs in the group); runs outside any group are left out."""
    chosen: dict[str, tuple[RunValues, int]] = {}
    for run in sorted((r for r in runs if r.group), key=lambda r: r.created):
        chosen[run.group] = (run, chosen.get(run.group, (run, 0))[1] + 1)
    return chosen


def _value(values: dict, key: str, columns: list) -> float | None:
    """A cell's value; `average` is taken as given (paper rows) or the mean of the row's task columns."""
    if key in values:
        return values[key]
    if key == AVERAGE:
        tasks = [k for _, keys in columns for k in _keys(keys) if k not in (AVERAGE, MEAN_ERRORS) and not k.endswith(TOKENS_SUFFIX)]
        got = [values.get(t) for t in tasks]
        return sum(got) / len(got) if got and all(v is not None for v in got) else None
    return None


def _keys(keys) -> list[str]:
    return list(keys) if isinstance(keys, list) else [keys]


def _format(key: str, value: float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return DASH
    if key == MEAN_ERRORS:
        return f"{value:.2f}"
    if key.endswith(TOKENS_SUFFIX):
        return f"{value:.0f}"
    return f"{value:.1f}"


def _cells(values: dict, columns: list) -> list[str]:
    return [" / ".join(_format(k, _value(values, k, columns)) for k in _keys(keys)) for _, keys in columns]


def render(name: str, numbers: dict, runs: list[RunValues] | None = None) -> tuple[str, list[dict]]:
    """(markdown in the paper's layout, one record per filled row). Our row sits right beneath the paper
    row it reproduces, labelled `· ours`; footnotes say which run filled it."""
    spec = table_spec(numbers, name)
    columns = spec["columns"]
    chosen = newest_by_group(runs or [])
    head = [*spec["labels"], *[c[0] for c in columns]]
    blocks, filled, notes = [], [], []
    for section in spec["sections"]:
        lines = [f"**{section['title']}**", ""] if section.get("title") else []
        lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for row in table_rows(spec, section["rows"]):
            paper = numbers["rows"][row.key]
            lines.append("| " + " | ".join([*row.labels, *_cells(paper, columns)]) + " |")
            if row.group in chosen:
                run, count = chosen[row.group]
                label = f"{row.labels[0]} · ours[{len(notes) + 1}]"
                lines.append("| " + " | ".join([label, *row.labels[1:], *_cells(run.values, columns)]) + " |")
                slice_note = f", benchmark.limit={run.limit} (a slice: not comparable to the paper)" if run.limit else ""
                notes.append(f"[{len(notes) + 1}] W&B group `{row.group}`: run `{run.name}` ({run.where})"
                             + (f", newest of {count}" if count > 1 else "") + slice_note)
                filled.append({"row": row.key, "group": row.group, "run": run.name, "where": run.where, "limit": run.limit,
                               "paper": {k: paper.get(k) for _, keys in columns for k in _keys(keys)},
                               "ours": {k: _value(run.values, k, columns) for _, keys in columns for k in _keys(keys)}})
        blocks.append("\n".join(lines))
    text = "\n\n".join(blocks) + "\n"
    if notes:
        text += "\n" + "\n".join(notes) + "\n"
    return text, filled


def plot(name: str, filled: list[dict], path: Path) -> None:
    """Paper vs ours for every filled row: one panel per row, bars per score column (tokens and #Err left
    to the table, their scale differs)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(filled), 1, figsize=(8, 2.6 * len(filled)), squeeze=False)
    for ax, record in zip(axes[:, 0], filled):
        keys = [k for k in record["paper"] if k != MEAN_ERRORS and not k.endswith(TOKENS_SUFFIX)]
        xs = range(len(keys))
        ax.bar([x - 0.2 for x in xs], [record["paper"][k] or 0 for k in keys], 0.4, label="paper")
        ax.bar([x + 0.2 for x in xs], [record["ours"][k] or 0 for k in keys], 0.4, label="ours")
        ax.set_xticks(list(xs), [k.removeprefix("tf_") for k in keys], rotation=20, ha="right")
        ax.set_ylabel("%")
        ax.set_title(f"{name} · {record['row']} (ours: {record['run']})", fontsize=9)
        ax.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
