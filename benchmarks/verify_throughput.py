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
import sys
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(REPO))

DEFAULT_POOL = REPO / "data/pools/math_l5_open.jsonl.gz"
DEV_POOL = Path("/work/shared/data/trajectories/math_l5_zeroeval_multiteacher.jsonl")


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
    pred = (sample.get("pred") or "").strip()
    solution = sample.get("solution") or ""
    if not pred:
        return solution
    return solution.rstrip() + "\n\nThe final answer is $\\boxed{" + pred + "}$."


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pool", type=Path, default=None,
                    help=f"trajectory pool (.jsonl or .jsonl.gz); default {DEFAULT_POOL.relative_to(REPO)}"
                         f" or, while that does not exist, {DEV_POOL}")
    ap.add_argument("--limit-problems", type=int, default=150)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--timeout-s", type=float, default=5.0)
    ap.add_argument("--show-disagreements", type=int, default=10)
    args = ap.parse_args(argv)

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    # math-verify logs a warning per internal timeout; they are counted, not shown.
    logging.getLogger("math_verify").setLevel(logging.ERROR)

    path = args.pool
    if path is None:
        path = DEFAULT_POOL if DEFAULT_POOL.exists() else DEV_POOL
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
    from trajfusion.verification import VerifierPool

    # (a) plain loop
    t0 = time.perf_counter()
    plain = [
        bool(math_verify.verify(math_verify.parse("$" + g + "$"), math_verify.parse(t)))
        for g, t in zip(golds, texts)
    ]
    t_plain = time.perf_counter() - t0

    # (b) project path
    t0 = time.perf_counter()
    with VerifierPool(workers=args.workers, timeout_s=args.timeout_s, cache_path=None,
                      progress=False) as pool:
        preds = [extract_answer(t) or "" for t in texts]
        verdicts = pool.check_many(list(zip(golds, preds)))
    t_ours = time.perf_counter() - t0

    ours = [v is Verdict.CORRECT for v in verdicts]
    agree = sum(a == b for a, b in zip(plain, ours))
    print(f"(a) plain math-verify loop : {t_plain:8.2f} s  {n / t_plain:9.1f} samples/s")
    print(f"(b) extract + VerifierPool : {t_ours:8.2f} s  {n / t_ours:9.1f} samples/s"
          f"  (workers={args.workers})")
    print(f"speed ratio (b)/(a)        : {t_plain / t_ours:.2f}x")
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


if __name__ == "__main__":
    raise SystemExit(main())
