"""Dataset rows → token ids and labels, with the loss placed exactly by the row's `segments`.

The template (a Jinja chat template under trajfusion/templates/, also written into the checkpoint so
vLLM and lm-eval prompt the same way) renders the conversation; the assistant text must appear in
the rendering verbatim, right after the rendered prompt. Loss is decided per *character* first:

- prompt (system, user, template text up to the assistant text): no loss;
- assistant text: loss, except `error` segments when `loss_on_errors` is false (DESIGN §5.9);
- template text after the assistant text (end-of-turn / EOS): loss, so the model learns to stop.

A token carries loss iff every character it covers does. A token straddling a boundary between a
masked and a trained span is therefore masked: an error's loss never leaks into training, at the
price of at most one trained token per boundary. Characters the tokenizer's offsets skip (e.g.
trimmed spaces) belong to the next token; a token with no character of its own (a byte-fallback
piece of a character the previous token covers) follows the previous token.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

IGNORE_INDEX = -100
TEMPLATE_DIR = Path(__file__).resolve().parent.parent / "templates"


@lru_cache(maxsize=None)
def load_template(name: str) -> str:
    path = TEMPLATE_DIR / f"{name}.jinja"
    if not path.exists():
        supported = sorted(p.stem for p in TEMPLATE_DIR.glob("*.jinja"))
        raise ValueError(f"student.template: no template {name!r} in {TEMPLATE_DIR}; supported: {', '.join(supported)}")
    return path.read_text(encoding="utf-8")


@dataclass(frozen=True)
class Rendered:
    text: str
    answer_start: int  # character span of the assistant text inside `text`
    answer_end: int


def render(tokenizer, messages: Sequence[dict], template: str) -> Rendered:
    """The conversation as the student sees it, and where the assistant text lies in it."""
    if not messages or messages[-1]["role"] != "assistant":
        raise ValueError("a training row's last message must be the assistant's")
    prompt = tokenizer.apply_chat_template(list(messages[:-1]), chat_template=template, tokenize=False, add_generation_prompt=True)
    full = tokenizer.apply_chat_template(list(messages), chat_template=template, tokenize=False)
    answer = messages[-1]["content"]
    start, end = len(prompt), len(prompt) + len(answer)
    if not full.startswith(prompt) or full[start:end] != answer:
        raise ValueError("template renders the prompt differently with and without the answer; the loss mask needs a prefix")
    return Rendered(full, start, end)


def character_loss(rendered: Rendered, segments: Sequence[dict], loss_on_errors: bool) -> bytearray:
    """1 for every character that carries loss, 0 elsewhere (see the module docstring)."""
    answer_len = rendered.answer_end - rendered.answer_start
    position = 0
    for seg in segments:  # segments must tile the assistant text: masks never guess
        if seg["start"] != position or seg["end"] < seg["start"]:
            raise ValueError(f"segments do not tile the assistant text at character {position}: {seg}")
        position = seg["end"]
    if position != answer_len:
        raise ValueError(f"segments end at {position}, the assistant text has {answer_len} characters")
    mask = bytearray(rendered.answer_start) + bytearray(b"\x01") * (len(rendered.text) - rendered.answer_start)
    if not loss_on_errors:
        for seg in segments:
            if seg["kind"] == "error":
                a, b = rendered.answer_start + seg["start"], rendered.answer_start + seg["end"]
                mask[a:b] = bytes(b - a)
    return mask


def token_loss(offsets: Sequence[tuple[int, int]], char_loss: bytearray) -> list[bool]:
    """Per token: does it carry loss? A token does iff all the characters it covers do."""
    flags: list[bool] = []
    covered = 0  # characters before this are owned by earlier tokens
    for start, end in offsets:
        begin = min(start, covered)
        if end <= covered:  # nothing of its own: shares a character with the previous token
            flags.append(flags[-1] if flags else False)
            continue
        flags.append(all(char_loss[begin:end]))
        covered = end
    return flags


@dataclass(frozen=True)
class TokenisedRow:
    row_id: str
    input_ids: list[int]
    labels: list[int]  # IGNORE_INDEX where no loss

    def __len__(self) -> int:
        return len(self.input_ids)


def tokenise_row(row: dict, tokenizer, template: str, loss_on_errors: bool) -> TokenisedRow:
    rendered = render(tokenizer, row["messages"], template)
    encoded = tokenizer(rendered.text, add_special_tokens=False, return_offsets_mapping=True)
    flags = token_loss(encoded["offset_mapping"], character_loss(rendered, row["segments"], loss_on_errors))
    ids = list(encoded["input_ids"])
    labels = [t if keep else IGNORE_INDEX for t, keep in zip(ids, flags)]
    labels[0] = IGNORE_INDEX  # never a target; also separates packed samples (no cross-sample prediction)
    return TokenisedRow(str(row["id"]), ids, labels)
