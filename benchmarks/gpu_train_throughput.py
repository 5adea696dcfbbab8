"""Training throughput, MFU and peak GPU memory per rank: packed sequences vs padded batches of the same rows.

    python benchmarks/gpu_train_throughput.py                  # one H200, about 4 minutes
    python benchmarks/gpu_train_throughput.py --layers 32      # the full depth (see the memory note)
    torchrun --nproc-per-node 8 benchmarks/gpu_train_throughput.py --preset table3_32k   # the 32K preset's shape

`--preset table3_32k` is the long-form run's shape: random-init Qwen2.5-Math-7B (28 layers, 152K vocabulary,
YaRN ×8), 32,768-token packs, ZeRO-3, flash-attention (required: a packed CUDA run without it is an error),
Liger's fused linear + cross-entropy when installed (the gpu extra), non-reentrant gradient checkpointing,
packed layout only (padded 32K batches are the baseline's problem, not the preset's). Each rank trains its own
packs; the table ends with every rank's peak allocated / reserved GPU memory. On one GPU ZeRO-3 shards nothing
(7.6B × 16 bytes of weights, gradients and Adam states do not fit): use 8 ranks, or `--layers` to cut depth.

Model: random-init Llama of the Llama-3-8B config shipped in conf/model_configs/llama3_8b.json, bf16,
DeepSpeed ZeRO-1 (plain AdamW when DeepSpeed is missing), gradient checkpointing, flash-attention
when installed (else sdpa with a block-diagonal mask). Memory note: ZeRO-1 on a single rank shards
nothing, so Adam states, fp32 master weights, bf16 weights and gradients take 16 bytes a parameter:
128 GB for the 8.0B model, before activations, on a 141 GB H200. The default therefore keeps the
8B width, heads, vocabulary and sequence length and halves the depth (16 of 32 layers); per-token
cost per layer, and so MFU, is what the full model has. `--layers 32` runs the full model.

Data: row lengths of a fused dataset (`--dataset DIR/data.jsonl`, token counts from its `n_tokens`)
or, by default, a seeded log-normal that matches the bundled TrajFusion rows (median ≈ 700 tokens,
capped at 4096); token ids are random (throughput does not depend on them). Both layouts train on
the same rows in the same order: packed = best-fit packs of ≤ 4096 tokens, one pack per step;
padded = `--padded-batch` rows per step, right-padded to the longest. 3 warm-up steps, then 20 timed
steps each. Prints real (non-pad) tokens/s, the real share of the batch tensors and MFU =
model FLOPs of the real tokens / (time × peak bf16 FLOP/s).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PEAK_BF16_FLOPS = {"H200": 989e12, "H100": 989e12, "A100": 312e12}  # dense, no sparsity
# The default shape (the 4K presets' Llama-3-8B at half depth, ZeRO-1) and the 32K preset's.
PRESETS = {
    "llama3_8b_4k": {"model_config": "conf/model_configs/llama3_8b.json", "seq_len": 4096, "layers": 16,
                     "zero_stage": 1, "median_tokens": 700, "layouts": ["packed", "padded"], "yarn_factor": None},
    "table3_32k": {"model_config": "conf/model_configs/qwen2p5_math_7b_instruct/config.json", "seq_len": 32768,
                   "layers": 28, "zero_stage": 3, "median_tokens": 8000, "layouts": ["packed"], "yarn_factor": 8.0},
}


def parse_args(argv=None) -> argparse.Namespace:
    """Arguments with the preset's values filled in where not given on the command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--preset", choices=sorted(PRESETS), default="llama3_8b_4k")
    parser.add_argument("--layers", type=int, default=None, help="decoder layers (default: the preset's)")
    parser.add_argument("--seq-len", type=int, default=None, help="pack capacity in tokens (default: the preset's)")
    parser.add_argument("--zero-stage", type=int, choices=(0, 1, 2, 3), default=None)
    parser.add_argument("--layouts", nargs="+", choices=("packed", "padded"), default=None)
    parser.add_argument("--fused-loss", choices=("auto", "liger", "none"), default="auto")
    parser.add_argument("--attn", default="flash_attention_2", help="sdpa: accept the L×L mask explicitly")
    parser.add_argument("--padded-batch", type=int, default=4)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--dataset", default=None)
    args = parser.parse_args(argv)
    preset = PRESETS[args.preset]
    for key in ("layers", "seq_len", "zero_stage", "layouts"):
        if getattr(args, key) is None:
            setattr(args, key, preset[key])
    args.model_config, args.median_tokens, args.yarn_factor = preset["model_config"], preset["median_tokens"], preset["yarn_factor"]
    if args.yarn_factor and args.seq_len > 4096 * args.yarn_factor:
        parser.error(f"--seq-len {args.seq_len} exceeds the preset's YaRN context {int(4096 * args.yarn_factor)}")
    return args


