"""VerifierPool: same verdicts as inline check(), ordering, memo and sqlite
cache, and survival of a worker that hangs beyond math-verify's timeout.

Hangs are made deterministic with the pool's documented test hook: with
TRAJFUSION_VERIFY_TEST_HOOKS=1 in the environment when the pool is created, a
pair whose gold is HANG_SENTINEL blocks its worker forever with SIGALRM
ignored (what a sympy call stuck in C code looks like to math-verify).
"""

import os
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tests.core.test_verify import CHECK_TABLE
from trajfusion.core.verify import Verdict, check
from trajfusion.data.verification import HANG_PRED_SENTINEL, HANG_SENTINEL, TEST_HOOKS_ENV, VerifierPool

REPO = Path(__file__).resolve().parents[1]
C, I, U = Verdict.CORRECT, Verdict.INCORRECT, Verdict.UNKNOWN
PAIRS = [(g, p) for g, p, _ in CHECK_TABLE]


def test_pool_matches_inline_check_and_preserves_order():
    expected = [check(g, p) for g, p in PAIRS]
    # duplicates (also equal only after normalisation) and reversed order
    pairs = PAIRS + PAIRS[::-1] + [(r"\dfrac{1}{2}", "$0.5$"), (r"\frac{1}{2}", "0.5")]
    want = expected + expected[::-1] + [C, C]
    with VerifierPool(workers=2, progress=False) as pool:
        got = pool.check_many(pairs)
        assert got == want
        st = pool.stats
        assert st["requested"] == len(pairs)
        assert st["requested"] == st["memo_hits"] + st["fast_path"] + st["cache_hits"] + st["computed"]
        assert st["memo_hits"] >= len(PAIRS) + 2
        assert st["hard_timeouts"] == 0 and st["worker_crashes"] == 0
        # a second call is served from memory
        computed = st["computed"]
        assert pool.check_many(PAIRS[:5]) == expected[:5]
        assert pool.stats["computed"] == computed


def test_inline_mode_and_empty_input():
    with VerifierPool(workers=0, progress=False) as pool:
        assert pool.check_many([]) == []
        assert pool.check_many(PAIRS[:12]) == [check(g, p) for g, p in PAIRS[:12]]


def test_forget_drops_the_memo_but_keeps_load_dependent_unknowns(tmp_path):
    """Chunked verification drops the memo per chunk: later chunks read the sqlite cache instead; an
    UNKNOWN from a timeout is never cached, so it is kept (checking it again could decide it otherwise)."""
    with VerifierPool(workers=0, cache_path=tmp_path / "v.sqlite", progress=False) as pool:
        want = pool.check_many(PAIRS[:12])
        pool._record(("7", "x+y"), U, "timeout")
        pool.forget()
        assert pool._memo == {("7", "x+y"): U} and pool.reason_of("7", "x+y") == "timeout"
        computed = pool.stats["computed"]
        assert pool.check_many(PAIRS[:12]) == want
        assert pool.stats["computed"] == computed  # fast path or the cache, never checked again


def test_sqlite_cache_resume(tmp_path):
    db = tmp_path / "verdicts.sqlite"
    with VerifierPool(workers=2, cache_path=db, progress=False) as pool:
        first = pool.check_many(PAIRS)
        n = pool.stats["computed"]
    assert n > 0
    with VerifierPool(workers=2, cache_path=db, progress=False) as pool:
        assert pool.check_many(PAIRS) == first
        assert pool.stats["computed"] == 0
        assert pool.stats["cache_hits"] == n
    with sqlite3.connect(db) as con:
        assert con.execute("SELECT COUNT(*) FROM verdicts").fetchone()[0] == n


