"""Parallel, killable, memoised answer verification.

``trajfusion.core.verify.check`` is pure but can be slow (sympy) and, on some
inputs, hang in ways math-verify's SIGALRM timeout cannot interrupt.  Labelling
a trajectory pool calls it hundreds of thousands of times, so this module

* dedupes on the normalised (gold, pred) pair, within and across calls,
* answers provably-exact cases (identical strings, plain numbers) in-process,
* persists verdicts in sqlite so an interrupted run resumes where it stopped,
* runs the rest in worker processes that the parent kills when one item runs
  past a hard deadline, so a single pathological answer costs one UNKNOWN
  instead of a stuck run,
* retries a timed-out item once with a fresh worker and twice the limit, and
  stops checking a reference that hangs on its own (``reference_timed_out``),
* caches only verdicts that depend on the strings alone (never a timeout).

Every UNKNOWN carries a reason (``trajfusion.core.verify``'s
``STABLE_UNKNOWN_REASONS`` / ``LOAD_UNKNOWN_REASONS``), counted in
``stats["unknown_reasons"]``.
"""

from __future__ import annotations

import logging
import math
import multiprocessing as mp
import os
import resource
import signal
import threading
import time
from collections import Counter, deque
from multiprocessing.connection import wait
from pathlib import Path
from typing import Sequence

from trajfusion.core.verify import (
    STABLE_UNKNOWN_REASONS,
    VERIFIER_VERSION,
    Verdict,
    check_reason,
    extract_answer,
    fast_decision,
    normalize_answer,
)
from trajfusion.data.verify_cache import VerdictCache

logger = logging.getLogger(__name__)

#: Test hook: when the pool is created with this env var set to "1", a pair
#: whose gold equals HANG_SENTINEL makes the worker block forever with SIGALRM
#: ignored -- a deterministic stand-in for an input math-verify cannot stop.
TEST_HOOKS_ENV = "TRAJFUSION_VERIFY_TEST_HOOKS"
HANG_SENTINEL = "__trajfusion_test_hang__"
#: Same, for a pair whose *prediction* is this string (a hanging prediction).
HANG_PRED_SENTINEL = "__trajfusion_test_hang_pred__"

_STARTUP_TIMEOUT_S = 120.0
_MAX_STARTUP_FAILURES = 3
_FLUSH_EVERY = 200
_FLUSH_SECONDS = 2.0
#: Address-space cap of a worker: a check that would need more (sympy
#: expanding 10^(10^10), say) fails with MemoryError -> UNKNOWN instead of
#: taking the machine's memory.  Env override in bytes; 0 disables it.
WORKER_MEMORY_ENV = "TRAJFUSION_VERIFY_WORKER_MEMORY"
WORKER_MEMORY_BYTES = 4 << 30
#: The trivial prediction a reference is checked against after a hard timeout,
#: to tell a hanging reference from a hanging prediction.
_PROBE_PRED = "0"


def _cap_memory() -> None:
    limit = int(os.environ.get(WORKER_MEMORY_ENV, WORKER_MEMORY_BYTES))
    if limit <= 0:
        return
    try:
        soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        cap = limit if hard == resource.RLIM_INFINITY else min(limit, hard)  # RLIM_INFINITY is -1
        if soft == resource.RLIM_INFINITY or soft > cap:
            resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
    except (ValueError, OSError):  # pragma: no cover - platform without RLIMIT_AS
        logger.debug("could not cap verifier worker memory", exc_info=True)


def _encode(verdict: Verdict, reason: str | None) -> str:
    return verdict.value if reason is None else f"{verdict.value}:{reason}"


