"""transformers teacher (CPU or GPU): K samples per problem in one batch, seeded per problem."""

from __future__ import annotations

import logging

from trajfusion.data.teachers.prompts import problem_seed, teacher_messages
from trajfusion.models import resolve_model

log = logging.getLogger(__name__)


class HFTeacher:
    def __init__(self, cfg):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.cfg, self.torch = cfg, torch
        path, kwargs = resolve_model(cfg.model)
        self.tokenizer = AutoTokenizer.from_pretrained(path, **kwargs)
        dtype = "auto" if cfg.dtype == "auto" else getattr(torch, cfg.dtype)
        self.model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype, **kwargs).eval()
        configured = self.model.generation_config.eos_token_id
        configured = configured if isinstance(configured, list) else [configured]
        self.eos_ids = {i for i in [self.tokenizer.eos_token_id, *configured] if i is not None}

    def _sample_problem(self, problem: dict) -> list[dict]:
        cfg, torch = self.cfg, self.torch
        messages = teacher_messages(problem["problem"], cfg.system_prompt, cfg.user_template)
        inputs = self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt", return_dict=True)
        torch.manual_seed(problem_seed(cfg.seed, problem["id"]))
        sampling = dict(do_sample=True, temperature=cfg.temperature, top_p=cfg.top_p) if cfg.temperature > 0 else dict(do_sample=False)
        stop = dict(stop_strings=list(cfg.stop), tokenizer=self.tokenizer) if cfg.stop else {}
        with torch.no_grad():
            out = self.model.generate(
                **inputs, max_new_tokens=cfg.max_new_tokens, num_return_sequences=cfg.num_samples,
                pad_token_id=self.tokenizer.pad_token_id or self.tokenizer.eos_token_id, **sampling, **stop,
            )
        samples = []
        for row in out[:, inputs["input_ids"].shape[1] :].tolist():
            ends = [i for i, t in enumerate(row) if t in self.eos_ids]
            n_tokens = ends[0] + 1 if ends else len(row)
            text = self.tokenizer.decode(row[:n_tokens], skip_special_tokens=True)
            stopped = bool(ends) or any(s in text for s in cfg.stop)
            samples.append({"text": text, "finish_reason": "stop" if stopped else "length", "n_tokens": n_tokens, "model": cfg.model})
        return samples

    def sample_batch(self, problems: list[dict]) -> list[list[dict]]:
        return [self._sample_problem(p) for p in problems]
