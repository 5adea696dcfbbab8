"""W&B lineage of one experiment: pool → dataset → checkpoint → evaluation.

- the data stage logs a run (job_type `data`) that declares the pool as input and logs the dataset as
  the artifact `data-<fusion>` (references to its files, alias = data_id, stats as metadata, plots and
  a table of example rows);
- train.py declares that dataset as input and logs its final checkpoint as `model-<run_name>`;
- evaluate.py declares the checkpoint as input.

Artifacts are references to local files (nothing is copied), built by one function per kind, so a
consumer's artifact has the digest of the producer's and W&B links both runs to the same version.
Offline, `Run.use_artifact` refuses; the record it would send online for a new artifact (log it with
`use_after_commit`) is written to the offline log instead and becomes the same link on `wandb sync`.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from trajfusion.io import read_json, read_jsonl

log = logging.getLogger(__name__)

EXAMPLE_ROWS = 20
TABLE_COLUMNS = ("id", "r", "u", "k", "n_errors", "n_tokens", "answer", "assistant")
CHECKPOINT_SKIP = ("README.md", "evaluations")  # written after training: not part of the checkpoint's identity


def wandb_mode(enabled: bool, mode: str | None) -> str:
    """disabled | the configured mode | $WANDB_MODE | online with an API key, else offline."""
    if not enabled:
        return "disabled"
    if mode:
        return mode
    if os.environ.get("WANDB_MODE"):
        return os.environ["WANDB_MODE"]
    try:
        netrc = (Path.home() / ".netrc").read_text()
    except OSError:
        netrc = ""
    return "online" if os.environ.get("WANDB_API_KEY") or "api.wandb.ai" in netrc else "offline"


def _reference_artifact(wandb, name: str, kind: str, files: list[Path], metadata: dict):
    artifact = wandb.Artifact(name, type=kind, metadata=metadata)
    for path in files:
        artifact.add_reference(path.resolve().as_uri(), name=path.name)
    return artifact


def declare_input(run, artifact, aliases: list[str] | None = None) -> None:
    """`run.use_artifact`, also offline (see the module docstring)."""
    if run.offline:
        run._log_artifact(artifact, aliases=aliases, is_user_created=True, use_after_commit=True)
    else:
        run.use_artifact(artifact, aliases=aliases)


# ----------------------------------------------------------------------------- the artifacts


def pool_artifact(wandb, manifest: dict):
    """The teacher pool a dataset came from: its input files (stored pool, problem file) by content."""
    identity = manifest["identity"]
    teacher = (manifest.get("config") or {}).get("teacher", {}).get("name", "teacher")
    files = [Path(p) for p in sorted(manifest.get("input_files") or {}) if Path(p).exists()]
    pool_dir = Path(manifest["verified_pool"]).parent if manifest.get("verified_pool") else None
    if pool_dir is not None:
        files += sorted(p for p in pool_dir.glob("pool*") if p.is_file())  # a sampled pool
    return _reference_artifact(wandb, f"pool-{teacher}", "pool", files,
                               {"pool_id": identity["pool"], "verifier_id": identity["verifier"]}), identity["pool"]


def example_table(wandb, dataset_dir: Path):
    table = wandb.Table(columns=list(TABLE_COLUMNS))
    for _, row in read_jsonl(dataset_dir / "data.jsonl"):
        if len(table.data) >= EXAMPLE_ROWS:
            break
        assistant = next(m["content"] for m in row["messages"] if m["role"] == "assistant")
        table.add_data(row["id"], row.get("r"), row.get("u"), row.get("k"), row.get("n_errors"), row.get("n_tokens"),
                       row.get("answer"), assistant)
    return table


def dataset_artifact(wandb, dataset_dir: Path):
    """(artifact, data_id): the dataset's files by reference, its stats as metadata, example rows as a table."""
    manifest, stats = read_json(dataset_dir / "manifest.json"), read_json(dataset_dir / "stats.json")
    names = ["data.jsonl", "manifest.json", "stats.json", "README.md", *sorted(manifest.get("plots") or [])]
    files = [dataset_dir / n for n in names if (dataset_dir / n).exists()]
    metadata = {"data_id": manifest["data_id"], "fusion": stats["fusion"], "rows": manifest["rows"],
                "mean": stats["mean"], "counts": stats["counts"], "path": str(dataset_dir)}
    artifact = _reference_artifact(wandb, f"data-{stats['fusion']}", "dataset", files, metadata)
    artifact.add(example_table(wandb, dataset_dir), "examples")
    return artifact, manifest["data_id"]


def checkpoint_files(final_dir: Path) -> list[Path]:
    return sorted(p for p in final_dir.iterdir() if p.is_file() and p.name not in CHECKPOINT_SKIP)


def checkpoint_artifact(wandb, final_dir: Path):
    """The final checkpoint's weights, config and tokenizer by reference (not its card or evaluations)."""
    manifest = read_json(final_dir / "training_manifest.json")
    metadata = {"run_name": manifest["run_name"], "data_id": manifest["data_id"], "global_step": manifest["global_step"],
                "base_model": ((manifest.get("config") or {}).get("student") or {}).get("model"), "path": str(final_dir)}
    return _reference_artifact(wandb, f"model-{manifest['run_name']}", "model", checkpoint_files(final_dir), metadata)


# ----------------------------------------------------------------------------- the runs


def log_data_run(wandb_cfg: dict | None, dataset_dir: Path, data_root: Path, run_name: str | None = None) -> str | None:
    """The data stage's W&B run: pool in, dataset out, plots and example rows. Returns the mode (None: off)."""
    wandb_cfg = wandb_cfg or {}
    mode = wandb_mode(bool(wandb_cfg.get("enabled")), wandb_cfg.get("mode"))
    if mode == "disabled":
        return None
    import wandb

    manifest = read_json(dataset_dir / "manifest.json")
    run_dir = data_root / "logs" / "data"
    run_dir.mkdir(parents=True, exist_ok=True)
    run = wandb.init(project=wandb_cfg.get("project", "trajfusion"), entity=wandb_cfg.get("entity"),
                     group=wandb_cfg.get("group") or run_name or f"data-{manifest['data_id']}", job_type="data",
                     name=f"data-{dataset_dir.name}", tags=sorted(set(wandb_cfg.get("tags") or [])),
                     config=manifest.get("config") or {}, dir=str(run_dir), mode=mode, reinit="finish_previous")
    pool, pool_id = pool_artifact(wandb, manifest)
    declare_input(run, pool, [pool_id])
    dataset, data_id = dataset_artifact(wandb, dataset_dir)
    images = {f"plots/{Path(p).stem}": wandb.Image(str(dataset_dir / p)) for p in manifest.get("plots") or []}
    run.log({"data/examples": example_table(wandb, dataset_dir), **images})
    stats = read_json(dataset_dir / "stats.json")
    run.summary.update({"data_id": data_id, "rows": manifest["rows"],
                        **{f"data/mean_{k}": v for k, v in stats["mean"].items() if v is not None}})
    run.log_artifact(dataset, aliases=[data_id, "latest"])
    run.finish()
    log.info("W&B data run (%s) in %s", mode, run_dir / "wandb")
    return mode
