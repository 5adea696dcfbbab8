"""Table tests for answer extraction, normalisation and checking.

Expected verdicts record what math-verify 0.9.0 (+ our fast paths) actually
does; surprising-but-accepted behaviour is commented where it is asserted.
"""

import random

import pytest

from trajfusion.core.verify import (
    VERIFIER_VERSION,
    Verdict,
    check,
    extract_answer,
    fast_verdict,
    normalize_answer,
    provably_unequal,
)

C, I, U = Verdict.CORRECT, Verdict.INCORRECT, Verdict.UNKNOWN


# --------------------------------------------------------------------------
# extract_answer
# --------------------------------------------------------------------------

@pytest.mark.parametrize(
    "text, expected",
    [
        (r"so $\boxed{5}$.", "5"),
        (r"nested \boxed{\frac{1}{\sqrt{2}}} ok", r"\frac{1}{\sqrt{2}}"),
        (r"escaped braces \boxed{\{1, 2\}}", r"\{1, 2\}"),
        (r"first \boxed{3} then \boxed{4}", "4"),  # last box wins
        (r"$\boxed 5$.", "5"),
        (r"\boxed 12.", "12"),
        (r"\fbox{7}", "7"),
        (r"\boxed{ 42 }", "42"),
        (r"\boxed{}", None),  # empty box -> nothing
        (r"\boxed{\frac{1}{2}", None),  # truncated box is not replaced by anything
        ("The final answer is $12$.", "12"),
        ("Thus the answer is 7.", "7"),
        ("Answer: \\(x+1\\)", "x+1"),
        ("**Answer:** 5", "5"),
        ("The answer is: $\\frac{3}{4}$", "\\frac{3}{4}"),
        ("The answer is 3. Then the answer is 4.", "4"),  # last phrase
        ("Natalia sold 72 clips.\n#### 72", "72"),
        ("#### 1,234", "1,234"),
        (r"\boxed{9} and later the answer is 8", "9"),  # boxed is tried first
        ("no final answer in here", None),
        ("", None),
    ],
)
def test_extract_answer(text, expected):
    assert extract_answer(text) == expected


@pytest.mark.parametrize(
    "text, expected",
    [
        ("we get 1,234 apples and then 5.5 kg", "5.5"),
        ("total is 1,234,567", "1234567"),
        ("down to -3.", "-3"),
        ("nothing numeric", None),
    ],
)
def test_extract_last_number(text, expected):
    assert extract_answer(text, strategies=("last_number",)) == expected


def test_extract_strategy_order_and_unknown():
    text = "The answer is 5 after 7 steps"
    assert extract_answer(text, ("last_number", "answer_phrase")) == "7"
    with pytest.raises(ValueError):
        extract_answer(text, ("nope",))


# --------------------------------------------------------------------------
# normalize_answer
# --------------------------------------------------------------------------

@pytest.mark.parametrize(
    "raw, expected",
    [
        (r"  $\dfrac{1}{2}$ ", r"\frac{1}{2}"),
        (r"\tfrac12", r"\frac12"),
        (r"\left( 1, 2 \right)", "( 1, 2 )"),
        (r"1,\!000", "1,000"),
        (r"1\,000", "1000"),
        (r"\alpha\,b", r"\alpha b"),  # never glue a command to a letter
        (r"\text{Monday}", "Monday"),
        (r"\text{a} + \text{b}", r"\text{a} + \text{b}"),  # not one wrapper
        (r"\displaystyle x^2", "x^2"),
        ("5.", "5"),
        ("1, 2, ...", "1, 2, ..."),
        (r"\leftarrow", r"\leftarrow"),
        (r"\(3\)", "3"),
        ("\u2212128", "-128"),
        (r"\varnothing", r"\emptyset"),
        ("a  +   b", "a + b"),
        (r"\\ x", r"\\ x"),  # a LaTeX line break is not the "\ " space
    ],
)
def test_normalize_answer(raw, expected):
    out = normalize_answer(raw)
    assert out == expected
    assert normalize_answer(out) == out  # idempotent: safe as a memo key


