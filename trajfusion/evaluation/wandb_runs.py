"""Evaluation runs pulled from the W&B API, for the compare command's `--wandb ENTITY/PROJECT`.

evaluate.py logs each run with job_type `eval`, group = the experiment, `eval/<task>/<metric>` and
`eval/<task>/mean_output_tokens` in the summary, and uploads results.json and samples/<task>.jsonl. So a
paper table needs only the summaries, and the paired comparison of a group downloads the files into
run directories that look exactly like local ones (same reader, same bootstrap).
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from pathlib import Path

from trajfusion.evaluation.outputs import RESULTS, SAMPLES_DIR
from trajfusion.evaluation.paper_table import MEAN_ERRORS, TOKENS_SUFFIX, RunValues

log = logging.getLogger(__name__)

SCORE_PREFIXES = ("pass@", "avg@")
TRAIN_DATA_MEAN_ERRORS = "train_data/mean_errors"
JOB_TYPE = "eval"  # evaluate.yaml's wandb.job_type


def eval_runs(path: str, groups: str | list[str] | None = None, api=None) -> list:
    """Finished evaluation runs of an ENTITY/PROJECT, optionally of some groups, oldest first. The server
    filters by group only; job type and state are checked here, which holds whatever the API's filter
    field names become. W&B's own errors (no API key, unknown project, network) become a ValueError."""
    if path.count("/") != 1:
        raise ValueError(f"--wandb {path!r}: give ENTITY/PROJECT")
    import wandb

    if isinstance(groups, str):
        groups = [groups]
    filters = {"group": {"$in": groups}} if groups else None
    try:
        runs = list((api or wandb.Api()).runs(path, filters=filters, order="+created_at"))
    except wandb.errors.Error as exc:
        raise ValueError(f"--wandb {path}: {exc}") from exc
    return [run for run in runs if run.job_type == JOB_TYPE and run.state == "finished"]


def run_values(run) -> RunValues:
    """A W&B run's summary reduced to the values a paper table shows (as `paper_table.values_of_results`)."""
    summary = dict(run.summary)  # keys() + __getitem__ on the API's summary object
    values: dict[str, float] = {}
    for key, value in summary.items():
        parts = key.split("/")
        if len(parts) != 3 or parts[0] != "eval" or parts[1] == "average" or not isinstance(value, (int, float)):
            continue
        task, stat = parts[1], parts[2]
        if stat.startswith(SCORE_PREFIXES):
            values[task] = 100 * value
        elif stat == "mean_output_tokens":
            values[task + TOKENS_SUFFIX] = value
    mean_errors = summary.get(TRAIN_DATA_MEAN_ERRORS)
    if mean_errors is not None:
        values[MEAN_ERRORS] = mean_errors
    limit = (run.config.get("benchmark") or {}).get("limit")
    return RunValues(run.group, run.name, run.url, str(run.created_at), limit, values)


def download_run(run, into: Path) -> Path:
    """results.json and samples/*.jsonl of a run into `into/<run id>` (reused when already complete; a
    half-finished download is never left as a run directory)."""
    import wandb

    dest = into / run.id
    if (dest / RESULTS).exists():
        return dest
    try:
        wanted = [f for f in run.files() if f.name == RESULTS or (f.name.startswith(SAMPLES_DIR + "/") and f.name.endswith(".jsonl"))]
        if not any(f.name == RESULTS for f in wanted):
            raise ValueError(f"W&B run {run.url}: no {RESULTS} uploaded (evaluated before runs uploaded their files?)")
        into.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=into, prefix=f".{run.id}-") as tmp:
            for f in wanted:
                f.download(root=tmp, replace=True).close()
            shutil.rmtree(dest, ignore_errors=True)
            Path(tmp).rename(dest)
            Path(tmp).mkdir()  # TemporaryDirectory cleans up the (now empty) name it made
    except wandb.errors.Error as exc:
        raise ValueError(f"W&B run {run.url}: downloading its files: {exc}") from exc
    log.info("downloaded %s (%d files) to %s", run.url, len(wanted), dest)
    return dest


def group_run_dirs(path: str, group: str, into: Path, api=None) -> list[tuple[str, Path]]:
    """(run name, local run directory) of every finished evaluation run of a W&B group."""
    return [(run.name, download_run(run, into)) for run in eval_runs(path, group, api)]
