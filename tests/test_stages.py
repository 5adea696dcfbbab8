"""build_data end to end on a slice of the bundled pool: identity, determinism, arms, audit, resume."""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from trajfusion.data.audit import audit_dataset
from trajfusion.data.dataset import build_dataset, calibrate

ROOT = Path(__file__).resolve().parent.parent
SLICE = "data.limit=60"


def correct_text(row):
    seg = next(s for s in row["segments"] if s["kind"] == "correct")
    return row["messages"][-1]["content"][seg["start"] : seg["end"]]


def rows_of(directory):
    return [json.loads(line) for line in (directory / "data.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """Both arms built once for the module (the verified pool is shared)."""
    from hydra import compose, initialize_config_dir

    from trajfusion.config import register_configs, to_build_config

    register_configs()
    root = tmp_path_factory.mktemp("data")
    out = {}
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        for arm in ("adaptive", "rft"):
            cfg = to_build_config(compose("build_data", [f"paths.data_root={root}", SLICE, f"fusion={arm}", "progress=false"]))
            out[arm] = build_dataset(cfg)
            out[f"cfg_{arm}"] = cfg
    return root, out


def test_dataset_directory_has_every_output(built):
    _, out = built
    for arm in ("adaptive", "rft"):
        names = {p.name for p in out[arm].iterdir()}
        assert {"data.jsonl", "manifest.json", "stats.json", "error_rate_hist.png", "entropy_vs_error_rate.png",
                "k_distribution.png", "token_lengths.png"} <= names
        manifest = json.loads((out[arm] / "manifest.json").read_text())
        assert manifest["data_id"] in out[arm].name and manifest["rows"] == len(rows_of(out[arm]))
        assert set(manifest["counts"]["dropped"]) == {"no_judged_samples", "no_correct", "correct_too_long"}
        assert manifest["verification"]["samples"] > 0 and manifest["input_files"]
    manifest = json.loads((out["adaptive"] / "manifest.json").read_text())
    stats = json.loads((out["adaptive"] / "stats.json").read_text())
    alpha = manifest["alpha"]["alpha"]
    assert manifest["alpha"]["source"] == "calibrated" and stats["alpha_calibration"] == manifest["alpha"]
    assert stats["alpha"] == alpha and {r["alpha"] for r in rows_of(out["adaptive"])} == {alpha}
    assert abs(stats["mean"]["n_errors"] - manifest["alpha"]["mean_errors"]) < 1e-4  # the calibration is the dataset's own
    assert (Path(manifest["verified_pool"]).parent / manifest["alpha"]["file"]).exists()


def test_arms_share_problems_and_y_star(built):
    _, out = built
    fused, rft = rows_of(out["adaptive"]), rows_of(out["rft"])
    assert [r["id"] for r in fused] == [r["id"] for r in rft]
    assert [correct_text(r) for r in fused] == [correct_text(r) for r in rft]
    assert any(r["n_errors"] for r in fused) and not any(r["n_errors"] for r in rft)


def test_every_row_passes_the_audit(built):
    _, out = built
    for arm in ("adaptive", "rft"):
        result = audit_dataset(out[arm])
        assert result["failing_rows"] == 0, result["failures"]


def test_rebuild_is_byte_identical_and_reused(built, tmp_path, compose):
    root, out = built
    again = build_dataset(compose(SLICE, "progress=false"))  # fresh data_root (compose fixture): full rebuild
    assert again != out["adaptive"] and again.name == out["adaptive"].name
    assert (again / "data.jsonl").read_bytes() == (out["adaptive"] / "data.jsonl").read_bytes()
    mtime = (again / "data.jsonl").stat().st_mtime_ns
    assert build_dataset(compose(SLICE, "progress=false")) == again
    assert (again / "data.jsonl").stat().st_mtime_ns == mtime  # reused, not rewritten


def test_data_id_follows_the_knobs(built, compose):
    from trajfusion.data.dataset import load_prompts
    from trajfusion.data.identity import dataset_dir

    def data_id(*overrides):
        cfg = compose(SLICE, *overrides)
        return dataset_dir(cfg, load_prompts(cfg))[0]

    base = data_id()
    assert data_id("length_policy.k_max=2") != base and data_id("selector=low_div") != base and data_id("seed=1") != base
    assert data_id("paths.data_root=/elsewhere") == base and data_id("progress=false") == base
    # α=auto hashes its target, not the α it calibrates to: the id is known before calibration
    assert data_id("length_policy.target_errors=1.49") == base and data_id("length_policy.target_errors=1.2") != base
    assert data_id("length_policy.alpha=0.303") != base
    rft = data_id("fusion=rft")
    assert data_id("fusion=rft", "length_policy.k_max=2", "selector=low_div") == rft  # RFT ignores them


def test_calibration_hits_the_target(built):
    root, out = built
    result = calibrate(out["cfg_adaptive"])
    assert abs(result["mean_errors"] - 1.49) < 0.15
    means = [p["mean_errors"] for p in result["grid"]]
    assert means == sorted(means) and result["grid"][0]["alpha"] < 0.1
    curve = [p["mean_errors"] for p in result["curve"]]
    assert curve == sorted(curve) and curve[0] == 0.0
    # the tool's pick is the α the build used
    assert result["alpha"] == json.loads((out["adaptive"] / "manifest.json").read_text())["alpha"]["alpha"]


def _db_rows(path: Path) -> int:
    try:
        with sqlite3.connect(path, timeout=1) as con:
            return con.execute("select count(*) from verdicts").fetchone()[0]
    except sqlite3.Error:
        return 0


def test_killed_run_resumes_without_redoing_verification(tmp_path):
    cmd = [sys.executable, str(ROOT / "build_data.py"), f"paths.data_root={tmp_path}", "data.limit=200", "progress=false", "verifier.workers=1"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    db = tmp_path / "cache" / "verify.sqlite"
    deadline = time.time() + 120
    while time.time() < deadline and _db_rows(db) < 50 and proc.poll() is None:
        time.sleep(0.2)
    assert proc.poll() is None, "the run finished before it could be killed; raise data.limit"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    done_before = _db_rows(db)
    assert done_before >= 50
    assert not list(tmp_path.glob("pools/*/verified-*.jsonl.gz")) and not (tmp_path / "fused").exists()

    subprocess.run(cmd, cwd=tmp_path, env=env, check=True, capture_output=True)
    report = json.loads(next(tmp_path.glob("pools/*/verified-*.report.json")).read_text())
    assert report["answer_checks"]["cache_hits"] + report["grouping_checks"]["cache_hits"] >= done_before
    assert len(list((tmp_path / "fused").iterdir())) == 1


def test_training_never_starts_teacher_sampling(compose):
    cfg = compose("teacher=smollm2_135m", "data=gsm8k_train", "data.limit=2")
    with pytest.raises(ValueError, match="no sampled pool for teacher 'smollm2_135m'.*python build_data.py data=gsm8k_train teacher=smollm2_135m"):
        build_dataset(cfg, allow_sampling=False)
