"""Parallel, killable, memoised answer verification.

``trajfusion.core.verify.check`` is pure but can be slow (sympy) and, on some
inputs, hang in ways math-verify's SIGALRM timeout cannot interrupt.  Labelling
a trajectory pool calls it hundreds of thousands of times, so this module

* dedupes on the normalised (gold, pred) pair, within and across calls,
* answers provably-exact cases (identical strings, plain numbers) in-process,
* persists verdicts in sqlite so an interrupted run resumes where it stopped,
* runs the rest in worker processes that the parent kills when one item runs
  past a hard deadline, so a single pathological answer costs one UNKNOWN
  instead of a stuck run.
"""

from __future__ import annotations

import logging
import math
import multiprocessing as mp
import os
import signal
import sqlite3
import threading
import time
from collections import deque
from multiprocessing.connection import wait
from pathlib import Path
from typing import Sequence

from trajfusion.core.verify import (
    VERIFIER_VERSION,
    Verdict,
    check,
    fast_verdict,
    normalize_answer,
)

logger = logging.getLogger(__name__)

#: Test hook: when the pool is created with this env var set to "1", a pair
#: whose gold equals HANG_SENTINEL makes the worker block forever with SIGALRM
#: ignored -- a deterministic stand-in for an input math-verify cannot stop.
TEST_HOOKS_ENV = "TRAJFUSION_VERIFY_TEST_HOOKS"
HANG_SENTINEL = "__trajfusion_test_hang__"

_STARTUP_TIMEOUT_S = 120.0
_MAX_STARTUP_FAILURES = 3
_FLUSH_EVERY = 200
_FLUSH_SECONDS = 2.0


def _hang_forever() -> None:
    signal.signal(signal.SIGALRM, signal.SIG_IGN)
    while True:
        time.sleep(3600)


def _exit_with_owner(alive) -> None:
    """Watchdog thread: a worker stuck in a long sympy call would outlive a
    SIGKILLed pool owner (and, under forkserver, keep the server alive too).
    ``alive`` is a pipe whose only write end the owner holds and never writes
    to, so EOF means the owner is gone or dropped this worker."""
    try:
        alive.recv()
    except (EOFError, OSError):
        pass
    os._exit(1)


def _use_two_stage_latex_parsing() -> None:
    """Parse LaTeX with ANTLR's two-stage strategy: fast SLL prediction first,
    full LL only when SLL reports a syntax error.  ANTLR guarantees that SLL
    either yields the same tree as LL or reports an error, and latex2sympy's
    error listener raises on any error, so results (and exceptions) are those
    of plain LL while parsing costs ~15% less.  Called in worker processes
    only, so callers' own math-verify use is untouched.  Best effort: skipped
    if latex2sympy's internals differ from what this expects."""
    try:
        from antlr4.atn.PredictionMode import PredictionMode
        from latex2sympy2_extended.latex2sympy2 import _Latex2Sympy
    except ImportError:
        return
    create = getattr(_Latex2Sympy, "create_parser", None)
    if create is None or getattr(create, "two_stage", False):
        return

    def create_parser(self, latex_str):
        parser = create(self, latex_str)
        parser._interp.predictionMode = PredictionMode.SLL
        sll_math = parser.math

        def math():
            try:
                return sll_math()
            except Exception:  # noqa: BLE001 - real error or needs LL: redo in LL
                return create(self, latex_str).math()  # (timeouts are BaseException)

        parser.math = math
        return parser

    create_parser.two_stage = True
    _Latex2Sympy.create_parser = create_parser


