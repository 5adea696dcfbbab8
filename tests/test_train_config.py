"""train.py's config: every student / deepspeed / launcher option composes and validates, the data
stage sees the student's budget, the global batch is kept for any number of ranks, typos fail."""

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from trajfusion.config import register_configs
from trajfusion.training.schema import (
    build_config_of, gradient_accumulation_steps, register_train_configs, to_train_config,
)
from trajfusion.training.trainer import claim_run_dir, config_fingerprint

CONF = Path(__file__).resolve().parent.parent / "conf"
STUDENTS = sorted(p.stem for p in (CONF / "student").glob("*.yaml"))
DEEPSPEEDS = sorted(p.stem for p in (CONF / "deepspeed").glob("*.yaml"))


def compose_train(*overrides, tmp="/tmp/tf-config-test"):
    register_configs()
    register_train_configs()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose("train", [f"paths.data_root={tmp}", *overrides])


def test_the_issue_lists_every_student_and_stage():
    assert set(STUDENTS) == {"llama3_8b", "deepseekmath_7b", "qwen2p5_math_7b", "qwen2p5_math_7b_32k", "smollm2_135m", "tiny_random"}
    assert set(DEEPSPEEDS) == {"none", "zero1", "zero2", "zero3", "zero3_offload"}


@pytest.mark.parametrize("student", STUDENTS)
@pytest.mark.parametrize("fusion", ["adaptive", "rft"])
def test_every_student_composes_validates_and_budgets_the_data(student, fusion):
    cfg = compose_train(f"student={student}", f"fusion={fusion}")
    train_cfg = to_train_config(cfg)
    assert train_cfg.student.name == student and train_cfg.fusion.name == fusion
    build = build_config_of(cfg)
    assert build.length_policy.max_tokens == train_cfg.student.max_seq_len
    assert build.length_policy.tokenizer == train_cfg.student.tokenizer
    assert train_cfg.student.name in train_cfg.run_name and fusion in train_cfg.run_name


@pytest.mark.parametrize("stage", DEEPSPEEDS)
def test_every_deepspeed_option_validates(stage):
    cfg = to_train_config(compose_train("student=llama3_8b", f"deepspeed={stage}"))
    assert cfg.deepspeed.name == stage
    if stage != "none":
        ds = cfg.deepspeed.config
        assert ds["zero_optimization"]["stage"] == cfg.deepspeed.stage
        assert ds["train_batch_size"] == ds["gradient_accumulation_steps"] == "auto"


def test_paper_defaults_and_cpu_students():
    paper = to_train_config(compose_train())
    assert (paper.student.name, paper.deepspeed.name, paper.student.lr, paper.student.max_seq_len) == ("llama3_8b", "zero1", 5e-5, 4096)
    assert paper.student.global_batch_size == 64 and paper.student.bf16 and paper.training.packing
    assert to_train_config(compose_train("student=qwen2p5_math_7b")).student.lr == 2e-5
    long = to_train_config(compose_train("student=qwen2p5_math_7b_32k"))
    assert (long.student.max_seq_len, long.student.rope_scaling.value, long.student.rope_factor) == (32768, "yarn", 8.0)
    assert long.student.lr == 2e-5
    tiny = to_train_config(compose_train("student=tiny_random"))
    assert tiny.deepspeed.name == "none"  # CPU students pick no DeepSpeed...
    assert to_train_config(compose_train("student=tiny_random", "deepspeed=zero2")).deepspeed.name == "zero2"  # ...unless asked


@pytest.mark.parametrize("world, micro, expected", [(1, 1, 64), (8, 1, 8), (16, 1, 4), (64, 1, 1), (8, 2, 4)])
def test_global_batch_is_kept_for_any_number_of_ranks(world, micro, expected):
    assert gradient_accumulation_steps(64, micro, world) == expected
    assert expected * micro * world == 64


def test_a_global_batch_that_does_not_divide_is_refused():
    with pytest.raises(ValueError, match="not a multiple"):
        gradient_accumulation_steps(64, 1, 3)


@pytest.mark.parametrize("override, message", [
    ("student.template=llama3", "template"),
    ("student.epochs=0", "epochs"),
    ("student.warmup_ratio=1.5", "warmup_ratio"),
])
def test_bad_values_fail_at_validation(override, message):
    with pytest.raises(ValueError, match=message):
        to_train_config(compose_train(override))


def test_typos_fail_at_compose():
    from hydra.errors import ConfigCompositionException

    with pytest.raises(ConfigCompositionException):
        compose_train("student.lrate=1e-5")
    with pytest.raises(ConfigCompositionException):
        compose_train("deepspeed=zero4")


def test_launcher_configs_compose():
    for launcher in ("slurm", "local"):
        register_configs()
        register_train_configs()
        with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
            cfg = compose("train", [f"hydra/launcher={launcher}"], return_hydra_config=True)
        assert "submitit" in cfg.hydra.launcher._target_


def test_run_directory_is_claimed_by_one_config(tmp_path):
    resolved = OmegaConf.to_container(compose_train("student=tiny_random"), resolve=True)
    claim_run_dir(tmp_path, resolved)
    claim_run_dir(tmp_path, {**resolved, "wandb": {**resolved["wandb"], "mode": "disabled"}, "progress": False})  # runtime only
    changed = {**resolved, "student": {**resolved["student"], "lr": 1.0}}
    assert config_fingerprint(changed) != config_fingerprint(resolved)
    with pytest.raises(ValueError, match=r"different config.*differing keys: student\.lr: 0\.003 → 1\.0"):
        claim_run_dir(tmp_path, changed)
    other_group = {**resolved, "wandb": {**resolved["wandb"], "group": "table1_trajfusion_llama3_8b_15k"}}
    with pytest.raises(ValueError, match=r"wandb\.group: None → 'table1_trajfusion_llama3_8b_15k'"):  # another preset's W&B run
        claim_run_dir(tmp_path, other_group)


@pytest.mark.parametrize("preset", ["table3_rft_32k", "table3_trajfusion_32k"])
def test_the_32k_presets_shard_with_zero3(preset):
    cfg = to_train_config(compose_train(f"experiment={preset}"))
    assert (cfg.student.name, cfg.student.max_seq_len) == ("qwen2p5_math_7b_32k", 32768)
    assert cfg.deepspeed.name == "zero3" and cfg.deepspeed.config["zero_optimization"]["stage"] == 3
    assert to_train_config(compose_train("experiment=table3_rft_4k")).deepspeed.name == "zero1"  # the 4K presets keep the paper's
