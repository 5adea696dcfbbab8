"""`+key=value` is refused for a key no schema has, like `key=value`; group and free-form additions pass."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from trajfusion.config import BuildDataEntryConfig
from trajfusion.evaluation.schema import EvalConfig
from trajfusion.overrides import check_additions, unknown_additions
from trajfusion.training.schema import TrainConfig

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(
    "schema,override,unknown",
    [
        (BuildDataEntryConfig, "+foo=1", True),
        (BuildDataEntryConfig, "++foo=1", True),
        (BuildDataEntryConfig, "+length_policy.kmax=2", True),
        (BuildDataEntryConfig, "+length_policy.k_max=2", False),
        (BuildDataEntryConfig, "+data.path=x.jsonl", False),
        (BuildDataEntryConfig, "+student.anything=1", False),  # build_data ignores the student node
        (BuildDataEntryConfig, "+experiment=table2_kmax4", False),  # a config group choice
        (BuildDataEntryConfig, "+hydra.job.env_set.X=1", False),
        (TrainConfig, "+training.max_step=3", True),
        (TrainConfig, "+student.tiny.num_hidden_layers=1", False),  # free-form LlamaConfig overrides
        (TrainConfig, "+deepspeed.config.zero_optimization.stage=2", False),
        (TrainConfig, "+wandb.tags=[a]", False),
        (EvalConfig, "+benchmark.limt=4", True),
        (EvalConfig, "+backend.data_parallel_size=2", False),
        (EvalConfig, "foo=1", False),  # not an addition: Hydra itself refuses it
    ],
)
def test_unknown_additions(schema, override, unknown):
    assert unknown_additions([override], schema) == ([override] if unknown else [])


def test_message_names_the_key():
    with pytest.raises(ValueError, match=r"\+foo=1: unknown key 'foo' in train.py's config"):
        check_additions(["student=tiny_random", "+foo=1"], TrainConfig, "train.py")


def test_pipeline_refuses_unknown_addition():
    from trajfusion.pipeline import plan

    with pytest.raises(SystemExit, match="unknown key 'training.foo'"):
        plan(["experiment=table2_kmax4", "+training.foo=1"])


def test_build_data_exits_2_before_any_work(tmp_path):
    env = {**os.environ, "TRAJFUSION_DATA_ROOT": str(tmp_path / "data")}
    proc = subprocess.run([sys.executable, str(ROOT / "build_data.py"), "+foo=1"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 2 and "unknown key 'foo'" in proc.stderr + proc.stdout and "Traceback" not in proc.stderr
    assert not (tmp_path / "data" / "pools").exists()
