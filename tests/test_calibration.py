"""α calibration: the breakpoint search is exact (checked against direct evaluation), unreachable
targets warn with the reachable maximum, the cache is reused, and an explicit α wins."""

import bisect
import itertools
import json
import logging
import math
import random
import shutil

import pytest

from tests.helpers import make_pool
from trajfusion.core.build import FusionSettings, fuse_problem
from trajfusion.core.calibrate import (
    ProblemErrors,
    calibrate,
    curve,
    evaluate_alpha,
    fused_error_table,
    paper_target,
    threshold,
)
from trajfusion.core.length import adaptive_k
from trajfusion.core.stats import ProblemStats
from trajfusion.data.budget import token_counter
from trajfusion.io import read_json

PROMPTS = {"reflections": ("Wait, that is wrong.",), "feedback": ("Checked.",)}


def random_problems(seed: int, n: int, k_max: int) -> list[ProblemErrors]:
    """Problems with awkward r·u (K up to 23, unknowns) and fused counts capped below k, as a selector
    or a token budget would cap them."""
    rng = random.Random(seed)
    problems = []
    for _ in range(n):
        K = rng.randint(1, 23)
        n_unknown = rng.randint(0, 2)
        n_wrong = rng.randint(0, K)
        u = rng.randint(1, n_wrong) if n_wrong else 0
        cap = rng.randint(0, k_max)
        stats = ProblemStats(K + n_unknown, K - n_wrong, n_wrong, n_unknown, u, 0.0, (1,) * u)
        problems.append(ProblemErrors(stats, tuple(min(k, cap) for k in range(k_max + 1))))
    return problems


@pytest.mark.parametrize("seed,k_max", [(0, 1), (1, 2), (2, 4), (3, 6)])
def test_breakpoints_are_exact_against_direct_evaluation(seed, k_max):
    problems = random_problems(seed, 300, k_max)
    points = curve(problems, k_max)
    alphas = [p.alpha for p in points]
    assert alphas == sorted(alphas) and len(set(alphas)) == len(alphas)
    for before, point in itertools.pairwise(points):
        # at the breakpoint the direct evaluation jumps to the curve's value; one float below, it has not
        assert evaluate_alpha(problems, k_max, point.alpha) == point
        below = evaluate_alpha(problems, k_max, math.nextafter(point.alpha, 0.0))
        assert (below.mean_errors, below.p_at_least) == (before.mean_errors, before.p_at_least)
    # no step is missed: every α of a dense grid gives a value of the curve, the one of the last breakpoint below it
    for alpha in [i / 997 for i in range(1, 4000)]:
        direct = evaluate_alpha(problems, k_max, alpha)
        last = points[bisect.bisect_right(alphas, alpha) - 1]
        assert (direct.mean_errors, direct.p_at_least) == (last.mean_errors, last.p_at_least)


def test_threshold_is_the_smallest_float_alpha():
    for n_wrong, n_judged, u in [(7, 23, 5), (1, 3, 1), (11, 13, 7), (22, 23, 19), (3, 10, 3)]:
        stats = ProblemStats(n_judged, n_judged - n_wrong, n_wrong, 0, u, 0.0, (1,) * u)
        for j in range(1, 7):
            a = threshold(stats, j)
            assert adaptive_k(stats, j, a) == j and adaptive_k(stats, j, math.nextafter(a, 0.0)) == j - 1
    assert threshold(ProblemStats(4, 4, 0, 0, 0, 0.0, ()), 1) is None  # never errs: k stays 0


@pytest.mark.parametrize("target", [0.05, 0.62, 1.02, 1.13, 1.49, 1.74, 2.5])
def test_pick_is_the_closest_reachable_mean(target):
    problems = random_problems(7, 200, 4)
    result = calibrate(problems, 4, target)
    means = {p.mean_errors for p in curve(problems, 4)}
    assert abs(result.mean_errors - target) == min(abs(m - target) for m in means)
    again = evaluate_alpha(problems, 4, result.alpha)  # the readable α sits on the picked step
    assert (again.mean_errors, again.p_at_least) == (result.mean_errors, result.p_at_least)
    assert len(repr(result.alpha)) <= 19


def test_paper_targets_and_interpolation():
    assert [paper_target(k) for k in (1, 2, 4, 6)] == [0.62, 1.02, 1.49, 1.74]
    assert paper_target(3) == 1.255 and paper_target(5) == 1.615
    for k_max in (0, 7):
        with pytest.raises(ValueError, match="length_policy.target_errors"):
            paper_target(k_max)


