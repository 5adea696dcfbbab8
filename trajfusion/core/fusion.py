"""Layout of one training sample (paper §3.3, A.2; DESIGN §5.3).

    <think>\n y_e1 ρ1 y_e2 ρ2 … y_ek ρk y* \n</think>\n\n feedback  The final answer is $\\boxed{a}$.

RFT uses the same wrapper with no errors, so the two arms differ only in error supervision.
`segments` tile the assistant text exactly, so a loss mask never has to re-parse; the wrapper tags are
`format` segments of their own, so y* reads the same in both arms and masking errors keeps the tags.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

THINK_OPEN = "<think>\n"
THINK_CLOSE = "\n</think>\n\n"
SEGMENT_KINDS = ("format", "error", "reflection", "correct", "feedback", "answer")


@dataclass(frozen=True)
class FusionSpec:
    """A `fusion` option: whether the sample carries the selected errors (TrajFusion) or not (RFT)."""

    name: str
    uses_errors: bool


FUSIONS: dict[str, FusionSpec] = {
    "adaptive": FusionSpec("adaptive", uses_errors=True),
    "rft": FusionSpec("rft", uses_errors=False),
}


@dataclass(frozen=True)
class Segment:
    kind: str
    start: int
    end: int

    def as_dict(self) -> dict:
        return {"kind": self.kind, "start": self.start, "end": self.end}


@dataclass(frozen=True)
class FusedText:
    text: str
    segments: tuple[Segment, ...]

    def pieces(self) -> list[tuple[str, str]]:
        return [(s.kind, self.text[s.start : s.end]) for s in self.segments]


def final_answer_line(answer: str) -> str:
    return f" The final answer is $\\boxed{{{answer}}}$."


def lay_out(errors: Sequence[str], reflections: Sequence[str], correct: str, feedback: str, answer: str) -> FusedText:
    """Concatenate the parts and record each one's character span."""
    if len(reflections) != len(errors):
        raise ValueError(f"{len(errors)} errors need as many reflections, got {len(reflections)}")
    parts: list[tuple[str, str]] = [("format", THINK_OPEN)]
    for error, reflection in zip(errors, reflections):
        parts += [("error", error.strip()), ("reflection", f"\n\n{reflection.strip()}\n\n")]
    parts += [("correct", correct.strip()), ("format", THINK_CLOSE), ("feedback", feedback.strip()), ("answer", final_answer_line(answer))]
    segments, offset = [], 0
    for kind, text in parts:
        segments.append(Segment(kind, offset, offset + len(text)))
        offset += len(text)
    return FusedText("".join(text for _, text in parts), tuple(segments))
