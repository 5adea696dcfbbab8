"""Sequence packing (paper §4.1: "input sequence packing") and the collators.

With packing on, a training *sequence* is a pack of whole samples of at most `max_seq_len` tokens
(best-fit decreasing, so packs are nearly full); `student.global_batch_size` counts sequences, as
ms-swift's `--packing` does. A micro-batch's packs are laid end to end in one row with no padding;
`position_ids` restart at every sample, which is what tells the attention where samples end:
flash-attention turns them into variable-length segments on GPU, and transformers' sdpa/eager path
turns them into a block-diagonal causal mask on CPU. No token attends across samples, and no label
crosses a sample boundary (each sample's first label is ignored).

With packing off, a sequence is one sample and micro-batches are right-padded: the baseline whose
wasted (pad) share the benchmark compares against.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from trajfusion.training.tokenise import IGNORE_INDEX, TokenisedRow

STAT_KEYS = ("stat_real_tokens", "stat_tensor_tokens", "stat_sequences")


def pack_best_fit(lengths: Sequence[int], capacity: int) -> list[list[int]]:
    """Indices grouped into bins of total length ≤ capacity: longest first, each into the fullest bin
    it fits (ties: the earliest bin). Deterministic; O(n log n) lookups."""
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    bins: list[list[int]] = []
    free: list[tuple[int, int]] = []  # (remaining capacity, bin index), sorted
    for i in order:
        if lengths[i] > capacity:
            raise ValueError(f"sample {i} has {lengths[i]} tokens, more than the capacity {capacity}")
        slot = bisect.bisect_left(free, (lengths[i], -1))
        if slot == len(free):
            bins.append([i])
            bisect.insort(free, (capacity - lengths[i], len(bins) - 1))
        else:
            remaining, b = free.pop(slot)
            bins[b].append(i)
            bisect.insort(free, (remaining - lengths[i], b))
    return bins


class SequenceDataset(torch.utils.data.Dataset):
    """Training sequences: each item is a list of tokenised samples (one sample when not packing).

    Packs hold row indices only and fetch their rows when indexed: `rows` may be a memory-mapped
    cache (trajfusion.training.token_cache.CachedRows, whose `lengths` column is read without
    fetching a row), so the corpus is never held as Python lists."""

    def __init__(self, rows: Sequence[TokenisedRow], capacity: int, packing: bool):
        lengths = rows.lengths.tolist() if hasattr(rows, "lengths") else [len(r) for r in rows]
        self.groups = pack_best_fit(lengths, capacity) if packing else [[i] for i in range(len(rows))]
        self.rows = rows
        self.capacity = capacity
        self.real_tokens = sum(lengths)

    def __len__(self) -> int:
        return len(self.groups)

    def __getitem__(self, index: int) -> list[TokenisedRow]:
        return [self.rows[i] for i in self.groups[index]]

    @property
    def fill(self) -> float:
        """Real tokens / (sequences × capacity): the real share of a fixed-shape [sequences, capacity] batch."""
        return self.real_tokens / max(1, len(self.groups) * self.capacity)


def _stats(real: int, tensor: int, sequences: int) -> dict:
    return {"stat_real_tokens": torch.tensor(real), "stat_tensor_tokens": torch.tensor(tensor), "stat_sequences": torch.tensor(sequences)}


@dataclass
class PackedCollator:
    """A micro-batch of packs → one padding-free row with per-sample position ids."""

    def __call__(self, batch: list[list[TokenisedRow]]) -> dict:
        ids, labels, positions = [], [], []
        for seq in batch:
            for row in seq:
                ids += row.input_ids
                labels += row.labels
                positions += range(len(row))
        return {
            "input_ids": torch.tensor([ids]),
            "labels": torch.tensor([labels]),
            "position_ids": torch.tensor([positions]),
            **_stats(len(ids), len(ids), len(batch)),
        }


@dataclass
class PaddedCollator:
    """One sample per sequence, right-padded to the longest in the micro-batch (the unpacked baseline)."""

    pad_token_id: int

    def __call__(self, batch: list[list[TokenisedRow]]) -> dict:
        rows = [row for seq in batch for row in seq]
        width = max(len(r) for r in rows)
        pad = [width - len(r) for r in rows]
        return {
            "input_ids": torch.tensor([r.input_ids + [self.pad_token_id] * p for r, p in zip(rows, pad)]),
            "labels": torch.tensor([r.labels + [IGNORE_INDEX] * p for r, p in zip(rows, pad)]),
            "attention_mask": torch.tensor([[1] * len(r) + [0] * p for r, p in zip(rows, pad)]),
            **_stats(sum(len(r) for r in rows), width * len(rows), len(rows)),
        }