def test_fused_table_is_what_the_build_writes():
    """table[k] is the number of errors fuse_problem really writes for k (selector cap, token budget)."""
    pools = [
        make_pool("a", [("c", "42", None), ("w", "1", 0), ("w", "1", 0), ("w", "2", 1), ("w", "3", 2)]),
        make_pool("b", [("c", "42", None), ("w", "5", 0), ("w", "5", 0), ("w", "5", 0)]),
        make_pool("c", [("w", "5", 0), ("w", "6", 1)]),  # no correct: no row
    ]
    count = token_counter(None)
    for selector in ("diverse", "low_div", "random"):
        settings = FusionSettings(selector=selector, length_policy="none", alpha=None, k_max=4, max_tokens=90, **PROMPTS)
        table = fused_error_table(pools, settings, count)
        assert len(table) == 2
        for pool, entry in zip(pools, table):
            for alpha in (0.5, 1.0, 2.0, 3.0, 9.0):
                row, _ = fuse_problem(pool, FusionSettings(selector=selector, alpha=alpha, k_max=4, max_tokens=90, **PROMPTS), count)
                assert entry.fused[adaptive_k(entry.stats, 4, alpha)] == row["n_errors"]


# ----------------------------------------------------------------------------- the data stage


def write_pool(path, problems: int = 8, samples: int = 4, wrong: int = 1):
    """A stored pool in the bundled pool's format, with `wrong` distinct wrong answers per problem."""
    rows = []
    for i in range(problems):
        answer = str(10 + i)
        stored = [{"model": f"m{j}", "solution": f"Work {j} on problem {i}.", "pred": str(100 + j % wrong) if j < wrong else answer,
                   "correct": j >= wrong} for j in range(samples)]
        rows.append({"id": f"p{i}", "problem": f"Problem {i}: compute {answer}.", "answer": answer, "samples": stored})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture
def stored_pool(tmp_path):
    return write_pool(tmp_path / "pool.jsonl", problems=8, samples=4, wrong=2)


def build(compose, pool, *overrides):
    from trajfusion.data.dataset import build_dataset

    cfg = compose("data=custom", f"data.path={pool}", "data.decontaminate=[]", "teacher=replay", "progress=false",
                  "plots=false", "verifier.workers=0", *overrides)
    return build_dataset(cfg)


def test_unreachable_target_warns_with_the_reachable_maximum(compose, stored_pool, caplog):
    with caplog.at_level(logging.WARNING, logger="trajfusion.data.calibration"):
        out = build(compose, stored_pool, "length_policy.k_max=4", "length_policy.target_errors=3.0")
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "cannot reach mean #Err 3" in warnings[0] and "at most 2.0000" in warnings[0]
    manifest = read_json(out / "manifest.json")
    assert manifest["alpha"]["reachable_max"] == 2.0 and manifest["alpha"]["mean_errors"] == 2.0  # the closest it allows
    assert read_json(out / "stats.json")["mean"]["n_errors"] == 2.0


def test_calibration_is_cached_and_reused(compose, stored_pool, monkeypatch):
    first = build(compose, stored_pool)
    record = read_json(first / "manifest.json")["alpha"]
    cache = first.parent.parent / "pools"
    files = sorted(cache.rglob("calibration-*.json"))
    assert [f.name for f in files] == [record["file"]]
    assert read_json(files[0])["alpha"] == record["alpha"] and read_json(files[0])["version"] == 1

    from trajfusion.data import calibration

    def no_search(*args, **kwargs):
        raise AssertionError("the cached calibration must be reused")

    monkeypatch.setattr(calibration, "fused_error_table", no_search)
    shutil.rmtree(first)  # the dataset is gone, its calibration is not: rebuilt without a new search
    again = build(compose, stored_pool)
    assert again == first and read_json(again / "manifest.json")["alpha"] == record
    # a new target is a new calibration and a new data_id
    monkeypatch.undo()
    other = build(compose, stored_pool, "length_policy.target_errors=0.5")
    assert other != first and len(list(cache.rglob("calibration-*.json"))) == 2


def test_an_explicit_alpha_wins_and_is_recorded_as_given(compose, stored_pool):
    out = build(compose, stored_pool, "length_policy.alpha=2.5", "length_policy.target_errors=0.1")
    manifest = read_json(out / "manifest.json")
    assert manifest["alpha"] == {"setting": 2.5, "alpha": 2.5, "source": "given"}
    assert {json.loads(line)["alpha"] for line in (out / "data.jsonl").read_text().splitlines()} == {2.5}
    assert not list(out.parent.parent.rglob("calibration-*.json"))


def test_rft_and_fixed_never_calibrate(compose, stored_pool):
    for overrides in (["fusion=rft"], ["length_policy=fixed"]):
        out = build(compose, stored_pool, *overrides)
        assert read_json(out / "manifest.json")["alpha"]["alpha"] is None
    assert not list(out.parent.parent.rglob("calibration-*.json"))


def test_the_training_run_records_the_datasets_alpha(compose, stored_pool):
    from trajfusion.training.tracking import dataset_config

    out = build(compose, stored_pool)
    config = dataset_config(out)  # what train.py adds to the W&B run's config
    manifest = read_json(out / "manifest.json")
    assert config["alpha"] == manifest["alpha"]["alpha"] is not None and config["alpha_calibration"]["source"] == "calibrated"
    assert config["token_counter"] == {"configured": None, "used": "bytes/3"}
