"""Functions the task YAMLs point at: data loading, prompting and grading.

- Data: `load_benchmark` reads the bundled gzip JSONL through `trajfusion.io` (lm-eval would resolve a
  `data_files` path against the current directory, so a loader function is used instead).
- Prompt: the problem rendered with the student's training template (the same Jinja file train.py uses
  and writes into every checkpoint), with the same system prompt, so a trained model is asked the way it
  was taught. The template and tokens come from the task metadata (`--metadata` on the lm-eval CLI;
  evaluate.py sets them from the student).
- Grading: `grade_responses` is an lm-eval filter that sees *all* outputs of a task at once, so the
  whole task is verified in one batch by a shared `VerifierPool` (killable workers, hard timeouts,
  memo) after generation; `process_results` only averages the verdicts it produced.
"""

from __future__ import annotations

import atexit
import json
import logging
from collections.abc import Iterable, Sequence
from functools import lru_cache
from pathlib import Path

from trajfusion.core.verify import Verdict, normalize_answer
from trajfusion.io import read_jsonl, resolve_path

log = logging.getLogger(__name__)

BENCHMARK_DIR = "data/benchmarks"
DEFAULT_SYSTEM_PROMPT = "Please reason step by step, and put your final answer within \\boxed{}."
DOC_FIELDS = ("id", "problem", "answer")


# ----------------------------------------------------------------------------- data and prompt
@lru_cache(maxsize=8)
def _compiled_template(name: str):
    """The training template, compiled once with HF's chat-template Jinja settings."""
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    from trajfusion.evaluation.training_api import template_text

    return ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True).from_string(template_text(name))


def render_prompt(problem: str, template: str, system_prompt: str | None, bos_token: str = "", eos_token: str = "") -> str:
    """The prompt exactly as training renders it, up to where the answer starts."""
    messages = ([{"role": "system", "content": system_prompt}] if system_prompt else []) + [
        {"role": "user", "content": problem}
    ]
    return _compiled_template(template).render(messages=messages, add_generation_prompt=True, bos_token=bos_token,
                                               eos_token=eos_token)


def read_benchmark(benchmark: str) -> list[dict]:
    """Rows of a bundled benchmark; problem fields kept, the rest as a JSON string (schemas differ per file)."""
    path = resolve_path(f"{BENCHMARK_DIR}/{benchmark}.jsonl.gz")
    if not path.exists():
        supported = sorted(p.name.split(".")[0] for p in Path(resolve_path(BENCHMARK_DIR)).glob("*.jsonl.gz"))
        raise ValueError(f"benchmark {benchmark!r}: no {path}; bundled: {', '.join(supported)}")
    rows = []
    for index, (_, row) in enumerate(read_jsonl(path)):
        extra = {k: v for k, v in row.items() if k not in DOC_FIELDS}
        rows.append({"id": str(row["id"]), "problem": row["problem"], "answer": str(row["answer"]), "index": index,
                     "meta": json.dumps(extra, ensure_ascii=False, sort_keys=True)})
    return rows


def select_rows(rows: list, limit: int | None, shard_index: int, shard_count: int) -> list:
    """First `limit` rows (the same problems whatever the sharding), then every shard_count-th from shard_index."""
    if shard_count < 1 or not 0 <= shard_index < shard_count:
        raise ValueError(f"shard {shard_index} of {shard_count} does not exist")
    rows = rows[:limit] if limit is not None else rows
    return rows[shard_index::shard_count]


def load_benchmark(benchmark: str, template: str = "base_plain", system_prompt: str | None = DEFAULT_SYSTEM_PROMPT,
                   bos_token: str = "", eos_token: str = "", limit: int | None = None, shard_index: int = 0,
                   shard_count: int = 1, **_task_metadata):
    """lm-eval `custom_dataset`: called with the task's metadata and dataset_kwargs as keywords."""
    import datasets

    rows = select_rows(read_benchmark(benchmark), limit, int(shard_index), int(shard_count))
    for row in rows:
        row["prompt"] = render_prompt(row["problem"], template, system_prompt, bos_token, eos_token)
    features = datasets.Features({**{k: datasets.Value("string") for k in ("id", "problem", "answer", "meta", "prompt")},
                                  "index": datasets.Value("int64")})
    return datasets.DatasetDict({"test": datasets.Dataset.from_list(rows, features=features)})


