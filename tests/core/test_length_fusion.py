import math

import pytest

from trajfusion.core.fusion import SEGMENT_KINDS, THINK_CLOSE, THINK_OPEN, lay_out
from trajfusion.core.length import adaptive_k, fixed_k, no_errors
from trajfusion.core.stats import ProblemStats


def stats(n_wrong, n_correct, u):
    return ProblemStats(n_wrong + n_correct, n_correct, n_wrong, 0, u, 0.0, (1,) * u)


@pytest.mark.parametrize(
    "n_wrong,n_correct,u,alpha,k_max,expected",
    [
        (0, 16, 0, 10.0, 4, 0),  # no errors: RFT fallback
        (1, 15, 1, 15.9, 4, 0),  # r*u = 1/16 below 1/alpha
        (1, 15, 1, 16.0, 4, 1),
        (8, 8, 3, 1.0, 4, 1),  # floor(0.5*3)
        (8, 8, 3, 2.0, 4, 3),
        (12, 4, 8, 4.0, 4, 4),  # capped at k_max
        (12, 4, 8, 4.0, 6, 6),
    ],
)
def test_adaptive_k_matches_the_paper_formula(n_wrong, n_correct, u, alpha, k_max, expected):
    s = stats(n_wrong, n_correct, u)
    assert adaptive_k(s, k_max, alpha) == expected == min(k_max, math.floor(alpha * s.error_rate * s.u))


def test_fixed_and_none():
    assert fixed_k(stats(3, 1, 2), 4, 0.0) == 4 and fixed_k(stats(0, 4, 0), 4, 9.0) == 0
    assert no_errors(stats(3, 1, 2), 4, 9.0) == 0


def test_layout_segments_tile_the_text_in_order():
    fused = lay_out(["wrong one\n", " wrong two"], ["Check again.", "Retry."], "right", "Good.", "\\frac{1}{2}")
    assert fused.text.startswith(THINK_OPEN + "wrong one") and THINK_CLOSE in fused.text
    assert fused.text.endswith("The final answer is $\\boxed{\\frac{1}{2}}$.")
    kinds = [s.kind for s in fused.segments]
    assert kinds == ["format", "error", "reflection", "error", "reflection", "correct", "format", "feedback", "answer"]
    assert set(kinds) <= set(SEGMENT_KINDS)
    assert fused.segments[0].start == 0 and fused.segments[-1].end == len(fused.text)
    assert all(a.end == b.start for a, b in zip(fused.segments, fused.segments[1:]))
    assert "".join(text for _, text in fused.pieces()) == fused.text


def test_rft_layout_is_the_same_wrapper_without_errors():
    fused = lay_out([], [], "right", "Good.", "42")
    assert fused.text == THINK_OPEN + "right" + THINK_CLOSE + "Good." + " The final answer is $\\boxed{42}$."
    assert [s.kind for s in fused.segments] == ["format", "correct", "format", "feedback", "answer"]


def test_layout_needs_a_reflection_per_error():
    with pytest.raises(ValueError):
        lay_out(["a"], [], "b", "c", "d")
