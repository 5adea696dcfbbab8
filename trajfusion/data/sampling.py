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
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import BinaryIO

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
    return {row["id"]: row for row in _good_rows(path)}


def done_ids(path: Path) -> set[str]:
    """The ids of `read_shard`, without keeping the rows (a shard of long traces is gigabytes)."""
    return {row["id"] for row in _good_rows(path)}


def _good_rows(path: Path) -> Iterator[dict]:
    """Each complete line's row; the torn tail of a killed write is truncated away once all are read."""
    if not path.exists():
        return
    good_bytes = 0
    with open(path, "rb") as handle:
        for raw in handle:
            try:
                row = json.loads(raw)
            except json.JSONDecodeError:
                break
            if not raw.endswith(b"\n"):
                break
            yield row
            good_bytes += len(raw)
    if good_bytes != path.stat().st_size:
        log.warning("%s: dropping a torn last line (%d bytes) left by a killed run", path, path.stat().st_size - good_bytes)
        with open(path, "r+b") as handle:
            handle.truncate(good_bytes)


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
    done = done_ids(path)
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


def shard_meta(pool_dir: Path, problems: Sequence[dict], index: int, count: int) -> dict:
    """What `sample_shard` returns for a finished shard (its throughput record), without a teacher or a lock."""
    meta_path = shard_path(pool_dir, index, count).with_suffix(".json")
    meta = read_json(meta_path) if meta_path.exists() else {"wall_time_s": 0.0, "generated_tokens": 0, "problems_sampled": 0}
    return meta | {"problems": len(shard_of(problems, index, count))}


def merge_shards(pool_dir: Path, problems: Sequence[dict], count: int) -> list[dict]:
    """Pool rows in problem order; every problem must be in exactly one shard file, exactly once."""
    return list(iter_merged_shards(pool_dir, problems, count))


def iter_merged_shards(pool_dir: Path, problems: Sequence[dict], count: int) -> Iterator[dict]:
    """`merge_shards` as a stream: the shard files are indexed (id → shard, byte offset) and checked
    first, then each row is read at its offset in problem order, so memory holds one row and the index."""
    offsets = _offsets([shard_path(pool_dir, index, count) for index in range(count)])
    missing = [p["id"] for p in problems if p["id"] not in offsets]
    if missing:
        raise ValueError(f"{len(missing)} problems have no samples yet (first: {missing[:5]}); run the missing shards of {pool_dir}")
    if len(offsets) != len(problems):
        extra = len(set(offsets) - {p["id"] for p in problems})
        raise ValueError(f"shards of {pool_dir} hold {extra} problems that are not in its problem list")
    paths = [shard_path(pool_dir, index, count) for index in range(count)]
    yield from _rows_at(paths, (offsets[p["id"]] for p in problems))


def iter_shard_rows(pool_dir: Path, problems: Sequence[dict], index: int, count: int) -> Iterator[dict]:
    """The rows of one shard's problems in problem order (what this shard adds to the merged pool);
    every one of them must be sampled."""
    path = shard_path(pool_dir, index, count)
    mine = shard_of(problems, index, count)
    offsets = _offsets([path], labels=[index])
    missing = [p["id"] for p in mine if p["id"] not in offsets]
    if missing:
        raise ValueError(f"{path}: {len(missing)} of its problems are not sampled yet (first: {missing[:5]})")
    yield from _rows_at([path], (offsets[p["id"]] for p in mine))


def _offsets(paths: Sequence[Path], labels: Sequence[int] | None = None) -> dict[str, tuple[int, int]]:
    """id → (index into `paths`, byte offset of its line); a problem in two places is an error (naming
    the shard by `labels`, default the index)."""
    labels = labels or range(len(paths))
    where: dict[str, tuple[int, int]] = {}
    for index, path in enumerate(paths):
        if not path.exists():
            continue
        offset = 0
        with open(path, "rb") as handle:
            for line_no, raw in enumerate(handle, start=1):
                row_id = json.loads(raw)["id"]
                if row_id in where:
                    raise ValueError(f"{path}:{line_no}: problem {row_id!r} is also in shard {labels[where[row_id][0]]}")
                where[row_id] = (index, offset)
                offset += len(raw)
    return where


def _rows_at(paths: Sequence[Path], places: Iterable[tuple[int, int]]) -> Iterator[dict]:
    handles: dict[int, BinaryIO] = {}
    try:
        for index, offset in places:
            if index not in handles:
                handles[index] = open(paths[index], "rb")  # noqa: SIM115 - closed below
            handles[index].seek(offset)
            yield json.loads(handles[index].readline())
    finally:
        for handle in handles.values():
            handle.close()
