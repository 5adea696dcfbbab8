"""Hub cards: README.md with the hub's YAML metadata for a dataset directory and a final checkpoint.

The dataset card declares `data.jsonl` as the train split (so `datasets.load_dataset(DIR)` reads that
file alone), its features as inferred from every row, its sizes, the config that made it, its plots and
the license of the pool it came from (data/DATA_CARD.md). The model card names the base model, the
dataset (data_id and card), the training config and the evaluations recorded for the checkpoint.
Writing a card never touches data.jsonl, so data_id and every golden stay as they are.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

from trajfusion.io import atomic_write_bytes, read_json, read_jsonl, resolve_path

CARD = "README.md"
EVALUATIONS = "evaluations"  # <checkpoint>/evaluations/<run_name>.json, one per evaluate.py run
DATA_CARD = "data/DATA_CARD.md"


# ----------------------------------------------------------------------------- features


def _merge(a: Any, b: Any) -> Any:
    """The feature that holds values of both features (None: only nulls seen so far)."""
    if a is None or a == b:
        return b if a is None else a
    if b is None:
        return a
    if isinstance(a, str) and isinstance(b, str) and {a, b} == {"int64", "float64"}:
        return "float64"
    if isinstance(a, dict) and isinstance(b, dict):
        return {k: _merge(a.get(k), b.get(k)) for k in sorted(set(a) | set(b))}
    if isinstance(a, list) and isinstance(b, list):
        return [_merge(a[0], b[0])]
    return "string"  # mixed scalar kinds: the JSON loader would read them as text


def _feature_of(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int64"
    if isinstance(value, float):
        return "float64"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        item = None
        for v in value:
            item = _merge(item, _feature_of(v))
        return [item]
    if isinstance(value, dict):
        return {k: _feature_of(v) for k, v in sorted(value.items())}
    raise TypeError(f"no feature for {type(value).__name__}")


def infer_features(rows) -> dict:
    merged: dict = {}
    for row in rows:
        merged = _merge(merged, _feature_of(row)) if merged else _feature_of(row)
    return merged


def _yaml_feature(name: str, feature: Any) -> dict:
    """The hub's `dataset_info.features` entry for one field."""
    if feature is None:
        return {"name": name, "dtype": "null"}
    if isinstance(feature, str):
        return {"name": name, "dtype": feature}
    if isinstance(feature, dict):
        return {"name": name, "struct": [_yaml_feature(k, v) for k, v in feature.items()]}
    item = feature[0]
    if isinstance(item, dict):
        return {"name": name, "list": [_yaml_feature(k, v) for k, v in item.items()]}
    return {"name": name, "sequence": item or "null"}


def _size_category(n: int) -> str:
    for limit, label in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M")):
        if n < limit:
            return label
    return "1M<n<10M"


# ----------------------------------------------------------------------------- license


def pool_license(input_files: dict | list) -> str | None:
    """The license column of data/DATA_CARD.md for the pool file a dataset was built from."""
    card = resolve_path(DATA_CARD)
    if not card.exists():
        return None
    names = {Path(p).name for p in input_files}
    for line in card.read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 5 and Path(cells[0].strip("`")).name in names:
            return cells[-1]
    return None


# ----------------------------------------------------------------------------- dataset card


def _front_matter(meta: dict) -> str:
    return "---\n" + yaml.safe_dump(meta, sort_keys=False, allow_unicode=True, width=1000) + "---\n"