def doc_to_text(doc: dict) -> str:
    return doc["prompt"]


# ----------------------------------------------------------------------------- grading
_settings = {"strategies": ("boxed", "answer_phrase"), "timeout_s": 5.0, "workers": 2, "cache_path": None}
_pool = None


def configure_verifier(strategies: Sequence[str] = ("boxed", "answer_phrase"), timeout_s: float = 5.0,
                       workers: int = 2, cache_path: str | None = None) -> None:
    """Grader settings (the project's `verifier` node); replaces a pool started with other settings."""
    global _pool
    new = {"strategies": tuple(strategies), "timeout_s": float(timeout_s), "workers": int(workers),
           "cache_path": str(cache_path) if cache_path else None}
    if new != _settings and _pool is not None:
        close_verifier()
    _settings.update(new)


def shared_verifier():
    """One VerifierPool per process: its memo makes re-grading the same outputs free."""
    global _pool
    if _pool is None:
        from trajfusion.data.verification import VerifierPool

        _pool = VerifierPool(workers=_settings["workers"], timeout_s=_settings["timeout_s"],
                             cache_path=_settings["cache_path"], progress=False)
        atexit.register(close_verifier)
    return _pool


def close_verifier() -> None:
    global _pool
    if _pool is not None:
        _pool.close()
        _pool = None


def grade(pairs: Iterable[tuple[str, str]]) -> list[dict]:
    """(reference, output) → {"pred", "verdict"}: the project's extraction, then its verifier in one batch.
    An output with no extractable answer is `incorrect` (pred None); a grader timeout or an empty /
    unparseable reference is `unknown` (counted, never silently wrong)."""
    from trajfusion.data.verification import extract_pred

    pairs = list(pairs)
    preds = [extract_pred({"text": output}, _settings["strategies"])[0] for _, output in pairs]
    todo = [i for i, p in enumerate(preds) if p is not None]
    verdicts = shared_verifier().check_many([(pairs[i][0], preds[i]) for i in todo], desc="grade") if todo else []
    # No answer is wrong, unless the reference itself is empty: then nothing can be judged (unknown).
    graded = [{"pred": p, "verdict": (Verdict.INCORRECT if normalize_answer(ref) else Verdict.UNKNOWN).value}
              for p, (ref, _) in zip(preds, pairs)]
    for i, verdict in zip(todo, verdicts):
        graded[i]["verdict"] = verdict.value
        if verdict is Verdict.UNKNOWN:  # why: a size cap, a timeout, ... (also counted in the grader stats)
            graded[i]["unknown_reason"] = shared_verifier().reason_of(pairs[i][0], preds[i])
    return graded


def grade_responses(resps, docs) -> list[list[dict]]:
    """lm-eval filter (`function: custom`): every output of every doc, graded in one batch."""
    resps, docs = [list(r) for r in resps], list(docs)
    flat = [(doc["answer"], out) for doc, outs in zip(docs, resps) for out in outs]
    graded = iter(grade(flat))
    return [[next(graded) for _ in outs] for outs in resps]


def process_results(doc: dict, results: list) -> dict[str, float]:
    """Mean over the doc's samples: Pass@1 with one greedy sample, Avg@k with k sampled ones."""
    verdicts = [g["verdict"] for g in results[0]]
    return {"acc": sum(v == Verdict.CORRECT.value for v in verdicts) / len(verdicts),
            "unknown": sum(v == Verdict.UNKNOWN.value for v in verdicts) / len(verdicts)}
