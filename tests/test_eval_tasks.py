"""Every shipped lm-eval task loads from the bundled data and grades through the project's verifier: a model
that answers each problem's own reference in \\boxed{} scores 100%, a wrong or missing answer 0%."""

import os
import time

import pytest

from trajfusion.evaluation.backends import TaskRun, generate_with_lm
from trajfusion.evaluation.schema import shipped_tasks
from trajfusion.tasks import TASK_DIR
from trajfusion.tasks import utils as task_utils

BENCHMARKS = sorted(p.name.split(".")[0] for p in (TASK_DIR.parent.parent / "data" / "benchmarks").glob("*.jsonl.gz"))


class ScriptedLM:
    """An lm-eval LM whose output is a function of the doc (lm-eval passes the doc with each request)."""

    def __new__(cls, answer_of):
        from lm_eval.api.model import LM

        class _LM(LM):
            def generate_until(self, requests, disable_tqdm=False):
                return [answer_of(r.doc) for r in requests]

            def loglikelihood(self, requests):
                raise NotImplementedError

            def loglikelihood_rolling(self, requests):
                raise NotImplementedError

        return _LM()


def run_tasks(answer_of, limit=None, tasks=None):
    runs = [TaskRun(t, t.endswith("_avg16"), 2 if t.endswith("_avg16") else 1, 0.7 if t.endswith("_avg16") else 0.0,
                    0.95, 64) for t in (tasks or shipped_tasks())]
    metadata = {"template": "base_plain", "system_prompt": task_utils.DEFAULT_SYSTEM_PROMPT, "bos_token": "<s>",
                "eos_token": "</s>", "limit": limit}
    return generate_with_lm(ScriptedLM(answer_of), runs, metadata, seed=0)


def test_a_task_ships_for_every_bundled_benchmark_plus_avg16_variants():
    tasks = shipped_tasks()
    assert {t.removeprefix("tf_") for t in tasks} == set(BENCHMARKS) | {"aime24_avg16", "aime25_avg16"}


def test_reference_answers_in_a_box_score_100_percent_on_every_task():
    """The whole of every benchmark: extraction and the verifier accept each dataset's own reference."""
    rows = run_tasks(lambda doc: f"Some reasoning.\nThe final answer is $\\boxed{{{doc['answer']}}}$.")
    ungradeable = {}
    for task, task_rows in rows.items():
        assert task_rows, task
        gradeable = [r for r in task_rows if r["reference"].strip()]
        failed = [(r["problem_id"], r["reference"]) for r in gradeable if r["lm_eval_acc"] != 1.0]
        assert not failed, f"{task}: {len(failed)} references not accepted, e.g. {failed[:5]}"
        # an empty reference (upstream data) can only be `unknown`: counted, never correct or wrong
        empty = [r for r in task_rows if not r["reference"].strip()]
        assert all(r["lm_eval_acc"] == 0 and r["lm_eval_unknown"] == 1 for r in empty), task
        if empty:
            ungradeable[task] = len(empty)
    assert ungradeable == {"tf_gaokao2023en": 2}
    assert len(rows["tf_math"]) == 5000 and len(rows["tf_gsm8k"]) == 1319
    assert all(len(r["outputs"]) == 2 for r in rows["tf_aime24_avg16"])  # repeats reach the model


def test_wrong_and_missing_answers_score_0_percent_on_every_task():
    def wrong(doc):
        return "I am not sure." if int(doc["index"]) % 2 else "So the answer is $\\boxed{-987654.321}$."

    for task, task_rows in run_tasks(wrong, limit=12).items():
        assert len(task_rows) == 12, task
        assert all(r["lm_eval_acc"] == 0.0 for r in task_rows), task


def test_prompt_is_the_training_template_with_the_training_system_prompt():
    rows = run_tasks(lambda doc: "", limit=1, tasks=["tf_gsm8k"])["tf_gsm8k"]
    prompt = rows[0]["prompt"]
    assert prompt.startswith("<s>Please reason step by step, and put your final answer within \\boxed{}.\n\nProblem:\n")
    assert prompt.endswith("\n\nSolution:\n") and rows[0]["problem"] in prompt


def test_a_hanging_grader_input_becomes_unknown_instead_of_hanging(monkeypatch):
    from trajfusion.data.verification import HANG_SENTINEL, TEST_HOOKS_ENV

    monkeypatch.setenv(TEST_HOOKS_ENV, "1")
    task_utils.close_verifier()
    task_utils.configure_verifier(timeout_s=1.0, workers=1)
    try:
        started = time.monotonic()
        graded = task_utils.grade([(HANG_SENTINEL, "\\boxed{x^2}"), ("\\frac{1}{2}", "\\boxed{0.5}"), ("3", "no answer")])
        assert time.monotonic() - started < 30
    finally:
        task_utils.close_verifier()
        task_utils.configure_verifier()
    assert [g["verdict"] for g in graded] == ["unknown", "correct", "incorrect"]
    assert graded[2]["pred"] is None


def test_sharding_splits_the_limited_problems_exactly_once():
    rows = list(range(10))
    shards = [task_utils.select_rows(rows, 7, i, 3) for i in range(3)]
    assert sorted(x for s in shards for x in s) == list(range(7))
    with pytest.raises(ValueError):
        task_utils.select_rows(rows, None, 3, 3)


def test_unknown_benchmark_names_the_bundled_ones():
    with pytest.raises(ValueError, match="gsm8k"):
        task_utils.read_benchmark("gsm9k")


@pytest.mark.skipif(os.environ.get("CI_SKIP_LMEVAL_CLI") == "1", reason="opt-out")
def test_tasks_load_through_lm_eval_task_manager_with_include_path():
    from lm_eval.tasks import TaskManager

    manager = TaskManager(include_path=str(TASK_DIR), include_defaults=False, metadata={"limit": 2})
    assert set(shipped_tasks()) <= set(manager.all_subtasks)
    assert {"tf_paper_main", "tf_long_form"} <= set(manager.all_groups)
    loaded = manager.load(["tf_paper_main"])["tasks"]
    assert sorted(loaded) == sorted(["tf_math", "tf_gsm8k", "tf_college_math", "tf_deepmind_mathematics",
                                     "tf_olympiadbench", "tf_theoremqa"])
    assert all(len(t.eval_docs) == 2 for t in loaded.values())


@pytest.mark.parametrize("template", ["base_plain", "chatml"])
def test_eval_prompt_is_byte_identical_to_the_prompt_part_of_a_training_row(template):
    """Training renders (system, user, assistant) with the tokenizer's Jinja; evaluation must ask the same prefix."""
    from tokenizers import Tokenizer, models
    from transformers import PreTrainedTokenizerFast

    from trajfusion.evaluation.training_api import template_text
    from trajfusion.training.tokenise import render

    tokenizer = PreTrainedTokenizerFast(tokenizer_object=Tokenizer(models.WordLevel({"<unk>": 0}, unk_token="<unk>")),
                                        bos_token="<s>", eos_token="</s>", unk_token="<unk>")
    system, problem = task_utils.DEFAULT_SYSTEM_PROMPT, "What is $1+1$?\nExplain."
    messages = [{"role": "system", "content": system}, {"role": "user", "content": problem},
                {"role": "assistant", "content": "<think>\n2\n</think> $\\boxed{2}$"}]
    trained = render(tokenizer, messages, template_text(template))
    asked = task_utils.render_prompt(problem, template, system, bos_token="<s>", eos_token="</s>")
    assert asked == trained.text[: trained.answer_start]
