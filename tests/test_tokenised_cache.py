"""The shared tokenised cache (trajfusion.training.token_cache): the same ids and labels as tokenise_row,
keyed by everything they depend on, built once (also by concurrent jobs), never half-written, and what
packing and the collators read."""

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

from trajfusion.io import read_jsonl
from trajfusion.training import token_cache
from trajfusion.training.packing import PackedCollator, PaddedCollator, SequenceDataset
from trajfusion.training.schema import StudentConfig
from trajfusion.training.students import load_tokenizer
from trajfusion.training.token_cache import (
    CACHE_DIR,
    CachedRows,
    cache_dir,
    cache_inputs,
    ensure_tokenised,
    tokenised_rows,
)
from trajfusion.training.tokenise import load_template, tokenise_row

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = load_template("base_plain")


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("tok") / "tiny_bpe"
    load_tokenizer(StudentConfig(name="tiny_random", source="tiny_random", tokenizer=str(path)))
    return path


@pytest.fixture(scope="module")
def tokenizer(tokenizer_dir):
    return load_tokenizer(StudentConfig(name="tiny_random", source="tiny_random", tokenizer=str(tokenizer_dir)))


@pytest.fixture(scope="module")
def built_dataset(tmp_path_factory):
    """A fused dataset (rows with errors) of 20 problems of the bundled pool, as the data stage writes it."""
    from hydra import compose, initialize_config_dir

    from trajfusion.config import register_configs, to_build_config
    from trajfusion.data.dataset import build_dataset

    register_configs()
    root = tmp_path_factory.mktemp("data")
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("build_data", [f"paths.data_root={root}", "data.limit=20", "plots=false", "progress=false"])
    return build_dataset(to_build_config(cfg))


@pytest.fixture
def dataset_dir(built_dataset, tmp_path):
    """A private copy (each test builds its own cache), without any cache built before."""
    copy = tmp_path / built_dataset.name
    shutil.copytree(built_dataset, copy, ignore=shutil.ignore_patterns(CACHE_DIR))
    return copy


def _rows(dataset_dir):
    return sum(1 for _ in read_jsonl(dataset_dir / "data.jsonl"))


@pytest.mark.parametrize("loss_on_errors", [True, False])
def test_cache_holds_exactly_the_ids_and_labels_of_tokenise_row(dataset_dir, tokenizer, loss_on_errors):
    path, built = ensure_tokenised(dataset_dir, tokenizer, TEMPLATE, loss_on_errors, workers=2)
    assert built and path.parent == dataset_dir / CACHE_DIR
    cached = CachedRows.load(path)
    rows = [row for _, row in read_jsonl(dataset_dir / "data.jsonl")]
    assert len(cached) == len(rows) >= 15 and any(r["n_errors"] for r in rows)
    masked_more = 0
    for i, row in enumerate(rows):
        want = tokenise_row(row, tokenizer, TEMPLATE, loss_on_errors)
        got = cached[i]
        assert (got.row_id, got.input_ids, got.labels) == (want.row_id, want.input_ids, want.labels), row["id"]
        assert type(got.input_ids[0]) is int and type(got.labels[0]) is int
        masked_more += tokenise_row(row, tokenizer, TEMPLATE, not loss_on_errors).labels != want.labels
    assert masked_more  # the flag changes some labels: the comparison can fail
    assert cached.lengths.tolist() == [len(tokenise_row(r, tokenizer, TEMPLATE, loss_on_errors)) for r in rows]
    assert cached.labelled_tokens == sum(sum(l != -100 for l in cached[i].labels) for i in range(len(cached)))
    info = json.loads((path / token_cache.INFO_FILE).read_text())
    assert info["rows"] == len(rows) and info["tokens"] == cached.tokens and info["loss_on_errors"] == loss_on_errors