def test_normalize_keeps_distinct_answers_distinct():
    # spaces after commas are meaningful to math-verify ("1, 000" is a set)
    assert normalize_answer("1, 000") != normalize_answer("1,000")
    assert normalize_answer("-5") != normalize_answer("5")
    assert normalize_answer("[0,1)") != normalize_answer("(0,1)")


# --------------------------------------------------------------------------
# check
# --------------------------------------------------------------------------

CHECK_TABLE = [
    # equivalent numeric forms
    (r"\frac{1}{2}", "0.5", C),
    (r"\frac{1}{2}", "1/2", C),
    (r"\frac{1}{2}", r"\dfrac12", C),
    (r"\frac{1}{2}", r"\tfrac{1}{2}", C),
    (r"-\frac{3}{4}", "-0.75", C),
    ("10", "10.0", C),
    ("1,000", "1000", C),
    ("-128", "\u2212128", C),
    (r"2\sqrt{2}", r"\sqrt{8}", C),
    (r"\sqrt{2}/2", r"\frac{1}{\sqrt{2}}", C),
    (r"\frac{\sqrt{3}}{2}", "0.8660254", C),
    # math-verify rounds to 6 decimals when a float is involved
    (r"\frac{1}{3}", "0.333333", C),
    (r"\frac{1}{3}", "0.333", I),
    (r"\pi", "3.14159265", C),
    (r"\pi", "3.14", I),
    # "%" is treated as decoration of the number, not as 1/100 -- both ways.
    # Acceptable: MATH-style golds write "50\%" and models answer "50".
    (r"50\%", "50", C),
    ("50", r"50\%", C),
    (r"50\%", "0.5", I),
    # units / decorations are dropped
    (r"5 \text{ cm}", "5", C),
    ("5", r"5 \text{ cm}", C),
    ("5", r"5\text{ cm}^2", C),  # even squared units: math-verify strips them
    (r"5\text{ cm}", r"6\text{ cm}", I),
    (r"90^\circ", "90", C),
    ("\\$18.90", "18.9", C),
    # sets, intervals, tuples
    (r"\{1,2\}", r"\{2,1\}", C),
    (r"\{1,2\}", r"\{1,3\}", I),
    (r"\{1,2\}", "1,2", C),
    ("[0,1)", "[0,1)", C),
    ("[0,1)", "(0,1)", I),
    ("[0,1)", "[0,1]", I),
    ("(0,1)", r"\left(0,1\right)", C),
    ("(1,2)", "(1, 2)", C),
    ("(1,2)", "(2,1)", I),
    ("(1,2,3)", "(1,3,2)", I),
    (r"\begin{pmatrix}1\\2\end{pmatrix}", r"\begin{pmatrix}1\\2\end{pmatrix}", C),
    (r"\begin{pmatrix}1\\2\end{pmatrix}", r"\begin{pmatrix}2\\1\end{pmatrix}", I),
    (r"\emptyset", r"\varnothing", C),  # fixed by normalisation (math-verify: symbol)
    # expressions, equations
    ("x^2+1", "1+x^2", C),
    ("x^2+1", "x^2-1", I),
    ("x=2", "2", C),
    ("2", "x=2", C),
    ("2", "y=3", I),
    ("y=2x+1", "2x+1", C),
    # text answers
    (r"\text{Monday}", "Monday", C),
    (r"\text{Monday}", "Tuesday", I),
    (r"\text{(A)}", "A", C),
    (r"\text{(A)}", "(B)", I),
    # wrong answers
    ("12", "13", I),
    ("-12", "12", I),
    ("1,5", "15", I),  # "1,5" is the set {1, 5} for math-verify
    ("5", "five", I),
    ("7", "The answer cannot be determined", I),
    # LaTeX has no e-notation: "1e3" is 1*e*3 for math-verify
    ("1000", "1e3", I),
    # undecidable gold / empty pred
    ("", "1", U),
    ("!!!", "5", U),  # only a raw-string fallback, no math
    (r"\frac{", "1", U),
    (r"\frac{1}{0}", "5", U),  # zoo: math-verify raises while comparing
    ("5", "", I),
    ("5", r"\frac{", I),
]


@pytest.mark.parametrize("gold, pred, expected", CHECK_TABLE)
def test_check_table(gold, pred, expected):
    assert check(gold, pred) is expected


