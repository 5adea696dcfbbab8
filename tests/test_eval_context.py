"""A benchmark's max_new_tokens is capped to the context its longest prompt leaves (lm-eval would assert)."""

import pytest

from trajfusion.evaluation.backends import TaskRun
from trajfusion.evaluation.context import cap_to_context, longest_prompt_tokens


class WordTokenizer:
    """One token per whitespace-separated word: enough to check the arithmetic."""

    def __call__(self, texts, add_special_tokens=False):
        return {"input_ids": [text.split() for text in texts]}


META = {"template": "base_plain", "system_prompt": None, "bos_token": "", "eos_token": "", "limit": 4}


def test_budget_is_capped_and_recorded(caplog):
    longest = longest_prompt_tokens("tf_math500", META, WordTokenizer())
    assert longest > 10
    runs = [TaskRun("tf_math500", False, 1, 0.0, 1.0, 2048)]
    capped, report = cap_to_context(runs, META, WordTokenizer(), 2048)
    assert capped[0].max_new_tokens == 2048 - longest
    assert report == {"tf_math500": {"requested_max_new_tokens": 2048, "max_new_tokens": 2048 - longest,
                                     "longest_prompt_tokens": longest, "context": 2048}}
    assert "generating at most" in caplog.text


def test_a_budget_that_fits_is_kept():
    runs = [TaskRun("tf_math500", False, 1, 0.0, 1.0, 256)]
    capped, report = cap_to_context(runs, META, WordTokenizer(), 4096)
    assert capped == runs and report == {}


def test_no_room_at_all_is_a_clear_error():
    runs = [TaskRun("tf_math500", False, 1, 0.0, 1.0, 256)]
    with pytest.raises(ValueError, match="tf_math500: the longest prompt has .* no room to generate"):
        cap_to_context(runs, META, WordTokenizer(), 5)
