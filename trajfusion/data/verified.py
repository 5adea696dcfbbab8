"""The verified pool: every sample's extracted answer, verdict (correct / incorrect / unknown, with the
reason) and, for wrong answers, its group of verified-equivalent answers within the problem."""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from copy import deepcopy
from itertools import chain
from pathlib import Path

from trajfusion.config import BuildDataConfig, TeacherBackend
from trajfusion.console import stage
from trajfusion.core.records import ProblemPool, Sample
from trajfusion.core.stats import group_answers
from trajfusion.core.verify import Verdict, normalize_answer
from trajfusion.data.identity import data_root, pool_dir, verifier_identity
from trajfusion.data.pool import pool_manifest, pool_stream, sample, sampling_problems
from trajfusion.data.sampling import iter_shard_rows, shard_meta
from trajfusion.data.verification import VerifierPool, extract_pred, stats_delta
from trajfusion.io import JsonlWriter, content_hash, read_json, read_jsonl, write_json
from trajfusion.locks import output_lock

log = logging.getLogger(__name__)


def _group_wrong_answers(rows: list[dict], verifier: VerifierPool) -> None:
    """Assign `group` to each wrong sample with an answer: verified equivalence, per problem."""
    per_problem = []
    pairs: list[tuple[str, str]] = []
    for row in rows:
        wrong = sorted({normalize_answer(s["pred"]) for s in row["samples"] if s["verdict"] == "incorrect" and s["pred"]})
        per_problem.append(wrong)
        pairs += [(wrong[i], wrong[j]) for j in range(len(wrong)) for i in range(j)]
    verdicts = verifier.check_many(pairs, desc="group wrong answers") if pairs else []
    same = {pair for pair, v in zip(pairs, verdicts) if v == Verdict.CORRECT}
    for row, wrong in zip(rows, per_problem):
        group_of = dict(zip(wrong, group_answers(wrong, lambda a, b: (a, b) in same)))
        for s in row["samples"]:
            s["group"] = group_of[normalize_answer(s["pred"])] if s["verdict"] == "incorrect" and s["pred"] else None


def _verify_chunk(rows: list[dict], cfg: BuildDataConfig, verifier: VerifierPool) -> dict:
    """Add `pred`, `verdict`, `group` to every sample of `rows` in place; return the chunk's tally
    (counts that add up over chunks, see `_add`). The verifier's memo is dropped afterwards."""
    samples = [(row, s) for row in rows for s in row["samples"]]
    for _, s in samples:  # cut by the generation limit: no answer, so wrong for r and never fused
        s["pred"], error = extract_pred(s, tuple(cfg.verifier.strategies))
        if error:
            s["verdict"], s["unknown_reason"] = Verdict.UNKNOWN.value, error
    checked = [(row, s) for row, s in samples if s["pred"]]
    before = deepcopy(verifier.stats)
    verdicts = verifier.check_many([(row["answer"], s["pred"]) for row, s in checked], desc="verify answers")
    for (row, s), verdict in zip(checked, verdicts):
        s["verdict"] = verdict.value
        if verdict is Verdict.UNKNOWN:
            s["unknown_reason"] = verifier.reason_of(row["answer"], s["pred"])
    for _, s in samples:
        s.setdefault("verdict", Verdict.INCORRECT.value)  # no extractable answer: wrong (DESIGN §5.5)
    answered = deepcopy(verifier.stats)
    _group_wrong_answers(rows, verifier)
    verifier.forget()
    judged = [s for _, s in samples if s.get("stored_correct") is not None and s["verdict"] != "unknown"]
    return {
        "problems": len(rows),
        "samples": len(samples),
        "verdicts": dict(Counter(s["verdict"] for _, s in samples)),
        "no_answer": sum(not s["pred"] for _, s in samples),
        "truncated": sum(bool(s.get("truncated")) for _, s in samples),
        "cut_by_length": sum(s.get("finish_reason") == "length" for _, s in samples),
        "unknown_reasons": dict(Counter(s["unknown_reason"] for _, s in samples if s["verdict"] == "unknown")),
        "agree": sum((s["verdict"] == "correct") == bool(s["stored_correct"]) for s in judged),
        "judged": len(judged),
        "answer_checks": stats_delta(answered, before),
        "grouping_checks": stats_delta(verifier.stats, answered),  # an unknown pair counts as two different answers
    }