def _decode(stored: str) -> tuple[Verdict, str | None]:
    value, _, reason = stored.partition(":")
    return Verdict(value), reason or None


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
    """Worker loop: receive a chunk ``[(idx, gold, pred, timeout_s), ...]`` and
    stream back one ``(idx, verdict_value, reason)`` per item so the parent
    always knows which item is running.  ``None`` or a closed pipe ends the loop."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C
    _cap_memory()
    _use_two_stage_latex_parsing()
    import trajfusion.data.verify_warmup  # noqa: F401 - free when the forkserver preloaded it
    threading.Thread(target=_exit_with_owner, args=(alive,), daemon=True).start()
    conn.send(("ready", os.getpid()))
    while True:
        try:
            chunk = conn.recv()
        except (EOFError, OSError):
            return
        if chunk is None:
            return
        for idx, gold, pred, item_timeout in chunk:
            if test_hooks and (gold == HANG_SENTINEL or pred == HANG_PRED_SENTINEL):
                _hang_forever()
            try:
                verdict, reason = check_reason(gold, pred, item_timeout or timeout_s)
            except BaseException:  # noqa: BLE001 - incl. a stray TimeoutException
                logger.debug("check failed on %r / %r", gold, pred, exc_info=True)
                verdict, reason = Verdict.UNKNOWN, "error"
            try:
                conn.send((idx, verdict.value, reason))
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
    wanted = [m for m in (__name__, "trajfusion.data.verify_warmup") if m not in current]
    if wanted:
        # Only takes effect if the server has not started yet; harmless otherwise.
        ctx.set_forkserver_preload(current + wanted)
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
    an item still running after ``timeout_s + grace_s`` seconds is killed with
    its worker (which is replaced).  ``grace_s`` defaults to ``timeout_s``
    because one check may run several math-verify steps (two parses, several
    comparisons), each with its own ``timeout_s``.

    A timed-out item (soft or hard) is retried once with twice the limits
    before it is answered UNKNOWN.  After a hard timeout the reference is
    first checked alone, against the trivial prediction "0": if that times out
    too, the reference is what hangs, and every remaining check of it answers
    UNKNOWN at once (``reference_timed_out``) instead of one kill per distinct
    prediction.  Timeout, crash and error UNKNOWNs are never written to the
    sqlite cache: they depend on the machine's load, not on the strings.

    ``stats`` counts pairs: ``requested = memo_hits + fast_path + cache_hits +
    computed`` where memo_hits are pairs answered from this pool's memory
    (including duplicates within a call), fast_path pairs decided by the exact
    string/number rules and size caps in-process, cache_hits pairs read from
    the sqlite cache and computed pairs checked by a worker (or inline).
    ``hard_timeouts`` and ``worker_crashes`` count killed or dead workers'
    items (retries and probes included), ``retried`` the timed-out items tried
    again (``retry_decided`` of them then got a verdict), ``reference_timeouts``
    the references given up on; ``unknown`` counts returned UNKNOWN verdicts
    and ``unknown_reasons`` the same by reason.
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
            "retried": 0,
            "retry_decided": 0,
            "reference_timeouts": 0,
            "unknown": 0,
            "unknown_reasons": {},
        }
        self._memo: dict[tuple[str, str], Verdict] = {}
        self._reasons: dict[tuple[str, str], str] = {}  # why a memoised verdict is UNKNOWN
        self._timed_out_golds: set[str] = set()  # references that hang on their own
        self._ctx = None
        self._pool: list[_Worker] = []
        self._startup_failures = 0
        self._closed = False
        self._boot_thread = None

        self._db: VerdictCache | None = None
        self._db_buffer: list[tuple[tuple[str, str], str]] = []
        self._db_last_flush = time.monotonic()
        if cache_path is not None:
            self._db = VerdictCache(cache_path)
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
    def _db_put(self, key: tuple[str, str], verdict: Verdict, reason: str | None) -> None:
        if self._db is None:
            return
        self._db_buffer.append((key, _encode(verdict, reason)))
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
        self._db.put_many(VERIFIER_VERSION, self._db_buffer)
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
        """Verdict for each (gold, pred), in input order; ``reason_of`` says why
        an UNKNOWN one is UNKNOWN."""
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

        maybe_cached: list[tuple[str, str]] = []
        for key in todo:
            fast = fast_decision(*key)
            if fast is not None:
                self._record(key, *fast, persist=False)
                self.stats["fast_path"] += 1
            else:
                maybe_cached.append(key)
        cached = self._db.get_many(VERIFIER_VERSION, maybe_cached) if self._db is not None else {}
        to_compute: list[tuple[str, str]] = []
        for key in maybe_cached:
            if key in cached:
                self._record(key, *_decode(cached[key]), persist=False)
                self.stats["cache_hits"] += 1
            else:
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
        reasons = Counter(self._reasons.get(k, "error") for k, v in zip(keys, out) if v is Verdict.UNKNOWN)
        self.stats["unknown"] += sum(reasons.values())
        totals = Counter(self.stats["unknown_reasons"]) + reasons
        self.stats["unknown_reasons"] = dict(sorted(totals.items()))
        return out

    def forget(self) -> None:
        """Drop the in-memory memo (one chunk's pairs), so a pool verified chunk by chunk keeps memory
        bounded; the sqlite cache still answers those pairs in later chunks. UNKNOWNs of a timeout or a
        crash are kept: they are never cached, each cost at least one timeout (so they are few), and
        checking them again could give a later chunk another verdict than one pass over the pool would."""
        kept = {k: r for k, r in self._reasons.items() if r not in STABLE_UNKNOWN_REASONS}
        self._memo = dict.fromkeys(kept, Verdict.UNKNOWN)
        self._reasons = kept

    def reason_of(self, gold: str, pred: str) -> str | None:
        """Why the pair's (already computed) verdict is UNKNOWN; None otherwise."""
        key = (normalize_answer(gold), normalize_answer(pred))
        return self._reasons.get(key) if self._memo.get(key) is Verdict.UNKNOWN else None

    def _record(self, key: tuple[str, str], verdict: Verdict, reason: str | None = None, persist: bool = True) -> None:
        self._memo[key] = verdict
        if verdict is Verdict.UNKNOWN:
            self._reasons[key] = reason or "error"
        else:
            self._reasons.pop(key, None)
        # only verdicts that depend on the strings alone outlive this run
        if persist and (verdict is not Verdict.UNKNOWN or reason in STABLE_UNKNOWN_REASONS):
            self._db_put(key, verdict, reason)

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
                verdict, reason = check_reason(key[0], key[1], self._check_timeout)
                if reason == "timeout":
                    self.stats["retried"] += 1
                    verdict, reason = check_reason(key[0], key[1], 2 * self._check_timeout)
                    self.stats["retry_decided"] += verdict is not Verdict.UNKNOWN
                self._record(key, verdict, reason)
                bar.update(1)

    def _run_parallel(self, keys: list[tuple[str, str]], desc: str) -> None:
        # Longest predictions first: cost grows with length (latex parsing of
        # long junk answers dominates), and doing the heavy items first leaves
        # cheap ones to even out the workers at the end.
        order = sorted(range(len(keys)), key=lambda i: (-len(keys[i][1]), keys[i]))
        n_real = len(keys)
        keys = list(keys)  # probes are appended after the real items
        queue: deque[int] = deque(order)
        n_workers = max(1, len(self._pool))
        retry: set[int] = set()  # items on their second, longer try
        probe_of: dict[int, str] = {}  # probe item -> the reference it probes
        probing: dict[str, list[int]] = {}  # reference -> items waiting for its probe
        cleared: set[str] = set()  # references whose probe finished in time
        bad = self._timed_out_golds

        def limit(idx: int) -> float:
            return self.hard_timeout_s * (2 if idx in retry or idx in probe_of else 1)

        def soft_limit(idx: int) -> int:
            return self._check_timeout * (2 if idx in retry or idx in probe_of else 1)

        def take_chunk() -> list[int]:
            """Guided self-scheduling: chunks shrink with the queue so no chunk
            holds a large share of the remaining work (single items at the
            end); up to 32 items per message while the queue is long.  A retry
            or probe travels alone, so its longer limit is its own."""
            while queue and queue[0] < n_real and keys[queue[0]][0] in bad:
                settle(queue.popleft(), Verdict.UNKNOWN, "reference_timed_out")
            if not queue:
                return []
            if queue[0] in retry or queue[0] in probe_of:
                return [queue.popleft()]
            size = self.chunk_size or max(1, min(32, len(queue) // (32 * n_workers)))
            chunk: list[int] = []
            while queue and len(chunk) < size and not (queue[0] in retry or queue[0] in probe_of):
                idx = queue.popleft()
                if keys[idx][0] in bad:
                    settle(idx, Verdict.UNKNOWN, "reference_timed_out")
                else:
                    chunk.append(idx)
            return chunk

        def requeue(items) -> None:
            queue.extendleft(reversed(list(items)))

        answered = [False] * n_real
        remaining = n_real

        with self._bar(n_real, desc) as bar:

            def settle(idx: int, verdict: Verdict, reason: str | None, persist: bool = True) -> None:
                nonlocal remaining
                if idx >= n_real:
                    return  # a probe: not a requested pair
                if answered[idx]:
                    raise RuntimeError(f"verifier protocol error: {idx} answered twice")
                answered[idx] = True
                remaining -= 1
                if idx in retry:
                    self.stats["retry_decided"] += verdict is not Verdict.UNKNOWN
                self._record(keys[idx], verdict, reason, persist)
                bar.update(1)

            def give_up_on(gold: str) -> None:
                """``gold`` hangs alone: answer all its checks now, wherever they are."""
                bad.add(gold)
                self.stats["reference_timeouts"] += 1
                logger.warning("reference %r timed out on its own; its remaining checks are unknown", gold[:200])
                for idx in probing.pop(gold, []):
                    settle(idx, Verdict.UNKNOWN, "reference_timed_out")
                for idx in [i for i in queue if i < n_real and keys[i][0] == gold]:
                    queue.remove(idx)
                    settle(idx, Verdict.UNKNOWN, "reference_timed_out")
                for w in list(self._pool):
                    if any(i < n_real and keys[i][0] == gold for i in w.pending):
                        items = list(w.pending)
                        w.pending.clear()
                        requeue([i for i in items if not (i < n_real and keys[i][0] == gold)])
                        for i in items:
                            if i < n_real and keys[i][0] == gold:
                                settle(i, Verdict.UNKNOWN, "reference_timed_out")
                        self._replace(w)

            def try_again(idx: int) -> None:
                self.stats["retried"] += 1
                retry.add(idx)
                queue.appendleft(idx)

            def on_timeout(idx: int, reason: str) -> None:
                """A first soft or hard timeout: retry with twice the limits, after
                probing the reference alone when the worker had to be killed."""
                if idx >= n_real:  # the probe itself: the reference hangs, or is at least this slow
                    give_up_on(probe_of.pop(idx))
                    return
                gold = keys[idx][0]
                if gold in bad:
                    settle(idx, Verdict.UNKNOWN, "reference_timed_out")
                elif idx in retry:
                    settle(idx, Verdict.UNKNOWN, reason)
                elif reason == "timeout" or gold in cleared or fast_decision(gold, _PROBE_PRED) is not None:
                    try_again(idx)
                elif gold in probing:
                    probing[gold].append(idx)
                else:
                    probing[gold] = [idx]
                    probe = len(keys)
                    keys.append((gold, _PROBE_PRED))
                    probe_of[probe] = gold
                    queue.appendleft(probe)

            def finish(w: _Worker, idx: int, verdict: Verdict, reason: str | None, persist: bool = True) -> None:
                head = w.pending.popleft()
                if head != idx or (idx < n_real and answered[idx]):
                    raise RuntimeError(f"verifier protocol error: got {idx}, expected {head}")
                w.started_at = time.monotonic()
                if idx in probe_of and reason != "timeout":
                    gold = probe_of.pop(idx)
                    cleared.add(gold)
                    for waiting in probing.pop(gold, []):
                        try_again(waiting)
                elif reason in ("timeout", "hard_timeout"):
                    on_timeout(idx, reason)
                else:
                    settle(idx, verdict, reason, persist)

            def on_death(w: _Worker) -> None:
                """Worker gone without a hard timeout: its current item is
                UNKNOWN (not persisted), the rest of its chunk is requeued."""
                if not w.ready:
                    self._startup_failures += 1
                    if self._startup_failures >= _MAX_STARTUP_FAILURES:
                        raise RuntimeError("verifier workers keep dying during start-up")
                if w.pending:
                    self.stats["worker_crashes"] += 1
                    idx = w.pending[0]
                    logger.warning("verifier worker died on %r", keys[idx])
                    if idx in probe_of:  # treat like a probe that ran out of time
                        w.pending.popleft()
                        give_up_on(probe_of.pop(idx))
                    else:
                        finish(w, idx, Verdict.UNKNOWN, "worker_crash", persist=False)
                if w.pending:
                    requeue(w.pending)
                    w.pending.clear()
                if w in self._pool:
                    self._replace(w)

            def drain(w: _Worker) -> None:
                try:
                    while w.conn.poll():
                        msg = w.conn.recv()
                        if msg[0] == "ready":
                            w.ready = True
                            self._startup_failures = 0
                        else:
                            finish(w, msg[0], Verdict(msg[1]), msg[2])
                except (EOFError, OSError):
                    on_death(w)

            while remaining:
                now = time.monotonic()
                for w in self._pool:
                    if w.ready and not w.pending and queue:
                        chunk = take_chunk()
                        if not chunk:
                            continue
                        try:
                            w.conn.send([(i, keys[i][0], keys[i][1], soft_limit(i)) for i in chunk])
                        except (BrokenPipeError, OSError):
                            requeue(chunk)
                            on_death(w)
                            continue
                        w.pending.extend(chunk)
                        w.started_at = now
                if not remaining:
                    break

                deadlines = [w.started_at + limit(w.pending[0]) for w in self._pool if w.pending]
                deadlines += [w.born + _STARTUP_TIMEOUT_S for w in self._pool if not w.ready]
                if self._db_buffer:
                    deadlines.append(self._db_last_flush + _FLUSH_SECONDS)
                wait_s = max(0.0, min(deadlines) - time.monotonic()) if deadlines else None
                by_conn = {w.conn: w for w in self._pool}
                for conn in wait(list(by_conn), timeout=wait_s):
                    if by_conn[conn] in self._pool:
                        drain(by_conn[conn])
                self._db_put_tick()

                now = time.monotonic()
                for w in list(self._pool):
                    if w not in self._pool:
                        continue
                    if w.pending and now - w.started_at > limit(w.pending[0]):
                        drain(w)  # a result may have landed just now
                        if w not in self._pool or not w.pending:
                            continue
                        idx = w.pending[0]
                        if time.monotonic() - w.started_at <= limit(idx):
                            continue
                        logger.warning(
                            "hard timeout (%.1fs) verifying %r; restarting worker",
                            limit(idx), tuple(k[:200] for k in keys[idx]),
                        )
                        self.stats["hard_timeouts"] += 1
                        w.pending.popleft()
                        rest = list(w.pending)
                        w.pending.clear()
                        self._replace(w)
                        requeue(rest)
                        on_timeout(idx, "hard_timeout")
                    elif not w.ready and now - w.born > _STARTUP_TIMEOUT_S:
                        logger.warning("verifier worker did not start in time; restarting")
                        on_death(w)

        for w in list(self._pool):
            if w.pending:  # a probe nobody waits for any more: its answer must not reach the next call
                w.pending.clear()
                self._replace(w)
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


def extract_pred(sample: dict, strategies: Sequence[str]) -> tuple[str | None, str | None]:
    """(final answer, unknown reason) of one pool sample, as the graders read it.

    A sample cut by the generation limit (``finish_reason == "length"``) has no
    answer, whatever its text holds: a box in an unfinished output is at best
    an intermediate result.  Extraction is linear in the text; should it raise
    all the same, the sample is UNKNOWN ("error"), not the run aborted.
    """
    if sample.get("finish_reason") == "length":
        return None, None
    try:
        return extract_answer(sample.get("text") or "", strategies), None
    except Exception:  # a model-written string must never end a run
        logger.debug("answer extraction failed", exc_info=True)
        return None, "error"


def stats_delta(after: dict, before: dict) -> dict:
    """``after - before`` for two snapshots of ``VerifierPool.stats`` (nested counts too)."""
    out = {}
    for key, value in after.items():
        if isinstance(value, dict):
            delta = Counter(value)
            delta.subtract(before.get(key, {}))
            out[key] = {k: v for k, v in sorted(delta.items()) if v}
        else:
            out[key] = value - before.get(key, 0)
    return out


def default_workers() -> int:
    """Sensible default worker count (callers decide)."""
    return max(1, min(2, os.cpu_count() or 1))
