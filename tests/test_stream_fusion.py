"""The fusion half of the data stage streams: the verified pool is read one problem at a time (once for the
α table, once to fuse), each row is written before the next problem is read, and the token-count cache
is bounded without changing a count."""

import json
import math

import pytest

from trajfusion.core.build import Outcome
from trajfusion.core.stats import ProblemStats
from trajfusion.data import dataset
from trajfusion.data.audit import audit_dataset
from trajfusion.data.budget import BoundedCounter
from trajfusion.data.report import Outcomes, dataset_stats
from trajfusion.io import JsonlWriter


def _proxy(text: str) -> int:
    return math.ceil(len(text.encode("utf-8")) / 3)


def test_bounded_counter_counts_the_same_within_its_bounds():
    calls = []

    def inner(text: str) -> int:
        calls.append(text)
        return _proxy(text)

    count = BoundedCounter(inner, max_entries=8, max_bytes=20_000)
    phrase = "Wait, let me recheck."
    texts = [f"trace {i} " + "x" * (i * 397 % 5000) for i in range(200)]
    for i, text in enumerate(texts):
        assert count(text) == _proxy(text) and count(phrase) == _proxy(phrase)
        assert count(text) == _proxy(text)  # a repeat within the problem: from the cache
        assert len(count) <= 8 and count.bytes <= 20_000
    assert calls.count(phrase) == 1  # used in every problem: never evicted
    assert len(calls) == 201  # every trace counted once
    huge = "y" * 30_000  # larger than the byte bound alone: counted, never kept
    assert count(huge) == count(huge) == 10_000 and calls.count(huge) == 2 and huge not in count._cache
    assert count("") == 0 and count("") == 0 and calls.count("") == 1  # a cached 0 is a hit


def test_outcomes_keep_numbers_and_model_counts_in_row_order():
    def outcome(pid, n_wrong, models, dropped=None):
        stats = ProblemStats(4, 4 - n_wrong, n_wrong, 0, min(n_wrong, 2), 0.5, (1,) * min(n_wrong, 2))
        return Outcome(pid, stats, k=len(models), n_errors=len(models), dropped=dropped, n_tokens=10, rft_tokens=5,
                       error_models=list(models))

    outcomes = Outcomes()
    for o in [outcome("a", 3, ["m2", "m1"]), outcome("b", 1, ["m1"]), outcome("c", 2, ["m9"], dropped="no_correct"),
              outcome("d", 2, ["m3", "m2"])]:
        outcomes.add(o)
    assert all(not isinstance(v, (str, list)) for p in outcomes.problems for v in p if v != p.dropped)
    assert outcomes.problems[0].error_rate == 0.75
    stats = dataset_stats(outcomes, dataset.FusionSettings(reflections=("r",), feedback=("f",)))
    assert list(stats["error_models"].items()) == [("m2", 2), ("m1", 2), ("m3", 1)]  # ties: first seen first
    assert stats["counts"]["kept"] == 3 and stats["counts"]["dropped"]["no_correct"] == 1


@pytest.mark.parametrize("alpha", ["auto", "2.0"])
def test_build_reads_and_writes_one_problem_at_a_time(compose, monkeypatch, alpha):
    cfg = compose("data.limit=12", f"length_policy.alpha={alpha}", "plots=false", "progress=false")
    events, passes = [], []
    real_rows = dataset.verified_rows

    def rows(path):
        passes.append(path)
        for row in real_rows(path):
            events.append(("read", len(passes), row["id"]))
            yield row

    class Writer(JsonlWriter):
        def write(self, row):
            events.append(("write", len(passes), row["id"]))
            super().write(row)

    monkeypatch.setattr(dataset, "verified_rows", rows)
    monkeypatch.setattr(dataset, "JsonlWriter", Writer)
    out = dataset.build_dataset(cfg)
    assert len(passes) == (2 if alpha == "auto" else 1)  # α table, then fusion; a given α needs no table
    written = [e for e in events if e[0] == "write"]
    assert written and all(events[events.index(e) - 1] == ("read", e[1], e[2]) for e in written)
    assert [e[2] for e in written] == [json.loads(line)["id"] for line in (out / "data.jsonl").read_text().splitlines()]


def test_audit_in_chunks_finds_the_same_failures(compose, tmp_path):
    out = dataset.build_dataset(compose("data.limit=6", "length_policy.alpha=2.0", "plots=false", "progress=false"))
    rows = [json.loads(line) for line in (out / "data.jsonl").read_text().splitlines()]
    rows[1]["n_errors"] += 1  # disagrees with its segments
    rows[-1]["messages"][-1]["content"] += " "  # segments no longer cover the text
    broken = tmp_path / "broken.jsonl"
    broken.write_text("".join(json.dumps(r) + "\n" for r in rows))
    whole, chunked = audit_dataset(broken, workers=1), audit_dataset(broken, workers=1, chunk=2)
    assert whole == chunked and whole["rows"] == len(rows)
    assert list(whole["failures"]) == [rows[1]["id"], rows[-1]["id"]]
