import random

import pytest

from tests.helpers import make_pool
from trajfusion.core.records import seeded_rng
from trajfusion.core.select import choose_correct, eligible_errors, ranked_groups, select_diverse, select_low_div, select_random

# groups: 0 has 3 members, 1 has 2, 2 has 1, 3 has 2 (tie with group 1)
SPEC = [
    ("c", "42", None), ("w", "a", 0), ("w", "b", 1), ("w", "a", 0), ("w", "c", 2), ("w", "d", 3),
    ("c", "42", None), ("w", "a", 0), ("w", "b", 1), ("w", "d", 3), ("w", None, None), ("t", "e", 4),
]
SIZES = (3, 2, 1, 2, 1)


def test_eligible_errors_exclude_answerless_and_truncated():
    pool = make_pool("p", SPEC)
    ids = [s.index for s in eligible_errors(pool.samples)]
    assert 10 not in ids and 11 not in ids
    assert 11 in [s.index for s in eligible_errors(pool.samples, use_truncated=True)]


def test_ranked_groups_by_frequency_then_shortest_member():
    groups = ranked_groups(eligible_errors(make_pool("p", SPEC).samples), SIZES)
    assert [g[0].group for g in groups] == [0, 1, 3, 2]  # 1 and 3 tie on size; 1's shortest is shorter
    assert all(g == sorted(g, key=lambda s: len(s.text)) for g in groups)


@pytest.mark.parametrize("k", [0, 1, 2, 3, 4, 9])
def test_diverse_takes_one_shortest_per_group(k):
    errors = eligible_errors(make_pool("p", SPEC).samples)
    chosen = select_diverse(errors, SIZES, k, random.Random(0))
    assert len(chosen) == min(k, 4)
    assert len({s.group for s in chosen}) == len(chosen)
    assert [s.index for s in chosen] == [1, 2, 5, 4][: len(chosen)]


def test_low_div_takes_shortest_of_largest_group():
    errors = eligible_errors(make_pool("p", SPEC).samples)
    assert [s.index for s in select_low_div(errors, SIZES, 2, random.Random(0))] == [1, 3]
    assert len(select_low_div(errors, SIZES, 9, random.Random(0))) == 3


def test_random_is_seeded_and_within_eligible():
    errors = eligible_errors(make_pool("p", SPEC).samples)
    a = select_random(errors, SIZES, 3, seeded_rng(0, "p", "errors"))
    b = select_random(errors, SIZES, 3, seeded_rng(0, "p", "errors"))
    assert [s.index for s in a] == [s.index for s in b] and len(a) == 3
    assert set(s.index for s in a) <= set(s.index for s in errors)


def test_choose_correct():
    pool = make_pool("p", [("w", "1", 0), ("c", "42", None), ("c", "42", None)])
    pool.samples[2].text = "short"
    assert choose_correct(pool.samples, "shortest", random.Random(0)).index == 2
    assert choose_correct(pool.samples, "first", random.Random(0)).index == 1
    assert choose_correct(pool.samples, "random", seeded_rng(1, "p")).index in (1, 2)
    assert choose_correct(make_pool("q", [("w", "1", 0)]).samples, "shortest", random.Random(0)) is None
    with pytest.raises(ValueError, match="supported: shortest, first, random"):
        choose_correct(pool.samples, "longest", random.Random(0))