def _worker_main(conn, alive, timeout_s: int, test_hooks: bool) -> None:
    """Worker loop: receive a chunk ``[(idx, gold, pred), ...]`` and stream back
    one ``(idx, verdict_value)`` per item so the parent always knows which item
    is running.  ``None`` or a closed pipe ends the loop."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C
    _use_two_stage_latex_parsing()
    threading.Thread(target=_exit_with_owner, args=(alive,), daemon=True).start()
    conn.send(("ready", os.getpid()))
    while True:
        try:
            chunk = conn.recv()
        except (EOFError, OSError):
            return
        if chunk is None:
            return
        for idx, gold, pred in chunk:
            if test_hooks and gold == HANG_SENTINEL:
                _hang_forever()
            try:
                verdict = check(gold, pred, timeout_s).value
            except BaseException:  # noqa: BLE001 - incl. a stray TimeoutException
                logger.debug("check failed on %r / %r", gold, pred, exc_info=True)
                verdict = Verdict.UNKNOWN.value
            try:
                conn.send((idx, verdict))
            except (BrokenPipeError, OSError):
                return


def _default_context() -> mp.context.BaseContext:
    """forkserver: forks from a clean server process (safe with torch/CUDA in
    the parent) that has math-verify preloaded, so (re)starting a worker after a
    hard timeout costs milliseconds instead of a fresh interpreter + sympy
    import.  Falls back to spawn where forkserver does not exist."""
    if "forkserver" not in mp.get_all_start_methods():
        return mp.get_context("spawn")
    ctx = mp.get_context("forkserver")
    try:
        from multiprocessing import forkserver

        current = list(getattr(forkserver._forkserver, "_preload_modules", []) or [])
    except Exception:  # noqa: BLE001 - private attribute, best effort
        current = []
    if __name__ not in current:
        # Only takes effect if the server has not started yet; harmless otherwise.
        ctx.set_forkserver_preload(current + [__name__])
    return ctx


class _NoBar:
    """Stand-in for a disabled tqdm bar."""

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        pass

    def update(self, n: int = 1) -> None:
        pass


class _Worker:
    __slots__ = ("proc", "conn", "alive", "ready", "pending", "started_at", "born")

    def __init__(self, proc, conn, alive):
        self.proc = proc
        self.conn = conn
        self.alive = alive  # write end of the owner-liveness pipe; never written
        self.ready = False
        self.pending: deque = deque()  # items sent and not yet answered, in order
        self.started_at = 0.0  # when the current (first pending) item started
        self.born = time.monotonic()


class VerifierPool:
    """Verdicts for many (gold, pred) pairs, memoised, cached and hang-proof.

    ``workers=0`` runs ``check`` inline in this process (debugging): there is no
    hard timeout then, only math-verify's own SIGALRM one.  With ``workers>0``
    an item still running after ``timeout_s + grace_s`` seconds is answered
    UNKNOWN and its worker is killed and replaced.  ``grace_s`` defaults to
    ``timeout_s`` because one check may run several math-verify steps (two
    parses, several comparisons), each with its own ``timeout_s``.

    ``stats`` counts pairs: ``requested = memo_hits + fast_path + cache_hits +
    computed`` where memo_hits are pairs answered from this pool's memory
    (including duplicates within a call), fast_path pairs decided by the exact
    string/number rules in-process, cache_hits pairs read from the sqlite cache
    and computed pairs checked by a worker (or inline).  ``hard_timeouts`` and
    ``worker_crashes`` count items whose worker was killed or died; ``unknown``
    counts returned UNKNOWN verdicts.
    """

    def __init__(
        self,
        workers: int = 2,
        timeout_s: float = 5.0,
        cache_path: str | Path | None = None,
        progress: bool = True,
        grace_s: float | None = None,
        chunk_size: int | None = None,
    ):
        if workers < 0:
            raise ValueError("workers must be >= 0")
        self.workers = int(workers)
        self.timeout_s = float(timeout_s)
        self.grace_s = float(timeout_s if grace_s is None else grace_s)
        self.hard_timeout_s = self.timeout_s + self.grace_s
        self.progress = progress
        self.chunk_size = chunk_size
        self._check_timeout = max(1, math.ceil(self.timeout_s))
        self._test_hooks = os.environ.get(TEST_HOOKS_ENV) == "1"
        self.stats = {
            "requested": 0,
            "memo_hits": 0,
            "fast_path": 0,
            "cache_hits": 0,
            "computed": 0,
            "hard_timeouts": 0,
            "worker_crashes": 0,
            "unknown": 0,
        }
        self._memo: dict[tuple[str, str], Verdict] = {}
        self._ctx = None
        self._pool: list[_Worker] = []
        self._startup_failures = 0
        self._closed = False
        self._boot_thread = None

        self._db: sqlite3.Connection | None = None
        self._db_buffer: list[tuple[str, str, str, str]] = []
        self._db_last_flush = time.monotonic()
        if cache_path is not None:
            self._open_db(Path(cache_path))
        if self.workers > 0:
            # Boot in the background: starting the (forkserver) workers blocks
            # ~0.5 s on the sympy/math-verify import, which can overlap with the
            # caller preparing its pairs and with check_many's in-process part.
            self._ctx = _default_context()
            self._boot_error: BaseException | None = None
            self._boot_thread: threading.Thread | None = threading.Thread(
                target=self._boot, name="trajfusion-verifier-boot", daemon=True
            )
            self._boot_thread.start()

    # ---------------------------------------------------------------- sqlite
    def _open_db(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), timeout=60)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS verdicts ("
            " version TEXT NOT NULL, gold TEXT NOT NULL, pred TEXT NOT NULL,"
            " verdict TEXT NOT NULL, PRIMARY KEY (version, gold, pred)"
            ") WITHOUT ROWID"
        )
        self._db.commit()

    def _db_get(self, key: tuple[str, str]) -> Verdict | None:
        row = self._db.execute(
            "SELECT verdict FROM verdicts WHERE version=? AND gold=? AND pred=?",
            (VERIFIER_VERSION, key[0], key[1]),
        ).fetchone()
        return None if row is None else Verdict(row[0])

    def _db_put(self, key: tuple[str, str], verdict: Verdict) -> None:
        if self._db is None:
            return
        self._db_buffer.append((VERIFIER_VERSION, key[0], key[1], verdict.value))
        if (
            len(self._db_buffer) >= _FLUSH_EVERY
            or time.monotonic() - self._db_last_flush >= _FLUSH_SECONDS
        ):
            self._flush()

    def _flush(self) -> None:
        """Commit buffered verdicts (called in batches so a killed run keeps
        what it finished without paying one fsync per verdict)."""
        self._db_last_flush = time.monotonic()
        if self._db is None or not self._db_buffer:
            return
        self._db.executemany(
            "INSERT OR REPLACE INTO verdicts(version, gold, pred, verdict) VALUES (?,?,?,?)",
            self._db_buffer,
        )
        self._db.commit()
        self._db_buffer.clear()

    # --------------------------------------------------------------- workers
    def _boot(self) -> None:
        try:
            for _ in range(self.workers):
                self._pool.append(self._start_worker())
        except BaseException as exc:  # noqa: BLE001 - re-raised by _join_boot
            self._boot_error = exc

    def _join_boot(self) -> None:
        if self._boot_thread is None:
            return
        self._boot_thread.join()
        self._boot_thread = None
        if self._boot_error is not None:
            raise RuntimeError("could not start verifier workers") from self._boot_error

    def _start_worker(self) -> _Worker:
        parent_conn, child_conn = self._ctx.Pipe(duplex=True)
        alive_r, alive_w = self._ctx.Pipe(duplex=False)
        proc = self._ctx.Process(
            target=_worker_main,
            args=(child_conn, alive_r, self._check_timeout, self._test_hooks),
            daemon=True,
            name="trajfusion-verifier",
        )
        proc.start()
        child_conn.close()
        alive_r.close()
        return _Worker(proc, parent_conn, alive_w)

    @staticmethod
    def _kill(w: _Worker) -> None:
        for c in (w.conn, w.alive):
            try:
                c.close()
            except OSError:
                pass
        if w.proc.is_alive():
            w.proc.terminate()
            w.proc.join(0.5)
            if w.proc.is_alive():
                w.proc.kill()
        w.proc.join(5)

    def _replace(self, w: _Worker) -> _Worker:
        self._kill(w)
        new = self._start_worker()
        self._pool[self._pool.index(w)] = new
        return new

    # ------------------------------------------------------------------ API
    def check_many(
        self, pairs: Sequence[tuple[str, str]], desc: str = "verify"
    ) -> list[Verdict]:
        """Verdict for each (gold, pred), in input order."""
        if self._closed:
            raise RuntimeError("VerifierPool is closed")
        self.stats["requested"] += len(pairs)
        keys = [(normalize_answer(g), normalize_answer(p)) for g, p in pairs]

        todo: dict[tuple[str, str], None] = {}  # ordered set of keys to resolve
        for key in keys:
            if key in self._memo or key in todo:
                self.stats["memo_hits"] += 1
            else:
                todo[key] = None

        to_compute: list[tuple[str, str]] = []
        for key in todo:
            fast = fast_verdict(*key)
            if fast is not None:
                self._memo[key] = fast
                self.stats["fast_path"] += 1
                continue
            if self._db is not None:
                cached = self._db_get(key)
                if cached is not None:
                    self._memo[key] = cached
                    self.stats["cache_hits"] += 1
                    continue
            to_compute.append(key)

        # duplicates of keys resolved in this call were counted as memo hits
        # above; that is what they are from here on.
        if to_compute:
            self.stats["computed"] += len(to_compute)
            try:
                if self.workers == 0:
                    self._run_inline(to_compute, desc)
                else:
                    self._join_boot()
                    self._run_parallel(to_compute, desc)
            except BaseException:
                # e.g. Ctrl-C: busy workers would later send stale results.
                for w in list(self._pool):
                    if w.pending:
                        w.pending.clear()
                        self._replace(w)
                raise
            finally:
                self._flush()

        out = [self._memo[k] for k in keys]
        self.stats["unknown"] += sum(v is Verdict.UNKNOWN for v in out)
        return out

    def _record(self, key: tuple[str, str], verdict: Verdict, persist: bool = True) -> None:
        self._memo[key] = verdict
        if persist:
            self._db_put(key, verdict)

    def _bar(self, total: int, desc: str):
        if not self.progress:
            return _NoBar()
        # imported here: tqdm.auto costs ~50 ms, which a forkserver that
        # preloads this module would add to every pool's start-up
        from tqdm.auto import tqdm

        return tqdm(total=total, desc=desc, unit="check", leave=False)

    def _run_inline(self, keys: list[tuple[str, str]], desc: str) -> None:
        with self._bar(len(keys), desc) as bar:
            for key in keys:
                self._record(key, check(key[0], key[1], self._check_timeout))
                bar.update(1)

    def _run_parallel(self, keys: list[tuple[str, str]], desc: str) -> None:
        # Longest predictions first: cost grows with length (latex parsing of
        # long junk answers dominates), and doing the heavy items first leaves
        # cheap ones to even out the workers at the end.
        queue: deque[int] = deque(
            sorted(range(len(keys)), key=lambda i: (-len(keys[i][1]), keys[i]))
        )
        n_workers = max(1, len(self._pool))

        def take_chunk() -> list[int]:
            """Guided self-scheduling: chunks shrink with the queue so no chunk
            holds a large share of the remaining work (single items at the
            end); up to 32 items per message while the queue is long."""
            size = self.chunk_size or max(1, min(32, len(queue) // (32 * n_workers)))
            return [queue.popleft() for _ in range(min(size, len(queue)))]

        def requeue(items) -> None:
            queue.extendleft(reversed(list(items)))

        answered = [False] * len(keys)
        remaining = len(keys)

        with self._bar(len(keys), desc) as bar:

            def finish(w: _Worker, idx: int, verdict: Verdict, persist: bool = True) -> None:
                nonlocal remaining
                head = w.pending.popleft()
                if head != idx or answered[idx]:
                    raise RuntimeError(f"verifier protocol error: got {idx}, expected {head}")
                answered[idx] = True
                remaining -= 1
                self._record(keys[idx], verdict, persist)
                w.started_at = time.monotonic()
                bar.update(1)

            def on_death(w: _Worker) -> None:
                """Worker gone without a hard timeout: its current item is
                UNKNOWN (not persisted), the rest of its chunk is requeued."""
                if not w.ready:
                    self._startup_failures += 1
                    if self._startup_failures >= _MAX_STARTUP_FAILURES:
                        raise RuntimeError("verifier workers keep dying during start-up")
                if w.pending:
                    self.stats["worker_crashes"] += 1
                    logger.warning("verifier worker died on %r", keys[w.pending[0]])
                    finish(w, w.pending[0], Verdict.UNKNOWN, persist=False)
                if w.pending:
                    requeue(w.pending)
                    w.pending.clear()
                self._replace(w)

            def drain(w: _Worker) -> None:
                try:
                    while w.conn.poll():
                        msg = w.conn.recv()
                        if msg[0] == "ready":
                            w.ready = True
                            self._startup_failures = 0
                        else:
                            finish(w, msg[0], Verdict(msg[1]))
                except (EOFError, OSError):
                    on_death(w)

            while remaining:
                now = time.monotonic()
                for w in self._pool:
                    if w.ready and not w.pending and queue:
                        chunk = take_chunk()
                        try:
                            w.conn.send([(i, keys[i][0], keys[i][1]) for i in chunk])
                        except (BrokenPipeError, OSError):
                            requeue(chunk)
                            on_death(w)
                            continue
                        w.pending.extend(chunk)
                        w.started_at = now

                deadlines = [w.started_at + self.hard_timeout_s for w in self._pool if w.pending]
                deadlines += [w.born + _STARTUP_TIMEOUT_S for w in self._pool if not w.ready]
                if self._db_buffer:
                    deadlines.append(self._db_last_flush + _FLUSH_SECONDS)
                wait_s = max(0.0, min(deadlines) - time.monotonic()) if deadlines else None
                by_conn = {w.conn: w for w in self._pool}
                for conn in wait(list(by_conn), timeout=wait_s):
                    drain(by_conn[conn])
                self._db_put_tick()

                now = time.monotonic()
                for w in list(self._pool):
                    if w.pending and now - w.started_at > self.hard_timeout_s:
                        drain(w)  # a result may have landed just now
                        if w not in self._pool or not w.pending:
                            continue
                        if time.monotonic() - w.started_at <= self.hard_timeout_s:
                            continue
                        idx = w.pending[0]
                        logger.warning(
                            "hard timeout (%.1fs) verifying %r; restarting worker",
                            self.hard_timeout_s, keys[idx],
                        )
                        self.stats["hard_timeouts"] += 1
                        finish(w, idx, Verdict.UNKNOWN)
                        if w.pending:
                            requeue(w.pending)
                            w.pending.clear()
                        self._replace(w)
                    elif not w.ready and now - w.born > _STARTUP_TIMEOUT_S:
                        logger.warning("verifier worker did not start in time; restarting")
                        on_death(w)

        if not all(answered):  # pragma: no cover - guarded by the protocol checks
            raise RuntimeError("verifier lost items")

    def _db_put_tick(self) -> None:
        """Time-based flush while workers are busy (results may be sparse)."""
        if time.monotonic() - self._db_last_flush >= _FLUSH_SECONDS:
            self._flush()

    # ------------------------------------------------------------ lifecycle
    def close(self) -> None:
        """Stop workers (politely, then by force) and commit the cache."""
        if self._closed:
            return
        self._closed = True
        try:
            self._join_boot()
        except RuntimeError:
            logger.debug("verifier worker start-up had failed", exc_info=True)
        for w in self._pool:
            try:
                w.conn.send(None)
            except (BrokenPipeError, OSError):
                pass
        deadline = time.monotonic() + 2.0
        for w in self._pool:
            w.proc.join(max(0.0, deadline - time.monotonic()))
            self._kill(w)
        self._pool = []
        if self._db is not None:
            try:
                self._flush()
            finally:
                self._db.close()
                self._db = None

    def __enter__(self) -> "VerifierPool":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self):  # best effort; close() is the contract
        try:
            if not self._closed:
                self.close()
        except Exception:  # noqa: BLE001
            pass


def default_workers() -> int:
    """Sensible default worker count (callers decide)."""
    return max(1, min(2, os.cpu_count() or 1))
