"""Teacher sampling in shards that survive preemption, and the merge that checks completeness.

Each shard (one SLURM array task) appends finished problems to its own JSONL file, one whole
batch per write + fsync; a torn last line from a kill is cut off on restart, and problems already
in the file are skipped. Samples depend only on (teacher seed, problem id), so any shard count
gives the same pool.

Two pipelines that share a teacher pool (RFT and TrajFusion of one preset, submitted together) run the
same shards at once: each shard is sampled under a lock (`<data_root>/locks/shard-…lock`, a POSIX record
lock that dies with its process), and the second task finds its problems done and skips them.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path

from tqdm import tqdm

from trajfusion.io import dumps_line, read_json, write_json
from trajfusion.locks import output_lock

log = logging.getLogger(__name__)


def shard_of(problems: Sequence[dict], index: int, count: int) -> list[dict]:
    return [p for i, p in enumerate(problems) if i % count == index]


def shard_path(pool_dir: Path, index: int, count: int) -> Path:
    return pool_dir / "shards" / f"shard-{index:05d}-of-{count:05d}.jsonl"


def read_shard(path: Path) -> dict[str, dict]:
    """Completed problems of a shard file; a torn tail (killed mid-write) is truncated away."""
    if not path.exists():
        return {}
    done, good_bytes = {}, 0
    with open(path, "rb") as handle:
        for raw in handle:
            try:
                row = json.loads(raw)
            except json.JSONDecodeError:
                break
            if not raw.endswith(b"\n"):
                break
            done[row["id"]] = row
            good_bytes += len(raw)
    if good_bytes != path.stat().st_size:
        log.warning("%s: dropping a torn last line (%d bytes) left by a killed run", path, path.stat().st_size - good_bytes)
        with open(path, "r+b") as handle:
            handle.truncate(good_bytes)
    return done


def append_rows(path: Path, rows: Sequence[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "ab") as handle:
        handle.write("".join(dumps_line(r) for r in rows).encode("utf-8"))
        handle.flush()
        os.fsync(handle.fileno())


def sample_shard(teacher_factory, problems: Sequence[dict], pool_dir: Path, index: int, count: int, batch: int, progress: bool = True) -> dict:
    """Sample the problems of shard `index` that are not done yet (under the shard's lock); returns its
    throughput record."""
    # <data_root>/locks/, the data root being two levels above the pool directory
    with output_lock(pool_dir.parent.parent, f"shard-{pool_dir.name}-{index:05d}-of-{count:05d}"):
        return _sample_shard(teacher_factory, problems, pool_dir, index, count, batch, progress)


def _sample_shard(teacher_factory, problems: Sequence[dict], pool_dir: Path, index: int, count: int, batch: int, progress: bool) -> dict:
    path = shard_path(pool_dir, index, count)
    mine = shard_of(problems, index, count)
    done = read_shard(path)
    todo = [p for p in mine if p["id"] not in done]
    meta_path = path.with_suffix(".json")
    meta = read_json(meta_path) if meta_path.exists() else {"wall_time_s": 0.0, "generated_tokens": 0, "problems_sampled": 0}
    if not todo:
        return meta | {"problems": len(mine)}
    log.info("shard %d/%d: %d of %d problems to sample (%d done before)", index, count, len(todo), len(mine), len(done))
    teacher = teacher_factory()
    bar = tqdm(total=len(mine), initial=len(mine) - len(todo), desc=f"sample shard {index}/{count}", unit="problem", disable=not progress)
    started, tokens = time.perf_counter(), 0
    for start in range(0, len(todo), batch):
        chunk = todo[start : start + batch]
        outputs = teacher.sample_batch(chunk)
        rows = []
        for problem, samples in zip(chunk, outputs):
            for j, s in enumerate(samples):
                s["sample_id"] = f"{problem['id']}:{j:03d}"
                s["truncated"] = s["finish_reason"] == "length"
                tokens += s.get("n_tokens") or 0
            rows.append({"id": problem["id"], "problem": problem["problem"], "answer": problem["answer"], "samples": samples})
        append_rows(path, rows)
        elapsed = time.perf_counter() - started
        bar.update(len(chunk))
        bar.set_postfix(tok_s=f"{tokens / max(elapsed, 1e-9):.0f}")
        write_json(meta_path, {
            "wall_time_s": round(meta["wall_time_s"] + elapsed, 2), "generated_tokens": meta["generated_tokens"] + tokens,
            "problems_sampled": meta["problems_sampled"] + start + len(chunk),
        })
    bar.close()
    return read_json(meta_path) | {"problems": len(mine)}


def merge_shards(pool_dir: Path, problems: Sequence[dict], count: int) -> list[dict]:
    """Pool rows in problem order; every problem must be in exactly one shard file, exactly once."""
    found: dict[str, dict] = {}
    where: dict[str, int] = {}
    for index in range(count):
        path = shard_path(pool_dir, index, count)
        with open(path, encoding="utf-8") if path.exists() else open(os.devnull) as handle:
            for line_no, line in enumerate(handle, start=1):
                row = json.loads(line)
                if row["id"] in found:
                    raise ValueError(f"{path}:{line_no}: problem {row['id']!r} is also in shard {where[row['id']]}")
                found[row["id"]], where[row["id"]] = row, index
    missing = [p["id"] for p in problems if p["id"] not in found]
    if missing:
        raise ValueError(f"{len(missing)} problems have no samples yet (first: {missing[:5]}); run the missing shards of {pool_dir}")
    extra = set(found) - {p["id"] for p in problems}
    if extra:
        raise ValueError(f"shards of {pool_dir} hold {len(extra)} problems that are not in its problem list")
    return [found[p["id"]] for p in problems]
