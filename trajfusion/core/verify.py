"""Answer extraction, normalisation and equivalence checking (pure; no I/O).

Everything that decides whether a trajectory is "correct" lives here so that
data building, filtering and evaluation share one definition.  The heavy
lifting is done by math-verify; this module adds

* a deterministic final-answer extractor (so the expensive math-verify parse
  only ever sees a short answer string, not a whole solution),
* a conservative normaliser used as a memo/cache key, and
* cheap exact fast paths that are provably consistent with math-verify.

``check`` is a function of ``(normalize_answer(gold), normalize_answer(pred))``
only; callers may therefore memoise verdicts on the normalised pair.
"""

from __future__ import annotations

import functools
import logging
import re
import threading
from decimal import Decimal
from enum import Enum
from fractions import Fraction
from itertools import product
from typing import Sequence

import math_verify
import sympy
from math_verify.errors import TimeoutException

logger = logging.getLogger(__name__)


def _math_verify_version() -> str:
    try:
        from importlib.metadata import version

        return version("math-verify")
    except Exception:  # noqa: BLE001 - metadata missing in odd installs
        return "unknown"


#: Bump the "tf-verify-N" part whenever the verdict for some (gold, pred) pair
#: may change (extraction is not covered: only normalize_answer + check).  The
#: installed math-verify version is appended since its upgrades change verdicts
#: too.  Part of on-disk cache keys.  (2: provably_unequal turns a comparison
#: that raised or timed out -- UNKNOWN before -- into INCORRECT.  3: answers
#: over the size caps are UNKNOWN; "0,500"-style decimal commas go to
#: math-verify.)
VERIFIER_VERSION = f"tf-verify-3+math-verify-{_math_verify_version()}"

# Size caps on a (normalised) answer: beyond them the verdict is UNKNOWN with
# the named reason, so no model-written string can make a check run for long
# or use much memory (a real final answer is a few hundred characters at most).
MAX_ANSWER_CHARS = 16_384  # -> "too_long"
MAX_NESTING = 100  # brace/paren/bracket depth -> "too_deep" (recursive parsers)
MAX_NUMBER_DIGITS = 4_000  # one run of digits -> "number_too_long" (Python caps int() at 4,300)

#: Why a verdict is UNKNOWN.  The first group depends on the strings alone and
#: may be cached; the second on the machine (time, memory, crashes) and is
#: never cached, so a busy machine cannot change a dataset.
#: ("error": math-verify/sympy raised on these strings, e.g. 1/0.)
STABLE_UNKNOWN_REASONS = (
    "no_reference", "reference_unparsed", "prediction_unparsed", "too_long", "too_deep", "number_too_long", "error",
)
LOAD_UNKNOWN_REASONS = ("timeout", "hard_timeout", "reference_timed_out", "worker_crash", "out_of_memory")


class Verdict(str, Enum):
    """Outcome of comparing a prediction with a reference answer."""

    CORRECT = "correct"
    INCORRECT = "incorrect"
    UNKNOWN = "unknown"  # could not decide (gold unparseable, error, timeout)


# --------------------------------------------------------------------------
# extraction
# --------------------------------------------------------------------------

_BOX_RE = re.compile(r"\\(?:boxed|fbox)(?![A-Za-z])")


def _match_brace(text: str, open_idx: int) -> int | None:
    """Index of the ``}`` closing the ``{`` at ``open_idx`` (``\\{``/``\\}`` are
    escaped braces and do not count); None when unbalanced (truncated output)."""
    depth = 0
    i = open_idx
    n = len(text)
    while i < n:
        c = text[i]
        if c == "\\":
            i += 2
            continue
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    return None


def _extract_boxed(text: str) -> str | None:
    """Content of the last ``\\boxed``/``\\fbox``; None if it is unbalanced.

    Only the last box counts: an earlier box is usually an intermediate result,
    so a truncated final box is not silently replaced by it.
    """
    last = None
    for last in _BOX_RE.finditer(text):
        pass
    if last is None:
        return None
    i = last.end()
    rest = text[i:]
    stripped = rest.lstrip()
    if stripped.startswith("{"):
        start = i + (len(rest) - len(stripped))
        end = _match_brace(text, start)
        if end is None:
            return None
        return text[start + 1 : end]
    if not rest[:1].isspace():
        return None  # e.g. "\boxed" at the very end
    # "\boxed 5$." : one whitespace-delimited token, stop at math delimiters.
    m = re.match(r"\s*([^\s$]+)", rest)
    if not m:
        return None
    tok = m.group(1)
    tok = re.split(r"\\\)|\\\]", tok)[0]
    return tok.rstrip(".")


