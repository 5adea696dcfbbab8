"""Tokenised training data, built once per (dataset, tokenizer, template, loss_on_errors) and shared.

`tokenise_row` (trajfusion.training.tokenise) decides every id and label; this module only decides
how it is run and stored. The rows of `<dataset_dir>/data.jsonl` are tokenised and loss-masked by
`datasets.Dataset.map(num_proc=training.tokenise_workers)` into an Arrow dataset saved under

    <dataset_dir>/tokenised/<key>/        key = content hash of (data_id, tokenizer identity,
                                                 template text, loss_on_errors, TOKENISE_VERSION)

with int32 `input_ids`, a uint8 `loss` mask (labels = input_ids where loss else -100: exact, at a
fifth of an int32 labels column), and per row `row_id`, `length` and `labelled`. It is written once:
under `output_lock` (two jobs on the same dataset build it once) into a temporary sibling renamed
into place (`atomic_directory`), so a killed build leaves no directory a later load could take for
complete. Every rank and every requeue then `load_from_disk`s it memory-mapped: a rank's memory no
longer grows with the corpus, only with the rows of the batch it is collating.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from trajfusion.io import atomic_directory, content_hash, read_json, read_jsonl, sha256_file, write_json
from trajfusion.locks import output_lock
from trajfusion.training.tokenise import IGNORE_INDEX, TokenisedRow, tokenise_row

log = logging.getLogger(__name__)

TOKENISE_VERSION = 1  # bump when tokenise_row's output or this layout changes: old caches are then ignored
CACHE_DIR = "tokenised"
INFO_FILE = "tokenised.json"  # what the key hashes, beside the Arrow files (for people; loads use the key)
MAP_BATCH = 64  # rows per map batch and per Arrow write: bounds a worker's memory with 32K-token rows


def dataset_identity(dataset_dir: Path) -> str:
    """The dataset's manifest data_id; a directory without one (hand-made data) by its data.jsonl content."""
    manifest = dataset_dir / "manifest.json"
    if manifest.exists():
        data_id = read_json(manifest).get("data_id")
        if data_id:
            return str(data_id)
    return "sha256:" + sha256_file(dataset_dir / "data.jsonl")


def tokenizer_identity(tokenizer) -> str:
    """A content hash of the loaded fast tokenizer (its full serialisation: vocabulary, merges,
    normaliser, pre-tokeniser, added tokens) and its special tokens: the same for every source (a
    local directory, a hub id, a GGUF file) and changed by any edit that can change an id, whereas
    a name or path can stay the same while the files behind it change."""
    digest = hashlib.sha256(tokenizer.backend_tokenizer.to_str().encode("utf-8"))
    digest.update(json.dumps({"class": type(tokenizer).__name__, "special": tokenizer.special_tokens_map},
                             sort_keys=True, default=str).encode("utf-8"))
    return "sha256:" + digest.hexdigest()[:16]


def cache_inputs(dataset_dir: Path, tokenizer, template: str, loss_on_errors: bool) -> dict:
    return {"data_id": dataset_identity(dataset_dir), "tokenizer": tokenizer_identity(tokenizer),
            "template_sha256": hashlib.sha256(template.encode("utf-8")).hexdigest(),
            "loss_on_errors": bool(loss_on_errors), "version": TOKENISE_VERSION}


def cache_dir(dataset_dir: Path, inputs: dict) -> Path:
    return dataset_dir / CACHE_DIR / content_hash(inputs, length=16)


