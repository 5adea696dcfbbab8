"""The token budget: rows are counted with the student's tokenizer, or a documented bytes/3 proxy."""

from __future__ import annotations

import functools
import logging
import math
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


def token_counter(tokenizer: str | None) -> Callable[[str], int]:
    """Tokens of a text with the student's tokenizer, or a documented proxy: UTF-8 bytes / 3.

    BPE tokenizers average 3.5–4.5 bytes per token on English and LaTeX, so the proxy overestimates
    slightly and keeps rows within budget when the real tokenizer is not configured.
    """
    if tokenizer is None:
        return functools.lru_cache(maxsize=None)(lambda text: math.ceil(len(text.encode("utf-8")) / 3))
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(_tokenizer_source(tokenizer))
    return functools.lru_cache(maxsize=None)(lambda text: len(tok(text, add_special_tokens=False)["input_ids"]))


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
