import math

import pytest

from tests.helpers import make_pool
from trajfusion.core.build import FusionSettings, fuse_pools, fuse_problem

PROMPTS = dict(reflections=("Let me check again.", "Hmm, that looks wrong."), feedback=("Verified.",))


def settings(**kw):
    return FusionSettings(**{**PROMPTS, "system_prompt": "Reason step by step.", **kw})


def count(text: str) -> int:
    return len(text.split())


POOLS = [
    make_pool("mixed", [("c", "42", None), ("w", "1", 0), ("w", "1", 0), ("w", "2", 1), ("w", "3", 2), ("c", "42", None), ("w", "4", 3)]),
    make_pool("easy", [("c", "42", None)] * 4),
    make_pool("hard", [("w", "1", 0), ("w", "2", 1)]),
    make_pool("unknown", [("u", "42", None)] * 2),
    make_pool("noisy", [("c", "42", None), ("w", None, None), ("t", "5", 0), ("w", "6", 1)]),
]


def check_row_invariants(row, cfg):
    text = row["messages"][-1]["content"]
    segs = row["segments"]
    assert segs[0]["start"] == 0 and segs[-1]["end"] == len(text)
    assert all(a["end"] == b["start"] for a, b in zip(segs, segs[1:]))
    assert segs[-1]["kind"] == "answer" and "\\boxed{42}" in text[segs[-1]["start"]:]
    n_err = sum(s["kind"] == "error" for s in segs)
    assert n_err == row["n_errors"] == sum(s["kind"] == "error" for s in row["sources"])
    if cfg.uses_errors:
        k = min(row["k_max"], math.floor(row["alpha"] * row["r"] * row["u"])) if row["length_policy"] == "adaptive" else row["k"]
        assert row["k"] == k
        assert n_err + row["errors_dropped_for_budget"] == min(row["k"], row["eligible_groups"]) or row["selector"] != "diverse"
    else:
        assert n_err == 0
    assert row["n_tokens"] <= row["max_tokens"]


@pytest.mark.parametrize("fusion", ["adaptive", "rft"])
@pytest.mark.parametrize("selector", ["diverse", "low_div", "random"])
@pytest.mark.parametrize("policy", ["adaptive", "fixed", "none"])
def test_rows_satisfy_the_invariants(fusion, selector, policy):
    cfg = settings(fusion=fusion, selector=selector, length_policy=policy, k_max=3, alpha=2.0)
    rows, outcomes = fuse_pools(POOLS, cfg, count)
    assert [r["id"] for r in rows] == ["mixed", "easy", "noisy"]
    assert {o.problem_id: o.dropped for o in outcomes if o.dropped} == {"hard": "no_correct", "unknown": "no_judged_samples"}
    for row in rows:
        check_row_invariants(row, cfg)
        if selector == "diverse":
            groups = [s["group"] for s in row["sources"] if s["kind"] == "error"]
            assert len(groups) == len(set(groups))


def test_rft_and_adaptive_share_problems_and_correct_trajectory():
    rft, _ = fuse_pools(POOLS, settings(fusion="rft"), count)
    fused, _ = fuse_pools(POOLS, settings(fusion="adaptive", alpha=4.0), count)
    assert [r["id"] for r in rft] == [r["id"] for r in fused]
    for a, b in zip(rft, fused):
        ca = [s for s in a["segments"] if s["kind"] == "correct"][0]
        cb = [s for s in b["segments"] if s["kind"] == "correct"][0]
        assert a["messages"][-1]["content"][ca["start"]:ca["end"]] == b["messages"][-1]["content"][cb["start"]:cb["end"]]
        assert a["messages"][-1]["content"][ca["end"]:] == b["messages"][-1]["content"][cb["end"]:]  # same feedback + answer


def test_mixed_problem_gets_diverse_errors_most_frequent_first():
    row, _ = fuse_problem(POOLS[0], settings(alpha=4.0, k_max=4), count)
    errors = [s for s in row["sources"] if s["kind"] == "error"]
    assert [e["group"] for e in errors] == [0, 1, 2, 3]
    assert row["k"] == min(4, math.floor(4.0 * (5 / 7) * 4))


def test_budget_drops_least_frequent_errors_first_and_never_cuts_y_star():
    full, _ = fuse_problem(POOLS[0], settings(alpha=4.0, k_max=4), count)
    tight = full["n_tokens"] - 3
    row, outcome = fuse_problem(POOLS[0], settings(alpha=4.0, k_max=4, max_tokens=tight), count)
    assert row["n_tokens"] <= tight and outcome.errors_dropped_for_budget >= 1
    kept = [s["group"] for s in row["sources"] if s["kind"] == "error"]
    assert kept == [0, 1, 2, 3][: len(kept)]  # the rarest groups went first
    rft_only, _ = fuse_problem(POOLS[0], settings(fusion="rft"), count)
    row, outcome = fuse_problem(POOLS[0], settings(max_tokens=rft_only["n_tokens"] - 1), count)
    assert row is None and outcome.dropped == "correct_too_long"


def test_rows_are_deterministic_and_order_independent():
    cfg = settings(selector="random", alpha=4.0)
    forward, _ = fuse_pools(POOLS, cfg, count)
    backward, _ = fuse_pools(POOLS[::-1], cfg, count)
    assert forward == backward[::-1]


@pytest.mark.parametrize("bad", [dict(selector="best"), dict(fusion="x"), dict(length_policy="auto"), dict(correct_choice="longest")])
def test_unknown_names_list_the_supported_ones(bad):
    with pytest.raises(ValueError, match="supported: "):
        settings(**bad)
