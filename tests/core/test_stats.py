import math

from tests.helpers import make_pool
from trajfusion.core.stats import group_answers, problem_stats


def test_group_answers_is_transitive_and_numbered_by_first_appearance():
    eq = {("1/2", "0.5"), ("0.5", "\\frac12")}
    groups = group_answers(["3", "1/2", "0.5", "\\frac12", "3", "7"], lambda a, b: (a, b) in eq or (b, a) in eq)
    assert groups == [0, 1, 1, 1, 0, 2]


def test_group_answers_asks_each_unordered_pair_once():
    asked = []
    group_answers(["a", "b", "c", "a"], lambda a, b: asked.append((a, b)) or False)
    assert sorted(asked) == [("a", "b"), ("a", "c"), ("b", "c")]


def test_problem_stats_counts_and_entropy():
    pool = make_pool("p", [("c", "42", None), ("w", "1", 0), ("w", "1", 0), ("w", "2", 1), ("u", "9", None), ("w", None, None)])
    s = problem_stats(pool.samples)
    assert (s.K, s.n_correct, s.n_wrong, s.n_unknown, s.u) == (6, 1, 4, 1, 2)
    assert s.error_rate == 4 / 5  # unknown is left out of r
    assert s.group_sizes == (2, 1)
    assert math.isclose(s.entropy_bits, -(2 / 3) * math.log2(2 / 3) - (1 / 3) * math.log2(1 / 3), rel_tol=1e-9)


def test_problem_stats_all_correct():
    s = problem_stats(make_pool("p", [("c", "42", None)] * 3).samples)
    assert (s.error_rate, s.u, s.entropy_bits) == (0.0, 0, 0.0)
