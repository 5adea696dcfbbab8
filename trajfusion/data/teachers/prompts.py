"""The teacher's request for one problem: chat messages and a per-problem seed."""

from __future__ import annotations

import hashlib


def problem_seed(seed: int, problem_id: str) -> int:
    """A 31-bit seed from (teacher seed, problem id): samples never depend on batching or sharding."""
    return int.from_bytes(hashlib.sha256(f"{seed}\x1f{problem_id}".encode()).digest()[:4], "big") & 0x7FFFFFFF


def teacher_messages(problem: str, system_prompt: str | None, user_template: str) -> list[dict]:
    messages = [{"role": "system", "content": system_prompt}] if system_prompt else []
    return messages + [{"role": "user", "content": user_template.replace("{problem}", problem)}]
