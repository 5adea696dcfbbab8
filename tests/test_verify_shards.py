"""Verification in the SLURM array tasks: each shard verifies its problems into its own file, and the
merge in pool order gives the bytes and counts of verifying the pool in one job; chunked verification
gives the bytes of one chunk."""

import gzip
import json

import pytest

from trajfusion.data import pool as pool_module
from trajfusion.data import verified as verified_module
from trajfusion.data.teachers.prompts import problem_seed
from trajfusion.data.verified import shard_stage, shard_verified_path, verified_pool, verified_rows

# the report's counts; answer_checks / grouping_checks split memo, fast-path and cache hits by chunk
COUNTS = ("problems", "samples", "verdicts", "no_answer", "truncated", "cut_by_length", "unknown_reasons", "stored_label_agreement")
REPLAY = ("data.limit=23", "verifier.workers=0", "progress=false", "plots=false")


def _counts(report):
    return {k: report[k] for k in COUNTS} | {
        name: {k: report[name][k] for k in ("requested", "unknown", "unknown_reasons")} for name in ("answer_checks", "grouping_checks")
    }


def test_three_verified_shards_merge_to_the_bytes_of_one_job(compose, tmp_path, monkeypatch):
    one_path, one = verified_pool(compose(*REPLAY, f"paths.data_root={tmp_path}/one"))
    root = f"paths.data_root={tmp_path}/three"
    for i in (2, 0, 1):  # array tasks finish in any order
        meta = shard_stage(compose(*REPLAY, root, "stage=verify", f"shard.index={i}", "shard.count=3", "verifier.chunk_problems=3"))
        assert meta["verified"].endswith(f"shard-{i:05d}-of-00003.jsonl.gz")
    cfg = compose(*REPLAY, root, "shard.count=3")
    shard_ids = [[r["id"] for r in verified_rows(shard_verified_path(cfg, i, 3))] for i in range(3)]
    pool_ids = [r["id"] for r in verified_rows(one_path)]
    assert shard_ids == [pool_ids[i::3] for i in range(3)]
    monkeypatch.setattr(verified_module, "VerifierPool", None)  # the job after the array only merges
    merged_path, merged = verified_pool(cfg)
    assert merged_path.read_bytes() == one_path.read_bytes()
    assert _counts(merged) == _counts(one) and merged["pool"] == one["pool"]
    assert one["pool"]["decontamination"]["benchmarks"] == ["math500", "gsm8k"]


def test_chunks_give_the_bytes_of_one_pass(compose, tmp_path):
    whole, report = verified_pool(compose(*REPLAY, f"paths.data_root={tmp_path}/whole", "verifier.chunk_problems=1000"))
    chunked, chunked_report = verified_pool(compose(*REPLAY, f"paths.data_root={tmp_path}/chunked", "verifier.chunk_problems=2"))
    assert chunked.read_bytes() == whole.read_bytes()
    assert _counts(chunked_report) == _counts(report)


def test_missing_or_inconsistent_shards(compose, tmp_path):
    root = f"paths.data_root={tmp_path}/data"
    for i in (0, 1):
        shard_stage(compose(*REPLAY, root, "stage=verify", f"shard.index={i}", "shard.count=3"))
    cfg = compose(*REPLAY, root, "shard.count=3")
    path, _ = verified_pool(cfg)  # shard 2 missing: this job verifies the pool itself
    whole = path.read_bytes()
    path.unlink()
    shard_stage(compose(*REPLAY, root, "stage=verify", "shard.index=2", "shard.count=3"))
    first = shard_verified_path(cfg, 0, 3)
    rows = list(verified_rows(first))
    with gzip.open(first, "wt", encoding="utf-8") as out:  # a shard that lost its last row
        out.writelines(json.dumps(r, sort_keys=True, ensure_ascii=False) + "\n" for r in rows[:-1])
    with pytest.raises(ValueError, match="inconsistent"):
        verified_pool(cfg)
    assert not path.exists()
    with gzip.open(first, "wt", encoding="utf-8") as out:
        out.writelines(json.dumps(r, sort_keys=True, ensure_ascii=False) + "\n" for r in rows)
    assert verified_pool(cfg)[0].read_bytes() == whole


class BoxTeacher:
    """A deterministic stand-in teacher: right or wrong boxed answers depending on (problem, sample)."""

    def sample_batch(self, problems):
        return [[{"text": f"so $\\boxed{{{int(p['answer']) + (problem_seed(0, p['id']) + j) % 3 // 2}}}$",
                  "finish_reason": "stop", "n_tokens": 7, "model": "box"} for j in range(4)] for p in problems]


def test_sampling_tasks_verify_what_they_sampled(compose, tmp_path, monkeypatch):
    problems = tmp_path / "problems.jsonl"
    problems.write_text("".join(json.dumps({"id": f"q{i}", "problem": f"What is {i} + 1?", "answer": str(i + 1)}) + "\n" for i in range(11)))
    monkeypatch.setattr(pool_module, "_teacher_factory", lambda cfg: BoxTeacher)
    sampled = ("data=custom", f"data.path={problems}", "data.decontaminate=[]", "teacher=smollm2_135m", "verifier.workers=0", "progress=false")
    one_path, one = verified_pool(compose(*sampled, f"paths.data_root={tmp_path}/one", "shard.count=2"))  # all in this job
    root = f"paths.data_root={tmp_path}/array"
    for i in range(2):
        meta = shard_stage(compose(*sampled, root, "stage=sample", f"shard.index={i}", "shard.count=2", "verifier.chunk_problems=2"))
        assert meta["problems"] == (6, 5)[i] and meta["verified"]
    merged_path, merged = verified_pool(compose(*sampled, root, "shard.count=2"), allow_sampling=False)
    assert merged_path.read_bytes() == one_path.read_bytes()
    assert _counts(merged) == _counts(one) and merged["verdicts"]["incorrect"] > 0
    timing = ("sampling_wall_time_s", "tokens_per_s", "problems_per_s", "shards")
    assert {k: v for k, v in merged["pool"].items() if k not in timing} == {k: v for k, v in one["pool"].items() if k not in timing}
    assert [s["problems"] for s in merged["pool"]["shards"]] == [6, 5]
    assert not (merged_path.parent / "pool.jsonl.gz").exists()  # the merge never rebuilt the whole pool


def test_chunks_end_at_a_count_of_problems_or_of_text():
    from trajfusion.data.verified import _chunks

    rows = [{"id": i, "samples": [{"text": "x" * 10}, {"text": None}]} for i in range(7)]
    assert [len(c) for c in _chunks(rows, 3)] == [3, 3, 1]
    assert [len(c) for c in _chunks(rows, 100, max_chars=25)] == [3, 3, 1]
    assert [[r["id"] for r in c] for c in _chunks(rows, 2, max_chars=1)] == [[i] for i in range(7)]
    assert list(_chunks([], 3)) == []