# A later phrase on the same line is still found (the last one wins).
_PHRASE_RE = re.compile(
    r"(?:\b(?:final\s+)?answer\s*(?:is\b|:)|####)[ \t]*:?[ \t]*",
    re.IGNORECASE,
)


def _first_math_or_sentence(s: str) -> str:
    """Answer text after an answer phrase: the first math span if the phrase is
    followed by one, else the sentence up to ``. `` / end of line."""
    s = s.strip().lstrip("*").strip()  # "**Answer:** 5" markdown
    for open_, close in (("$$", "$$"), ("$", "$"), ("\\(", "\\)"), ("\\[", "\\]")):
        if s.startswith(open_):
            end = s.find(close, len(open_))
            if end != -1:
                return s[len(open_) : end]
            return s[len(open_) :]
    m = re.search(r"\.(?:\s|$)", s)
    if m:
        s = s[: m.start()]
    return s


def _extract_phrase(text: str) -> str | None:
    last = None
    for last in _PHRASE_RE.finditer(text):
        pass
    if last is None:
        return None
    # The rest of the line is cut here, once, not captured by the regex: a
    # capture at every match is quadratic on a long line repeating "answer:".
    end = text.find("\n", last.end())
    ans = _first_math_or_sentence(text[last.end() : len(text) if end == -1 else end]).strip()
    ans = ans.rstrip("*").strip()
    if ans.endswith("."):
        ans = ans[:-1]
    return ans.strip().strip("$").strip()


_NUMBER_RE = re.compile(r"-?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|-?\.\d+")


def _extract_last_number(text: str) -> str | None:
    last = None
    for last in _NUMBER_RE.finditer(text):
        pass
    return None if last is None else last.group(0).replace(",", "")


_STRATEGIES = {
    "boxed": _extract_boxed,
    "answer_phrase": _extract_phrase,
    "last_number": _extract_last_number,
}


def extract_answer(
    text: str, strategies: Sequence[str] = ("boxed", "answer_phrase")
) -> str | None:
    """Final answer of a model output, trying ``strategies`` in order.

    ``boxed``: last ``\\boxed{..}``/``\\boxed ..``/``\\fbox{..}`` (nested braces
    matched); ``answer_phrase``: last "final answer is X"/"answer is X"/
    "Answer: X"/"#### X"; ``last_number``: last number (commas dropped).
    Returns the stripped answer, or None when no strategy yields a non-empty one.
    """
    if not text:
        return None
    for name in strategies:
        try:
            fn = _STRATEGIES[name]
        except KeyError:
            raise ValueError(f"unknown extraction strategy {name!r}") from None
        ans = fn(text)
        if ans is not None:
            ans = ans.strip()
            if ans:
                return ans
    return None


# --------------------------------------------------------------------------
# normalisation
# --------------------------------------------------------------------------

# Escaped backslash pairs are matched first so "\\ " (line break + space) is
# not mistaken for the "\ " spacing command.
_SPACING_RE = re.compile(r"(\\\\)|\\([!,;: ])")
_CMD_DROP_RE = re.compile(
    r"\\(?:left|right)\.|\\(?:left|right|displaystyle)(?![A-Za-z])"
)
_FRAC_RE = re.compile(r"\\[dt]frac(?![A-Za-z])")
# math-verify reads \varnothing as a plain symbol; it is the empty set.
_EMPTYSET_RE = re.compile(r"\\varnothing(?![A-Za-z])")
_TEXT_WRAP_RE = re.compile(r"^\\(?:text|textbf)\s*\{")


def _spacing_sub(m: re.Match) -> str:
    """Drop LaTeX spacing; keep a blank before a letter so "\\alpha\\,b" does
    not become the different command "\\alphab"."""
    if m.group(1):
        return m.group(1)
    nxt = m.string[m.end() : m.end() + 1]
    return " " if nxt.isalpha() else ""


