"""Generation must fit the model's context: prompt + new tokens ≤ max_model_len.

lm-eval asserts `max_gen_toks < max_length` and left-truncates prompts to the rest, so a benchmark's
`max_new_tokens` equal to a small student's context (the tiny student: 2048 and 2048) fails, and one
close to it silently cuts prompts. Each task's budget is capped to what its longest prompt leaves, with
a warning, and the cap is recorded in results.json.
"""

from __future__ import annotations

import dataclasses
import logging

from trajfusion.evaluation.backends import TaskRun, _task_yaml
from trajfusion.tasks import utils as task_utils

log = logging.getLogger(__name__)


def longest_prompt_tokens(task: str, metadata: dict, tokenizer) -> int:
    """Tokens of the task's longest rendered prompt (the problems `limit` selects), as lm-eval encodes it."""
    benchmark = _task_yaml(task, resolve_functions=False)["dataset_kwargs"]["benchmark"]
    rows = task_utils.select_rows(task_utils.read_benchmark(benchmark), metadata.get("limit"), 0, 1)
    prompts = [task_utils.render_prompt(r["problem"], metadata["template"], metadata["system_prompt"],
                                        metadata["bos_token"], metadata["eos_token"]) for r in rows]
    if not prompts:
        return 0
    return max(len(ids) for ids in tokenizer(prompts, add_special_tokens=False)["input_ids"])


def cap_to_context(runs: list[TaskRun], metadata: dict, tokenizer, max_model_len: int) -> tuple[list[TaskRun], dict]:
    """Runs whose max_new_tokens fit after their longest prompt, and {task: what was capped} for results.json."""
    capped, report = [], {}
    for run in runs:
        longest = longest_prompt_tokens(run.task, metadata, tokenizer)
        room = max_model_len - longest
        if room < 1:
            raise ValueError(f"{run.task}: the longest prompt has {longest} tokens, the model's context is {max_model_len}: "
                             "no room to generate (raise backend.max_model_len or lower benchmark.limit)")
        if run.max_new_tokens > room:
            log.warning("%s: benchmark.max_new_tokens=%d does not fit a %d-token context after the longest prompt "
                        "(%d tokens); generating at most %d new tokens", run.task, run.max_new_tokens, max_model_len,
                        longest, room)
            report[run.task] = {"requested_max_new_tokens": run.max_new_tokens, "max_new_tokens": room,
                                "longest_prompt_tokens": longest, "context": max_model_len}
            run = dataclasses.replace(run, max_new_tokens=room)
        capped.append(run)
    return capped, report
