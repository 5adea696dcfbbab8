"""evaluate.py's config: every benchmark option composes and validates; bad values fail naming the key."""

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from trajfusion.evaluation.backends import plan_task_runs, task_config
from trajfusion.evaluation.schema import register_eval_configs, to_eval_config

CONF = Path(__file__).resolve().parent.parent / "conf"
BENCHMARKS = sorted(p.stem for p in (CONF / "benchmark").glob("*.yaml"))


def eval_config(*overrides):
    register_eval_configs()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name="evaluate", overrides=["paths.data_root=/tmp/x", *overrides])
    return to_eval_config(cfg)


@pytest.mark.parametrize("benchmark", BENCHMARKS)
def test_every_benchmark_option_composes_with_every_cpu_student(benchmark):
    for student in ("tiny_random", "smollm2_135m"):
        cfg = eval_config(f"student={student}", f"benchmark={benchmark}")
        assert cfg.benchmark.name == benchmark and cfg.student.name == student


def test_paper_groups_hold_the_papers_benchmarks_and_decoding():
    main = eval_config("benchmark=paper_main").benchmark
    assert main.tasks == ["tf_math", "tf_gsm8k", "tf_college_math", "tf_deepmind_mathematics", "tf_olympiadbench",
                          "tf_theoremqa"]
    assert all(not r.sampled and r.n == 1 for r in plan_task_runs(main))
    runs = {r.task: r for r in plan_task_runs(eval_config("benchmark=long_form", "benchmark.sampling.n=8").benchmark)}
    assert set(runs) == {"tf_aime24", "tf_aime24_avg16", "tf_aime25", "tf_aime25_avg16", "tf_math500"}
    assert runs["tf_aime24_avg16"].sampled and runs["tf_aime24_avg16"].n == 8 and not runs["tf_aime24"].sampled
    sampled = task_config(runs["tf_aime25_avg16"], {"template": "chatml"})
    assert sampled["repeats"] == 8 and sampled["generation_kwargs"]["do_sample"] is True
    assert sampled["generation_kwargs"]["top_p"] == 0.95 and sampled["metadata"]["template"] == "chatml"
    greedy = task_config(runs["tf_math500"], {})
    assert greedy["repeats"] == 1 and greedy["generation_kwargs"]["temperature"] == 0.0
    assert "top_p" not in greedy["generation_kwargs"]


@pytest.mark.parametrize("override,message", [
    ("benchmark.limit=0", "benchmark.limit"),
    ("benchmark.tasks=[tf_gsm9k]", "unknown task 'tf_gsm9k'"),
    ("benchmark.sampling.temperature=0", "benchmark.sampling"),
    ("backend.data_parallel_size=0", "backend"),
])
def test_bad_values_fail_naming_the_key(override, message):
    with pytest.raises(ValueError, match=message):
        eval_config("student=tiny_random", "benchmark=gsm8k", override)


def test_vllm_needs_a_hf_checkpoint():
    with pytest.raises(ValueError, match="backend=vllm"):
        eval_config("student=smollm2_135m", "benchmark=gsm8k", "backend.name=vllm")
    assert eval_config("student=llama3_8b", "backend.name=vllm").backend.name.value == "vllm"
