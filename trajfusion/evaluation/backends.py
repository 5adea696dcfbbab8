"""Generation backends behind one call, `generate(task_runs) → rows` (one row per problem with all its
outputs): lm-eval's HFLM in process (CPU or one GPU), or lm-eval's vLLM model in one process per
data-parallel shard (each shard a tensor-parallel group on its own GPUs). lm-eval's own Ray data-parallel
mode is known to hang, so shards are independent processes that each see a slice of the problems.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path

from trajfusion.io import read_jsonl, write_json, write_jsonl
from trajfusion.tasks import TASK_DIR

log = logging.getLogger(__name__)


@dataclass
class TaskRun:
    """One lm-eval task with its decoding: greedy (n = 1) or n samples per problem."""

    task: str
    sampled: bool
    n: int
    temperature: float
    top_p: float
    max_new_tokens: int


def _task_yaml(task: str, resolve_functions: bool) -> dict:
    from lm_eval.tasks._yaml_loader import load_yaml  # lm-eval 0.4.13; one place to change on upgrade

    return load_yaml(TASK_DIR / f"{task}.yaml", resolve_func=resolve_functions)


def plan_task_runs(benchmark) -> list[TaskRun]:
    """Decoding per task: a task whose YAML samples (the `*_avg16` variants) takes `benchmark.sampling`;
    every other task is greedy with one output. All take `benchmark.max_new_tokens`."""
    runs = []
    for task in benchmark.tasks:
        sampled = bool(_task_yaml(task, resolve_functions=False).get("generation_kwargs", {}).get("do_sample"))
        s = benchmark.sampling
        runs.append(TaskRun(task, sampled, s.n if sampled else 1, s.temperature if sampled else 0.0,
                            s.top_p if sampled else 1.0, benchmark.max_new_tokens))
    return runs


def task_config(run: TaskRun, metadata: dict) -> dict:
    """The task's YAML with this run's decoding and metadata (template, tokens, limit, shard)."""
    cfg = _task_yaml(run.task, resolve_functions=True)
    gen = dict(cfg.get("generation_kwargs") or {})
    gen.update(max_gen_toks=run.max_new_tokens, do_sample=run.sampled, temperature=run.temperature)
    if run.sampled:
        gen["top_p"] = run.top_p
    else:
        gen.pop("top_p", None)
    cfg.update(repeats=run.n, generation_kwargs=gen, metadata={**(cfg.get("metadata") or {}), **metadata})
    return cfg


@lru_cache(maxsize=1)
def project_task_manager():
    """lm-eval's task manager over this project's tasks only (indexing lm-eval's own ~10k YAMLs takes ~15 s)."""
    from lm_eval.tasks import TaskManager

    return TaskManager(include_path=str(TASK_DIR), include_defaults=False)


def generate_with_lm(lm, runs: Sequence[TaskRun], metadata: dict, seed: int) -> dict[str, list[dict]]:
    """Run each task through lm-eval with a loaded LM; rows carry the doc, prompt, outputs and lm-eval's score."""
    from lm_eval import simple_evaluate
    from lm_eval.api.task import ConfigurableTask

    out = {}
    for run in runs:
        task = ConfigurableTask(config=task_config(run, metadata))
        log.info("%s: %d problems × %d output(s), max %d new tokens", run.task, len(task.eval_docs), run.n,
                 run.max_new_tokens)
        result = simple_evaluate(model=lm, tasks=[task], log_samples=True, random_seed=seed, numpy_random_seed=seed,
                                 torch_random_seed=seed, fewshot_random_seed=seed, bootstrap_iters=0,
                                 task_manager=project_task_manager())
        task_name = next(iter(result["samples"]))
        rows = []
        for sample in result["samples"][task_name]:
            doc = sample["doc"]
            rows.append({"task": run.task, "index": int(doc["index"]), "problem_id": doc["id"], "problem": doc["problem"],
                         "reference": doc["answer"], "prompt": sample["arguments"][0][0],
                         "outputs": list(sample["resps"][0]), "lm_eval_acc": float(sample["acc"]),
                         "lm_eval_unknown": float(sample["unknown"])})
        out[run.task] = sorted(rows, key=lambda r: r["index"])
    return out


# ------------------------------------------------------------------------------------------------ HF
def hf_lm(model, tokenizer, batch_size: int, max_length: int, device: str | None):
    """lm-eval's HFLM around an already loaded model (a checkpoint, or a student built in code).
    add_bos_token=False: the template carries BOS when the student was trained with one (as training does)."""
    import torch
    from lm_eval.models.huggingface import HFLM

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    model.to(device)
    return HFLM(pretrained=model, tokenizer=tokenizer, batch_size=batch_size, max_length=max_length, device=device,
                add_bos_token=False)


# ---------------------------------------------------------------------------------------------- vLLM
def vllm_model_args(model_path: str, backend, max_model_len: int, max_new_tokens: int, shard_index: int) -> dict:
    """Arguments of lm-eval's VLLM model for one shard: tensor parallel inside, never lm-eval's Ray
    data parallelism; a shard-specific seed so shards do not draw the same samples."""
    return {
        "pretrained": model_path, "tokenizer": model_path, "dtype": backend.dtype,
        "tensor_parallel_size": backend.tensor_parallel_size, "data_parallel_size": 1,
        "gpu_memory_utilization": backend.gpu_memory_utilization, "max_model_len": max_model_len,
        "max_gen_toks": max_new_tokens, "seed": backend.seed + shard_index, "batch_size": "auto",
        "add_bos_token": False,
    }


def shard_devices(tensor_parallel_size: int, data_parallel_size: int, visible: Sequence[str]) -> list[str]:
    """CUDA_VISIBLE_DEVICES of each shard: consecutive groups of tensor_parallel_size devices."""
    need = tensor_parallel_size * data_parallel_size
    if len(visible) < need:
        raise ValueError(f"backend: tensor_parallel_size × data_parallel_size = {need} GPUs, {len(visible)} visible")
    return [",".join(visible[i * tensor_parallel_size:(i + 1) * tensor_parallel_size]) for i in range(data_parallel_size)]


def visible_devices() -> list[str]:
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env:
        return [d.strip() for d in env.split(",") if d.strip()]
    import torch

    return [str(i) for i in range(torch.cuda.device_count())]


@dataclass
class ShardLaunch:
    index: int
    argv: list[str]
    env: dict
    spec_path: Path
    out_path: Path
    spec: dict


def shard_launches(work_dir: Path, model_path: str, backend, runs: Sequence[TaskRun], metadata: dict, seed: int,
                   max_model_len: int, visible: Sequence[str]) -> list[ShardLaunch]:
    """One process per data-parallel shard, each with its GPUs, its slice of problems and its spec file."""
    launches = []
    count = backend.data_parallel_size
    for index, devices in enumerate(shard_devices(backend.tensor_parallel_size, count, visible)):
        spec_path, out_path = work_dir / f"shard{index}.json", work_dir / f"shard{index}.jsonl"
        max_new = max((r.max_new_tokens for r in runs), default=1)
        spec = {"model_args": vllm_model_args(model_path, backend, max_model_len, max_new, index),
                "runs": [asdict(r) for r in runs], "metadata": {**metadata, "shard_index": index, "shard_count": count},
                "seed": seed + index, "out": str(out_path)}
        launches.append(ShardLaunch(index, [sys.executable, "-m", "trajfusion.evaluation.shard", str(spec_path)],
                                    {**os.environ, "CUDA_VISIBLE_DEVICES": devices}, spec_path, out_path, spec))
    return launches


def run_vllm_shards(launches: Sequence[ShardLaunch]) -> dict[str, list[dict]]:
    """Start every shard, wait for all, merge their rows in benchmark order; a failed shard fails the run."""
    procs = []
    for launch in launches:
        write_json(launch.spec_path, launch.spec)
        procs.append(subprocess.Popen(launch.argv, env=launch.env))
    codes = [p.wait() for p in procs]
    failed = [launch.index for launch, code in zip(launches, codes) if code != 0]
    if failed:
        raise RuntimeError(f"vLLM shard(s) {failed} failed; see their logs above")
    merged: dict[str, list[dict]] = {}
    for launch in launches:
        for _, row in read_jsonl(launch.out_path):
            merged.setdefault(row["task"], []).append(row)
    return {task: sorted(rows, key=lambda r: r["index"]) for task, rows in merged.items()}


def run_shard(spec: dict) -> None:
    """Body of one shard process: lm-eval's VLLM on this shard's GPUs, rows to the spec's JSONL."""
    from lm_eval.models.vllm_causallms import VLLM

    lm = VLLM(**spec["model_args"])
    runs = [TaskRun(**r) for r in spec["runs"]]
    rows = generate_with_lm(lm, runs, spec["metadata"], spec["seed"])
    write_jsonl(spec["out"], [row for task_rows in rows.values() for row in task_rows])