def dataset_card(directory: Path, manifest: dict, stats: dict) -> str:
    data = directory / "data.jsonl"
    features = infer_features(row for _, row in read_jsonl(data))
    size = data.stat().st_size
    rows = manifest["rows"]
    config = manifest.get("config") or {}
    license_text = pool_license(manifest.get("input_files") or {})
    fusion = stats["fusion"]
    plots = list(manifest.get("plots") or [])
    meta = {
        "pretty_name": f"TrajFusion {fusion} dataset {manifest['data_id']}",
        "license": "other",
        "license_name": "pool-license",
        "language": ["en"],
        "task_categories": ["text-generation"],
        "tags": ["math", "reasoning", "sft", "trajfusion", fusion],
        "size_categories": [_size_category(rows)],
        "configs": [{"config_name": "default", "data_files": [{"split": "train", "path": "data.jsonl"}]}],
        "dataset_info": {
            "features": [_yaml_feature(k, v) for k, v in features.items()],
            "splits": [{"name": "train", "num_bytes": size, "num_examples": rows}],
            "download_size": size,
            "dataset_size": size,
        },
    }
    m, c = stats["mean"], stats["counts"]
    identity = manifest.get("identity") or {}
    lp = identity.get("length_policy") or {}
    teacher = (config.get("teacher") or {}).get("name")
    lines = [
        _front_matter(meta),
        f"# TrajFusion {fusion} dataset `{manifest['data_id']}`",
        "",
        ("Fused SFT rows: each keeps a problem's verified correct trajectory and, before it, up to k wrong "
         "trajectories of the same teacher pool joined by reflection prompts (k adapts to the problem's error "
         "rate r and answer diversity u)." if fusion != "rft" else
         "Rejection-sampling fine-tuning (RFT) rows: one verified correct trajectory per problem."),
        "",
        "```python",
        "from datasets import load_dataset",
        "rows = load_dataset(\"path/to/this/directory\")[\"train\"]   # or the hub repo id",
        "```",
        "",
        "## Numbers",
        "",
        "| rows | problems in | mean r | mean u | mean k | mean #Err | tokens/row | RFT tokens/row | tokens |",
        "|---|---|---|---|---|---|---|---|---|",
        (f"| {c['kept']} | {c['problems_in']} | {m['r']} | {m['u']} | {m['k']} | {m['n_errors']} | {m['tokens']} | "
         f"{m['rft_tokens']} | {stats['tokens_total']} |"),
        "",
        f"Dropped problems: {', '.join(f'{k} {v}' for k, v in c['dropped'].items())}.",
        "",
        "## How it was made",
        "",
        f"- teacher pool: `{teacher}` (pool id `{identity.get('pool')}`, verifier `{identity.get('verifier')}`)",
        (f"- selector `{(identity.get('selector') or {}).get('name', '-')}`, length policy `{lp.get('name', '-')}`"
         f" (k_max {lp.get('k_max', '-')}, alpha {lp.get('alpha', '-')}), correct trajectory `{identity.get('correct')}`"),
        (f"- token budget {identity.get('budget', {}).get('max_tokens')} per row "
         f"(tokenizer `{identity.get('budget', {}).get('tokenizer') or 'bytes/3 proxy'}`), seed {identity.get('seed')}"),
        f"- trajfusion {manifest.get('trajfusion_version')} at git `{manifest.get('git_sha')}`; `data_id` = hash of the identity below",
        "",
        "<details><summary>identity and config</summary>",
        "",
        "```json",
        json.dumps({"identity": identity, "config": {k: config.get(k) for k in
                    ("data", "teacher", "selector", "length_policy", "fusion", "verifier", "seed") if k in config}},
                   indent=1, sort_keys=True, default=str),
        "```",
        "",
        "</details>",
        "",
    ]
    if plots:
        lines += ["## Plots", ""] + [f"![{Path(p).stem}]({p})" for p in plots] + [""]
    lines += ["## License", "",
              f"The rows are teacher outputs and problems of the pool: {license_text}." if license_text else
              "The pool's license is not recorded in data/DATA_CARD.md; check its source before sharing.",
              "See the project's data/DATA_CARD.md for sources.", ""]
    return "\n".join(lines)


def write_dataset_card(directory: Path, manifest: dict | None = None, stats: dict | None = None) -> Path:
    manifest = manifest if manifest is not None else read_json(directory / "manifest.json")
    stats = stats if stats is not None else read_json(directory / "stats.json")
    path = directory / CARD
    atomic_write_bytes(path, dataset_card(directory, manifest, stats).encode("utf-8"))
    return path


# ----------------------------------------------------------------------------- model card