def _add(total: dict, part: dict) -> dict:
    """Two tallies added key by key (nested counts too)."""
    out = dict(total)
    for key, value in part.items():
        out[key] = _add(out.get(key, {}), value) if isinstance(value, dict) else out.get(key, 0) + value
    return out


def _sorted(counts: dict) -> dict:
    return dict(sorted((k, v) for k, v in counts.items() if v))


def _report(tally: dict) -> dict:
    """The verification report of a tally (the keys and counts of one pass over the whole pool)."""
    checks = {name: {**tally[name], "unknown_reasons": _sorted(tally[name].get("unknown_reasons", {}))}
              for name in ("answer_checks", "grouping_checks")}
    return {
        "problems": tally["problems"],
        "samples": tally["samples"],
        "verdicts": _sorted(tally["verdicts"]),
        "no_answer": tally["no_answer"],
        "truncated": tally["truncated"],
        "cut_by_length": tally["cut_by_length"],
        "unknown_reasons": _sorted(tally["unknown_reasons"]),
        "stored_label_agreement": round(tally["agree"] / tally["judged"], 4) if tally["judged"] else None,
        **checks,
    }


def _empty_tally(verifier: VerifierPool) -> dict:
    zero = stats_delta(verifier.stats, verifier.stats)
    return {"problems": 0, "samples": 0, "verdicts": {}, "no_answer": 0, "truncated": 0, "cut_by_length": 0,
            "unknown_reasons": {}, "agree": 0, "judged": 0, "answer_checks": zero, "grouping_checks": dict(zero)}


#: A chunk also ends once its samples hold this many characters of text, so long-form pools (R1-style
#: traces of ~100 KB) keep a chunk near 100 MB whatever `verifier.chunk_problems` says.
CHUNK_TEXT_CHARS = 64_000_000


def _chunks(rows: Iterable[dict], size: int, max_chars: int = CHUNK_TEXT_CHARS) -> Iterator[list[dict]]:
    """Runs of at most `size` rows (and about `max_chars` characters of sample text); any cut gives the
    same results, since verification and grouping are per problem."""
    chunk: list[dict] = []
    chars = 0
    for row in rows:
        chunk.append(row)
        chars += sum(len(s.get("text") or "") for s in row["samples"])
        if len(chunk) >= size or chars >= max_chars:
            yield chunk
            chunk, chars = [], 0
    if chunk:
        yield chunk


def _open_verifier(cfg: BuildDataConfig, cache_path: Path | None) -> VerifierPool:
    return VerifierPool(cfg.verifier.workers, cfg.verifier.timeout_s, cache_path, progress=cfg.progress)


def verify_rows(rows: list[dict], cfg: BuildDataConfig, cache_path: Path | None) -> dict:
    """Add `pred`, `verdict`, `group` to every sample in place; return a report of the counts."""
    with _open_verifier(cfg, cache_path) as verifier:
        return _report(_add(_empty_tally(verifier), _verify_chunk(rows, cfg, verifier)))


def verify_stream(rows: Iterable[dict], cfg: BuildDataConfig, cache_path: Path | None, path: Path) -> dict:
    """Verify `rows` `verifier.chunk_problems` problems at a time with one verifier pool, streaming each
    verified row in order to `path` (atomic); returns the tally (`_report` turns it into the report).
    Memory: one chunk and the verifier's memo of it; the sqlite cache carries verdicts across chunks and runs."""
    chunks = _chunks(rows, cfg.verifier.chunk_problems)
    first = next(chunks, None)  # bad input in the first chunk fails before any file, worker or cache exists
    with _open_verifier(cfg, cache_path) as verifier, JsonlWriter(path) as out:
        tally = _empty_tally(verifier)
        for chunk in chain([first] if first else [], chunks):
            tally = _add(tally, _verify_chunk(chunk, cfg, verifier))
            for row in chunk:
                out.write(row)
    return tally


