"""Teacher sampling throughput on one GPU: n = K in one request vs K separate requests.

vLLM with dummy weights of the Qwen2.5-Math-7B architecture (conf/model_configs/, no download),
random prompt token ids (no tokenizer), fixed-length outputs (ignore_eos). The n = K path shares the
prompt's prefill and KV blocks across the K samples; the baseline sends K requests of n = 1.

    python benchmarks/gpu_teacher_throughput.py                      # 256 problems x K=16 x 1024 tokens
    python benchmarks/gpu_teacher_throughput.py --problems 64 --max-new-tokens 512
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

CONFIG_DIR = Path(__file__).resolve().parent.parent / "conf" / "model_configs" / "qwen2p5_math_7b_instruct"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--problems", type=int, default=256)
    parser.add_argument("--k", type=int, default=16)
    parser.add_argument("--max-new-tokens", type=int, default=1024)
    parser.add_argument("--prompt-tokens", type=int, default=160, help="typical math problem + chat template")
    parser.add_argument("--gpu-memory-utilization", type=float, default=0.9)
    parser.add_argument("--out", type=Path, default=None, help="also write the figures as JSON here")
    args = parser.parse_args()

    from vllm import LLM, SamplingParams

    started = time.perf_counter()
    llm = LLM(
        model=str(CONFIG_DIR), load_format="dummy", skip_tokenizer_init=True, dtype="bfloat16",
        max_model_len=args.prompt_tokens + args.max_new_tokens + 16, gpu_memory_utilization=args.gpu_memory_utilization,
        enable_prefix_caching=True, seed=0,
    )
    startup_s = time.perf_counter() - started
    rng = random.Random(0)
    prompts = [{"prompt_token_ids": [rng.randrange(1000, 150000) for _ in range(args.prompt_tokens)]} for _ in range(args.problems)]

    def params(n: int, seed: int) -> SamplingParams:
        return SamplingParams(n=n, temperature=0.7, top_p=0.95, max_tokens=args.max_new_tokens, seed=seed,
                              ignore_eos=True, detokenize=False)

    def timed(batch_prompts, batch_params) -> tuple[float, int]:
        t0 = time.perf_counter()
        results = llm.generate(batch_prompts, batch_params, use_tqdm=False)
        elapsed = time.perf_counter() - t0
        return elapsed, sum(len(o.token_ids) for r in results for o in r.outputs)

    timed(prompts[:8], [params(args.k, i) for i in range(8)])  # warm-up: CUDA graphs, allocator
    n_time, n_tokens = timed(prompts, [params(args.k, i) for i in range(args.problems)])
    llm.reset_prefix_cache()
    sep_prompts = [p for p in prompts for _ in range(args.k)]
    sep_params = [params(1, i * args.k + j) for i in range(args.problems) for j in range(args.k)]
    s_time, s_tokens = timed(sep_prompts, sep_params)

    result = {
        "model": "Qwen2.5-Math-7B architecture, dummy weights, bf16", "problems": args.problems, "k": args.k,
        "max_new_tokens": args.max_new_tokens, "engine_startup_s": round(startup_s, 1),
        "n_per_request": {"seconds": round(n_time, 1), "output_tokens": n_tokens, "tokens_per_s": round(n_tokens / n_time)},
        "separate_requests": {"seconds": round(s_time, 1), "output_tokens": s_tokens, "tokens_per_s": round(s_tokens / s_time)},
        "ratio_n_vs_separate": round((n_tokens / n_time) / (s_tokens / s_time), 3),
    }
    print(json.dumps(result, indent=2))
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
