"""Bad input fails once, clearly, naming file, line and field; nothing half-written is left."""

import gzip
import json

import pytest

from trajfusion.data.teachers.replay import load_replay_pool
from trajfusion.io import DataError, atomic_directory, write_jsonl

GOOD = {"id": "p1", "problem": "1+1?", "answer": "2", "samples": [{"model": "m", "solution": "1+1=2", "pred": "2"}]}


def write_lines(path, lines):
    path.write_text("".join(line + "\n" for line in lines))
    return path


@pytest.mark.parametrize(
    "line,field,message",
    [
        ('{"id": "p2", "problem": "x"', None, "not valid JSON"),
        ("[1, 2]", None, "expected a JSON object"),
        (json.dumps({**GOOD, "id": "p2", "problem": ""}), "problem", "missing or empty"),
        (json.dumps({k: v for k, v in {**GOOD, "id": "p2"}.items() if k != "answer"}), "answer", "missing or empty reference answer"),
        (json.dumps({**GOOD, "id": "p2", "answer": "  "}), "answer", "missing or empty reference answer"),
        (json.dumps({**GOOD, "id": "p1"}), "id", "duplicate id 'p1' (first on line 1)"),
        (json.dumps({**GOOD, "id": "p2", "samples": None}), "samples", "missing"),
        (json.dumps({**GOOD, "id": "p2", "samples": [{"model": "m"}]}), "samples[0].solution", "missing"),
    ],
)
def test_bad_line_names_file_line_and_field(tmp_path, line, field, message):
    path = write_lines(tmp_path / "pool.jsonl", [json.dumps(GOOD), line])
    with pytest.raises(DataError) as info:
        load_replay_pool(str(path))
    err = info.value
    assert (err.path, err.line, err.field) == (str(path), 2, field)
    assert str(err).startswith(f"{path}:2: ") and message in str(err)


def test_missing_file_and_empty_pool(tmp_path):
    with pytest.raises(DataError, match="file not found"):
        load_replay_pool(str(tmp_path / "nope.jsonl"))
    with pytest.raises(DataError, match="no problems"):
        load_replay_pool(str(write_lines(tmp_path / "empty.jsonl", [""])))


def test_gzip_pool_and_field_mapping(tmp_path):
    path = tmp_path / "pool.jsonl.gz"
    with gzip.open(path, "wt") as f:
        f.write(json.dumps({"qid": 7, "question": "1+1?", "gold": 2, "samples": GOOD["samples"]}) + "\n")
    rows = load_replay_pool(str(path), id_field="qid", problem_field="question", answer_field="gold")
    assert rows[0]["id"] == "7" and rows[0]["answer"] == "2"
    assert rows[0]["samples"][0]["text"].endswith("The final answer is $\\boxed{2}$.")
    assert rows[0]["samples"][0]["sample_id"] == "7:000"


def test_atomic_directory_leaves_nothing_when_interrupted(tmp_path):
    target = tmp_path / "fused" / "adaptive-abc"
    with pytest.raises(RuntimeError):
        with atomic_directory(target) as tmp:
            write_jsonl(tmp / "data.jsonl", [{"a": 1}])
            raise RuntimeError("killed")
    assert not target.exists() and list((tmp_path / "fused").iterdir()) == []


# ----------------------------------------------------------------------------- bad files, wrong types

ROOT = __import__("pathlib").Path(__file__).resolve().parent.parent


