"""Concurrent builds of one dataset: one process does the work, the other waits and reuses it whole."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from trajfusion.io import atomic_directory, write_json
from trajfusion.locks import output_lock

ROOT = Path(__file__).resolve().parent.parent
ARGS = ["data.limit=12", "plots=false", "progress=false", "verifier.workers=1"]


def test_two_processes_build_the_same_dataset_once(tmp_path, compose):
    from trajfusion.data.audit import audit_dataset
    from trajfusion.data.dataset import load_prompts
    from trajfusion.data.identity import dataset_dir

    root = tmp_path / "data"
    cfg = compose(*ARGS)
    _, out_dir = dataset_dir(cfg, load_prompts(cfg))
    cmd = [sys.executable, str(ROOT / "build_data.py"), f"paths.data_root={root}", *ARGS]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    # hold the dataset's lock so that both processes are certainly running when the build starts
    logs = [tmp_path / f"build{i}.log" for i in range(2)]
    with output_lock(root, f"fused-{out_dir.name}") as lock:
        procs = [subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT) for log in logs]
        deadline = time.time() + 120
        while time.time() < deadline and sum("waiting for it" in log.read_text() for log in logs) < 2:
            assert all(p.poll() is None for p in procs), [log.read_text() for log in logs]
            time.sleep(0.2)
        assert lock.exists()
    # (released here; a waiter takes it at once and re-creates the file, so its absence is checked at the end)
    for p in procs:
        p.wait(timeout=300)
    outputs = [log.read_text() for log in logs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    assert sum("waiting for it" in out for out in outputs) == 2
    assert sum("built by another process" in out for out in outputs) == 1
    assert sum("verified " in out and " samples of " in out for out in outputs) == 1  # one verification only
    assert [p.name for p in (root / "fused").iterdir()] == [out_dir.name]  # no temporary or old folders left
    assert not (root / "locks").exists()  # every lock released and removed
    manifest = json.loads((out_dir / "manifest.json").read_text())
    assert manifest["rows"] == len((out_dir / "data.jsonl").read_text().splitlines()) > 0
    result = audit_dataset(out_dir, workers=1)
    assert result["rows"] == manifest["rows"] and result["failing_rows"] == 0, result["failures"]


def test_atomic_directory_replaces_an_old_folder_whole(tmp_path):
    target = tmp_path / "out"
    with atomic_directory(target) as tmp:
        write_json(tmp / "a.json", 1)
    with atomic_directory(target) as tmp:
        write_json(tmp / "b.json", 2)
        # another process renames its own result onto the target meanwhile
        other = tmp_path / "other"
        other.mkdir()
        write_json(other / "c.json", 3)
        os.replace(target, tmp_path / "gone")
        os.rename(other, target)
    assert sorted(p.name for p in target.iterdir()) == ["b.json"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gone", "out"]


def test_lock_is_released_when_the_holder_dies(tmp_path):
    code = f"from trajfusion.locks import output_lock\nimport os\nwith output_lock({str(tmp_path)!r}, 'x'):\n    os._exit(0)\n"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, timeout=60)
    started = time.perf_counter()
    with output_lock(tmp_path, "x"):
        pass
    assert time.perf_counter() - started < 1


def test_many_processes_take_turns(tmp_path):
    """Four processes each append under the lock: no two hold it at once, and nothing is left."""
    code = (
        "import sys, time\nfrom trajfusion.locks import output_lock\n"
        f"for _ in range(5):\n    with output_lock({str(tmp_path)!r}, 'x'):\n"
        f"        with open({str(tmp_path / 'log')!r}, 'a') as f: f.write('in\\n'); f.flush(); time.sleep(0.01); f.write('out\\n')\n"
    )
    procs = [subprocess.Popen([sys.executable, "-c", code], cwd=ROOT) for _ in range(4)]
    assert [p.wait(timeout=120) for p in procs] == [0] * 4
    assert (tmp_path / "log").read_text() == "in\nout\n" * 20
    assert not (tmp_path / "locks").exists()
