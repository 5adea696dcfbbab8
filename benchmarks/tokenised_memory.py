"""Memory of one training rank reading the tokenised cache, at the 15K and 32K presets' sizes.

    python benchmarks/tokenised_memory.py                       # ~5 min on 2 cores: both presets scaled down in rows
    python benchmarks/tokenised_memory.py --rows-15k 15000      # the 15K preset at full size (~10 min on 2 cores)
    python benchmarks/tokenised_memory.py --rows-32k 100000     # the 32K preset at full size (hours, ~12 GB of cache)

For each preset it writes synthetic fused rows in the data stage's format (texts cut from the bundled
pool's solutions into error / reflection / correct segments), tokenises them into the shared cache with
the tiny student's tokenizer (trajfusion.training.token_cache, as rank 0 does), then runs a fresh process
that does what a rank does with it: load it (memory-mapped), check the lengths against max_seq_len,
pack, and collate every packed sequence into tensors. The old path (data.jsonl tokenised into Python
lists in every rank) runs in a fresh process on the first --old-fraction of the same rows.

Sizes: 15K = Table 1's 15K presets (15,000 rows; student.max_seq_len 4096) with rows of ~2K tokens;
32K = Table 3's 32K presets (data.limit=100000 rows; max_seq_len 32768) with rows of 16–32K tokens.
Below the full row count, a rank's memory is extrapolated: on the cache path, what loading and packing
added (the per-row index: lengths, packs) scales with the rows and the peak of collating one batch does
not; on the old path everything it added (the lists) scales with the rows.

Memory is the process's private (anonymous) resident memory, sampled after every collated batch: the
cache's pages a rank touches are file-backed page cache, shared by all ranks of a node and reclaimable,
so they are not per-rank memory; VmHWM (all resident pages, mapped files included) is printed beside it.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

PRESETS = {  # name: (rows at full size, min tokens, max tokens, max_seq_len)
    "15K": (15_000, 1_500, 2_500, 4096),
    "32K": (100_000, 16_000, 32_000, 32768),
}
CHARS_PER_TOKEN = 2.7  # the tiny tokenizer on the pool's solutions (measured on the bundled data)
TEMPLATE = "base_plain"


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def _mb(kb: int) -> float:
    return kb / 1024


# ---------------------------------------------------------------- synthetic rows

def solution_texts(limit: int = 400) -> list[str]:
    from trajfusion.io import read_jsonl, resolve_path
    from trajfusion.training.students import TINY_CORPUS

    texts = []
    for i, (_, row) in enumerate(read_jsonl(resolve_path(TINY_CORPUS))):
        if i >= limit:
            break
        texts += [s["solution"] for s in row.get("samples", []) if s.get("solution")]
    return texts


def write_rows(out: Path, rows: int, min_tokens: int, max_tokens: int, seed: int) -> None:
    """data.jsonl + manifest.json of `rows` fused rows whose assistant text is ~min..max tokens."""
    from trajfusion.io import write_json

    texts = solution_texts()
    rng = random.Random(seed)
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / "data.jsonl.tmp"
    with open(tmp, "w", encoding="utf-8") as handle:
        for r in range(rows):
            target = int(rng.uniform(min_tokens, max_tokens) * CHARS_PER_TOKEN)
            parts, segments, length = [], [], 0
            kinds = ["error", "reflection"]
            while length < target:
                kind = "correct" if length > target * 0.8 else kinds[len(segments) % 2]
                text = rng.choice(texts)[:target - length] if kind != "reflection" else "\n\nWait, this does not check out. Let me redo it.\n\n"
                parts.append(text)
                segments.append({"kind": kind, "start": length, "end": length + len(text)})
                length += len(text)
                if kind == "correct":
                    break
            row = {"id": f"synthetic-{r}", "messages": [
                {"role": "system", "content": "Please reason step by step, and put your final answer within \\boxed{}."},
                {"role": "user", "content": rng.choice(texts)[:300]},
                {"role": "assistant", "content": "".join(parts)}], "segments": segments}
            handle.write(json.dumps(row) + "\n")
    tmp.rename(out / "data.jsonl")
    write_json(out / "manifest.json", {"data_id": f"synthetic-{rows}-{min_tokens}-{max_tokens}-{seed}"})


def head(src: Path, dst: Path, rows: int) -> None:
    """The first `rows` rows of a dataset directory, as another dataset (its own data_id)."""
    from trajfusion.io import write_json

    dst.mkdir(parents=True, exist_ok=True)
    with open(src / "data.jsonl", encoding="utf-8") as inp, open(dst / "data.jsonl", "w", encoding="utf-8") as out:
        for i, line in enumerate(inp):
            if i >= rows:
                break
            out.write(line)
    write_json(dst / "manifest.json", {"data_id": f"{src.name}-head-{rows}"})


# ---------------------------------------------------------------- a rank, in a fresh process

def rank_process(mode: str, dataset_dir: Path, tokenizer_dir: Path, capacity: int, virtual_rows: int = 0) -> dict:
    """What a rank does with its data. `virtual_rows` (cache only): index that many rows (the real ones
    repeated) and stop after packing: the per-row memory at the full row count, without its tokens."""
    import datasets  # noqa: F401  (a rank has these loaded: part of the baseline)
    import torch  # noqa: F401
    from transformers import AutoTokenizer

    from trajfusion.io import read_jsonl
    from trajfusion.training.packing import PackedCollator, SequenceDataset
    from trajfusion.training.token_cache import CachedRows, tokenised_rows
    from trajfusion.training.tokenise import load_template, tokenise_row

    tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_dir))
    template = load_template(TEMPLATE)
    baseline = _status_kb("RssAnon")
    started = time.perf_counter()
    if mode == "new":
        rows = tokenised_rows(dataset_dir, tokenizer, template, False)  # built already: loads
        if virtual_rows:
            rows = CachedRows(rows.dataset, rows.path, np.arange(virtual_rows) % len(rows))
        rows = rows.without(rows.ids_over(capacity))  # as training.drop_overlong=paired (a rare synthetic row)
    else:
        rows = [tokenise_row(row, tokenizer, template, False) for _, row in read_jsonl(dataset_dir / "data.jsonl")]
        rows = [r for r in rows if len(r) <= capacity]
    sequences = SequenceDataset(rows, capacity, packing=True)
    indexed = _status_kb("RssAnon")  # the rows' index and packs: grows with the row count only
    collate, peak, tokens = PackedCollator(), indexed, 0
    for i in range(min(len(sequences), 20) if virtual_rows else len(sequences)):
        batch = collate([sequences[i]])
        tokens += batch["input_ids"].numel()
        peak = max(peak, _status_kb("RssAnon"))
    assert virtual_rows or tokens == sequences.real_tokens
    return {"rows": len(rows), "tokens": sequences.real_tokens, "sequences": len(sequences), "baseline_mb": _mb(baseline),
            "indexed_mb": _mb(indexed), "peak_mb": _mb(peak), "hwm_mb": _mb(_status_kb("VmHWM")),
            "seconds": round(time.perf_counter() - started, 1)}


def measure(mode: str, dataset_dir: Path, tokenizer_dir: Path, capacity: int, virtual_rows: int = 0) -> dict:
    command = [sys.executable, __file__, "--child", mode, str(dataset_dir), str(tokenizer_dir), str(capacity),
               str(virtual_rows)]
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    proc = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if proc.returncode:
        raise SystemExit(f"{mode} rank on {dataset_dir} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------- driver

def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows-15k", type=int, default=2000, help="rows of the 15K preset (full: 15000)")
    ap.add_argument("--rows-32k", type=int, default=150, help="rows of the 32K preset (full: 100000)")
    ap.add_argument("--old-fraction", type=float, default=0.1, help="share of the rows the old path tokenises (at least 50)")
    ap.add_argument("--workers", type=int, default=0, help="training.tokenise_workers (0: the CPUs allowed)")
    ap.add_argument("--out", type=Path, default=Path("outputs/benchmarks/tokenised_memory"))
    ap.add_argument("--child", nargs=5, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        mode, dataset, tok, capacity, virtual = args.child
        print(json.dumps(rank_process(mode, Path(dataset), Path(tok), int(capacity), int(virtual))))
        return

    from transformers import AutoTokenizer

    from trajfusion.training.schema import StudentConfig
    from trajfusion.training.students import prepare_tokenizer
    from trajfusion.training.token_cache import ensure_tokenised
    from trajfusion.training.tokenise import load_template

    args.out.mkdir(parents=True, exist_ok=True)
    tokenizer_dir = (args.out / "tiny_bpe_v1").resolve()
    prepare_tokenizer(StudentConfig(name="tiny_random", source="tiny_random", tokenizer=str(tokenizer_dir)))
    tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_dir))
    template = load_template(TEMPLATE)

    def build(dataset_dir: Path) -> float:
        started = time.perf_counter()
        ensure_tokenised(dataset_dir, tokenizer, template, False, workers=args.workers)
        return time.perf_counter() - started

    table, summary = [], {}
    for name, rows in (("15K", args.rows_15k), ("32K", args.rows_32k)):
        full, lo, hi, capacity = PRESETS[name]
        dataset_dir = (args.out / f"{name}-{rows}").resolve()
        if not (dataset_dir / "data.jsonl").exists():
            write_rows(dataset_dir, rows, lo, hi, seed=0)
        build_s = build(dataset_dir)
        new = measure("new", dataset_dir, tokenizer_dir, capacity)
        table.append((name, "cache", rows, new, build_s))
        if rows < full:  # the per-row index at the full row count; the batch peak does not grow with rows
            index = measure("new", dataset_dir, tokenizer_dir, capacity, virtual_rows=full)
            table.append((name, "index", full, index, None))
            new_full = index["indexed_mb"] + (new["peak_mb"] - new["indexed_mb"])
        else:
            new_full = new["peak_mb"]
        old_rows = max(int(rows * args.old_fraction), min(rows, 50))  # enough tokens that the lists dominate
        old_dir = (args.out / f"{name}-{rows}-old{old_rows}").resolve()
        if not (old_dir / "data.jsonl").exists():
            head(dataset_dir, old_dir, old_rows)
        old = measure("old", old_dir, tokenizer_dir, capacity)
        table.append((name, "lists", old_rows, old, None))
        old_full = old["baseline_mb"] + (old["peak_mb"] - old["baseline_mb"]) * full / old_rows  # the lists grow per row
        summary[name] = (rows, full, new_full, old_full, new["tokens"] / rows, old_rows)

    print(f"\n{'preset':<7}{'path':<7}{'rows':>8}{'tokens':>15}{'seqs':>7}{'build s':>9}{'rank s':>8}"
          f"{'base MB':>9}{'+index MB':>10}{'peak MB':>9}{'VmHWM MB':>10}")
    for name, path, rows, m, build_s in table:
        built = f"{build_s:.1f}" if build_s is not None else "-"
        print(f"{name:<7}{path:<7}{rows:>8}{m['tokens']:>15,}{m['sequences']:>7}{built:>9}{m['seconds']:>8.1f}"
              f"{m['baseline_mb']:>9.0f}{m['indexed_mb'] - m['baseline_mb']:>10.1f}{m['peak_mb']:>9.0f}{m['hwm_mb']:>10.0f}")
    print("\npeak MB: private (anonymous) resident memory of a fresh rank process, sampled after every collated batch;\n"
          "base: after imports; +index: what loading, length checks and packing added; VmHWM: with mapped file pages.\n"
          "cache: the rows above, loaded and every packed sequence collated; index: the same cache indexed as the full\n"
          "row count (rows repeated) and packed, without collating; lists: the old path, every row tokenised into lists.")
    for name, (rows, full, new_full, old_full, mean, old_rows) in summary.items():
        how = "measured" if rows == full else f"collated {rows} rows + index of {full} rows"
        print(f"{name}: {full:,} rows × ~{mean:,.0f} tokens: cache path {new_full:,.0f} MB per rank ({how}); old list-of-ints "
              f"path {old_full:,.0f} MB per rank (measured on {old_rows} rows, extrapolated linearly in rows)")
    print(f"rank RSS (MB) 15K: {summary['15K'][2]:,.0f}, 32K: {summary['32K'][2]:,.0f} "
          f"(old path: 15K {summary['15K'][3]:,.0f}, 32K {summary['32K'][3]:,.0f})")


if __name__ == "__main__":
    main()
