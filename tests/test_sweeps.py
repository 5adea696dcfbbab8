"""Every W&B sweep parses, runs train.py the way the brief's agents do, and every grid point composes."""

import itertools
from pathlib import Path

import pytest
import yaml

from trajfusion.pipeline import compose
from trajfusion.training.schema import to_train_config

SWEEPS = sorted((Path(__file__).resolve().parent.parent / "sweeps").glob("*.yaml"))


def test_the_three_sweeps_exist():
    assert [p.stem for p in SWEEPS] == ["alpha", "k_max", "selector"]


@pytest.mark.parametrize("path", SWEEPS, ids=lambda p: p.stem)
def test_sweep_parses_and_every_point_composes(path):
    sweep = yaml.safe_load(path.read_text())
    assert sweep["program"] == "train.py" and sweep["method"] == "grid"
    assert sweep["command"] == ["${env}", "bash", "slurm/sweep_point.sh", "${program}", "${args_no_hyphens}"]
    params = sweep["parameters"]
    keys = list(params)
    grids = [params[k]["values"] if "values" in params[k] else [params[k]["value"]] for k in keys]
    swept = [k for k in keys if "values" in params[k]]
    assert swept, "a sweep must vary something"
    run_names = set()
    for point in itertools.product(*grids):
        cfg = to_train_config(compose("train", [f"{k}={v}" for k, v in zip(keys, point)])[0])
        run_names.add(cfg.run_name)
        for key, value in zip(keys, point):
            if key == "experiment":
                assert cfg.wandb.group == value
                continue
            node = cfg
            for part in key.split("."):
                node = getattr(node, part)
            assert (node.name if key == "selector" else node) == value
    assert len(run_names) == len(list(itertools.product(*grids))), "two sweep points would share a run directory"