def _verified_path(cfg: BuildDataConfig) -> Path:
    return pool_dir(cfg) / f"verified-{content_hash(verifier_identity(cfg))}.jsonl.gz"


def _report_path(path: Path) -> Path:
    return path.with_name(path.name.replace(".jsonl.gz", ".report.json"))


def verified_pool(cfg: BuildDataConfig, allow_sampling: bool = True) -> tuple[Path, dict]:
    """(the verified pool's file, its report), from cache when this pool and verifier were seen before.
    Read its rows with `verified_rows(path)`: a stream, never the whole pool in memory.

    When every shard of `shard.count` was verified by its array task (`stage=sample` / `stage=verify`),
    their files are merged in pool order (the same bytes as one pass); otherwise the pool is verified here.
    With `allow_sampling=False` (training asks for a dataset) a pool that would need teacher
    sampling is an error that says which command builds it, never an implicit GPU job.
    """
    path = _verified_path(cfg)
    report_path = _report_path(path)
    if path.exists() and report_path.exists():
        stage("pool     reusing verified pool %s", path)
        return path, read_json(report_path)
    with output_lock(data_root(cfg), f"verified-{path.parent.name}-{path.name.removesuffix('.jsonl.gz')}"):
        if path.exists() and report_path.exists():
            stage("data     reusing verified pool %s (built by another process)", path)
            return path, read_json(report_path)
        shards = [shard_verified_path(cfg, i, cfg.shard.count) for i in range(cfg.shard.count)]
        done = [p for p in shards if p.exists() and _report_path(p).exists()]
        if len(done) == len(shards):
            return _merge_shards(cfg, shards, path, report_path)
        if done:
            log.warning("%d of %d shards of %s are verified, not all: verifying the whole pool here",
                        len(done), len(shards), pool_dir(cfg))
        return _verify_pool(cfg, allow_sampling, path, report_path)


def _verify_pool(cfg: BuildDataConfig, allow_sampling: bool, path: Path, report_path: Path) -> tuple[Path, dict]:
    rows, pool_report = pool_stream(cfg, allow_sampling)
    started = time.perf_counter()
    tally = verify_stream(rows, cfg, data_root(cfg) / "cache" / "verify.sqlite", path)
    report = _report(tally) | {"pool": pool_report}
    report["wall_time_s"] = round(time.perf_counter() - started, 2)
    write_json(report_path, report)
    stage("pool     verified %d samples of %d problems in %.1fs → %s", report["samples"], report["problems"], report["wall_time_s"], path)
    return path, report


# ------------------------------------------------------------- verification in the SLURM array tasks
def shard_verified_path(cfg: BuildDataConfig, index: int, count: int) -> Path:
    """Shard `index` of `count`'s verified rows: the pool's problems at positions i with i % count == index."""
    verifier_id = content_hash(verifier_identity(cfg))
    return pool_dir(cfg) / "shards" / f"verified-{verifier_id}" / f"shard-{index:05d}-of-{count:05d}.jsonl.gz"


def shard_stage(cfg: BuildDataConfig) -> dict:
    """stage=sample / stage=verify (one SLURM array task): sample this shard's missing problems (a
    sampled pool, stage=sample), then verify and group the shard's problems into its own verified file,
    so the job after the array only merges. A stored (replay) pool has nothing to sample: both stages
    verify its shard."""
    index, count = cfg.shard.index, cfg.shard.count
    sampled = cfg.teacher.backend != TeacherBackend.replay
    meta = sample(cfg) if sampled and cfg.stage == "sample" else {}
    path = shard_verified_path(cfg, index, count)
    report_path = _report_path(path)
    lock = f"verified-shard-{pool_dir(cfg).name}-{path.parent.name}-{index:05d}-of-{count:05d}"
    with output_lock(data_root(cfg), lock):
        if path.exists() and report_path.exists():
            stage("pool     reusing verified shard %s", path)
            return meta | {"verified": str(path)}
        if sampled:
            rows, pool_report = _sampled_shard_rows(cfg, index, count)
        else:
            stream, pool_report = pool_stream(cfg, allow_sampling=False)
            rows = (row for position, row in enumerate(stream) if position % count == index)
        started = time.perf_counter()
        tally = verify_stream(rows, cfg, data_root(cfg) / "cache" / "verify.sqlite", path)
        wall = round(time.perf_counter() - started, 2)
        write_json(report_path, {"tally": tally, "pool": pool_report, "wall_time_s": wall})
    stage("pool     verified shard %d/%d: %d samples of %d problems in %.1fs → %s",
          index, count, tally["samples"], tally["problems"], wall, path)
    return meta | {"verified": str(path)}


