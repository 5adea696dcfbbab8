"""Grader audit: where the project's grader and lm-eval's own GSM8K / MATH scoring disagree on the same
outputs, so users see what the grader changes (lm-eval's strict vs flexible GSM8K match alone can differ
by tens of points).

    python -m trajfusion.evaluation.audit RUN_DIR [--examples 5]     # writes RUN_DIR/grader_audit.json

lm-eval side: GSM8K-style tasks use lm-eval's gsm8k `strict-match` (`#### number`) and `flexible-extract`
(last number) filters and its exact match (commas, `$`, trailing period ignored); the other tasks use
lm-eval's hendrycks_math answer extraction (last \\boxed{}) and string-normalising `is_equiv`.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import sys
from pathlib import Path

from trajfusion.evaluation.outputs import load_run
from trajfusion.io import write_json

log = logging.getLogger(__name__)

GSM8K_STYLE = {"tf_gsm8k", "tf_gsm_hard", "tf_svamp", "tf_asdiv", "tf_mawps"}
# lm-eval 0.4.13 tasks/gsm8k/gsm8k.yaml: filters and the exact-match regexes_to_ignore
STRICT = re.compile(r"#### (\-?[0-9\.\,]+)")
FLEXIBLE = re.compile(r"(-?[$0-9.,]{2,})|(-?[0-9]+)")
IGNORE = [",", "\\$", "(?s).*#### ", "\\.$"]


def _gsm8k_clean(text: str) -> str:
    for pattern in IGNORE:
        text = re.sub(pattern, "", text)
    return text.strip().lower()


def gsm8k_strict(output: str, reference: str) -> bool:
    found = STRICT.findall(output)
    return bool(found) and _gsm8k_clean(found[0]) == _gsm8k_clean(reference)


def gsm8k_flexible(output: str, reference: str) -> bool:
    found = FLEXIBLE.findall(output)
    if not found:
        return False
    last = next(g for g in found[-1] if g)
    return _gsm8k_clean(last) == _gsm8k_clean(reference)


def math_boxed_equiv(output: str, reference: str) -> bool:
    from lm_eval.tasks.hendrycks_math.utils import is_equiv, last_boxed_only_string, remove_boxed

    boxed = last_boxed_only_string(output)
    if boxed is None:
        return False
    try:
        answer = remove_boxed(boxed)
    except (AssertionError, IndexError):
        return False
    return bool(is_equiv(answer, reference))


def lm_eval_judges(task: str) -> dict:
    if task in GSM8K_STYLE:
        return {"gsm8k_strict": gsm8k_strict, "gsm8k_flexible": gsm8k_flexible}
    return {"math_boxed_equiv": math_boxed_equiv}


def audit_samples(samples_by_task: dict[str, list[dict]], examples: int = 5) -> dict:
    """Per task and lm-eval judge: agreement counts, disagreement share and examples of each direction."""
    report = {}
    for task, rows in samples_by_task.items():
        for judge_name, judge in lm_eval_judges(task).items():
            ours_only, theirs_only, unknown, agree = [], [], 0, 0
            for row in rows:
                ours = row["verdict"] == "correct"
                theirs = judge(row["output"] or "", row["reference"])
                unknown += row["verdict"] == "unknown"
                if ours == theirs:
                    agree += 1
                    continue
                example = {k: row[k] for k in ("problem_id", "sample_index", "reference", "extracted", "verdict")}
                example["output_tail"] = (row["output"] or "")[-300:]
                (ours_only if ours else theirs_only).append(example)
            n = len(rows)
            report[f"{task}/{judge_name}"] = {
                "samples": n, "agree": agree, "disagreement_rate": (n - agree) / n if n else 0.0,
                "project_correct_lm_eval_wrong": len(ours_only), "lm_eval_correct_project_wrong": len(theirs_only),
                "project_unknown": unknown, "examples_project_only": ours_only[:examples],
                "examples_lm_eval_only": theirs_only[:examples],
            }
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir")
    parser.add_argument("--examples", type=int, default=5)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        _, samples = load_run(args.run_dir)
    except ValueError as exc:
        log.error("%s", exc)
        return 2
    report = audit_samples(samples, args.examples)
    write_json(Path(args.run_dir) / "grader_audit.json", report)
    lines = ["| task / lm-eval judge | samples | disagree (%) | project ✓ lm-eval ✗ | lm-eval ✓ project ✗ |",
             "|---|---|---|---|---|"]
    for key, r in report.items():
        lines.append(f"| {key} | {r['samples']} | {100 * r['disagreement_rate']:.1f} | "
                     f"{r['project_correct_lm_eval_wrong']} | {r['lm_eval_correct_project_wrong']} |")
    sys.stdout.write("\n".join(lines) + "\n")
    for key, r in report.items():
        for ex in r["examples_project_only"][:2] + r["examples_lm_eval_only"][:2]:
            sys.stdout.write(f"\n{key} {ex['problem_id']}: reference {ex['reference']!r}, ours {ex['verdict']} "
                             f"(extracted {ex['extracted']!r}); output …{json.dumps(ex['output_tail'][-120:])}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
