"""How the data stage scales: wall time, peak memory and samples/s against pool size.

    python benchmarks/data_scale.py --problems 1000 10000 --samples 16
    python benchmarks/data_scale.py --problems 500 --samples 16 --chars 100000   # long-form traces

For each size it writes a synthetic pool in the bundled pool's format (N problems × K samples) and runs
`build_data.py` on it in a fresh process with a fresh data root, polling the resident memory of the whole
process tree (the entry point and its verifier workers). The pools are synthetic but shaped like a real
teacher's: a U-shaped spread of error rates (many problems almost always right, some almost always
wrong, the rest mixed, as in the paper's Figure 1), more distinct wrong answers at higher error rates,
integer and fraction answers, and log-normal trace lengths around `--chars`.

With `--reuse-verified` each size is built twice on one data root: the first build (`all`: pool →
verified pool → dataset), then another selector (`fuse`: a new dataset, α calibration and fusion, from
the verified pool the first build left: the second half of the data stage alone). The ratio compares
the last build of each size. `CPU s` is the user + system time of the build and all its processes
(polled like the memory, so at most the last 50 ms of each process is missed).

The last line is `peak RSS ratio <largest N>/<smallest N>: X`: a data stage whose memory is bounded by
a chunk of problems keeps it near 1; one that holds the pool grows with N.
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
WORDS = ("we", "have", "so", "the", "sum", "of", "then", "let", "x", "y", "equals", "therefore", "since",
         "$x^2+1$", "$\\frac{a}{b}$", "factor", "divide", "both", "sides", "by", "gives", "check", "case")


def _answer(rng: random.Random, value: int) -> str:
    """Mostly integers (the fast path), some fractions (math-verify proper)."""
    return f"\\frac{{{value}}}{{{value % 7 + 2}}}" if value % 5 == 0 else str(value)


def _text(rng: random.Random, block: str, chars: int) -> str:
    n = max(40, min(len(block) - 1, int(rng.lognormvariate(0, 0.5) * chars)))
    start = rng.randrange(len(block) - n) if len(block) > n else 0
    return block[start:start + n]


def write_pool(path: Path, problems: int, samples: int, chars: int, seed: int) -> int:
    """A synthetic pool in the bundled format; returns the bytes of trajectory text written."""
    rng = random.Random(seed)
    block = " ".join(rng.choice(WORDS) for _ in range(max(4 * chars, 20_000) // 4))
    text_bytes = 0
    # no name and mtime 0 in the gzip header: the same pool has the same bytes (and pool id) in every run
    with open(path, "wb") as handle, gzip.GzipFile(filename="", mode="wb", fileobj=handle, compresslevel=1, mtime=0) as raw, \
            io.TextIOWrapper(raw, encoding="utf-8") as out:
        for i in range(problems):
            mode = rng.random()
            rate = rng.betavariate(0.3, 6) if mode < 0.45 else rng.betavariate(6, 0.4) if mode < 0.63 else rng.random()
            gold = rng.randrange(1, 10_000)
            # wrong answers: a few dominant error modes, more of them the more often the teacher fails
            modes = [gold + rng.randrange(1, 500) for _ in range(1 + int(rate * rng.randrange(1, 9)))]
            rows = []
            for j in range(samples):
                wrong = rng.random() < rate
                value = modes[min(int(rng.expovariate(1.0)), len(modes) - 1)] if wrong else gold
                solution = _text(rng, block, chars)
                text_bytes += len(solution)
                rows.append({"model": f"synthetic-{j % 4}", "solution": solution, "pred": _answer(rng, value),
                             "correct": not wrong})
            out.write(json.dumps({"id": f"syn-{i:06d}", "problem": f"Synthetic problem {i}: compute the value.",
                                  "answer": _answer(rng, gold), "samples": rows}) + "\n")
    return text_bytes


def _tree(proc: psutil.Process, cpu: dict[int, float]) -> tuple[int, int]:
    """(RSS of the process, RSS of the process and all its descendants), in bytes; records each process's
    CPU seconds (user + system) so far in `cpu`, by pid: the workers' time counts even when nobody waits
    for them (a forkserver's children)."""
    try:
        procs = [proc, *proc.children(recursive=True)]
    except psutil.Error:
        return 0, 0
    own = total = 0
    for p in procs:
        try:
            with p.oneshot():
                rss, times = p.memory_info().rss, p.cpu_times()
        except psutil.Error:
            continue
        own = rss if p is proc else own
        total += rss
        cpu[p.pid] = times.user + times.system
    return own, total


def run_build(pool: Path, data_root: Path, extra: list[str]) -> dict:
    """build_data.py on the pool in a fresh process; wall time and peak RSS polled every 50 ms."""
    cmd = [sys.executable, str(ROOT / "build_data.py"), "data=custom", f"data.path={pool}", "data.decontaminate=[]",
           "teacher=replay_math_l5", f"paths.data_root={data_root}", "plots=false", "progress=false",
           f"hydra.run.dir={data_root}/hydra", *extra]
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", WANDB_MODE="offline")
    peak = {"own": 0, "tree": 0}
    cpu: dict[int, float] = {}
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    watched = psutil.Process(proc.pid)
    done = threading.Event()

    def poll() -> None:
        while not done.is_set():
            own, tree = _tree(watched, cpu)
            peak["own"], peak["tree"] = max(peak["own"], own), max(peak["tree"], tree)
            done.wait(0.05)

    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    output, _ = proc.communicate()
    done.set()
    poller.join()
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        sys.exit(f"build_data.py failed (exit {proc.returncode}) on {pool}:\n{output[-3000:]}")
    return {"wall_s": wall, "cpu_s": sum(cpu.values()), "peak_rss": peak["tree"], "peak_rss_main": peak["own"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--problems", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--samples", type=int, default=16)
    parser.add_argument("--chars", type=int, default=1500, help="typical characters per trajectory (log-normal)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", type=Path, default=None, help="keep pools and outputs here (default: a temp dir)")
    parser.add_argument("--reuse-verified", action="store_true",
                        help="measure a second build (another selector) that reuses the first build's verified pool")
    parser.add_argument("overrides", nargs="*", help="extra build_data.py overrides, e.g. verifier.workers=2")
    args = parser.parse_args()
    given = next((o.split("=", 1)[1] for o in args.overrides if o.startswith("selector=")), "diverse")
    second = [f"selector={'random' if given == 'low_div' else 'low_div'}"]
    args.overrides = [o for o in args.overrides if not o.startswith("selector=")] + [f"selector={given}"]

    with tempfile.TemporaryDirectory(prefix="tf-scale-") as tmp:
        work = args.workdir or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        results: dict[str, list[dict]] = {}
        print(f"{'build':>5} {'problems':>9} {'samples':>9} {'text MB':>9} {'wall s':>8} {'CPU s':>8} {'peak RSS MB':>12} "
              f"{'main RSS MB':>12} {'samples/s':>10}", flush=True)
        for n in sorted(args.problems):
            pool = work / f"pool-{n}x{args.samples}-{args.chars}.jsonl.gz"
            text_bytes = write_pool(pool, n, args.samples, args.chars, args.seed)
            builds = [("all", args.overrides)] + ([("fuse", [*args.overrides, *second])] if args.reuse_verified else [])
            for kind, overrides in builds:
                r = run_build(pool, work / f"root-{n}", overrides)
                r |= {"problems": n, "samples": n * args.samples, "text_mb": text_bytes / 2**20}
                print(f"{kind:>5} {n:>9} {r['samples']:>9} {r['text_mb']:>9.1f} {r['wall_s']:>8.1f} {r['cpu_s']:>8.1f} "
                      f"{r['peak_rss'] / 2**20:>12.0f} {r['peak_rss_main'] / 2**20:>12.0f} {r['samples'] / r['wall_s']:>10.0f}",
                      flush=True)
                results.setdefault(kind, []).append(r)
    for kind, runs in results.items():
        small, large = runs[0], runs[-1]
        if large["wall_s"] > small["wall_s"]:  # start-up (imports, verifier workers) cancels out
            rate = (large["samples"] - small["samples"]) / (large["wall_s"] - small["wall_s"])
            cpu = (large["cpu_s"] - small["cpu_s"]) / (large["samples"] - small["samples"])
            print(f"marginal {kind} {small['problems']}→{large['problems']}: {rate:.0f} samples/s, {cpu * 1e3:.2f} CPU ms/sample")
    print(f"peak RSS ratio {large['problems']}/{small['problems']}: {large['peak_rss'] / small['peak_rss']:.2f}")


if __name__ == "__main__":
    main()