def test_check_is_function_of_normalised_pair():
    for gold, pred, expected in CHECK_TABLE:
        assert check(normalize_answer(gold), normalize_answer(pred)) is expected


def test_fast_path_agrees_with_math_verify():
    """The in-process number rules must never disagree with math-verify."""
    import logging

    import math_verify

    logging.getLogger("math_verify").setLevel(logging.ERROR)
    rng = random.Random(0)

    def rnd():
        k = rng.randint(0, 4)
        if k == 0:
            return str(rng.randint(-20, 20))
        if k == 1:
            return f"{rng.randint(-20, 20)}/{rng.randint(1, 9)}"
        if k == 2:
            return f"\\frac{{{rng.randint(0, 20)}}}{{{rng.randint(1, 9)}}}"
        if k == 3:
            return f"{rng.uniform(-20, 20):.{rng.randint(1, 7)}f}"
        return rng.choice(["0.5", "1/2", "3.0000001", "0.333333", "1/3", "1,000", "1000"])

    def rnd_comma():
        """Decimal commas ("0,500" is 0.5 to math-verify), thousands separators, "{,}"."""
        k = rng.randint(0, 3)
        if k == 0:
            return rng.choice(["500", "0,500", "0.5", "12", "0,012", "0.012", "01,500", "1.5", "1500", "0,000", "0"])
        if k == 1:
            groups = [str(rng.randint(1, 999))] + [f"{rng.randint(0, 999):03d}" for _ in range(rng.randint(1, 3))]
            sep = rng.choice([",", "{,}"])
            tail = rng.choice(["", f".{rng.randint(0, 99)}"])
            return rng.choice(["", "-"]) + sep.join(groups) + tail
        if k == 2:
            return f"{rng.randint(0, 9)},{rng.randint(0, 999):0{rng.randint(1, 3)}d}"
        return str(rng.randint(0, 10**7)) + rng.choice(["", ".0", ".5"])

    decided = 0
    pairs = [(rnd(), rnd()) for _ in range(300)]
    pairs += [(rnd_comma(), rnd_comma()) for _ in range(150)]
    for g, p in pairs:
        v = fast_verdict(normalize_answer(g), normalize_answer(p))
        if v is None:
            continue
        decided += 1
        mv = math_verify.verify(math_verify.parse(f"${g}$"), math_verify.parse(f"${p}$"))
        assert (v is Verdict.CORRECT) == mv, (g, p, v)
    assert decided > 300


@pytest.mark.parametrize("gold, pred, expected", [
    ("500", "0,500", I), ("0.5", "0,500", C), ("12", "0,012", I), ("0.012", "0,012", C),
    ("1500", "1,500", C), ("1.5", "1,500", I), ("1000", "1{,}000", C), ("1500", "01,500", I),
])
def test_decimal_commas_as_math_verify_reads_them(gold, pred, expected):
    assert check(gold, pred) is expected


# (gold, pred, fires): provably_unequal may skip math-verify's sympy comparison
# only where that comparison is False.  Rows with fires=False must stay with
# math-verify: identities, relations, units, %, functions, floats, sets
# holding the gold, both E and pi, huge powers.
REFUTE_TABLE = [
    ("1", r"\frac{x}{x}", False),
    ("0", "a - a", False),
    ("0", r"0 \cdot x", False),
    ("1", "x^{0}", False),
    ("2", "(x+1)^2 - x^2 - 2x - 1 + 2", False),
    ("1", "(x^2-1)/((x-1)(x+1))", False),
    ("1", r"\sin^2 x + \cos^2 x", False),
    ("5", "x = 5", False),
    ("50", r"50\%", False),
    ("5", r"5 \text{ cm}", False),
    ("3", "3.0 x / x", False),
    ("0", r"e - \pi", False),
    ("7", "7, 7", False),
    ("12", "12, x", False),  # a bare symbol is compared by name: not refuted here
    ("4", "2^{2}", False),
    ("6", r"2 \cdot 3", False),
    ("8", r"\sqrt{64}", False),
    ("1", "e^0", False),
    ("-1", r"e^{i\pi}", False),
    ("3", "x^{100}", False),
    ("5", "non-real complex number", True),
    ("-15", "the sum of the integers from -18 to -9, excluding -8", True),
    ("4", "1/(x^2 + 1)", True),
    ("3", "x + 1", True),
    ("2", r"\frac{1}{2}x + y", True),
    ("7", "2^{3}", True),
    ("1", "2e", True),
    ("0", r"\pi x", True),
    ("12", "12, 13", True),
]