def test_key_changes_with_template_loss_tokenizer_and_data(dataset_dir, tokenizer, tokenizer_dir, tmp_path):
    base = cache_dir(dataset_dir, cache_inputs(dataset_dir, tokenizer, TEMPLATE, True))
    assert base == cache_dir(dataset_dir, cache_inputs(dataset_dir, tokenizer, TEMPLATE, True))  # deterministic
    other_tok = load_tokenizer(StudentConfig(name="t", source="tiny_random", tokenizer=str(tokenizer_dir)))
    assert base == cache_dir(dataset_dir, cache_inputs(dataset_dir, other_tok, TEMPLATE, True))  # same content
    other_tok.add_tokens(["<extra_token>"])
    variants = [
        cache_inputs(dataset_dir, tokenizer, load_template("chatml"), True),
        cache_inputs(dataset_dir, tokenizer, TEMPLATE, False),
        cache_inputs(dataset_dir, other_tok, TEMPLATE, True),
    ]
    # data: another data_id; a directory without a manifest is keyed by its data.jsonl's content
    manifest = json.loads((dataset_dir / "manifest.json").read_text())
    (dataset_dir / "manifest.json").write_text(json.dumps({**manifest, "data_id": "another"}))
    variants.append(cache_inputs(dataset_dir, tokenizer, TEMPLATE, True))
    bare = tmp_path / "bare"
    bare.mkdir()
    shutil.copy(dataset_dir / "data.jsonl", bare / "data.jsonl")
    variants.append(cache_inputs(bare, tokenizer, TEMPLATE, True))
    (bare / "data.jsonl").write_text((bare / "data.jsonl").read_text() + "\n" + json.dumps({"id": "x"}) + "\n")
    variants.append(cache_inputs(bare, tokenizer, TEMPLATE, True))
    names = [base.name] + [cache_dir(dataset_dir, v).name for v in variants]
    assert len(set(names)) == len(names), names


def test_a_second_call_loads_the_cache_without_tokenising(dataset_dir, tokenizer, monkeypatch):
    first = tokenised_rows(dataset_dir, tokenizer, TEMPLATE, False, workers=1)

    def refuse(*args, **kwargs):
        raise AssertionError("tokenised again")

    monkeypatch.setattr(token_cache, "tokenise_row", refuse)
    path, built = ensure_tokenised(dataset_dir, tokenizer, TEMPLATE, False)
    assert not built and path == first.path
    again = tokenised_rows(dataset_dir, tokenizer, TEMPLATE, False)  # a requeued job, rank 0
    assert [again[i] for i in range(len(again))] == [first[i] for i in range(len(first))]
    with pytest.raises(AssertionError, match="tokenised again"):  # and the patch is live: a build would fail
        ensure_tokenised(dataset_dir, tokenizer, TEMPLATE, True)


BUILD = """
import sys, time
from pathlib import Path
from transformers import AutoTokenizer
from trajfusion.training import token_cache
from trajfusion.training.tokenise import load_template
dataset_dir, tokenizer_dir, slow = Path(sys.argv[1]), sys.argv[2], float(sys.argv[3])
if slow:
    real = token_cache.tokenise_row
    def slow_row(*args):
        time.sleep(slow)
        return real(*args)
    token_cache.tokenise_row = slow_row
path, built = token_cache.ensure_tokenised(dataset_dir, AutoTokenizer.from_pretrained(tokenizer_dir),
                                           load_template("base_plain"), False, workers=1)
print("BUILT" if built else "LOADED", path, flush=True)
"""


def _build_process(dataset_dir, tokenizer_dir, slow=0.0):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    return subprocess.Popen([sys.executable, "-c", BUILD, str(dataset_dir), str(tokenizer_dir), str(slow)], cwd=ROOT,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)


def test_two_concurrent_jobs_build_it_once(dataset_dir, tokenizer_dir):
    procs = [_build_process(dataset_dir, tokenizer_dir, slow=0.05) for _ in range(2)]
    outs = [p.communicate(timeout=240) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1][-2000:] for o in outs]
    words = sorted(o[0].split()[0] for o in outs)
    assert words == ["BUILT", "LOADED"], outs
    assert len({o[0].split()[1] for o in outs}) == 1
    assert [p.name for p in (dataset_dir / CACHE_DIR).iterdir()] == [Path(outs[0][0].split()[1]).name]  # no leftovers


