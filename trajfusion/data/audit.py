"""Audit a built dataset against its own provenance, so nobody has to trust the builder.

    python -m trajfusion.data.audit outputs/fused/adaptive-<data_id>

Checks every row: segments tile the assistant text; k = min(k_max, ⌊α·r·u⌋) from the row's own
r, u, α, k_max (adaptive policy); errors fused = min(k, eligible groups) − budget drops (diverse);
diverse errors come from distinct answer groups; the final boxed answer verifies as the reference;
the row fits its token budget. Exit status 1 when any row fails.
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
from collections.abc import Iterator
from pathlib import Path

from trajfusion.core.fusion import SEGMENT_KINDS
from trajfusion.core.verify import Verdict, extract_answer
from trajfusion.io import read_jsonl

log = logging.getLogger(__name__)


def row_problems(row: dict) -> list[str]:
    """What is wrong with one row (empty when it is sound); the answer check is done separately."""
    text = row["messages"][-1]["content"]
    segs = row["segments"]
    found = []
    if not segs or segs[0]["start"] != 0 or segs[-1]["end"] != len(text):
        found.append("segments do not cover the assistant text")
    if any(a["end"] != b["start"] for a, b in zip(segs, segs[1:])):
        found.append("segments leave gaps or overlap")
    if any(s["kind"] not in SEGMENT_KINDS for s in segs):
        found.append("unknown segment kind")
    if segs and segs[-1]["kind"] != "answer":
        found.append("last segment is not the answer")
    errors = [s for s in row["sources"] if s["kind"] == "error"]
    if sum(s["kind"] == "error" for s in segs) != len(errors) or len(errors) != row["n_errors"]:
        found.append("error segments, sources and n_errors disagree")
    if row["fusion"] == "rft" and errors:
        found.append("an RFT row carries errors")
    if "k" in row:
        if row["length_policy"] == "adaptive" and row["k"] != min(row["k_max"], math.floor(row["alpha"] * row["r"] * row["u"])):
            found.append(f"k={row['k']} is not min(k_max, floor(alpha*r*u))")
        if row["selector"] == "diverse":
            if len({e["group"] for e in errors}) != len(errors):
                found.append("diverse errors share an answer group")
            if len(errors) + row["errors_dropped_for_budget"] != min(row["k"], row["eligible_groups"]):
                found.append("errors fused != min(k, eligible groups) - budget drops")
    if row["n_tokens"] > row["max_tokens"]:
        found.append("row exceeds its token budget")
    return found


def final_answer(row: dict) -> str | None:
    text = row["messages"][-1]["content"]
    last = row["segments"][-1]
    return extract_answer(text[last["start"] : last["end"]], ("boxed",))


def audit_dataset(path: str | Path, workers: int = 2, chunk: int = 4096) -> dict:
    """Counts of checked rows and, per failing row id, what is wrong. Rows stream through in chunks of
    `chunk`: memory holds a chunk's answers and the failures, never the dataset."""
    from trajfusion.data.verification import VerifierPool

    path = Path(path)
    data = path / "data.jsonl" if path.is_dir() else path
    failures: dict[str, list[str]] = {}
    rows = 0
    with VerifierPool(workers=workers, progress=False) as verifier:
        for batch in _chunks((row for _, row in read_jsonl(data)), chunk):
            rows += len(batch)
            verdicts = verifier.check_many([(answer, final or "") for _, answer, final, _ in batch], desc="audit answers")
            for (rid, _, _, found), verdict in zip(batch, verdicts):
                if verdict != Verdict.CORRECT:
                    found.append(f"final answer does not verify as the reference ({verdict.value})")
                if found:
                    failures[rid] = found
    return {"rows": rows, "failing_rows": len(failures), "failures": failures}


def _chunks(rows, size: int) -> Iterator[list[tuple[str, str, str | None, list[str]]]]:
    """(id, reference answer, final answer, structural problems) of each row, `size` rows at a time."""
    batch = []
    for row in rows:
        batch.append((row["id"], row["answer"], final_answer(row), row_problems(row)))
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dataset", help="a dataset directory or its data.jsonl")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    result = audit_dataset(args.dataset, args.workers)
    for rid, problems in list(result["failures"].items())[:20]:
        log.info("%s: %s", rid, "; ".join(problems))
    log.info("%d rows checked, %d failing", result["rows"], result["failing_rows"])
    return 1 if result["failing_rows"] else 0


if __name__ == "__main__":
    sys.exit(main())