def _bad_files(tmp_path):
    """(name, path, expected line or None, message fragment): one of each kind of broken file."""
    good = (json.dumps(GOOD) + "\n").encode()
    whole = gzip.compress(good * 200)
    cases = {
        "truncated_gzip": ("pool.jsonl.gz", whole[: len(whole) // 2], None, "truncated"),
        "not_gzip": ("pool.jsonl.gz", good, None, "not gzip data"),
        "non_utf8": ("pool.jsonl", good + b'{"id": "p2", "problem": "caf\xe9"}\n', 2, "not valid UTF-8 (byte 0xe9"),
        "invalid_json": ("pool.jsonl", good + b'{"id": \n', 2, "not valid JSON"),
        "deep_nesting": ("pool.jsonl", good + b'{"id": ' + b"[" * 100_000 + b"]" * 100_000 + b"}\n", 2, "nested too deeply"),
        "huge_int": ("pool.jsonl", good + b'{"id": "p2", "answer": ' + b"7" * 5000 + b"}\n", 2, "5000 digits"),
        "nul_byte": ("pool.jsonl", good + b'{"id": "p2"\x00}\n', 2, "not valid JSON"),
    }
    out = []
    for name, (filename, payload, line, message) in cases.items():
        path = tmp_path / name / filename
        path.parent.mkdir()
        path.write_bytes(payload)
        out.append((name, path, line, message))
    out.append(("missing", tmp_path / "nope.jsonl", None, "file not found"))
    out.append(("directory", tmp_path, None, "is a directory"))
    return out


def test_bad_files_are_located_errors(tmp_path):
    for name, path, line, message in _bad_files(tmp_path):
        with pytest.raises(DataError) as info:
            load_replay_pool(str(path))
        err = info.value
        assert err.path == str(path), name
        if line is not None:
            assert err.line == line and str(err).startswith(f"{path}:{line}: "), name
        assert message in str(err), (name, str(err))


def test_truncated_gzip_names_the_line_it_reached(tmp_path):
    whole = gzip.compress("".join(json.dumps({**GOOD, "id": f"p{i}"}) + "\n" for i in range(5000)).encode())
    path = tmp_path / "pool.jsonl.gz"
    path.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(DataError, match=r"pool\.jsonl\.gz:\d+: truncated") as info:
        load_replay_pool(str(path))
    assert info.value.line > 1


@pytest.mark.parametrize(
    "change,field,message",
    [
        ({"answer": ["1", "2"]}, "answer", "must be a string or a number, got a list"),
        ({"answer": {"a": 1}}, "answer", "must be a string or a number, got an object"),
        ({"id": [1]}, "id", "got a list"),
        ({"problem": {"x": 1}}, "problem", "got an object"),
        ({"samples": {"0": GOOD["samples"][0]}}, "samples", "must be a list of samples, got an object"),
        ({"samples": [{"model": "m", "solution": "s", "pred": ["a", 1]}]}, "samples[0].pred", "got a list"),
        ({"samples": [{"model": "m", "solution": ["s"]}]}, "samples[0].solution", "got a list"),
        ({"samples": [{"model": {"n": 1}, "solution": "s"}]}, "samples[0].model", "got an object"),
        ({"samples": ["text"]}, "samples[0]", "expected an object, got a string"),
    ],
)
def test_wrong_field_types_are_errors_not_text(tmp_path, change, field, message):
    path = write_lines(tmp_path / "pool.jsonl", [json.dumps({**GOOD, "id": "p2", **change})])
    with pytest.raises(DataError) as info:
        load_replay_pool(str(path))
    assert (info.value.line, info.value.field) == (1, field) and message in str(info.value)


def test_numbers_are_accepted_where_text_is_expected(tmp_path):
    sample = {"model": "m", "solution": "6*7", "pred": 42}
    path = write_lines(tmp_path / "pool.jsonl", [json.dumps({"id": 3, "problem": "6*7?", "answer": 42, "samples": [sample]})])
    row = load_replay_pool(str(path))[0]
    assert (row["id"], row["answer"]) == ("3", "42") and row["samples"][0]["text"].endswith("$\\boxed{42}$.")


def test_problem_file_field_types(tmp_path, compose):
    from trajfusion.data.problems import read_problems

    path = write_lines(tmp_path / "problems.jsonl", [json.dumps({"id": "a", "problem": "1+1?", "answer": 2}),
                                                     json.dumps({"id": "b", "problem": "2+2?", "answer": [4]})])
    cfg = compose("data=custom", f"data.path={path}")
    with pytest.raises(DataError, match=r"problems\.jsonl:2: answer: must be a string or a number, got a list"):
        read_problems(cfg.data)


@pytest.mark.parametrize("case", ["truncated_gzip", "not_gzip", "missing", "non_utf8", "directory"])
def test_build_data_exits_2_with_one_located_line(tmp_path, case):
    import os
    import subprocess
    import sys

    files = tmp_path / "files"
    files.mkdir()
    _, path, line, message = next(c for c in _bad_files(files) if c[0] == case)
    data_root = tmp_path / "data"
    env = {**os.environ, "TRAJFUSION_DATA_ROOT": str(data_root)}
    proc = subprocess.run(
        [sys.executable, str(ROOT / "build_data.py"), f"data.path={path}", "data.decontaminate=[]", "plots=false", "progress=false"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=False,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 2, output
    assert "Traceback" not in output
    errors = [ln for ln in output.splitlines() if str(path) in ln]
    assert len(errors) == 1 and message in errors[0], output
    if line is not None:
        assert f"{path}:{line}: " in errors[0]
    assert sorted(p.name for p in data_root.iterdir()) == ["logs"]  # only the Hydra log
