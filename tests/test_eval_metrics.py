"""Pass@1, Avg@k and the paired bootstrap on fixed verdicts, against values computed by hand."""

import math

import pytest

from trajfusion.evaluation.metrics import paired_bootstrap, problem_scores, summarize_task


def rows(spec: dict[str, str], tokens: int = 10) -> list[dict]:
    """spec: problem id → verdict letters, one per sample (c correct, w incorrect, u unknown, n no answer)."""
    names = {"c": "correct", "w": "incorrect", "u": "unknown", "n": "incorrect"}
    return [{"problem_id": pid, "verdict": names[v], "extracted": None if v == "n" else "x", "n_tokens": tokens + i,
             "hit_max_new_tokens": False} for pid, letters in spec.items() for i, v in enumerate(letters)]


def test_pass_at_1_is_the_share_of_problems_whose_greedy_output_is_correct():
    s = summarize_task(rows({"a": "c", "b": "w", "c": "c", "d": "u"}), sampled=False)
    assert s.metric == "pass@1"
    assert s.accuracy == pytest.approx(2 / 4)
    assert s.unknown_rate == pytest.approx(1 / 4)  # unknown is counted (and is not correct)
    assert s.n_problems == 4 and s.samples_per_problem == 1


def test_avg_at_k_is_the_mean_over_problems_of_per_problem_accuracy_not_pass_at_k():
    # 4 samples each: problem a 3/4, b 0/4, c 1/4 (one unknown, one without an answer)
    s = summarize_task(rows({"a": "ccwc", "b": "wwww", "c": "cunw"}), sampled=True)
    assert s.metric == "avg@4"
    assert s.accuracy == pytest.approx((3 / 4 + 0 + 1 / 4) / 3)  # = 1/3; pass@4 would be 2/3
    assert s.unknown_rate == pytest.approx(1 / 12)
    assert s.no_answer_rate == pytest.approx(1 / 12)
    assert s.mean_output_tokens == pytest.approx(11.5)  # tokens 10..13 per problem


def test_problem_scores_and_uneven_sample_counts_are_refused():
    assert problem_scores(rows({"a": "cw", "b": "cc"})) == {"a": 0.5, "b": 1.0}
    with pytest.raises(ValueError, match="different numbers of samples"):
        summarize_task(rows({"a": "cw", "b": "c"}), sampled=True)


def test_paired_bootstrap_interval_contains_the_difference_and_shrinks_for_identical_runs():
    a = {f"p{i}": float(i % 2) for i in range(200)}  # 50%
    b = {f"p{i}": float(i % 2 or i % 4 == 0) for i in range(200)}  # 75%: 50 problems flipped to correct
    d = paired_bootstrap(a, b, iterations=2000)
    assert d.diff == pytest.approx(0.25) and d.n_problems == 200
    assert d.low < d.diff < d.high and d.low > 0
    same = paired_bootstrap(a, a, iterations=500)
    assert same.diff == same.low == same.high == 0
    flipped = paired_bootstrap(b, a, iterations=2000)
    assert math.isclose(flipped.diff, -d.diff) and flipped.high < 0


def test_paired_bootstrap_needs_shared_problems():
    with pytest.raises(ValueError, match="share no problem"):
        paired_bootstrap({"a": 1.0}, {"b": 1.0})