def default_workers() -> int:
    """The CPUs this process may use (its affinity: a SLURM allocation, not the whole node), at most 32."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cpus = os.cpu_count() or 1
    return max(1, min(cpus, 32))


def _features():
    from datasets import Features, List, Value

    return Features({"row_id": Value("string"), "input_ids": List(Value("int32")), "loss": List(Value("uint8")),
                     "length": Value("int32"), "labelled": Value("int32")})


def _lines(path: str) -> Iterator[dict]:
    for line_no, row in read_jsonl(path):
        yield {"line_no": line_no, "json": json.dumps(row)}  # ASCII escapes: any string survives Arrow's UTF-8


def _tokenise_batch(batch: dict, tokenizer, template: str, loss_on_errors: bool, path: str) -> dict:
    out: dict[str, list] = {"row_id": [], "input_ids": [], "loss": [], "length": [], "labelled": []}
    for line_no, text in zip(batch["line_no"], batch["json"]):
        try:
            row = tokenise_row(json.loads(text), tokenizer, template, loss_on_errors)
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{path}:{line_no}: cannot tokenise this row: {exc}") from exc
        ids = np.asarray(row.input_ids, dtype=np.int32)
        if not np.array_equal(ids, row.input_ids):
            raise ValueError(f"{path}:{line_no}: a token id does not fit in int32")
        loss = np.asarray([label != IGNORE_INDEX for label in row.labels], dtype=np.uint8)
        out["row_id"].append(row.row_id)
        out["input_ids"].append(ids)
        out["loss"].append(loss)
        out["length"].append(len(ids))
        out["labelled"].append(int(loss.sum()))
    return out


@contextlib.contextmanager
def _quiet_datasets(progress: bool) -> Iterator[None]:
    import datasets

    was = datasets.is_progress_bar_enabled()
    if not progress:
        datasets.disable_progress_bars()
    try:
        yield
    finally:
        if was:
            datasets.enable_progress_bars()


def build(dataset_dir: Path, tokenizer, template: str, loss_on_errors: bool, target: Path, inputs: dict,
          workers: int, progress: bool = False) -> None:
    """Tokenise data.jsonl into `target` (atomically). The raw rows are staged as an Arrow file in a
    scratch directory beside it, so the workers read them memory-mapped instead of from a pickled list."""
    from datasets import Dataset

    started = time.perf_counter()
    path = str(dataset_dir / "data.jsonl")
    scratch = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.", suffix=".build"))
    try:
        with _quiet_datasets(progress), atomic_directory(target) as tmp:
            raw = Dataset.from_generator(_lines, gen_kwargs={"path": path}, cache_dir=str(scratch / "raw"),
                                         writer_batch_size=MAP_BATCH)
            procs = max(1, min(workers, len(raw)))
            tokenised = raw.map(
                _tokenise_batch, batched=True, batch_size=MAP_BATCH, writer_batch_size=MAP_BATCH,
                fn_kwargs={"tokenizer": tokenizer, "template": template, "loss_on_errors": loss_on_errors, "path": path},
                remove_columns=raw.column_names, features=_features(), num_proc=procs if procs > 1 else None,
                cache_file_name=str(scratch / "tokenised.arrow"), new_fingerprint=target.name,
                desc="tokenising",
            )
            tokenised.save_to_disk(str(tmp))
            lengths = tokenised.data.column("length").to_numpy()
            write_json(tmp / INFO_FILE, {**inputs, "dataset_dir": str(dataset_dir), "rows": len(tokenised),
                                         "tokens": int(lengths.sum()), "workers": procs,
                                         "build_s": round(time.perf_counter() - started, 2)})
            del raw, tokenised
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    log.info("tokenised %s into %s in %.1fs with %d worker(s)", path, target, time.perf_counter() - started, procs)


def _remove_stale(target: Path) -> None:
    """Temporary siblings of `target` left by a killed build (called holding its lock: no build is live)."""
    for stale in target.parent.glob(f".{target.name}.*"):
        shutil.rmtree(stale, ignore_errors=True)


def ensure_tokenised(dataset_dir: Path, tokenizer, template: str, loss_on_errors: bool, *, workers: int = 0,
                     progress: bool = False) -> tuple[Path, bool]:
    """The cache directory of this dataset and tokenisation, built here unless it exists; (path, built)."""
    dataset_dir = Path(dataset_dir)
    inputs = cache_inputs(dataset_dir, tokenizer, template, loss_on_errors)
    target = cache_dir(dataset_dir, inputs)
    if target.is_dir():
        return target, False
    with output_lock(dataset_dir / CACHE_DIR, target.name):
        if target.is_dir():  # another job built it while this one waited
            return target, False
        _remove_stale(target)
        build(dataset_dir, tokenizer, template, loss_on_errors, target, inputs, workers or default_workers(), progress)
    return target, True


def wait_for(target: Path, timeout_s: float, poll_s: float = 2.0) -> None:
    """Block until rank 0's build has renamed `target` into place (see `tokenised_rows`)."""
    deadline = time.monotonic() + timeout_s
    while not target.is_dir():
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"{target}: rank 0 has not finished tokenising after {timeout_s:.0f}s (training.tokenise_wait_s); "
                "raise it for a larger corpus, or build the cache first with a single-process run"
            )
        time.sleep(poll_s)