def _hub_id(model: str | None) -> str | None:
    return model if model and re.fullmatch(r"[\w.-]+/[\w.-]+", model) and not Path(model).exists() else None


def evaluations(final_dir: Path) -> list[dict]:
    return [read_json(p) for p in sorted((final_dir / EVALUATIONS).glob("*.json"))]


def record_evaluation(ckpt: str | Path | None, run_dir: Path, results: dict) -> Path | None:
    """evaluate.py: keep this run's scores beside the checkpoint and refresh its card (a checkpoint of
    train.py only; the files are outside the checkpoint artifact's identity)."""
    if not ckpt or not (Path(ckpt).expanduser() / "training_manifest.json").exists():
        return None
    final_dir = Path(ckpt).expanduser()
    summary = {"run_name": results["run_name"], "benchmark": results["benchmark"], "limit": results.get("limit"),
               "run_dir": str(run_dir),
               "tasks": {t: {"metric": v["metric"], "accuracy": v["accuracy"], "n_problems": v["n_problems"]}
                         for t, v in results["tasks"].items()}}
    atomic_write_bytes(final_dir / EVALUATIONS / f"{results['run_name']}.json",
                       (json.dumps(summary, indent=1, sort_keys=True) + "\n").encode("utf-8"))
    return write_model_card(final_dir)


def model_card(final_dir: Path) -> str:
    manifest = read_json(final_dir / "training_manifest.json")
    config = manifest.get("config") or {}
    student = config.get("student") or {}
    base = student.get("model") or student.get("name")
    dataset_dir = Path(manifest["dataset_dir"]) if manifest.get("dataset_dir") else None  # absent: a hand-made checkpoint
    fusion = (config.get("fusion") or {}).get("name")
    meta = {"library_name": "transformers", "pipeline_tag": "text-generation",
            "tags": ["math", "reasoning", "trajfusion", fusion or "sft"]}
    if _hub_id(base):
        meta["base_model"] = base
    evals = evaluations(final_dir)
    metrics = manifest.get("train_metrics") or {}
    lines = [
        _front_matter(meta),
        f"# {manifest.get('run_name') or final_dir.name}",
        "",
        f"`{student.get('name')}` ({base}) fine-tuned on the TrajFusion `{fusion}` dataset `{manifest['data_id']}`.",
        "",
        "## Training data",
        "",
        f"- data_id `{manifest['data_id']}`"
        + (f": [{dataset_dir.name}]({dataset_dir / CARD}) (its dataset card)" if dataset_dir else ""),
        "",
        "## Training",
        "",
        "| key | value |", "|---|---|",
        *(f"| {k} | {v} |" for k, v in [
            ("base model", base), ("max_seq_len", student.get("max_seq_len")), ("lr", student.get("lr")),
            ("epochs", student.get("epochs")), ("global batch", student.get("global_batch_size")),
            ("steps", manifest.get("global_step")), ("ranks", manifest.get("world_size")),
            ("packing fill", manifest.get("pack_fill")), ("train loss", metrics.get("train_loss")),
            ("wall time (s)", manifest.get("wall_time_s")), ("seed", config.get("seed"))]),
        "",
    ]
    if evals:
        lines += ["## Evaluation", "", "| run | benchmark | task | metric | score | problems |", "|---|---|---|---|---|---|"]
        for e in evals:
            for task, t in e["tasks"].items():
                lines.append(f"| {e['run_name']} | {e['benchmark']} | {task} | {t['metric']} | {100 * t['accuracy']:.2f} | {t['n_problems']} |")
        lines.append("")
    else:
        lines += ["## Evaluation", "", "None recorded yet: `python evaluate.py ckpt=<this directory> ...` adds its scores here.", ""]
    lines += ["<details><summary>training config</summary>", "", "```json",
              json.dumps({k: v for k, v in config.items() if k != "hydra"}, indent=1, sort_keys=True, default=str),
              "```", "", "</details>", ""]
    return "\n".join(lines)


def write_model_card(final_dir: Path) -> Path:
    path = final_dir / CARD
    atomic_write_bytes(path, model_card(final_dir).encode("utf-8"))
    return path