def row_lengths(args) -> list[int]:
    if args.dataset:
        with open(args.dataset, encoding="utf-8") as handle:
            return [min(json.loads(line)["n_tokens"], args.seq_len) for line in handle if line.strip()]
    rng = random.Random(0)
    return [max(64, min(args.seq_len, int(rng.lognormvariate(math.log(args.median_tokens), 0.6)))) for _ in range(4000)]


def flops_per_step(config, lengths: list[int]) -> float:
    """Training FLOPs (forward + backward = 3 × forward) of the real tokens, with causal attention per row."""
    d, layers, vocab = config.hidden_size, config.num_hidden_layers, config.vocab_size
    kv = config.num_key_value_heads * (d // config.num_attention_heads)
    per_layer = 2 * (d * d + 2 * d * kv + d * d) + 2 * 3 * d * config.intermediate_size  # q, k, v, o + gated MLP
    dense = sum(lengths) * (layers * per_layer + 2 * d * vocab)
    attention = sum(layers * 2 * 2 * d * n * n / 2 for n in lengths)  # QKᵀ and AV, causal half
    return 3 * (dense + attention)


def peak_memory_per_rank() -> list[tuple[float, float]]:
    """(peak allocated, peak reserved) GiB of every rank, in rank order."""
    import torch

    mine = (torch.cuda.max_memory_allocated() / 2**30, torch.cuda.max_memory_reserved() / 2**30)
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return [mine]
    every = [None] * torch.distributed.get_world_size()
    torch.distributed.all_gather_object(every, mine)
    return every


def main(argv=None) -> int:
    args = parse_args(argv)

    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from trajfusion.training.kernels import apply_fused_loss, choose_attention, choose_fused_loss, installed
    from trajfusion.training.packing import pack_best_fit

    if not torch.cuda.is_available():
        print(f"{Path(__file__).name}: needs a CUDA GPU (torch {torch.__version__} sees none); nothing measured",
              file=sys.stderr)
        return 2
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", "29511")
    os.environ.setdefault("RANK", "0")
    os.environ.setdefault("LOCAL_RANK", "0")
    os.environ.setdefault("WORLD_SIZE", "1")
    rank, world_size = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))
    started = time.perf_counter()
    name = torch.cuda.get_device_name()
    peak = next((v for k, v in PEAK_BF16_FLOPS.items() if k in name), 989e12)

    settings = json.loads((ROOT / args.model_config).read_text())
    config = AutoConfig.for_model(**settings)
    config.num_hidden_layers = args.layers
    config.use_cache = False  # packed sequences need it off (see trajfusion.training.students.load_model)
    if args.yarn_factor:  # as the 32K student: YaRN over the 4K original context
        scaling = {"rope_type": "yarn", "factor": args.yarn_factor, "original_max_position_embeddings": 4096}
        if hasattr(config, "rope_parameters"):
            config.rope_parameters = {**(config.rope_parameters or {}), **scaling}
        else:
            config.rope_scaling = scaling
        config.max_position_embeddings = args.seq_len
    attn = choose_attention(args.attn, packed="packed" in args.layouts, cuda=True, flash_installed=installed("flash_attn"))
    config._attn_implementation = attn
    torch.manual_seed(0)
    with torch.device("cuda"):
        model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    loss = choose_fused_loss(args.fused_loss, model_type=config.model_type, cuda=True,
                             liger_installed=installed("liger_kernel"))
    if loss == "liger":
        apply_fused_loss(model)
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model.train()
    params = sum(p.numel() for p in model.parameters())

    try:
        import deepspeed

        engine, *_ = deepspeed.initialize(model=model, optimizer=torch.optim.AdamW(model.parameters(), lr=1e-5), config={
            "train_micro_batch_size_per_gpu": 1, "gradient_accumulation_steps": 1, "gradient_clipping": 1.0,
            "bf16": {"enabled": True}, "zero_optimization": {"stage": args.zero_stage},
            "zero_allow_untested_optimizer": True, "steps_per_print": 10**9,
        })
        optimiser_name = f"DeepSpeed ZeRO-{args.zero_stage}"

        def step(batch):
            loss = engine(**batch).loss
            engine.backward(loss)
            engine.step()
    except ImportError:
        if world_size > 1 or args.zero_stage > 1:
            print(f"ZeRO-{args.zero_stage} on {world_size} ranks needs DeepSpeed (pip install -e '.[cpu]')", file=sys.stderr)
            return 2
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5, fused=True)
        optimiser_name = "torch AdamW (DeepSpeed not installed)"

        def step(batch):
            model(**batch).loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)

    lengths = row_lengths(args)
    generator = torch.Generator().manual_seed(0)
    packs = pack_best_fit(lengths, args.seq_len)
    random.Random(0).shuffle(packs)
    needed = args.warmup + args.steps
    packs = packs[rank::world_size][:needed]  # each rank its own packs
    if len(packs) < needed:
        print(f"only {len(packs)} packs of {args.seq_len} tokens per rank for {needed} steps: fewer --steps, or a "
              "larger --dataset", file=sys.stderr)
        return 2
    rows_used = [i for pack in packs for i in pack]  # the padded layout trains on these same rows

    def packed_batch(pack):
        ids = torch.randint(0, config.vocab_size, (sum(lengths[i] for i in pack),), generator=generator)
        positions = torch.cat([torch.arange(lengths[i]) for i in pack])
        labels = ids.clone()
        starts = torch.tensor([0] + [lengths[i] for i in pack[:-1]]).cumsum(0)
        labels[starts] = -100
        return {"input_ids": ids[None].cuda(), "position_ids": positions[None].cuda(), "labels": labels[None].cuda()}, \
            [lengths[i] for i in pack], len(ids)

    def padded_batch(chunk):
        width = max(lengths[i] for i in chunk)
        ids = torch.randint(0, config.vocab_size, (len(chunk), width), generator=generator)
        mask = torch.zeros(len(chunk), width, dtype=torch.long)
        for r, i in enumerate(chunk):
            mask[r, : lengths[i]] = 1
        labels = ids.masked_fill(mask == 0, -100)
        return {"input_ids": ids.cuda(), "attention_mask": mask.cuda(), "labels": labels.cuda()}, \
            [lengths[i] for i in chunk], len(chunk) * width

    def measure(batches):
        for batch, _, _ in batches[: args.warmup]:
            step(batch)
        torch.cuda.synchronize()
        timed = batches[args.warmup:]
        t0 = time.perf_counter()
        for batch, _, _ in timed:
            step(batch)
        torch.cuda.synchronize()
        elapsed = time.perf_counter() - t0
        real = sum(sum(rows) for _, rows, _ in timed)
        tensor = sum(t for _, _, t in timed)
        flops = sum(flops_per_step(config, rows) for _, rows, _ in timed)
        return real / elapsed, real / tensor, flops / elapsed / peak, elapsed

    results, memory = {}, {}
    if "packed" in args.layouts:
        torch.cuda.reset_peak_memory_stats()
        results["packed"] = measure([packed_batch(p) for p in packs])
        memory["packed"] = peak_memory_per_rank()
    if "padded" in args.layouts:
        chunks = [rows_used[i: i + args.padded_batch] for i in range(0, len(rows_used), args.padded_batch)][:needed]
        torch.cuda.reset_peak_memory_stats()
        results[f"padded (batch {args.padded_batch})"] = measure([padded_batch(c) for c in chunks])
        memory[f"padded (batch {args.padded_batch})"] = peak_memory_per_rank()
    if rank:
        return 0

    print(f"{name} × {world_size}: {args.preset} ({config.model_type}), {args.layers} layers, {params / 1e9:.2f}B "
          f"parameters, bf16, {optimiser_name}, {attn}, loss {'Liger fused linear+CE' if loss == 'liger' else 'plain'}, "
          f"gradient checkpointing, {args.seq_len}-token packs, {args.steps} timed steps after {args.warmup} (rank 0)")
    print(f"{'layout':22s} {'tokens/s':>10s} {'real share':>10s} {'MFU':>7s} {'time s':>7s} {'peak GiB (max rank)':>20s}")
    for label, (tps, share, mfu, elapsed) in results.items():
        print(f"{label:22s} {tps:10.0f} {share:10.4f} {mfu:7.3f} {elapsed:7.1f} {max(a for a, _ in memory[label]):20.1f}")
    for label, per_rank in memory.items():
        print(f"peak GPU memory per rank, {label}: " + ", ".join(
            f"rank {r} {allocated:.1f} GiB allocated / {reserved:.1f} reserved" for r, (allocated, reserved) in enumerate(per_rank)))
    if len(results) == 2:
        (p_tps, *_), (u_tps, *_) = results.values()
        print(f"packed / padded real tokens/s: ×{p_tps / u_tps:.2f}")
    print(f"total wall {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
