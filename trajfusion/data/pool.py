"""The teacher pool: a stored pool replayed, or sampled in resumable shards and merged."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from pathlib import Path

from trajfusion.config import BuildDataConfig, TeacherBackend
from trajfusion.console import stage
from trajfusion.data.identity import data_root, pool_dir
from trajfusion.data.problems import decontaminated, training_problems
from trajfusion.data.sampling import iter_merged_shards, sample_shard
from trajfusion.data.teachers.replay import replay_rows
from trajfusion.io import JsonlWriter, read_json, read_jsonl, write_json, write_jsonl
from trajfusion.locks import output_lock

log = logging.getLogger(__name__)


def _replay_stream(cfg: BuildDataConfig) -> tuple[Iterator[dict], dict]:
    """The stored pool read, checked and decontaminated one row at a time; every line is still read
    (a bad line fails wherever it is, and the decontamination report counts the whole pool), and the
    first `data.limit` kept rows are yielded."""
    decon: dict = {}
    rows = decontaminated(
        replay_rows(
            cfg.teacher.pool_path,  # type: ignore[arg-type]
            id_field=cfg.data.id_field or "id", problem_field=cfg.data.problem_field, answer_field=cfg.data.answer_field,
            open_weights_only=cfg.teacher.open_weights_only, num_samples=cfg.teacher.num_samples,
        ),
        list(cfg.data.decontaminate), cfg.data.ngram, decon,
    )
    limit = cfg.data.limit

    def limited() -> Iterator[dict]:
        for n, row in enumerate(rows):
            if not limit or n < limit:
                yield row

    return limited(), {"decontamination": decon}


def _teacher_factory(cfg: BuildDataConfig) -> Callable[[], object]:
    def make():
        if cfg.teacher.backend == TeacherBackend.vllm:
            from trajfusion.data.teachers.vllm import VLLMTeacher

            return VLLMTeacher(cfg.teacher)
        from trajfusion.data.teachers.hf import HFTeacher

        return HFTeacher(cfg.teacher)

    return make


def sampling_problems(cfg: BuildDataConfig) -> list[dict]:
    """The decontaminated, limited problem list of a sampled pool, fixed once in its directory so
    every shard works from the same list."""
    path = pool_dir(cfg) / "problems.jsonl.gz"
    if not path.exists():
        problems, report = training_problems(cfg.data)
        write_json(pool_dir(cfg) / "decontamination.json", report)
        write_jsonl(path, problems)
    return [row for _, row in read_jsonl(path)]


def sample(cfg: BuildDataConfig) -> dict:
    """stage=sample: sample this shard's missing problems (one SLURM array task)."""
    problems = sampling_problems(cfg)
    return sample_shard(_teacher_factory(cfg), problems, pool_dir(cfg), cfg.shard.index, cfg.shard.count,
                        cfg.teacher.problems_per_batch, cfg.progress)


def pool_stream(cfg: BuildDataConfig, allow_sampling: bool = True) -> tuple[Iterator[dict], dict]:
    """(the pool's rows in pool order, one at a time; the pool's report). A replay pool's report is
    filled in as its rows stream (decontamination counts the whole file): read it once they are exhausted."""
    if cfg.teacher.backend == TeacherBackend.replay:
        return _replay_stream(cfg)
    directory = pool_dir(cfg)
    pool_file, manifest_file = directory / "pool.jsonl.gz", directory / "pool_manifest.json"
    if pool_file.exists() and manifest_file.exists():
        log.info("reusing teacher pool %s", pool_file)
        return _rows(pool_file), read_json(manifest_file)
    with output_lock(data_root(cfg), f"pool-{directory.name}"):  # a concurrent build samples it once
        if pool_file.exists() and manifest_file.exists():
            stage("data     reusing teacher pool %s (built by another process)", pool_file)
            return _rows(pool_file), read_json(manifest_file)
        return _rows(pool_file), _sample_pool(cfg, directory, allow_sampling)


def _rows(path: Path) -> Iterator[dict]:
    return (row for _, row in read_jsonl(path))


def pool_manifest(cfg: BuildDataConfig, directory: Path, problems: list[dict], shards: list[dict], samples: int) -> dict:
    """The sampled pool's manifest: where its time and tokens went, per shard and in all."""
    wall = sum(s["wall_time_s"] for s in shards)
    tokens = sum(s["generated_tokens"] for s in shards)
    return {
        "teacher": cfg.teacher.name, "model": cfg.teacher.model, "problems": len(problems),
        "samples": samples, "shards": shards, "sampling_wall_time_s": round(wall, 2),
        "generated_tokens": tokens, "tokens_per_s": round(tokens / wall, 2) if wall else None,
        "problems_per_s": round(len(problems) / wall, 4) if wall else None,
        "decontamination": read_json(directory / "decontamination.json"),
    }


def _sample_pool(cfg: BuildDataConfig, directory: Path, allow_sampling: bool) -> dict:
    """Sample the missing shards, then stream their merge (problem order) into pool.jsonl.gz."""
    pool_file, manifest_file = directory / "pool.jsonl.gz", directory / "pool_manifest.json"
    if not allow_sampling:
        raise ValueError(
            f"no sampled pool for teacher {cfg.teacher.name!r} at {directory}; sample it first with "
            f"`python build_data.py data={cfg.data.name} teacher={cfg.teacher.name}` (or slurm/build_data.sh on a cluster)"
        )
    problems = sampling_problems(cfg)
    shards = [
        sample_shard(_teacher_factory(cfg), problems, directory, i, cfg.shard.count, cfg.teacher.problems_per_batch, cfg.progress)
        for i in range(cfg.shard.count)
    ]
    samples = 0
    with JsonlWriter(pool_file) as out:
        for row in iter_merged_shards(directory, problems, cfg.shard.count):
            out.write(row)
            samples += len(row["samples"])
    manifest = pool_manifest(cfg, directory, problems, shards, samples)
    write_json(manifest_file, manifest)
    return manifest