def _strip_delims(s: str) -> str:
    """Peel surrounding ``$``/``\\(..\\)``/``\\[..\\]`` and whitespace, layer by
    layer.  Works on a window ``s[i:j]`` with a running ``$`` count, so each
    layer costs O(1) and a long run of ``$`` is linear, not quadratic."""
    i, j = 0, len(s)
    dollars = s.count("$")
    changed = True
    while changed:
        changed = False
        while i < j and s[i].isspace():
            i += 1
        while j > i and s[j - 1].isspace():
            j -= 1
        for open_, close in (("$", "$"), ("\\(", "\\)"), ("\\[", "\\]")):
            if j - i >= len(open_) + len(close) and s.startswith(open_, i, j) and s.endswith(close, i, j):
                i, j = i + len(open_), j - len(close)
                dollars -= 2 if open_ == "$" else 0
                changed = True
        # lone leading/trailing "$" left over from sloppy extraction
        if s.startswith("$", i, j) and not s.startswith("$$", i, j) and dollars == 1:
            i, dollars, changed = i + 1, 0, True
        if s.endswith("$", i, j) and not s.endswith("\\$", i, j) and dollars == 1:
            j, dollars, changed = j - 1, 0, True
    return s[i:j]


def _unwrap_text(s: str) -> str:
    """``\\text{X}`` -> ``X`` only when that single group spans the answer."""
    m = _TEXT_WRAP_RE.match(s)
    if not m:
        return s
    end = _match_brace(s, m.end() - 1)
    if end != len(s) - 1:
        return s
    return s[m.end() : end]


def _normalize_once(s: str) -> str:
    s = _strip_delims(s).replace("\u2212", "-")  # Unicode minus sign
    s = _SPACING_RE.sub(_spacing_sub, s)
    s = _CMD_DROP_RE.sub("", s)
    s = _FRAC_RE.sub(r"\\frac", s)
    s = _EMPTYSET_RE.sub(r"\\emptyset", s)
    s = re.sub(r"\s+", " ", s).strip()
    s = _unwrap_text(s).strip()
    if s.endswith(".") and not s.endswith("..") and not s.endswith("\\."):
        s = s[:-1].rstrip()
    return s


def normalize_answer(ans: str) -> str:
    """Conservative canonical form of an answer (memo key, cheap grouping).

    Only rewrites that cannot change the mathematical meaning: surrounding
    ``$``/``\\(..\\)``, Unicode minus, ``\\left``/``\\right``, thin spaces, ``\\displaystyle``,
    ``\\dfrac``/``\\tfrac``, ``\\varnothing``, a ``\\text{..}`` wrapping the whole answer, a trailing
    period, runs of whitespace.  Applied to a fixed point so it is idempotent.
    Linear in the length; an answer over ``MAX_ANSWER_CHARS`` is returned as is.
    """
    if ans is None:
        return ""
    s = str(ans)
    if len(s) > MAX_ANSWER_CHARS:
        return s  # judged "too_long" as it is; no need to spend time on it
    for _ in range(8):
        t = _normalize_once(s)
        if t == s:
            break
        s = t
    return s


# --------------------------------------------------------------------------
# checking
# --------------------------------------------------------------------------

# Plain decimal numbers, optionally with 3-digit thousands groups, which is
# exactly how math-verify reads "1,000" (while "1,5" is the set {1, 5}).  A
# first group starting with 0 ("0,500", "01,500") is a decimal comma to
# math-verify (0.5, 1.5), so such strings are left to it.
_PLAIN_NUM_RE = re.compile(r"^-?(?:[1-9]\d{0,2}(?:,\d{3})+|\d+)(?:\.\d+)?$")
_WORDS_RE = re.compile(r"^[A-Za-z]+(?: [A-Za-z]+)*$")


def _as_latex(norm: str) -> str:
    """math-verify input for a normalised answer.

    Plain words were usually a ``\\text{..}`` stripped by normalisation; giving
    them back the wrapper makes math-verify read one symbol ("Monday") rather
    than a product of letters (and "e" as Euler's number).
    """
    if len(norm) > 1 and _WORDS_RE.match(norm):
        return "$\\text{" + norm + "}$"
    return "$" + norm + "$"


@functools.lru_cache(maxsize=16384)  # junk answers can parse to large trees
def _parse_cached(latex: str, timeout_s: int | None) -> tuple[str, tuple]:
    """("ok", parsed) | ("timeout", ()) | ("error", ()).  Cached because a worker
    sees the same gold for every sample of a problem; failures are cached too
    since re-running a parse that timed out costs the whole timeout again."""
    try:
        res = math_verify.parse(latex, parsing_timeout=timeout_s, raise_on_error=True)
    except TimeoutException:
        return "timeout", ()
    except Exception:  # noqa: BLE001 - math-verify/sympy raise anything
        logger.debug("math-verify parse error for %r", latex, exc_info=True)
        return "error", ()
    return "ok", tuple(res)


