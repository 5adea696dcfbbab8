"""The data stage's CPU time in the cost model: samples × the measured CPU time per sample, verification
spread over the array tasks, shown by slurm/pipeline.sh --dry-run."""

import re
import subprocess
from pathlib import Path

import pytest

from tests.helpers import fake_sbatch

from trajfusion.cost_model import estimate, load_assumptions
from trajfusion.pipeline import compose

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("experiment,teacher", [("table1_trajfusion_llama3_8b_100k", "default"), ("table3_trajfusion_32k", "r1_distill_qwen_7b")])
def test_data_stage_cpu_hours_by_hand(experiment, teacher):
    assumptions = load_assumptions()
    rate = assumptions["data"]["cpu_ms_per_sample"][teacher]
    cost = estimate(experiment, compose("train", [f"experiment={experiment}"])[0], assumptions)
    assert cost.samples == 1_600_000
    assert cost.data_hours()["cpu"] == pytest.approx(1_600_000 * (rate["verify"] + rate["fuse"]) / 1000 / 3600)
    assert cost.data_hours(16)["wall"] == pytest.approx(1_600_000 * (rate["verify"] / 16 + rate["fuse"]) / 1000 / 3600)
    assert cost.data_hours(16)["wall"] < cost.data_hours(1)["wall"] == pytest.approx(cost.data_hours()["cpu"])


def test_dry_run_prints_the_data_stage_time(tmp_path):
    _, env = fake_sbatch(tmp_path, ";cluster")
    out = subprocess.run([str(ROOT / "slurm/pipeline.sh"), "--dry-run", "--shards", "8", "experiment=table3_rft_32k"],
                         env=env, capture_output=True, text=True, check=True).stdout
    cost = estimate("table3_rft_32k", compose("train", ["experiment=table3_rft_32k"])[0], load_assumptions()).data_hours(8)
    found = re.search(r"data stage .*: ([\d,.]+) CPU-h; about ([\d,.]+) h wall .* 8 array tasks", out)
    assert found and found.groups() == (f"{cost['cpu']:,.2f}", f"{cost['wall']:,.2f}")
