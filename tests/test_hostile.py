"""Hostile input: model-written strings crafted to crash, hang or blow up the grader. Each case says
what it must get and within what time (README "What bad input gets"). Pools are built from the
bundled pool's format (a few of its problems), so the whole data stage sees them as a user would."""

from __future__ import annotations

import gzip
import json
import time
from pathlib import Path

import pytest

from trajfusion.core.verify import Verdict, check_reason, extract_answer, normalize_answer
from trajfusion.data.teachers.replay import trajectory_text
from trajfusion.data.verification import HANG_SENTINEL, TEST_HOOKS_ENV, VerifierPool

ROOT = Path(__file__).resolve().parents[1]
BUNDLED = ROOT / "data/pools/math_l5_open.jsonl.gz"
C, I, U = Verdict.CORRECT, Verdict.INCORRECT, Verdict.UNKNOWN
STRATEGIES = ("boxed", "answer_phrase")

# name -> (stored final answer or None, stored solution, expected verdict, unknown reason, seconds)
CASES = {
    "boxed_5000_digits": ("9" * 5000, "Big.", U, "number_too_long", 1.0),
    "boxed_4301_digits": ("8" * 4301, "Just past int()'s limit.", U, "number_too_long", 1.0),
    "answer_1mb_of_dollars": ("$" * 1_000_000, "Dollars.", U, "too_long", 1.0),
    "solution_800kb_answer_colon": (None, "answer: " * 100_000, I, None, 1.0),
    "deep_nesting": ("{" * 150 + "1" + "}" * 150, "Deep.", U, "too_deep", 1.0),
    "nul_bytes": (None, "Zero\x00bytes\x00 so the answer is \\boxed{4\x002}.", I, None, 1.0),
    "line_of_1mb": (None, "x" * 1_000_000 + " \\boxed{7}", I, None, 1.0),
    "lone_surrogate": (None, "caf\udce9 \ud800 the answer is \\boxed{\ud83d}", I, None, 1.0),
    "mixed_encodings": (None, "rÃ©sultat \u00e9\u0301 \\boxed{3}", I, None, 1.0),
}


def hostile_pool(path: Path, n_problems: int = 4) -> Path:
    """A copy of the first problems of the bundled pool with one hostile sample per case appended
    to the first problem (stored as the pool format has it: `solution` + `pred`)."""
    rows = []
    with gzip.open(BUNDLED, "rt", encoding="utf-8") as handle:
        for line in handle:
            rows.append(json.loads(line))
            if len(rows) == n_problems:
                break
    for name, (pred, solution, _, _, _) in CASES.items():
        rows[0]["samples"].append({"model": f"hostile/{name}", "solution": solution, "pred": pred, "correct": False})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")  # ASCII escapes keep surrogates
    return path


@pytest.mark.parametrize("name", sorted(CASES))
def test_case_is_judged_in_bounded_time(name):
    pred, solution, want, reason, seconds = CASES[name]
    started = time.perf_counter()
    answer = extract_answer(trajectory_text(solution, pred), STRATEGIES)
    verdict, why = check_reason("5", answer, timeout_s=1) if answer else (I, None)
    assert (verdict, why) == (want, reason)
    assert time.perf_counter() - started < seconds


def test_normalisation_and_extraction_are_linear():
    """Doubling a hostile string must not quadruple the time (the old normaliser was quadratic in
    runs of `$`, the phrase extractor in repeated "answer:" on one line)."""
    def cost(fn, n):
        started = time.perf_counter()
        fn(n)
        return time.perf_counter() - started

    cases = [
        lambda n: normalize_answer("$" * n),
        lambda n: normalize_answer("\\(" * n + "5" + "\\)" * n),
        lambda n: extract_answer("answer: " * n, ("answer_phrase",)),
    ]
    for fn in cases:
        small, big = cost(fn, 4000), cost(fn, 16000)
        assert big < 0.5 and big < 16 * small + 0.05


def test_huge_exponent_and_hanging_reference_are_bounded(monkeypatch):
    """A comparison sympy cannot finish (10^{10^{10}}) is retried once and then unknown; a reference
    that hangs on its own costs one timeout and a probe, not one kill per distinct prediction."""
    monkeypatch.setenv(TEST_HOOKS_ENV, "1")
    pairs = [("5", "10^{10^{10}}")] + [(HANG_SENTINEL, str(k)) for k in range(8)] + [("2", "\\sqrt{4}")]
    with VerifierPool(workers=2, timeout_s=1, grace_s=0.5, progress=False) as pool:
        pool.check_many([("3", "x")])  # start-up done
        started = time.perf_counter()
        got = pool.check_many(pairs)
        elapsed = time.perf_counter() - started
    assert got == [U] * 9 + [C]
    reasons = pool.stats["unknown_reasons"]
    assert reasons["reference_timed_out"] == 8 and reasons.get("timeout", 0) + reasons.get("hard_timeout", 0) == 1
    assert pool.stats["reference_timeouts"] == 1
    assert elapsed < 12  # 1.5 s + a 3 s probe for the reference; 1 s + a 2 s retry for the exponent


def test_hostile_pool_builds(tmp_path):
    """The whole data stage on a hostile pool: exit clean, odd samples unknown and reported."""
    from hydra import compose, initialize_config_dir

    from trajfusion.config import register_configs, to_build_config
    from trajfusion.data.dataset import build_dataset

    pool = hostile_pool(tmp_path / "hostile.jsonl")
    register_configs()
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = to_build_config(compose("build_data", [
            f"paths.data_root={tmp_path / 'root'}", "data=custom", f"data.path={pool}", "teacher=replay_math_l5",
            "data.decontaminate=[]", "progress=false", "plots=false", "verifier.workers=1",
        ]))
    started = time.perf_counter()
    out = build_dataset(cfg)
    assert time.perf_counter() - started < 30
    manifest = json.loads((out / "manifest.json").read_text())
    reasons = manifest["verification"]["unknown_reasons"]
    assert reasons == {"number_too_long": 2, "too_deep": 1, "too_long": 1}
    assert json.loads((out / "stats.json").read_text())["unknown_reasons"] == reasons
    rows = [json.loads(line) for line in (out / "data.jsonl").read_text().splitlines()]
    assert all("hostile/" not in src["model"] for row in rows for src in row["sources"])