def test_a_build_killed_midway_leaves_nothing_a_load_would_take(dataset_dir, tokenizer_dir, tokenizer):
    target = cache_dir(dataset_dir, cache_inputs(dataset_dir, tokenizer, TEMPLATE, False))
    proc = _build_process(dataset_dir, tokenizer_dir, slow=0.5)
    deadline = time.time() + 120
    while not list(target.parent.glob(f".{target.name}.*.tmp")):  # the atomic directory exists: mid-build
        assert proc.poll() is None and time.time() < deadline, proc.stderr.read()[-3000:] if proc.poll() is not None else "timeout"
        time.sleep(0.05)
    time.sleep(1.0)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not target.exists() and list(target.parent.glob(f".{target.name}.*"))  # only the temporary siblings
    with pytest.raises(TimeoutError, match="tokenise_wait_s"):  # a rank > 0 does not take them for the cache
        tokenised_rows(dataset_dir, tokenizer, TEMPLATE, False, rank=1, world_size=2, wait_s=0.3)
    path, built = ensure_tokenised(dataset_dir, tokenizer, TEMPLATE, False, workers=1)
    assert built and path == target
    assert [p.name for p in target.parent.iterdir()] == [target.name]  # the dead build's leftovers are gone
    assert len(CachedRows.load(path)) == _rows(dataset_dir)


def test_other_ranks_wait_for_rank_zero(dataset_dir, tokenizer):
    results = {}

    def rank(r):
        results[r] = tokenised_rows(dataset_dir, tokenizer, TEMPLATE, True, rank=r, world_size=2, wait_s=120)

    waiter = threading.Thread(target=rank, args=(1,))
    waiter.start()
    time.sleep(0.5)
    assert waiter.is_alive()  # nothing built yet: rank 1 waits
    rank(0)
    waiter.join(timeout=60)
    assert results[0].path == results[1].path and len(results[1]) == _rows(dataset_dir)


def test_packing_and_collators_read_the_cache_as_they_read_lists(dataset_dir, tokenizer):
    cached = tokenised_rows(dataset_dir, tokenizer, TEMPLATE, False)
    rows = [tokenise_row(r, tokenizer, TEMPLATE, False) for _, r in read_jsonl(dataset_dir / "data.jsonl")]
    capacity = 4096
    for packing in (True, False):
        lazy, eager = SequenceDataset(cached, capacity, packing), SequenceDataset(rows, capacity, packing)
        assert lazy.groups == eager.groups and lazy.fill == eager.fill
        assert len(lazy) < len(rows) if packing else len(lazy) == len(rows)
        for i in range(len(lazy)):
            assert lazy[i] == eager[i]
    batch = [SequenceDataset(cached, capacity, True)[i] for i in range(2)]
    want = PackedCollator()([SequenceDataset(rows, capacity, True)[i] for i in range(2)])
    for key, value in PackedCollator()(batch).items():
        assert torch.equal(value, want[key]), key
    padded = PaddedCollator(0)([[cached[0]], [cached[1]]])
    assert torch.equal(padded["input_ids"], PaddedCollator(0)([[rows[0]], [rows[1]]])["input_ids"])


def test_overlong_rows_are_found_and_dropped_from_the_columns(dataset_dir, tokenizer):
    cached = tokenised_rows(dataset_dir, tokenizer, TEMPLATE, True)
    lengths = cached.lengths.tolist()
    limit = sorted(lengths)[len(lengths) // 2]
    ids = cached.row_ids()
    over = cached.ids_over(limit)
    assert over == {rid for rid, n in zip(ids, lengths) if n > limit} and over
    kept = cached.without(over)
    assert kept.row_ids() == [rid for rid in ids if rid not in over]
    assert kept.tokens == sum(n for n in lengths if n <= limit) and max(kept.lengths) <= limit
    assert [kept[i] for i in range(len(kept))] == [cached[i] for i in range(len(cached)) if ids[i] not in over]
