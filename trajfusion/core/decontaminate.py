"""Remove training problems that also appear in a benchmark (normalised exact match or a shared
word n-gram), so a student is never trained on what it is scored on."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

_NON_WORD = re.compile(r"[^0-9a-z]+")


def normalize_text(text: str) -> str:
    """Lower-case words and numbers only: spacing, punctuation, LaTeX markup and accents ignored."""
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower()
    return _NON_WORD.sub(" ", text).strip()


def word_ngrams(text: str, n: int) -> set[tuple[str, ...]]:
    words = normalize_text(text).split()
    return {tuple(words[i : i + n]) for i in range(len(words) - n + 1)}


@dataclass(frozen=True)
class Contamination:
    problem_id: str
    benchmark: str
    benchmark_id: str
    reason: str  # "exact" or "ngram"
    evidence: str = ""  # the shared n-gram, so a reader can judge the match


class BenchmarkIndex:
    """Normalised texts and word n-grams of every benchmark problem, built once."""

    def __init__(self, benchmarks: Mapping[str, Iterable[tuple[str, str]]], ngram: int = 13):
        self.ngram = ngram
        self.exact: dict[str, tuple[str, str]] = {}
        self.grams: dict[tuple[str, ...], tuple[str, str]] = {}
        for name, problems in sorted(benchmarks.items()):
            for bid, text in problems:
                self.exact.setdefault(normalize_text(text), (name, bid))
                for gram in word_ngrams(text, ngram):
                    self.grams.setdefault(gram, (name, bid))

    def match(self, problem_id: str, text: str) -> Contamination | None:
        hit = self.exact.get(normalize_text(text))
        if hit:
            return Contamination(problem_id, hit[0], hit[1], "exact")
        for gram in sorted(word_ngrams(text, self.ngram)):
            if gram in self.grams:
                name, bid = self.grams[gram]
                return Contamination(problem_id, name, bid, "ngram", " ".join(gram))
        return None