_FRACTION_RE = re.compile(r"^(-?)(?:\\frac\{(\d+)\}\{(\d+)\}|(\d+)/(\d+))$")


def _exact_number(s: str) -> tuple[Fraction, bool] | None:
    """(value, is_decimal) for a plain integer / decimal / integer fraction
    (``-3``, ``1,000``, ``2.50``, ``3/4``, ``-\\frac{3}{4}``); None otherwise."""
    # Through Decimal: exact, and free of Python's limit on int(str) digits.
    if _PLAIN_NUM_RE.match(s):
        return Fraction(Decimal(s.replace(",", ""))), "." in s
    m = _FRACTION_RE.match(s)
    if m:
        num, den = (m.group(2), m.group(3)) if m.group(2) is not None else (m.group(4), m.group(5))
        if Decimal(den) == 0:
            return None  # math-verify: zoo, not a number
        val = Fraction(Decimal(num)) / Fraction(Decimal(den))
        return (-val if m.group(1) else val), False
    return None


def _plain_number_verdict(g: str, p: str) -> Verdict | None:
    """Exact verdict for two plain numbers when it is certain, else None.

    math-verify turns these strings into sympy Integer/Rational (or Float for
    some decimals) and can only call them equal via str equality, ``==``,
    rounding both to 6 decimals when a Float is involved, or
    ``simplify(a-b) == 0``.  Hence: equal as exact rationals -> CORRECT; unequal
    with no decimal involved (Integer/Rational, compared exactly) -> INCORRECT;
    unequal decimals further apart than any 6-place rounding or 15-digit float
    error could bridge -> INCORRECT; anything closer is left to math-verify.
    """
    a = _exact_number(g)
    if a is None:
        return None
    b = _exact_number(p)
    if b is None:
        return None
    (va, dec_a), (vb, dec_b) = a, b
    if va == vb:
        return Verdict.CORRECT
    if not (dec_a or dec_b):
        return Verdict.INCORRECT
    if abs(va - vb) > Fraction(1, 10**4) * max(1, abs(va), abs(vb)):
        return Verdict.INCORRECT
    return None


_DIGIT_RUN_RE = re.compile(rf"\d{{{MAX_NUMBER_DIGITS + 1},}}")
_OPEN, _CLOSE = frozenset("{(["), frozenset("})]")


def answer_limit(norm: str) -> str | None:
    """The size cap a normalised answer breaks ("too_long", "too_deep",
    "number_too_long"), or None.  Linear; run before anything else looks at
    the string, so parsing and number conversion only ever see bounded input."""
    if len(norm) > MAX_ANSWER_CHARS:
        return "too_long"
    if sum(norm.count(c) for c in _OPEN) > MAX_NESTING:  # else it cannot nest that deep
        depth = 0
        for c in norm:
            if c in _OPEN:
                depth += 1
                if depth > MAX_NESTING:
                    return "too_deep"
            elif c in _CLOSE:
                depth -= 1
    if _DIGIT_RUN_RE.search(norm):
        return "number_too_long"
    return None


def fast_decision(gold_norm: str, pred_norm: str) -> tuple[Verdict, str | None] | None:
    """(verdict, unknown reason) from the exact, cheap part of ``check`` on
    already-normalised strings; None when math-verify is needed.  Never raises."""
    try:
        if not gold_norm:
            return Verdict.UNKNOWN, "no_reference"
        for s in (gold_norm, pred_norm):
            reason = answer_limit(s)
            if reason is not None:
                return Verdict.UNKNOWN, reason
        if not pred_norm:
            return Verdict.INCORRECT, None
        if gold_norm == pred_norm:
            return Verdict.CORRECT, None
        v = _plain_number_verdict(gold_norm, pred_norm)
        return None if v is None else (v, None)
    except Exception:  # noqa: BLE001 - a model-written string must never crash a run
        logger.debug("fast path failed on %r / %r", gold_norm[:200], pred_norm[:200], exc_info=True)
        return Verdict.UNKNOWN, "error"


