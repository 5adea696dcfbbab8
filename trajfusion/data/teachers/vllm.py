"""vLLM teacher (GPU): one request per problem with n = K and a per-problem seed.

vLLM is imported lazily and lives in the `gpu` extra. Request construction is plain Python so it
is tested without a GPU.
"""

from __future__ import annotations

from dataclasses import dataclass

from trajfusion.data.teachers.prompts import problem_seed, teacher_messages
from trajfusion.models import resolve_model


@dataclass(frozen=True)
class Request:
    problem_id: str
    messages: list[dict]
    sampling: dict  # SamplingParams keyword arguments


def build_requests(problems: list[dict], cfg) -> list[Request]:
    return [
        Request(
            problem_id=p["id"],
            messages=teacher_messages(p["problem"], cfg.system_prompt, cfg.user_template),
            sampling={
                "n": cfg.num_samples, "temperature": cfg.temperature, "top_p": cfg.top_p,
                "max_tokens": cfg.max_new_tokens, "seed": problem_seed(cfg.seed, p["id"]), "stop": list(cfg.stop),
            },
        )
        for p in problems
    ]


def engine_kwargs(cfg) -> dict:
    path, extra = resolve_model(cfg.model)
    kwargs = {
        "model": path, "tensor_parallel_size": cfg.tensor_parallel_size, "gpu_memory_utilization": cfg.gpu_memory_utilization,
        "enable_prefix_caching": cfg.enable_prefix_caching, "seed": cfg.seed, "dtype": cfg.dtype,
    }
    if cfg.max_model_len:
        kwargs["max_model_len"] = cfg.max_model_len
    if "gguf_file" in extra:
        kwargs["model"] = f"{path}/{extra['gguf_file']}"
    return kwargs


class VLLMTeacher:
    def __init__(self, cfg):
        from vllm import LLM, SamplingParams

        self.cfg, self.SamplingParams = cfg, SamplingParams
        self.llm = LLM(**engine_kwargs(cfg))
        self.tokenizer = self.llm.get_tokenizer()

    def sample_batch(self, problems: list[dict]) -> list[list[dict]]:
        requests = build_requests(problems, self.cfg)
        prompts = [self.tokenizer.apply_chat_template(r.messages, tokenize=False, add_generation_prompt=True) for r in requests]
        params = [self.SamplingParams(**r.sampling) for r in requests]
        results = self.llm.generate(prompts, params, use_tqdm=False)
        return [
            [
                {"text": o.text, "finish_reason": o.finish_reason, "n_tokens": len(o.token_ids), "model": self.cfg.model}
                for o in sorted(result.outputs, key=lambda o: o.index)
            ]
            for result in results
        ]
