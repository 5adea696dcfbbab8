"""Every option of every group composes and validates; typos and bad values fail clearly."""

from pathlib import Path

import pytest
from hydra.errors import ConfigCompositionException

CONF = Path(__file__).resolve().parent.parent / "conf"
GROUPS = ["data", "teacher", "selector", "length_policy", "fusion"]


def options(group):
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


SAMPLED = ["teacher=smollm2_135m"]
EXTRA = {
    ("data", "custom"): ["data.path=data/problems/gsm8k_train.jsonl.gz", *SAMPLED],
    ("data", "gsm8k_train"): SAMPLED, ("data", "math_train"): SAMPLED, ("data", "deepmath"): SAMPLED,
}


@pytest.mark.parametrize("group,option", [(g, o) for g in GROUPS for o in options(g)])
def test_every_option_composes_and_validates(compose, group, option):
    cfg = compose(f"{group}={option}", *EXTRA.get((group, option), []))
    node = getattr(cfg, group)
    assert node.name == option, "a group option's file name must equal its name field"


def test_defaults_are_the_paper_method(compose):
    cfg = compose()
    assert (cfg.selector.name, cfg.length_policy.name, cfg.fusion.name, cfg.length_policy.k_max) == ("diverse", "adaptive", "adaptive", 4)
    assert cfg.length_policy.alpha == "auto" and cfg.length_policy.target_errors is None
    assert not hasattr(cfg.teacher, "calibrated_alpha")  # α belongs to the pool, not the teacher


def test_an_explicit_alpha_is_a_number(compose):
    assert compose("length_policy.alpha=2.5").length_policy.alpha == 2.5
    assert compose("length_policy.alpha=2").length_policy.alpha == 2.0


def test_unknown_group_option_lists_the_available_ones(compose):
    with pytest.raises(ConfigCompositionException, match="diverse"):
        compose("selector=best_of")


def test_typo_in_a_key_fails_at_compose(compose):
    with pytest.raises(ConfigCompositionException) as info:
        compose("length_policy.kmax=2")
    assert "kmax" in str(info.value.__cause__ or info.value)


def test_wrong_type_fails_at_compose(compose):
    with pytest.raises(ConfigCompositionException):
        compose("length_policy.k_max=four")


@pytest.mark.parametrize(
    "override,message",
    [
        ("selector.name=best", "selector.name: unknown option 'best'; supported: diverse, low_div, random"),
        ("selector.correct=longest", "supported: first, random, shortest"),
        ("length_policy.name=auto", "supported: adaptive, fixed, none"),
        ("fusion.name=lemma", "supported: adaptive, rft"),
        ("length_policy.k_max=-1", "length_policy.k_max: must be >= 0"),
        ("length_policy.alpha=often", "length_policy.alpha: must be 'auto' or a number >= 0, got 'often'"),
        ("length_policy.alpha=-1", "length_policy.alpha: must be 'auto' or a number >= 0"),
        ("length_policy.target_errors=0", "length_policy.target_errors: must be positive"),
        ("teacher.top_p=1.5", "top_p must be in"),
        ("verifier.strategies=[boxed,guess]", "verifier.strategies: unknown option 'guess'"),
    ],
)
def test_bad_values_fail_naming_the_field(compose, override, message):
    with pytest.raises(ValueError) as info:
        compose(override)
    assert message in str(info.value)


def test_custom_data_needs_a_path(compose):
    with pytest.raises(Exception, match="data.path"):
        compose("data=custom", *SAMPLED)