def fast_verdict(gold_norm: str, pred_norm: str) -> Verdict | None:
    """The exact, cheap part of ``check`` on already-normalised strings; None
    when math-verify is needed.  Lets a caller settle most pairs in-process."""
    decided = fast_decision(gold_norm, pred_norm)
    return None if decided is None else decided[0]


# --------------------------------------------------------------------------
# sound refutation of "number vs symbolic junk" (skips sympy's simplify)
# --------------------------------------------------------------------------


class _GiveUp(Exception):
    """The tree is outside what ``_value_at`` can evaluate exactly."""


# Values the sampled symbols may take: assumptions a real, non-integer,
# positive rational satisfies.  latex2sympy creates ``Symbol(.., real=True)``.
_SAMPLE_OK = frozenset(sympy.Symbol("x", real=True).assumptions0.items())
_MAX_EXP = 64
_MAX_BITS = 4096
_MAX_NODES = 2000


def _value_at(expr, point: dict, budget: list) -> Fraction:
    """Exact value of a tree of Add/Mul/Pow(integer exponent)/rational
    numbers/symbols in ``point`` (symbols, and E or pi, to Fractions).
    Raises _GiveUp for anything else, division by zero or huge numbers."""
    budget[0] -= 1
    if budget[0] < 0:
        raise _GiveUp
    if isinstance(expr, sympy.Rational):  # Integer, One, Half, ... (not Float)
        return Fraction(int(expr.p), int(expr.q))
    if expr in point:
        return point[expr]
    if isinstance(expr, sympy.Add):
        val = Fraction(0)
        for a in expr.args:  # size checked per term: a long sum of huge fractions must not run for seconds
            val = _bounded(val + _value_at(a, point, budget))
    elif isinstance(expr, sympy.Mul):
        val = Fraction(1)
        for a in expr.args:
            val = _bounded(val * _value_at(a, point, budget))
    elif isinstance(expr, sympy.Pow) and isinstance(expr.exp, sympy.Integer):
        k = int(expr.exp)
        if abs(k) > _MAX_EXP:
            raise _GiveUp
        base = _value_at(expr.base, point, budget)
        if base == 0 and k < 0:
            raise _GiveUp
        val = base**k
    else:
        raise _GiveUp
    return _bounded(val)


def _bounded(val: Fraction) -> Fraction:
    if max(val.numerator.bit_length(), val.denominator.bit_length()) > _MAX_BITS:
        raise _GiveUp
    return val


def _differs_from(q: Fraction, expr) -> bool:
    """True only if ``expr`` is provably not identically equal to ``q``.

    ``expr`` must be a rational function (Add/Mul/integer Pow) of symbols with
    rational coefficients and at most one of E, pi.  Those constants are
    treated as variables too: E and pi are each transcendental, so such a
    function equals the constant q on its (dense) real domain only if it is
    q as a formal rational function -- and one exact evaluation at a point
    where it is defined and differs from q proves it is not.  (With both E
    and pi the argument would need their algebraic independence: give up.)
    """
    syms = sorted(expr.free_symbols, key=sympy.default_sort_key)
    if any(not (s.is_Symbol and _SAMPLE_OK.issuperset(s.assumptions0.items())) for s in syms):
        return False
    consts = [c for c in (sympy.E, sympy.pi) if expr.has(c)]
    if len(consts) > 1:
        return False
    variables = syms + consts
    for shift in (0, 1):  # a second point if the first is a pole or a root
        point = {
            v: Fraction(2 * i + 3 + 5 * shift, 2 * i + 2 + 3 * shift)
            for i, v in enumerate(variables)
        }
        try:
            if _value_at(expr, point, [_MAX_NODES]) != q:
                return True
        except (_GiveUp, RecursionError):
            if shift:
                return False
    return False


