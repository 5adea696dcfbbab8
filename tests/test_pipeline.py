"""slurm/pipeline.sh against a fake sbatch: the job graph, afterok chain, overrides per stage; the data
jobs rebuild exactly train.py's dataset config; presets carry the paper's numbers; the cost model."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import fake_sbatch

from trajfusion.config import to_build_config
from trajfusion.cost_model import estimate, load_assumptions, markdown_table, presets
from trajfusion.pipeline import compose, plan
from trajfusion.training.schema import build_config_of, to_train_config

ROOT = Path(__file__).resolve().parent.parent
PAPER = ROOT.parent / "shared" / "PAPER.md"  # the paper digest beside a checkout, when there is one


def test_pipeline_chains_four_jobs_and_routes_overrides(tmp_path):
    log, env = fake_sbatch(tmp_path, ";cluster")
    out = subprocess.run([str(ROOT / "slurm/pipeline.sh"), "--shards", "4", "--nodes", "2",
                          "experiment=table1_trajfusion_llama3_8b_15k", "training.save_steps=50"],
                         env=env, capture_output=True, text=True, check=True)
    lines = log.read_text().splitlines()
    assert all(f"--output={ROOT}/outputs/logs/slurm/%x-" in line for line in lines)  # logs beside the outputs
    sample, fuse, train, evaluate = (re.sub(r"--output=\S+ ", "", line) for line in lines)
    assert sample.startswith("--parsable --array=0-3 slurm/build_data.sbatch shard.count=4 data=math_train teacher=qwen2p5_math_7b_instruct")
    assert fuse.startswith("--parsable --dependency=afterok:4201 slurm/fuse.sbatch shard.count=4 data=math_train")
    assert "training." not in sample + fuse  # build_data.py has no training node
    assert train.startswith("--parsable --dependency=afterok:4202 --nodes=2 --export=ALL,RUN_NAME=table1_trajfusion_llama3_8b_15k-")
    assert train.endswith("slurm/train.sbatch experiment=table1_trajfusion_llama3_8b_15k training.save_steps=50")
    run_name = re.search(r"RUN_NAME=(\S+)", train).group(1)
    assert evaluate.startswith(f"--parsable --dependency=afterok:4203 --export=ALL,RUN_NAME={run_name} slurm/evaluate.sbatch")
    assert "student=llama3_8b benchmark=paper_main wandb.group=table1_trajfusion_llama3_8b_15k" in evaluate
    assert "save_steps" not in evaluate
    assert "sample 4201 -> fuse 4202 -> train 4203 -> evaluate 4204" in out.stdout


def test_dry_run_submits_nothing_and_prints_graph_and_gpu_hours(tmp_path):
    log, env = fake_sbatch(tmp_path, ";cluster")
    out = subprocess.run([str(ROOT / "slurm/pipeline.sh"), "--dry-run", "--shards", "8", "experiment=table3_rft_32k"],
                         env=env, capture_output=True, text=True, check=True).stdout
    assert not log.exists()
    assert out.count("sbatch --parsable") == 4 and "--array=0-7" in out
    for job, after in [("fuse", "SAMPLE"), ("train", "FUSE"), ("evaluate", "TRAIN")]:
        assert f"--dependency=afterok:{after}_JOB_ID" in out.split(f"[{job}]")[1].split("\n[")[0]
    assert "length_policy.max_tokens=32768" in out and "benchmark=long_form benchmark.max_new_tokens=30000" in out
    assert re.search(r"GPU-hours .*sampling [\d,.]+, training [\d,.]+, evaluation [\d,.]+", out)


def test_a_stored_pool_is_verified_by_a_cpu_array_before_fuse(tmp_path):
    """Each array task verifies its shard (sampling tasks too: build_data.sbatch runs stage=sample, which
    verifies what it sampled); a replay teacher has nothing to sample, so its array is verify.sbatch."""
    log, env = fake_sbatch(tmp_path, ";cluster")
    out = subprocess.run([str(ROOT / "slurm/pipeline.sh"), "--dry-run", "--shards", "3", "experiment=cpu_tiny", "teacher=replay_math_l5"],
                         env=env, capture_output=True, text=True, check=True).stdout
    assert not log.exists()
    assert "verify[3] → fuse" in out and "build_data.sbatch" not in out
    verify = out.split("[verify]")[1].split("\n[")[0]
    assert "--array=0-2" in verify and "slurm/verify.sbatch shard.count=3" in verify and "teacher=replay_math_l5" in verify
    assert "--dependency=afterok:VERIFY_JOB_ID" in out.split("[fuse]")[1].split("\n[")[0]
    assert "stage=verify" in (ROOT / "slurm/verify.sbatch").read_text()
    assert "stage=sample" in (ROOT / "slurm/build_data.sbatch").read_text()


def test_pipeline_refuses_a_missing_experiment(tmp_path):
    _, env = fake_sbatch(tmp_path, ";cluster")
    result = subprocess.run([str(ROOT / "slurm/pipeline.sh"), "--dry-run", "student=llama3_8b"], env=env, capture_output=True, text=True)
    assert result.returncode != 0 and "experiment=NAME" in result.stderr


@pytest.mark.parametrize("experiment,extra", [
    ("table3_trajfusion_32k", []), ("table2_lowdiv", ["length_policy.alpha=2.5"]), ("table1_rft_deepseekmath_7b_100k", ["seed=3"]),
])
def test_data_jobs_compose_the_dataset_train_py_looks_up(experiment, extra):
    p = plan([f"experiment={experiment}", *extra])
    built, _ = compose("build_data", p.build_overrides)
    from_build = to_build_config(built)
    from_train = build_config_of(p.train_cfg)
    assert from_build == from_train


@pytest.mark.parametrize("name", presets())
def test_build_data_takes_a_preset_and_composes_train_pys_dataset(name):
    """`build_data.py experiment=NAME` budgets rows for the preset's student, as train.py's data stage does."""
    built, _ = compose("build_data", [f"experiment={name}"])
    train_cfg, _ = compose("train", [f"experiment={name}"])
    assert to_build_config(built) == build_config_of(train_cfg)
    assert to_build_config(built).length_policy.max_tokens == train_cfg.student.max_seq_len


def test_build_data_without_a_preset_keeps_the_default_budget():
    built = to_build_config(compose("build_data", [])[0])
    assert (built.length_policy.max_tokens, built.length_policy.tokenizer) == (4096, None)
    small = to_build_config(compose("build_data", ["student=smollm2_135m"])[0])  # a CPU student also sets deepspeed
    assert small.length_policy.max_tokens == 2048 and small.length_policy.tokenizer
    assert to_build_config(compose("build_data", ["student=smollm2_135m", "length_policy.max_tokens=512"])[0]).length_policy.max_tokens == 512


@pytest.mark.parametrize("name", presets())
def test_every_preset_composes_quotes_the_paper_and_names_its_command(name):
    cfg = to_train_config(compose("train", [f"experiment={name}"])[0])
    text = (ROOT / "conf/experiment" / f"{name}.yaml").read_text()
    assert text.startswith("# @package _global_\n")
    row = re.search(r"^# PAPER Table \d[^|]*(\|.*\|)$", text, re.M).group(1)
    if PAPER.exists():
        assert row in PAPER.read_text(), f"{name}: the quoted row is not PAPER.md's"
    assert f"slurm/pipeline.sh experiment={name}" in text
    assert cfg.wandb.group == name
    table, method = name.split("_")[:2]
    assert (cfg.fusion.name == "rft") == (method == "rft")
    if table == "table1":
        assert cfg.teacher.name == "qwen2p5_math_7b_instruct" and cfg.student.name in name
        assert (cfg.data.name, cfg.data.limit, cfg.student.epochs) == (("math_train", None, 5) if name.endswith("15k") else ("deepmath", 100000, 3))
    if table == "table2":
        assert cfg.student.name == "llama3_8b" and cfg.fusion.name == "adaptive"
        assert cfg.selector.name == ("low_div" if name.endswith("lowdiv") else "diverse")
    if table == "table3":
        long = name.endswith("32k")
        assert (cfg.teacher.name, cfg.student.name) == (("r1_distill_qwen_7b", "qwen2p5_math_7b_32k") if long else ("qwen2p5_math_7b_instruct", "qwen2p5_math_7b"))


def test_table2_kmax_presets_sweep_k_max():
    assert [to_train_config(compose("train", [f"experiment=table2_kmax{k}"])[0]).length_policy.k_max for k in (1, 2, 4, 6)] == [1, 2, 4, 6]


def test_cost_model_by_hand_and_readme_table_is_current():
    cfg, _ = compose("train", ["experiment=table1_rft_llama3_8b_15k"])
    hours = estimate("table1_rft_llama3_8b_15k", cfg, load_assumptions()).gpu_hours()
    assert hours["sampling"] == pytest.approx(7500 * 16 * 650 / 2500 / 3600)
    assert hours["training"] == pytest.approx(6750 * 329 * 5 / 3000 / 3600)
    assert hours["evaluation"] == pytest.approx((5000 * 1173 + 1319 * 155 + (2818 + 1000 + 675 + 800) * 800) / 2500 / 3600)
    assert markdown_table() in (ROOT / "README.md").read_text(), "README's table is stale: paste python -m trajfusion.cost_model"


@pytest.mark.parametrize("script", ["build_data.py", "train.py"])
def test_a_mistyped_preset_is_refused_not_silently_skipped(script, tmp_path):
    """Hydra skips an optional default whose file is missing; the entry points must not run the defaults."""
    result = subprocess.run([sys.executable, str(ROOT / script), "experiment=table2_kmax44", f"paths.data_root={tmp_path}"],
                            capture_output=True, text=True, cwd=tmp_path)
    logged = result.stdout + result.stderr  # Hydra's job logging writes to stdout
    assert result.returncode == 2
    assert "experiment=table2_kmax44: no " in logged and "table1_rft_deepseekmath_7b_100k" in logged.split("supported: ")[1]
    assert not (tmp_path / "fused").exists()
    with pytest.raises(SystemExit, match="supported: .*table2_kmax4"):
        plan(["experiment=table2_kmax44"])