def tokenised_rows(dataset_dir: Path, tokenizer, template: str, loss_on_errors: bool, *, rank: int = 0,
                   world_size: int = 1, workers: int = 0, wait_s: float = 14400, progress: bool = False) -> CachedRows:
    """Every row of the dataset, tokenised, from the shared cache; global rank 0 builds it if missing.

    The other ranks wait by polling the shared filesystem for the finished directory (its rename is
    atomic), not at a torch.distributed barrier: a barrier's timeout is the process group's (under
    NCCL also its watchdog's), sized for collectives, while a build of a 32K-token corpus can take
    hours; polling needs no group and has its own knob, training.tokenise_wait_s. A failed build on
    rank 0 ends the job through the launcher (torchrun stops the other ranks); a build by another job
    holding the lock is waited for the same way."""
    dataset_dir = Path(dataset_dir)
    if rank == 0 or world_size == 1:
        path, _ = ensure_tokenised(dataset_dir, tokenizer, template, loss_on_errors, workers=workers, progress=progress)
    else:
        path = cache_dir(dataset_dir, cache_inputs(dataset_dir, tokenizer, template, loss_on_errors))
        wait_for(path, wait_s)
    return CachedRows.load(path)


class CachedRows(Sequence):
    """The tokenised rows of a cache, memory-mapped, optionally a subset (`keep`: row indices in order).
    Only the small per-row columns (length, labelled, row_id on demand) are read eagerly; a row's ids
    become Python lists only when it is fetched, i.e. when its batch is collated."""

    def __init__(self, dataset, path: Path, keep: np.ndarray | None = None):
        self.dataset = dataset.with_format("numpy", columns=["input_ids", "loss"])
        self.path = path
        self.keep = np.arange(len(dataset), dtype=np.int64) if keep is None else np.asarray(keep, dtype=np.int64)
        self._all_lengths = dataset.data.column("length").to_numpy()
        self._all_labelled = dataset.data.column("labelled").to_numpy()

    @classmethod
    def load(cls, path: Path) -> CachedRows:
        from datasets import load_from_disk

        return cls(load_from_disk(str(path)), path)

    def row_ids(self) -> list[str]:
        column = self.dataset.data.column("row_id")
        return [column[int(i)].as_py() for i in self.keep] if len(self.keep) != len(column) else column.to_pylist()

    def ids_over(self, limit: int) -> set[str]:
        """row_ids of the rows longer than `limit` tokens (read only for those rows)."""
        column = self.dataset.data.column("row_id")
        return {column[int(i)].as_py() for i in self.keep[self._all_lengths[self.keep] > limit]}

    def without(self, row_ids: set[str]) -> CachedRows:
        if not row_ids:
            return self
        ids = self.row_ids()
        kept = self.keep[[rid not in row_ids for rid in ids]]
        return CachedRows(self.dataset, self.path, kept)

    @property
    def lengths(self) -> np.ndarray:
        return self._all_lengths[self.keep]

    @property
    def tokens(self) -> int:
        return int(self.lengths.sum())

    @property
    def labelled_tokens(self) -> int:
        return int(self._all_labelled[self.keep].sum())

    def __len__(self) -> int:
        return len(self.keep)

    def __getitem__(self, index: int) -> TokenisedRow:
        i = int(self.keep[index])
        item = self.dataset[i]
        ids = item["input_ids"].astype(np.int64)
        labels = np.where(item["loss"].astype(bool), ids, IGNORE_INDEX)
        row_id = self.dataset.data.column("row_id")[i].as_py()
        return TokenisedRow(row_id, ids.tolist(), labels.tolist())

