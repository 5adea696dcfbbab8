"""Each selector / length / fusion option on a hand-designed verified pool reproduces its reviewed
golden file byte for byte. After an intended change: UPDATE_GOLDEN=1 pytest tests/test_golden.py,
then review the diff of tests/golden/."""

import os
from pathlib import Path

import pytest

from trajfusion.core.build import FusionSettings, fuse_pools
from trajfusion.data.budget import token_counter
from trajfusion.data.verified import to_problem_pools
from trajfusion.io import dumps_line, read_json, read_jsonl

HERE = Path(__file__).resolve().parent
PROMPTS = read_json(HERE.parent / "trajfusion/resources/prompts.json")
CASES = {
    "adaptive-diverse": dict(fusion="adaptive", selector="diverse", length_policy="adaptive", alpha=2.0),
    "adaptive-low_div": dict(fusion="adaptive", selector="low_div", length_policy="adaptive", alpha=2.0),
    "adaptive-random": dict(fusion="adaptive", selector="random", length_policy="adaptive", alpha=2.0),
    "fixed-diverse-kmax2": dict(fusion="adaptive", selector="diverse", length_policy="fixed", k_max=2),
    "none-diverse": dict(fusion="adaptive", selector="diverse", length_policy="none"),
    "rft": dict(fusion="rft"),
    "adaptive-budget": dict(fusion="adaptive", selector="diverse", length_policy="fixed", max_tokens=120),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_golden(name):
    pools = to_problem_pools([row for _, row in read_jsonl(HERE / "fixtures/verified_pool.jsonl")])
    settings = FusionSettings(
        **CASES[name], system_prompt="Please reason step by step, and put your final answer within \\boxed{}.",
        reflections=tuple(PROMPTS["reflections"]), feedback=tuple(PROMPTS["feedback"]), seed=0,
    )
    rows, _ = fuse_pools(pools, settings, token_counter(None))
    produced = "".join(dumps_line(r) for r in rows)
    golden = HERE / "golden" / f"{name}.jsonl"
    if os.environ.get("UPDATE_GOLDEN"):
        golden.write_text(produced)
    assert golden.exists(), f"no golden file {golden.name}; run with UPDATE_GOLDEN=1 and review it"
    assert produced == golden.read_text()
