"""Rebuild the bundled default pool from the shared data snapshot.

The default pool is the MATH Level-5 multi-teacher pool restricted to open-weights models and to
problems that are not in MATH500 (the demo evaluates on MATH500, so it must never train on it).
Output is gzip JSONL with a zero mtime so the file is byte-reproducible.

    python scripts/make_bundle.py --shared ../shared/data
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
from pathlib import Path

POOL_SRC = "trajectories/math_l5_zeroeval_multiteacher.jsonl"
BENCHMARKS = (
    "aime24", "aime25", "amc23", "asdiv", "college_math", "deepmind_mathematics", "gaokao2023en", "gsm8k",
    "gsm_hard", "math", "math500", "mawps", "minerva_math", "olympiadbench", "svamp", "theoremqa",
)  # fmt: skip
BENCH_SRC = {name: f"{name}/test.jsonl" for name in BENCHMARKS} | {"tabmwp": "tabmwp/test1k.jsonl"}
PROBLEM_SRC = {"gsm8k_train": "gsm8k/train.jsonl"}
SAMPLE_KEYS = ("model", "solution", "pred", "correct", "parse", "solution_truncated", "source_file")


def write_gzip_jsonl(rows: list[dict], path: Path) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = "".join(json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n" for r in rows).encode()
    with open(path, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as gz:
        gz.write(payload)
    return hashlib.sha256(path.read_bytes()).hexdigest()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--shared", default="../shared/data", type=Path)
    ap.add_argument("--out", default="data", type=Path)
    args = ap.parse_args()

    math500 = [json.loads(line) for line in open(args.shared / "math500/test.jsonl")]
    math500_problems = {r["problem"].strip() for r in math500}
    rows = []
    for line in open(args.shared / POOL_SRC):
        row = json.loads(line)
        if row.get("in_math500") or row["problem"].strip() in math500_problems:
            continue
        samples = [{k: s[k] for k in SAMPLE_KEYS if k in s} for s in row["samples"] if s["open_weights"]]
        rows.append({
            "id": row["id"], "problem": row["problem"], "answer": row["answer"],
            "solution": row.get("solution"), "level": row.get("level"), "subject": row.get("subject"),
            "samples": samples,
        })
    digest = write_gzip_jsonl(rows, args.out / "pools/math_l5_open.jsonl.gz")
    print(f"| `pools/math_l5_open.jsonl.gz` | {len(rows)} ({sum(len(r['samples']) for r in rows)} samples) | `{digest}` | `{POOL_SRC}` |")
    for folder, sources in (("benchmarks", BENCH_SRC), ("problems", PROBLEM_SRC)):
        for name, rel in sources.items():
            rows = [json.loads(line) for line in open(args.shared / rel)]
            digest = write_gzip_jsonl(rows, args.out / f"{folder}/{name}.jsonl.gz")
            print(f"| `{folder}/{name}.jsonl.gz` | {len(rows)} | `{digest}` | `{rel}` |")


if __name__ == "__main__":
    main()
