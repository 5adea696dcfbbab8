"""Bad input fails once, clearly, naming file, line and field; nothing half-written is left."""

import gzip
import json

import pytest

from trajfusion.backends.replay import load_replay_pool
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