def test_hang_is_killed_and_pool_keeps_working(monkeypatch, tmp_path):
    monkeypatch.setenv(TEST_HOOKS_ENV, "1")
    db = tmp_path / "v.sqlite"
    # one worker and one big chunk: items queued behind the hang in the same
    # chunk must be handed to the fresh worker, none lost or duplicated.
    pairs = [("1", "2/2"), ("2", "x=2"), (HANG_SENTINEL, "1"), ("9", "\\sqrt{81}"), ("4", "x+1")]
    with VerifierPool(workers=1, timeout_s=1, grace_s=0.5, cache_path=db,
                      progress=False, chunk_size=100) as pool:
        assert pool.check_many([("6", "x")]) == [I]  # start-up done: time the hang alone
        t0 = time.monotonic()
        got = pool.check_many(pairs)
        elapsed = time.monotonic() - t0
        assert got == [C, C, U, C, I]
        # the item (1.5 s), then the reference alone against "0" with twice the limit (3 s)
        assert elapsed < 1.5 + 3.0 + 3.0  # + slack for a busy machine
        assert pool.stats["hard_timeouts"] == 2 and pool.stats["reference_timeouts"] == 1
        assert pool.reason_of(HANG_SENTINEL, "1") == "reference_timed_out"
        # the replacement worker serves further calls; the hanging reference answers at once
        t0 = time.monotonic()
        assert pool.check_many([("3", "\\frac{6}{2}"), ("3", "y"), (HANG_SENTINEL, "7")]) == [C, I, U]
        assert time.monotonic() - t0 < 1.5
        assert pool.stats["unknown_reasons"] == {"reference_timed_out": 2}
    # a timeout depends on the machine's load: never cached
    with sqlite3.connect(db) as con:
        assert con.execute("SELECT COUNT(*) FROM verdicts WHERE gold=?", (HANG_SENTINEL,)).fetchone()[0] == 0
        assert con.execute("SELECT COUNT(*) FROM verdicts").fetchone()[0] == 5  # the pairs math-verify decided


def test_two_hangs_with_two_workers(monkeypatch):
    monkeypatch.setenv(TEST_HOOKS_ENV, "1")
    pairs = [(HANG_SENTINEL, "1"), (HANG_SENTINEL, "2")] + PAIRS[:20]
    with VerifierPool(workers=2, timeout_s=1, grace_s=0.3, progress=False, chunk_size=1) as pool:
        got = pool.check_many(pairs)
    assert got[:2] == [U, U]
    assert got[2:] == [check(g, p) for g, p in PAIRS[:20]]
    # both items and one probe of their reference (more only if the machine is very busy)
    assert pool.stats["hard_timeouts"] >= 3 and pool.stats["reference_timeouts"] == 1
    assert pool.stats["unknown_reasons"]["reference_timed_out"] == 2


def test_slow_prediction_is_retried_and_not_blamed_on_the_reference(monkeypatch):
    """A prediction that hangs costs its own retries; the reference, probed alone, is cleared."""
    monkeypatch.setenv(TEST_HOOKS_ENV, "1")
    pairs = [("5", HANG_PRED_SENTINEL), ("5", "x+1"), ("5", "\\sqrt{25}")]
    with VerifierPool(workers=1, timeout_s=1, grace_s=0.3, progress=False, chunk_size=1) as pool:
        assert pool.check_many(pairs) == [U, I, C]
        assert pool.reason_of("5", HANG_PRED_SENTINEL) == "hard_timeout"
        assert pool.stats["retried"] == 1 and pool.stats["reference_timeouts"] == 0
        assert pool.stats["unknown_reasons"] == {"hard_timeout": 1}