@pytest.mark.parametrize("gold, pred, fires", REFUTE_TABLE)
def test_provably_unequal_only_where_math_verify_says_false(gold, pred, fires):
    import logging

    import math_verify

    logging.getLogger("math_verify").setLevel(logging.ERROR)
    g = math_verify.parse(f"${normalize_answer(gold)}$")
    p = math_verify.parse(f"${normalize_answer(pred)}$")
    fired = any(provably_unequal(a, b) for a in g for b in p)
    assert fired is fires
    if fired:
        assert not math_verify.verify(g, p)
        assert check(gold, pred) is I


def test_provably_unequal_gives_up_outside_its_proof():
    import sympy

    x, y = sympy.symbols("x y", real=True)
    k = sympy.Symbol("k", integer=True)
    assert provably_unequal(sympy.Integer(3), x + 1)
    assert provably_unequal(sympy.Rational(1, 2), x * y)
    # symbols whose assumptions a sample point might violate
    assert not provably_unequal(sympy.Integer(1), k + 1)
    assert not provably_unequal(sympy.Integer(1), sympy.Symbol("n", positive=True) + 1)
    # gold not an exact rational; pred a relation, symbol, function or float
    assert not provably_unequal(sympy.Float(3.0), x + 1)
    assert not provably_unequal(sympy.Integer(3), sympy.Eq(x, 1))
    assert not provably_unequal(sympy.Integer(3), x)
    assert not provably_unequal(sympy.Integer(3), sympy.sin(x) + 1)
    assert not provably_unequal(sympy.Integer(3), sympy.Float(2.5) * x)
    # both E and pi: would need their algebraic independence
    assert not provably_unequal(sympy.Integer(0), sympy.E * x - sympy.pi * x)
    # poles at both sample points are not evaluated
    assert not provably_unequal(
        sympy.Integer(1), 1 / ((2 * x - 3) * (5 * x - 8))
    )


def test_verdict_is_str_enum_and_version():
    assert Verdict("correct") is C and C == "correct"
    assert isinstance(VERIFIER_VERSION, str) and VERIFIER_VERSION


def test_refutation_gives_up_once_exact_values_grow_too_large():
    """Sizes are bounded per term, so a long sum of huge fractions is abandoned, not summed for seconds."""
    import sympy

    x = sympy.Symbol("x", real=True)
    huge = sympy.Add(*[sympy.Pow(x**64 + k, -40) for k in range(1, 300)])
    assert not provably_unequal(sympy.Integer(1), huge)
    assert provably_unequal(sympy.Integer(1), sympy.Add(*[sympy.Pow(x + k, -2) for k in range(1, 30)]))


def test_size_caps_and_their_boundaries():
    from trajfusion.core.verify import MAX_ANSWER_CHARS, MAX_NESTING, MAX_NUMBER_DIGITS, answer_limit, check_reason

    assert answer_limit("x" * MAX_ANSWER_CHARS) is None and answer_limit("x" * (MAX_ANSWER_CHARS + 1)) == "too_long"
    assert answer_limit("(" * MAX_NESTING + ")" * MAX_NESTING) is None
    assert answer_limit("{" * (MAX_NESTING + 1) + "}" * (MAX_NESTING + 1)) == "too_deep"
    assert answer_limit("(1)+" * 300) is None  # many brackets, shallow
    assert answer_limit("7" * MAX_NUMBER_DIGITS) is None and answer_limit("7" * (MAX_NUMBER_DIGITS + 1)) == "number_too_long"
    # big numbers under the cap are compared exactly, without int()'s digit limit
    big = "9" * MAX_NUMBER_DIGITS
    assert check_reason(big, big[:-1] + "8") == (I, None)
    assert check_reason(big, big + ".0") == (C, None)
    assert check_reason(f"\\frac{{{big}}}{{3}}", "3" * MAX_NUMBER_DIGITS) == (C, None)
    assert check_reason("", "1") == (U, "no_reference")
