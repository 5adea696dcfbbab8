"""pool → dataset → checkpoint → evaluation in W&B, read back from the offline run records: the data run
logs the dataset (alias data_id) and uses the pool, train.py uses that very dataset version (same digest)
and logs its checkpoint, evaluate.py uses that checkpoint. The entry points stay quiet on the console."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from trajfusion import wandb_records
from trajfusion.io import read_json

ROOT = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "WANDB_MODE": "offline",
       "TOKENIZERS_PARALLELISM": "false", "PYTHONPATH": str(ROOT)}
ENV.pop("WANDB_SILENT", None)  # quiet must come from the entry point, not the caller
TINY = ["student=tiny_random", "data.limit=8", "student.max_seq_len=1024", "student.global_batch_size=2",
        "student.micro_batch_size=1", "training.max_steps=1", "progress=false", "run_name=lin", "wandb.group=lin"]


def _run(script: str, *args: str) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, str(ROOT / script), *args], cwd=ROOT, env=ENV, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    return proc


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    root = tmp_path_factory.mktemp("lineage")
    train = _run("train.py", f"paths.data_root={root}", f"hydra.run.dir={root}/runs/lin", *TINY)
    evaluate = _run("evaluate.py", f"paths.data_root={root}", f"hydra.run.dir={root}/eval/lin", "student=tiny_random",
                    f"ckpt={root}/runs/lin/final", "benchmark=math500", "benchmark.limit=1", "benchmark.max_new_tokens=4",
                    "run_name=lin", "wandb.group=lin")
    return root, train, evaluate


def _only_run(directory: Path) -> tuple[dict, list[dict]]:
    [path] = wandb_records.run_files(directory)
    return wandb_records.run_info(path), wandb_records.artifacts(path)


@pytest.mark.slow
def test_offline_records_link_pool_dataset_checkpoint_and_evaluation(chain):
    root, _, _ = chain
    manifest = read_json(root / "runs" / "lin" / "manifest.json")
    data_id = manifest["data_id"]

    info, data_artifacts = _only_run(root / "logs" / "data")
    assert info["job_type"] == "data" and info["group"] == "lin"
    [pool] = [a for a in data_artifacts if a["type"] == "pool"]
    [dataset] = [a for a in data_artifacts if a["type"] == "dataset"]
    assert pool["input"] and pool["refs"] and all(r.startswith("file://") for r in pool["refs"])
    assert not dataset["input"] and dataset["name"] == "data-adaptive" and data_id in dataset["aliases"]
    assert {"data.jsonl", "manifest.json", "stats.json", "README.md", "examples.table.json"} <= set(dataset["entries"])
    assert any(r.endswith("/data.jsonl") for r in dataset["refs"])  # by reference, not copied

    info, train_artifacts = _only_run(root / "runs" / "lin")
    assert info["job_type"] == "train"
    [used] = [a for a in train_artifacts if a["input"]]
    assert (used["type"], used["name"], used["digest"]) == ("dataset", "data-adaptive", dataset["digest"])
    [model] = [a for a in train_artifacts if a["type"] == "model"]
    assert not model["input"] and model["name"] == "model-lin" and {"final", data_id} <= set(model["aliases"])
    assert "model.safetensors" in model["entries"] and "README.md" not in model["entries"]

    info, eval_artifacts = _only_run(root / "eval" / "lin")
    assert info["job_type"] == "eval"
    [scored] = [a for a in eval_artifacts if a["input"]]
    assert (scored["type"], scored["name"], scored["digest"]) == ("model", "model-lin", model["digest"])
    card = (root / "runs" / "lin" / "final" / "README.md").read_text()
    assert "| lin | math500 | tf_math500 | pass@1 |" in card  # the evaluation reached the model card


@pytest.mark.slow
def test_entry_points_print_stage_lines_and_a_summary_only(chain):
    root, train, evaluate = chain
    for proc, done in ((train, "train    done"), (evaluate, "eval     done")):
        out = proc.stdout
        assert done in out
        assert "wandb:" not in out + proc.stderr and "Running in WANDB offline mode" not in out
        assert "[WARNING]" not in out and "{'loss'" not in out
        assert len(out.splitlines()) <= 12, out
    assert "data     built adaptive-" in train.stdout and "train    dataset" in train.stdout
    log = (root / "runs" / "lin" / "train.log").read_text()
    assert "W&B run" in log and "dataset  " in log  # the detail went to the run's log file


def test_disabled_wandb_logs_nothing(tmp_path, monkeypatch):
    from trajfusion.lineage import log_data_run, wandb_mode

    assert wandb_mode(False, "online") == "disabled"
    monkeypatch.setenv("WANDB_MODE", "offline")
    assert wandb_mode(True, None) == "offline" and wandb_mode(True, "disabled") == "disabled"
    assert log_data_run({"enabled": False}, tmp_path / "missing", tmp_path) is None
    assert log_data_run(None, tmp_path / "missing", tmp_path) is None
    assert not (tmp_path / "logs").exists()


def test_a_file_that_is_not_a_wandb_log_is_refused(tmp_path):
    bad = tmp_path / "run-x.wandb"
    bad.write_bytes(b"not a log at all")
    with pytest.raises(ValueError, match="not a W&B transaction log"):
        list(wandb_records.raw_records(bad))