def test_killed_run_keeps_committed_verdicts(tmp_path):
    """A run SIGKILLed while stuck keeps what it finished (time-based commits)."""
    db = tmp_path / "v.sqlite"
    done = [(str(k), str(k + 1) + "/1") for k in range(10)] + [("7", "x"), ("8", "\\sqrt{64}")]
    script = textwrap.dedent(
        f"""
        from trajfusion.data.verification import VerifierPool, HANG_SENTINEL
        if __name__ == "__main__":
            pool = VerifierPool(workers=1, timeout_s=60, cache_path={str(db)!r},
                                progress=False, chunk_size=1)
            pool.check_many({done!r} + [(HANG_SENTINEL, "1")])
        """
    )
    env = dict(os.environ, **{TEST_HOOKS_ENV: "1"})
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.Popen([sys.executable, "-c", script], env=env, cwd=str(tmp_path))
    try:
        deadline = time.monotonic() + 30
        rows = 0
        while time.monotonic() < deadline and rows < 2:
            time.sleep(0.25)
            if db.exists():
                try:
                    with sqlite3.connect(db) as con:
                        rows = con.execute("SELECT COUNT(*) FROM verdicts").fetchone()[0]
                except sqlite3.OperationalError:
                    rows = 0
        assert proc.poll() is None, "run should still be stuck on the hanging item"
    finally:
        proc.kill()
        proc.wait()
    # two pairs need math-verify ("x" and "\sqrt{64}"); the rest are exact fast paths
    assert rows == 2
    with VerifierPool(workers=1, cache_path=db, progress=False) as pool:
        assert pool.check_many(done) == [I] * 10 + [I, C]
        assert pool.stats["computed"] == 0 and pool.stats["cache_hits"] == 2


def test_closed_pool_refuses_work():
    pool = VerifierPool(workers=1, progress=False)
    pool.close()
    pool.close()  # idempotent
    with pytest.raises(RuntimeError):
        pool.check_many([("1", "1")])


def test_two_stage_latex_parsing_gives_plain_ll_results(monkeypatch):
    """Workers parse with SLL first and redo in LL on a syntax error; trees
    (and failures) must be exactly those of latex2sympy's own LL parse."""
    import sympy
    from latex2sympy2_extended import latex2sympy2 as l2s

    from trajfusion.data.verification import _use_two_stage_latex_parsing

    corpus = sorted({s for g, p, _ in CHECK_TABLE for s in (g, p) if s}) + [
        "the sum of the integers from -18 to -9, excluding -8 and 6",
        "1/[(x + x^2 + 1/4)(x^2 - x(x^2 + 1/4) + (x^2 + 1/4)^2)]",
        r"N/A (The problem statement contains an error)",
        r"f(x) = \frac{x}{x+1}, \quad x \ne -1",
        r"\{1, 2\} \cup [3, 4)",
        r"a_{n+1} = 2a_n + 1",
        r"\frac{1}{",  # syntax errors must stay errors
        "((x)",
        "x +* 2",
    ]

    def parse_all():
        out = []
        for s in corpus:
            try:
                out.append(sympy.srepr(l2s.latex2sympy(s)))
            except Exception as exc:  # noqa: BLE001
                out.append(f"error: {type(exc).__name__}")
        return out

    ll = parse_all()
    assert any(r.startswith("error") for r in ll)
    monkeypatch.setattr(l2s._Latex2Sympy, "create_parser", l2s._Latex2Sympy.create_parser)
    _use_two_stage_latex_parsing()
    assert getattr(l2s._Latex2Sympy.create_parser, "two_stage", False)
    assert parse_all() == ll


def test_worker_memory_cap():
    """Workers run under RLIMIT_AS: an allocation past the cap is a MemoryError (-> unknown), not a
    machine out of memory. Checked in a fresh process, as a worker would set it."""
    script = textwrap.dedent(
        """
        import resource
        from trajfusion.data.verification import WORKER_MEMORY_BYTES, _cap_memory
        _cap_memory()
        assert resource.getrlimit(resource.RLIMIT_AS)[0] == WORKER_MEMORY_BYTES
        try:
            bytearray(WORKER_MEMORY_BYTES + (1 << 30))
        except MemoryError:
            print("capped")
        """
    )
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.pop("TRAJFUSION_VERIFY_WORKER_MEMORY", None)
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "capped"