def _sampled_shard_rows(cfg: BuildDataConfig, index: int, count: int) -> tuple[Iterator[dict], dict | None]:
    """A sampled pool's shard: from the merged pool file when there is one, else from the sampling
    shard file of the same index and count (its pool report is then made when the shards are merged)."""
    directory = pool_dir(cfg)
    if (directory / "pool.jsonl.gz").exists() and (directory / "pool_manifest.json").exists():
        stream, manifest = pool_stream(cfg, allow_sampling=False)
        return (row for position, row in enumerate(stream) if position % count == index), manifest
    return iter_shard_rows(directory, sampling_problems(cfg), index, count), None


def _merge_shards(cfg: BuildDataConfig, shards: list[Path], path: Path, report_path: Path) -> tuple[Path, dict]:
    """Interleave the shards' verified rows back into pool order (row i from shard i % count), streaming,
    and add up their tallies: the bytes and counts of verifying the pool in one pass."""
    started = time.perf_counter()
    reports = [read_json(_report_path(p)) for p in shards]
    known = [r["pool"] for r in reports if r["pool"] is not None]
    if any(p != known[0] for p in known):
        raise ValueError(f"verified shards {shards[0].parent} were cut from different pools (their pool reports differ); "
                         "delete them and rerun the shards")
    tally = reports[0]["tally"]
    for r in reports[1:]:
        tally = _add(tally, r["tally"])
    if len(known) < len(reports):  # sampling tasks: the sampled pool's manifest, from the shards' records
        problems = sampling_problems(cfg)
        metas = [shard_meta(pool_dir(cfg), problems, i, len(shards)) for i in range(len(shards))]
        pool_report = pool_manifest(cfg, pool_dir(cfg), problems, metas, tally["samples"])
    else:
        pool_report = known[0]
    readers = [verified_rows(p) for p in shards]
    written = 0
    with JsonlWriter(path) as out:
        for row in _round_robin(readers):
            out.write(row)
            written += 1
        if written != tally["problems"] or any(next(reader, None) is not None for reader in readers):
            raise ValueError(f"verified shards {shards[0].parent} are inconsistent: {written} rows in pool order, "
                             f"their reports count {tally['problems']}; delete them and rerun the shards")
    report = _report(tally) | {"pool": pool_report}
    report["wall_time_s"] = round(sum(r["wall_time_s"] for r in reports), 2)  # verification time in the array tasks
    write_json(report_path, report)
    stage("pool     merged %d verified shards (%d samples of %d problems) in %.1fs → %s", len(shards),
          report["samples"], report["problems"], time.perf_counter() - started, path)
    return path, report


def _round_robin(readers: list[Iterator[dict]]) -> Iterator[dict]:
    """Row i of the pool from reader i % len(readers), until the reader due next runs out."""
    while True:
        for reader in readers:
            row = next(reader, None)
            if row is None:
                return
            yield row


def verified_rows(path: Path) -> Iterator[dict]:
    """The verified pool's rows, one problem at a time, in pool order."""
    return (row for _, row in read_jsonl(path))


def to_problem_pool(row: dict) -> ProblemPool:
    """A verified row as the pure core's record."""
    return ProblemPool(
        id=row["id"], problem=row["problem"], answer=row["answer"],
        samples=[
            Sample(
                index=j, sample_id=s["sample_id"], text=s["text"], model=s["model"], verdict=Verdict(s["verdict"]),
                pred=s["pred"], truncated=bool(s.get("truncated")), group=s.get("group"),
            )
            for j, s in enumerate(row["samples"])
        ],
    )


def to_problem_pools(rows: Sequence[dict]) -> list[ProblemPool]:
    return [to_problem_pool(row) for row in rows]