def provably_unequal(gold, pred) -> bool:
    """True when math-verify's sympy comparison of a parsed rational-number
    ``gold`` with the parsed ``pred`` can only answer False, so the costly
    ``simplify(gold - pred)`` (most of the time spent on prose answers, which
    parse to products and sets of one-letter symbols) can be skipped.

    For a sympy Rational gold (not a Float, not a percentage) and a pred that
    is an Add/Mul/Pow tree, ``sympy_expr_eq`` reduces to a structural ``==``,
    ``doit()`` equality and ``simplify(gold - pred).is_zero``: each needs pred
    to be identically the number gold.  For a FiniteSet pred it compares
    ``{gold}`` with the set: equal sets, or an empty symmetric difference
    (every element equal to gold), or for a 1-element set the element itself.
    So refuting one element suffices.  Relations, tuples, intervals, symbols,
    floats, functions and anything unusual return False (not decided here).
    """
    if not isinstance(gold, sympy.Rational):
        return False
    q = Fraction(int(gold.p), int(gold.q))
    if isinstance(pred, sympy.FiniteSet):
        return any(
            isinstance(e, (sympy.Add, sympy.Mul, sympy.Pow, sympy.Rational)) and _differs_from(q, e)
            for e in pred.args
        )
    if isinstance(pred, (sympy.Add, sympy.Mul, sympy.Pow)):
        return _differs_from(q, pred)
    return False


def check(gold: str, pred: str, timeout_s: int = 5) -> Verdict:
    """Is ``pred`` equivalent to the reference ``gold``?  ``check_reason``
    without the reason."""
    return check_reason(gold, pred, timeout_s)[0]


def check_reason(gold: str, pred: str, timeout_s: int = 5) -> tuple[Verdict, str | None]:
    """(verdict, why it is UNKNOWN or None): is ``pred`` equivalent to ``gold``?

    Exact fast paths first (identical normalised strings, exact numbers), then
    math-verify on the normalised strings, skipping the sympy comparisons that
    ``provably_unequal`` shows can only be False.  Gold with no math-verify parse
    (nothing, or only its raw-string fallback) -> UNKNOWN unless the strings
    match; pred with nothing parseable -> INCORRECT; any math-verify
    exception or (soft, SIGALRM) timeout -> UNKNOWN.  The soft timeout needs
    the main thread; in other threads math-verify runs without one and the
    caller must bound run time itself (``VerifierPool`` does).  Answers over the
    size caps are UNKNOWN before any parsing; any exception is UNKNOWN ("error").
    """
    try:
        g = normalize_answer(gold)
        p = normalize_answer(pred)
        fast = fast_decision(g, p)
        if fast is not None:
            return fast
        return _check_slow(g, p, timeout_s)
    except MemoryError:
        return Verdict.UNKNOWN, "out_of_memory"
    except Exception:  # noqa: BLE001 - math-verify/sympy raise anything
        logger.debug("check failed on %r / %r", str(gold)[:200], str(pred)[:200], exc_info=True)
        return Verdict.UNKNOWN, "error"


def _check_slow(g: str, p: str, timeout_s: int) -> tuple[Verdict, str | None]:
    """math-verify on normalised strings within the size caps."""

    t: int | None = max(1, int(-(-timeout_s // 1))) if timeout_s else None
    if threading.current_thread() is not threading.main_thread():
        t = None  # signal.alarm is main-thread only

    g_status, g_parsed = _parse_cached(_as_latex(g), t)
    if g_status == "timeout":
        return Verdict.UNKNOWN, "timeout"
    if g_status != "ok" or not g_parsed:
        return Verdict.UNKNOWN, "reference_unparsed"
    p_status, p_parsed = _parse_cached(_as_latex(p), t)
    if p_status != "ok":
        return Verdict.UNKNOWN, "timeout" if p_status == "timeout" else "prediction_unparsed"
    if not p_parsed:
        return Verdict.INCORRECT, None

    # Pairwise like math_verify.verify, but a failure on one pair must surface
    # as UNKNOWN instead of the silent False that verify() would return.
    undecided: str | None = None
    for gp, pp in product(g_parsed, p_parsed):
        if provably_unequal(gp, pp):
            continue  # math-verify could only say False here (slowly)
        try:
            if math_verify.verify(gp, pp, timeout_seconds=t, raise_on_error=True):
                return Verdict.CORRECT, None
        except TimeoutException:
            undecided = "timeout"
        except MemoryError:
            undecided = undecided or "out_of_memory"
        except Exception:  # noqa: BLE001
            logger.debug("math-verify error on %r vs %r", g, p, exc_info=True)
            undecided = undecided or "error"
    if undecided:
        return Verdict.UNKNOWN, undecided
    if not any(not isinstance(x, str) for x in g_parsed):
        # Gold is only a raw-string fallback: math-verify could do no more than
        # the string comparison that just failed, so nothing is decided.
        return Verdict.UNKNOWN, "reference_unparsed"
    return Verdict.INCORRECT, None
