"""The verified pool: every sample's extracted answer, verdict (correct / incorrect / unknown, with the
reason) and, for wrong answers, its group of verified-equivalent answers within the problem."""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path

from trajfusion.config import BuildDataConfig
from trajfusion.console import stage
from trajfusion.core.records import ProblemPool, Sample
from trajfusion.core.stats import group_answers
from trajfusion.core.verify import Verdict, normalize_answer
from trajfusion.data.identity import data_root, pool_dir, verifier_identity
from trajfusion.data.pool import load_pool
from trajfusion.data.verification import VerifierPool, extract_pred, stats_delta
from trajfusion.io import content_hash, read_json, read_jsonl, write_json, write_jsonl
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


def verify_rows(rows: list[dict], cfg: BuildDataConfig, cache_path: Path | None) -> dict:
    """Add `pred`, `verdict`, `group` to every sample in place; return a report of the counts."""
    samples = [(row, s) for row in rows for s in row["samples"]]
    for _, s in samples:  # cut by the generation limit: no answer, so wrong for r and never fused
        s["pred"], error = extract_pred(s, tuple(cfg.verifier.strategies))
        if error:
            s["verdict"], s["unknown_reason"] = Verdict.UNKNOWN.value, error
    checked = [(row, s) for row, s in samples if s["pred"]]
    with VerifierPool(cfg.verifier.workers, cfg.verifier.timeout_s, cache_path, progress=cfg.progress) as verifier:
        verdicts = verifier.check_many([(row["answer"], s["pred"]) for row, s in checked], desc="verify answers")
        for (row, s), verdict in zip(checked, verdicts):
            s["verdict"] = verdict.value
            if verdict is Verdict.UNKNOWN:
                s["unknown_reason"] = verifier.reason_of(row["answer"], s["pred"])
        for _, s in samples:
            s.setdefault("verdict", Verdict.INCORRECT.value)  # no extractable answer: wrong (DESIGN §5.5)
        answer_checks = {k: dict(v) if isinstance(v, dict) else v for k, v in verifier.stats.items()}
        _group_wrong_answers(rows, verifier)
        grouping_checks = stats_delta(verifier.stats, answer_checks)
    verdict_counts = Counter(s["verdict"] for _, s in samples)
    judged = [s for _, s in samples if s.get("stored_correct") is not None and s["verdict"] != "unknown"]
    agree = sum((s["verdict"] == "correct") == bool(s["stored_correct"]) for s in judged)
    return {
        "problems": len(rows),
        "samples": len(samples),
        "verdicts": dict(sorted(verdict_counts.items())),
        "no_answer": sum(not s["pred"] for _, s in samples),
        "truncated": sum(bool(s.get("truncated")) for _, s in samples),
        "cut_by_length": sum(s.get("finish_reason") == "length" for _, s in samples),
        "unknown_reasons": dict(sorted(Counter(s["unknown_reason"] for _, s in samples if s["verdict"] == "unknown").items())),
        "stored_label_agreement": round(agree / len(judged), 4) if judged else None,
        "answer_checks": answer_checks,
        "grouping_checks": grouping_checks,  # an unknown pair counts as two different answers
    }


def verified_pool(cfg: BuildDataConfig, allow_sampling: bool = True) -> tuple[Path, dict]:
    """(the verified pool's file, its report), from cache when this pool and verifier were seen before.
    Read its rows with `verified_rows(path)`: a stream, never the whole pool in memory.

    With `allow_sampling=False` (training asks for a dataset) a pool that would need teacher
    sampling is an error that says which command builds it, never an implicit GPU job.
    """
    path = pool_dir(cfg) / f"verified-{content_hash(verifier_identity(cfg))}.jsonl.gz"
    report_path = path.with_name(path.name.replace(".jsonl.gz", ".report.json"))
    if path.exists() and report_path.exists():
        stage("pool     reusing verified pool %s", path)
        return path, read_json(report_path)
    with output_lock(data_root(cfg), f"verified-{path.parent.name}-{path.name.removesuffix('.jsonl.gz')}"):
        if path.exists() and report_path.exists():
            stage("data     reusing verified pool %s (built by another process)", path)
            return path, read_json(report_path)
        return _verify_pool(cfg, allow_sampling, path, report_path)


def _verify_pool(cfg: BuildDataConfig, allow_sampling: bool, path: Path, report_path: Path) -> tuple[Path, dict]:
    rows, pool_report = load_pool(cfg, allow_sampling)
    started = time.perf_counter()
    report = verify_rows(rows, cfg, data_root(cfg) / "cache" / "verify.sqlite") | {"pool": pool_report}
    report["wall_time_s"] = round(time.perf_counter() - started, 2)
    write_jsonl(path, rows)
    write_json(report_path, report)
    stage("pool     verified %d samples of %d problems in %.1fs → %s", report["samples"], report["problems"], report["wall_time_s"], path)
    return path, report


def verified_rows(path: Path) -> Iterator[dict]:
    """The verified pool's rows, one problem at a time, in pool order."""
    return (row for _, row in read_jsonl(path))


def to_problem_pools(rows: Sequence[dict]) -> list[ProblemPool]:
    return [
        ProblemPool(
            id=row["id"], problem=row["problem"], answer=row["answer"],
            samples=[
                Sample(
                    index=j, sample_id=s["sample_id"], text=s["text"], model=s["model"], verdict=Verdict(s["verdict"]),
                    pred=s["pred"], truncated=bool(s.get("truncated")), group=s.get("group"),
                )
                for j, s in enumerate(row["samples"])
            ],
        )
        for row in rows
    ]
