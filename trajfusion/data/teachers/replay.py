"""Replay teacher: a stored pool instead of sampling.

Stored pools (such as the bundled multi-teacher MATH pool) keep each model's reasoning and its
final answer in separate fields. Replay joins them into the text a trained model would write — the
reasoning, then `The final answer is $\\boxed{…}$` — so the verifier judges the text itself, as it
will judge a sampled pool. The stored label is kept as `stored_correct` for an agreement check.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from trajfusion.io import DataError, json_type, read_jsonl, resolve_path, text_value


def trajectory_text(reasoning: str, final_answer: str | None) -> str:
    reasoning = (reasoning or "").strip()
    if not final_answer or not str(final_answer).strip():
        return reasoning
    return f"{reasoning}\n\nThe final answer is $\\boxed{{{str(final_answer).strip()}}}$."


def _text_field(path: Path, line: int, obj: dict, key: str, where: str) -> str:
    value = text_value(path, line, f"{where}{key}", obj.get(key))
    if not isinstance(value, str) or not value.strip():
        raise DataError(path, line, f"{where}{key}", "missing or empty (a non-empty string is required)")
    return value


def load_replay_pool(
    pool_path: str, id_field: str = "id", problem_field: str = "problem", answer_field: str = "answer",
    open_weights_only: bool = True, num_samples: int | None = None, limit: int | None = None,
) -> list[dict]:
    """Pool rows (DESIGN §4) from a stored pool file; bad lines fail with file, line and field."""
    return list(replay_rows(pool_path, id_field, problem_field, answer_field, open_weights_only, num_samples, limit))


def replay_rows(
    pool_path: str, id_field: str = "id", problem_field: str = "problem", answer_field: str = "answer",
    open_weights_only: bool = True, num_samples: int | None = None, limit: int | None = None,
) -> Iterator[dict]:
    """`load_replay_pool` as a stream: one line read, checked and converted at a time. Memory holds the
    ids seen (for the duplicate check), never the rows."""
    path = resolve_path(pool_path)
    seen: dict[str, int] = {}
    count = 0
    for line, obj in read_jsonl(path):
        pid = text_value(path, line, id_field, obj.get(id_field))
        if pid is None or not pid.strip():
            raise DataError(path, line, id_field, "missing or empty problem id")
        if pid in seen:
            raise DataError(path, line, id_field, f"duplicate id {pid!r} (first on line {seen[pid]})")
        seen[pid] = line
        problem = _text_field(path, line, obj, problem_field, "")
        answer = text_value(path, line, answer_field, obj.get(answer_field))
        if answer is None or not answer.strip():
            raise DataError(path, line, answer_field, "missing or empty reference answer")
        stored = obj.get("samples")
        if stored is None:
            raise DataError(path, line, "samples", "missing (a replay pool needs a list of samples per problem)")
        if not isinstance(stored, list):
            raise DataError(path, line, "samples", f"must be a list of samples, got {json_type(stored)}")
        samples = []
        for j, s in enumerate(stored):
            if not isinstance(s, dict):
                raise DataError(path, line, f"samples[{j}]", f"expected an object, got {json_type(s)}")
            key = "text" if "text" in s else "solution"
            reasoning = text_value(path, line, f"samples[{j}].{key}", s.get(key))
            pred = text_value(path, line, f"samples[{j}].pred", s.get("pred"))
            model = text_value(path, line, f"samples[{j}].model", s.get("model"))
            if open_weights_only and s.get("open_weights") is False:
                continue
            if not isinstance(reasoning, str):
                raise DataError(path, line, f"samples[{j}].solution", "missing (need 'solution' or 'text')")
            samples.append({
                "text": reasoning if "text" in s else trajectory_text(reasoning, pred),
                "model": model if model is not None else "unknown",
                "finish_reason": s.get("finish_reason", "stop"),
                # the stored reasoning was cut for storage: usable for r, not as a fused error or y*
                "truncated": bool(s.get("truncated", s.get("solution_truncated", False))),
                "stored_pred": s.get("pred"),
                "stored_correct": s.get("correct"),
            })
        samples = samples[:num_samples] if num_samples else samples
        for j, s in enumerate(samples):
            s["sample_id"] = f"{pid}:{j:03d}"
        yield {"id": pid, "problem": problem, "answer": answer.strip(), "samples": samples}
        count += 1
        if limit and count >= limit:
            break
    if not count:
        raise DataError(path, None, None, "no problems in the pool")
