"""The token budget: rows are counted with the student's tokenizer, or a documented bytes/3 proxy."""

from __future__ import annotations

import functools
import logging
import math
import sys
from collections import OrderedDict
from collections.abc import Callable

from trajfusion.io import content_hash, resolve_path, sha256_file

log = logging.getLogger(__name__)


def _tokenizer_source(tokenizer: str) -> str:
    """A local tokenizer directory (absolute, or relative to cwd / the project), else a hub id as given."""
    local = resolve_path(tokenizer)
    return str(local) if local.exists() else tokenizer


def tokenizer_identity(tokenizer: str | None) -> str | None:
    """What the budget depends on: a local tokenizer's *content* (so data_id survives moving the data
    root), or the hub id."""
    if tokenizer is None:
        return None
    local = resolve_path(tokenizer)
    if not local.is_dir():
        return tokenizer
    files = sorted(p for p in local.iterdir() if p.is_file() and p.name.startswith(("tokenizer", "special_tokens", "vocab", "merges")))
    return "sha256:" + content_hash({p.name: sha256_file(p) for p in files}, length=16)


PROXY_COUNTER = "bytes/3"

# The counter is asked about the same texts many times within one problem (every layout the token
# budget tries, every k of the α table) and about the reflection / feedback phrases in every problem;
# a trace of another problem never comes back. So the cache keeps the most recent texts up to these
# bounds: one long-form problem (16 traces of ~100 KB) and the phrases fit, the pool never does.
CACHE_ENTRIES = 1024
CACHE_BYTES = 32 << 20


class BoundedCounter:
    """A token count memoised LRU-first within `max_entries` texts and `max_bytes` of their memory
    (`sys.getsizeof`); a text larger than the byte bound alone is counted and not kept. Counts are
    those of the wrapped function, cached or not."""

    def __init__(self, count: Callable[[str], int], max_entries: int = CACHE_ENTRIES, max_bytes: int = CACHE_BYTES):
        self._count, self.max_entries, self.max_bytes = count, max_entries, max_bytes
        self._cache: OrderedDict[str, int] = OrderedDict()
        self.bytes = 0

    def __len__(self) -> int:
        return len(self._cache)

    def __call__(self, text: str) -> int:
        cached = self._cache.get(text)
        if cached is not None:
            self._cache.move_to_end(text)
            return cached
        value = self._count(text)
        size = sys.getsizeof(text)
        if size <= self.max_bytes:
            self._cache[text] = value
            self.bytes += size
            while len(self._cache) > self.max_entries or self.bytes > self.max_bytes:
                old, _ = self._cache.popitem(last=False)
                self.bytes -= sys.getsizeof(old)
        return value


def token_counter(tokenizer: str | None) -> Callable[[str], int]:
    """Tokens of a text with the student's tokenizer, or a documented proxy: UTF-8 bytes / 3.

    BPE tokenizers average 3.5–4.5 bytes per token on English and LaTeX, so the proxy overestimates
    slightly and keeps rows within budget when the real tokenizer is not configured.
    """
    if tokenizer is None:
        return BoundedCounter(lambda text: math.ceil(len(text.encode("utf-8")) / 3))
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(_tokenizer_source(tokenizer))
    return BoundedCounter(lambda text: len(tok(text, add_special_tokens=False)["input_ids"]))


@functools.cache
def budget_counter(tokenizer: str | None) -> tuple[Callable[[str], int], str | None]:
    """(counter, the tokenizer it uses: None for the bytes/3 proxy). A configured tokenizer that does not
    load here (no hub, not in the local cache, gated) falls back to the proxy with a loud warning;
    data_id and the manifest say which counter was used, so the two cases never share a dataset."""
    if tokenizer is None:
        return token_counter(None), None
    try:
        return token_counter(tokenizer), tokenizer
    except Exception as exc:  # OSError (offline, gated, missing), ValueError (not a tokenizer), ImportError …
        bar = "!" * 100
        log.warning(
            "\n%s\nTOKEN BUDGET: the tokenizer %r does not load here (%s: %s).\nRows are budgeted with the bytes/3 "
            "proxy instead: real token counts may be higher, and training refuses rows that overflow unless "
            "training.drop_overlong=paired.\nFor an exact budget: run where the hub (or a local HF cache) has it, "
            "or set length_policy.tokenizer=/path/to/tokenizer_dir (student.tokenizer in train.py).\n%s",
            bar, tokenizer, type(exc).__name__, str(exc).splitlines()[0] if str(exc) else "", bar,
        )
        return token_counter(None), None
