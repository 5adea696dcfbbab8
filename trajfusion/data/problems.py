"""Training problems: load (local JSONL or HF dataset), map fields, decontaminate, limit.

Bundled benchmarks live in `data/benchmarks/<name>.jsonl.gz`; a training problem found in any
configured benchmark (normalised exact match or a shared word n-gram) is removed and reported.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import asdict
from pathlib import Path

from trajfusion.core.decontaminate import BenchmarkIndex
from trajfusion.core.verify import extract_answer
from trajfusion.io import DataError, read_jsonl, resolve_path, text_value

log = logging.getLogger(__name__)
BENCHMARK_DIR = "data/benchmarks"


def benchmark_path(name: str) -> Path:
    path = resolve_path(f"{BENCHMARK_DIR}/{name}.jsonl.gz")
    if not path.exists():
        known = sorted(p.name.removesuffix(".jsonl.gz") for p in resolve_path(BENCHMARK_DIR).glob("*.jsonl.gz"))
        raise ValueError(f"unknown benchmark {name!r}; bundled: {', '.join(known)}")
    return path


def load_benchmark(name: str) -> list[dict]:
    return [row for _, row in read_jsonl(benchmark_path(name))]


def transform_answer(raw: str, transform: str) -> str | None:
    if transform == "gsm8k":
        return raw.split("####")[-1].replace(",", "").strip() if "####" in raw else None
    if transform == "boxed":
        return extract_answer(raw, ("boxed",))
    return raw.strip()


def _records(data) -> Iterator[tuple[str, int, dict]]:
    """(source name, line/row number, record) from the local file or the HF dataset."""
    if data.path:
        path = resolve_path(data.path)
        for line, obj in read_jsonl(path):
            yield str(path), line, obj
        return
    import datasets  # lazy: only HF-backed data needs it

    rows = datasets.load_dataset(data.hf_id, data.hf_config, split=data.split)
    for i, obj in enumerate(rows):
        yield f"{data.hf_id}[{data.split}]", i, dict(obj)


def read_problems(data) -> list[dict]:
    """Problems with `id`, `problem`, `answer` (+ original fields); bad records name where they are."""
    problems, seen = [], {}
    for source, line, obj in _records(data):
        pid = f"{data.name}-{line}" if data.id_field is None else text_value(source, line, data.id_field, obj.get(data.id_field))
        if pid is None or not str(pid).strip():
            raise DataError(source, line, data.id_field, "missing or empty problem id")
        pid = str(pid)
        if pid in seen:
            raise DataError(source, line, data.id_field, f"duplicate id {pid!r} (first on line {seen[pid]})")
        seen[pid] = line
        problem = text_value(source, line, data.problem_field, obj.get(data.problem_field))
        if not isinstance(problem, str) or not problem.strip():
            raise DataError(source, line, data.problem_field, "missing or empty (a non-empty string is required)")
        raw = text_value(source, line, data.answer_field, obj.get(data.answer_field))
        answer = transform_answer(raw, data.answer_transform) if raw is not None else None
        if not answer:
            raise DataError(source, line, data.answer_field, f"missing or empty reference answer (transform {data.answer_transform!r})")
        problems.append({**obj, "id": pid, "problem": problem, "answer": answer})
    if not problems:
        raise DataError(data.path or data.hf_id, None, None, "no problems")
    return problems


def decontaminate(rows: Iterable[dict], benchmarks: list[str], ngram: int) -> tuple[list[dict], dict]:
    """Rows that appear in no benchmark, and a report listing the removed ones."""
    report: dict = {}
    kept = list(decontaminated(rows, benchmarks, ngram, report))
    return kept, report


def decontaminated(rows: Iterable[dict], benchmarks: list[str], ngram: int, report: dict) -> Iterator[dict]:
    """The rows that appear in no benchmark, one at a time (memory: the benchmarks' n-gram index and
    the removed rows' records, never the kept rows); `report` is filled in once the rows are exhausted."""
    if not benchmarks:
        yield from rows
        report.update({"benchmarks": [], "removed": [], "removed_by_benchmark": {}})
        return
    index = BenchmarkIndex({b: [(r["id"], r["problem"]) for r in load_benchmark(b)] for b in benchmarks}, ngram)
    removed, seen = [], 0
    for row in rows:
        seen += 1
        hit = index.match(row["id"], row["problem"])
        if hit:
            removed.append(asdict(hit))
        else:
            yield row
    if removed:
        log.info("decontamination removed %d of %d problems (%s)", len(removed), seen, ", ".join(benchmarks))
    by_benchmark = Counter(r["benchmark"] for r in removed)
    report.update({"benchmarks": list(benchmarks), "ngram": ngram, "removed": removed, "removed_by_benchmark": dict(by_benchmark)})


def training_problems(data) -> tuple[list[dict], dict]:
    """read → decontaminate → limit: the problem list a teacher samples."""
    kept, report = decontaminate(read_problems(data), list(data.decontaminate), data.ngram)
    return (kept[: data.limit] if data.limit else kept), report
