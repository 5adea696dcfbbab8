"""Throughput of answer checking: plain math-verify loop vs the project's path.

(a) plain: ``verify(parse("$gold$"), parse(trajectory_text))`` per sample, in
    this process -- what a naive labelling script does;
(b) project: ``extract_answer`` per text, then a fresh
    ``VerifierPool(workers=N, cache_path=None).check_many`` (pool start-up and
    shutdown included; no disk cache, so nothing is reused from earlier runs).

Prints samples/s of both, the speed ratio and how often the verdicts agree
(project CORRECT vs plain True; UNKNOWN counts as not correct).

    python benchmarks/verify_throughput.py --limit-problems 150
"""

from __future__ import annotations

import argparse
import gzip
import json
import logging
import os
import sys
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(REPO))

DEFAULT_POOL = REPO / "data/pools/math_l5_open.jsonl.gz"


def _machine_busy_s() -> float:
    """Non-idle CPU seconds of the whole machine so far (Linux; 0 elsewhere)."""
    try:
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
    except OSError:
        return 0.0
    idle = v[3] + (v[4] if len(v) > 4 else 0)
    return (sum(v[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def _proc_cpu_s(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def read_problems(path: Path, limit: int | None) -> list[dict]:
    opener = gzip.open if path.suffix == ".gz" else open
    rows = []
    with opener(path, "rt", encoding="utf-8") as f:
        for line in f:
            if line.strip():
                rows.append(json.loads(line))
                if limit is not None and len(rows) >= limit:
                    break
    return rows


def trajectory_text(sample: dict) -> str:
    pred = sample.get("pred") or ""
    solution = sample.get("solution") or ""
    if not pred:
        return solution
    return solution.rstrip() + "\n\nThe final answer is $\\boxed{" + pred + "}$."


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pool", type=Path, default=None,
                    help=f"trajectory pool (.jsonl or .jsonl.gz); default {DEFAULT_POOL.relative_to(REPO)}")
    ap.add_argument("--limit-problems", type=int, default=150)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--timeout-s", type=float, default=5.0)
    ap.add_argument("--show-disagreements", type=int, default=10)
    ap.add_argument("--repeat", type=int, default=1,
                    help="run N times, each in a fresh process (cold caches for both paths), "
                         "and summarise min/median -- use on a shared, noisy machine")
    ap.add_argument("--json", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.repeat > 1:
        return _repeat(args)

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    # math-verify logs a warning per internal timeout; they are counted, not shown.
    logging.getLogger("math_verify").setLevel(logging.ERROR)

    path = args.pool or DEFAULT_POOL
    rows = read_problems(path, args.limit_problems)
    golds, texts = [], []
    for row in rows:
        for sample in row.get("samples", []):
            golds.append(str(row["answer"]))
            texts.append(trajectory_text(sample))
    n = len(texts)
    print(f"pool: {path}  problems: {len(rows)}  samples: {n}")

    import math_verify

    from trajfusion.core.verify import Verdict, extract_answer
    from trajfusion.data.verification import VerifierPool

    # (a) plain loop
    busy0 = _machine_busy_s()
    c0, t0 = time.process_time(), time.perf_counter()
    plain = [
        bool(math_verify.verify(math_verify.parse("$" + g + "$"), math_verify.parse(t)))
        for g, t in zip(golds, texts)
    ]
    t_plain = time.perf_counter() - t0
    cpu_plain = time.process_time() - c0
    busy1 = _machine_busy_s()

    # (b) project path (pool start-up and shutdown included)
    c0, t0 = time.process_time(), time.perf_counter()
    with VerifierPool(workers=args.workers, timeout_s=args.timeout_s, cache_path=None,
                      progress=False) as pool:
        preds = [extract_answer(t) or "" for t in texts]
        verdicts = pool.check_many(list(zip(golds, preds)))
        # worker CPU, read before close() reaps them (private attribute: a
        # benchmark-only peek, Linux only)
        cpu_workers = sum(_proc_cpu_s(w.proc.pid) for w in getattr(pool, "_pool", []))
    t_ours = time.perf_counter() - t0
    cpu_ours = time.process_time() - c0 + cpu_workers
    busy2 = _machine_busy_s()
    # CPU used on this machine by anything else while each part ran: when it
    # is large the wall-clock ratio understates the pool (it needs 2 cores).
    other_a = max(0.0, busy1 - busy0 - cpu_plain)
    other_b = max(0.0, busy2 - busy1 - cpu_ours)

    ours = [v is Verdict.CORRECT for v in verdicts]
    agree = sum(a == b for a, b in zip(plain, ours))
    if args.json:
        print(json.dumps({"n": n, "t_plain": t_plain, "t_ours": t_ours, "agree": agree,
                          "other_a": other_a / t_plain, "other_b": other_b / t_ours}))
        return 0
    print(f"(a) plain math-verify loop : {t_plain:8.2f} s  {n / t_plain:9.1f} samples/s")
    print(f"(b) extract + VerifierPool : {t_ours:8.2f} s  {n / t_ours:9.1f} samples/s"
          f"  (workers={args.workers})")
    print(f"speed ratio (b)/(a)        : {t_plain / t_ours:.2f}x")
    print(f"CPU seconds                : (a) {cpu_plain:.2f}  (b) {cpu_ours:.2f} "
          f"(parent + workers; forkserver import not counted)")
    print(f"other load on the machine  : (a) {other_a / t_plain:.2f} cores  "
          f"(b) {other_b / t_ours:.2f} cores  (0 = benchmark had the machine to itself)")
    print(f"agreement                  : {agree}/{n} = {agree / n:.4f}")
    print(f"verdicts (b)               : {dict(Counter(v.value for v in verdicts))}")
    print(f"pool stats                 : {pool.stats}")
    both = Counter((p, o) for p, o in zip(plain, ours))
    print(f"plain True & ours not: {both[(True, False)]}   plain False & ours CORRECT: {both[(False, True)]}")
    shown = 0
    for g, t, p, a, v in zip(golds, texts, preds, plain, verdicts):
        if shown >= args.show_disagreements:
            break
        if a != (v is Verdict.CORRECT):
            shown += 1
            print(f"  gold={g!r} extracted={p[:60]!r} plain={a} ours={v.value} tail={t[-80:]!r}")
    return 0


def _repeat(args) -> int:
    import statistics
    import subprocess

    child = ["--limit-problems", str(args.limit_problems), "--workers", str(args.workers),
             "--timeout-s", str(args.timeout_s)]
    if args.pool is not None:
        child += ["--pool", str(args.pool)]
    runs = []
    for k in range(args.repeat):
        out = subprocess.run(
            [sys.executable, __file__, *child, "--json"],
            check=True, capture_output=True, text=True,
        ).stdout.strip().splitlines()[-1]
        r = json.loads(out)
        runs.append(r)
        print(f"run {k + 1}: plain {r['t_plain']:.2f} s  ours {r['t_ours']:.2f} s  "
              f"ratio {r['t_plain'] / r['t_ours']:.2f}x  agreement {r['agree'] / r['n']:.4f}  "
              f"other load (a) {r['other_a']:.2f} (b) {r['other_b']:.2f} cores")
    n = runs[0]["n"]
    for name, f in (("min", min), ("median", statistics.median)):
        tp = f(r["t_plain"] for r in runs)
        to = f(r["t_ours"] for r in runs)
        print(f"{name:>6}: plain {tp:.2f} s ({n / tp:.1f}/s)  ours {to:.2f} s ({n / to:.1f}/s)"
              f"  ratio {tp / to:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
