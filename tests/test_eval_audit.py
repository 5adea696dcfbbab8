"""Grader audit: disagreements between the project's grader and lm-eval's GSM8K / MATH scoring are counted
in the right direction, with examples."""

from trajfusion.evaluation.audit import audit_samples, gsm8k_flexible, gsm8k_strict, main, math_boxed_equiv
from trajfusion.evaluation.outputs import write_run


def row(task, pid, output, reference, verdict, extracted=None):
    return {"task": task, "problem_id": pid, "sample_index": 0, "output": output, "reference": reference,
            "verdict": verdict, "extracted": extracted, "n_tokens": 5, "prompt": ""}


def test_lm_eval_judges_follow_its_gsm8k_and_math_rules():
    assert gsm8k_strict("so #### 1,234", "1234") and not gsm8k_strict("the answer is 1234", "1234")
    assert gsm8k_flexible("the answer is $1,234.", "1234") and not gsm8k_flexible("42 then 7", "42")
    assert math_boxed_equiv("thus \\boxed{\\dfrac{1}{2}}", "\\frac{1}{2}")
    assert not math_boxed_equiv("thus \\boxed{2/4}", "\\frac{1}{2}")  # string equivalence only


def test_disagreements_are_counted_by_direction_with_examples(tmp_path, capsys):
    samples = {
        "tf_gsm8k": [row("tf_gsm8k", "a", "The answer is \\boxed{18}.", "18", "correct", "18"),  # flexible ✓, strict ✗
                     row("tf_gsm8k", "b", "#### 18", "18", "correct", "18"),                   # all agree
                     row("tf_gsm8k", "c", "\\boxed{18}, checked in 2 steps", "18", "correct", "18")],
        "tf_math500": [row("tf_math500", "d", "\\boxed{2/4}", "\\frac{1}{2}", "correct", "2/4"),
                       row("tf_math500", "e", "\\boxed{3}", "3", "correct", "3")],
    }
    report = audit_samples(samples)
    strict, flexible = report["tf_gsm8k/gsm8k_strict"], report["tf_gsm8k/gsm8k_flexible"]
    assert strict["project_correct_lm_eval_wrong"] == 2 and strict["agree"] == 1  # a, c: no "####"
    assert flexible["agree"] == 2 and flexible["lm_eval_correct_project_wrong"] == 0
    assert flexible["project_correct_lm_eval_wrong"] == 1  # c: flexible takes the last number, 2
    assert flexible["examples_project_only"][0]["problem_id"] == "c"
    math = report["tf_math500/math_boxed_equiv"]
    assert math["disagreement_rate"] == 0.5 and math["examples_project_only"][0]["problem_id"] == "d"

    write_run(tmp_path, {"run_name": "r", "benchmark": "b", "model": "m", "template": "t", "backend": "hf", "tasks": {}},
              samples)
    assert main([str(tmp_path)]) == 0
    assert "tf_math500/math_boxed_equiv | 2 | 50.0" in capsys.readouterr().out
    assert (tmp_path / "grader_audit.json").exists()
