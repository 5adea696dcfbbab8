"""How a pool's samples are judged (README "Decisions the paper leaves open"): an output cut by the
generation limit has no answer (wrong for r, never fused); a replay sample whose stored reasoning
was shortened for storage keeps its verdict but is never fused; unknown samples carry a reason."""

from trajfusion.config import BuildDataConfig
from trajfusion.core.build import FusionSettings, fuse_problem
from trajfusion.core.select import choose_correct, eligible_errors
from trajfusion.core.stats import problem_stats
from trajfusion.data.budget import token_counter
from trajfusion.data.teachers.replay import trajectory_text
from trajfusion.data.verified import to_problem_pools, verify_rows

BOX = "so the answer is \\boxed{{{}}}."


def _cfg() -> BuildDataConfig:
    cfg = BuildDataConfig()
    cfg.verifier.workers = 0
    cfg.progress = False
    return cfg


def _rows():
    samples = [
        # cut by the generation limit, although its text holds the right box: no answer
        {"text": "Let me think. " + BOX.format(42) + " Wait, let me redo", "finish_reason": "length", "truncated": True},
        # stored reasoning shortened for storage (replay): judged by its answer, right here
        {"text": trajectory_text("short", "42"), "finish_reason": "stop", "truncated": True},
        {"text": trajectory_text("wrong but shortened", "41"), "finish_reason": "stop", "truncated": True},
        {"text": "ok " + BOX.format(40), "finish_reason": "stop"},
        {"text": "fine " + BOX.format("6 \\cdot 7"), "finish_reason": "stop"},
        {"text": "huge " + BOX.format("9" * 5000), "finish_reason": "stop"},
    ]
    for j, s in enumerate(samples):
        s |= {"sample_id": f"p1:{j:03d}", "model": "m"}
    return [{"id": "p1", "problem": "What is 6 times 7?", "answer": "42", "samples": samples}]


def test_cut_and_shortened_samples():
    rows = _rows()
    report = verify_rows(rows, _cfg(), None)
    s = rows[0]["samples"]
    assert [x["verdict"] for x in s] == ["incorrect", "correct", "incorrect", "incorrect", "correct", "unknown"]
    assert s[0]["pred"] is None and s[0]["group"] is None  # no answer: wrong for r, in no group
    assert s[2]["group"] is not None  # a shortened wrong sample still has its answer group (u counts it)
    assert s[5]["unknown_reason"] == "number_too_long"
    assert report["cut_by_length"] == 1 and report["no_answer"] == 1
    assert report["unknown_reasons"] == {"number_too_long": 1}

    pool = to_problem_pools(rows)[0]
    stats = problem_stats(pool.samples)
    assert (stats.n_correct, stats.n_wrong, stats.n_unknown) == (2, 3, 1)
    assert stats.u == 2  # 41 and 40; the answer-less sample has no group
    # never fused: neither the cut sample nor the shortened ones, as error or as y*
    assert [e.index for e in eligible_errors(pool.samples)] == [3]
    assert choose_correct(pool.samples, "shortest", None).index == 4
    settings = FusionSettings(alpha=10.0, reflections=("Wait.",), feedback=("Good.",))
    row, _ = fuse_problem(pool, settings, token_counter(None))
    assert [src["sample_id"] for src in row["sources"]] == ["p1:003", "p1:004"]
