"""The vLLM backend without a GPU: lm-eval model arguments, one process per data-parallel shard with its own
GPUs and slice of problems, merge of shard outputs; and a GPU-marked end-to-end run."""

import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.helpers import cuda_available, vllm_test_model

from trajfusion.evaluation.backends import (TaskRun, run_vllm_shards, shard_devices, shard_launches,
                                            vllm_model_args)

ROOT = Path(__file__).resolve().parent.parent
BACKEND = SimpleNamespace(dtype="bfloat16", tensor_parallel_size=2, data_parallel_size=3, gpu_memory_utilization=0.85,
                          seed=1234)
RUNS = [TaskRun("tf_math500", False, 1, 0.0, 1.0, 2048), TaskRun("tf_aime24_avg16", True, 16, 0.7, 0.95, 4096)]


def test_model_args_use_tensor_parallel_inside_a_shard_and_never_lm_evals_data_parallel():
    args = vllm_model_args("/ckpt", BACKEND, max_model_len=4096, max_new_tokens=4096, shard_index=2)
    assert args["pretrained"] == args["tokenizer"] == "/ckpt"
    assert args["tensor_parallel_size"] == 2 and args["data_parallel_size"] == 1
    assert args["max_model_len"] == 4096 and args["max_gen_toks"] == 4096 and args["dtype"] == "bfloat16"
    assert args["seed"] == 1236  # shards draw different samples
    assert args["add_bos_token"] is False  # the template carries BOS, as in training


def test_each_shard_gets_its_own_gpus():
    assert shard_devices(2, 3, [str(i) for i in range(8)]) == ["0,1", "2,3", "4,5"]
    assert shard_devices(1, 2, ["4", "7"]) == ["4", "7"]
    with pytest.raises(ValueError, match="6 GPUs"):
        shard_devices(2, 3, ["0", "1"])


def test_shard_launches_split_problems_and_carry_the_runs(tmp_path):
    launches = shard_launches(tmp_path, "/ckpt", BACKEND, RUNS, {"template": "base_plain", "limit": 10}, seed=5,
                              max_model_len=8192, visible=[str(i) for i in range(6)])
    assert [l.env["CUDA_VISIBLE_DEVICES"] for l in launches] == ["0,1", "2,3", "4,5"]
    assert [(l.spec["metadata"]["shard_index"], l.spec["metadata"]["shard_count"]) for l in launches] == [(0, 3), (1, 3), (2, 3)]
    assert all(l.spec["metadata"]["limit"] == 10 for l in launches)  # limit before sharding: same problems
    assert [l.spec["seed"] for l in launches] == [5, 6, 7]
    assert launches[0].argv[1:3] == ["-m", "trajfusion.evaluation.shard"]
    assert launches[1].spec["runs"][1]["n"] == 16 and launches[1].spec["model_args"]["max_gen_toks"] == 4096


def _fake_launch(tmp_path, index, rows, code=0):
    out = tmp_path / f"shard{index}.jsonl"
    script = f"import json,sys; open({str(out)!r},'w').write(''.join(json.dumps(r)+'\\n' for r in {rows!r})); sys.exit({code})"
    return SimpleNamespace(index=index, argv=[sys.executable, "-c", script], env=dict(os.environ),
                           spec_path=tmp_path / f"shard{index}.json", out_path=out, spec={})


def test_shard_outputs_are_merged_in_benchmark_order_and_a_failed_shard_fails(tmp_path):
    rows = lambda idx: [{"task": "tf_gsm8k", "index": i, "problem_id": f"p{i}"} for i in idx]  # noqa: E731
    merged = run_vllm_shards([_fake_launch(tmp_path, 0, rows([0, 2, 4])), _fake_launch(tmp_path, 1, rows([1, 3]))])
    assert [r["index"] for r in merged["tf_gsm8k"]] == [0, 1, 2, 3, 4]
    with pytest.raises(RuntimeError, match=r"shard\(s\) \[1\]"):
        run_vllm_shards([_fake_launch(tmp_path, 0, rows([0])), _fake_launch(tmp_path, 1, rows([1]), code=3)])


@pytest.mark.gpu
@pytest.mark.skipif(not cuda_available(), reason="needs CUDA")
def test_vllm_backend_evaluates_a_checkpoint_on_gpu(tmp_path):
    model = vllm_test_model("a local HF model directory")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "WANDB_MODE": "disabled"}
    proc = subprocess.run([sys.executable, str(ROOT / "evaluate.py"), f"paths.data_root={tmp_path}",
                           f"hydra.run.dir={tmp_path / 'run'}", "student=qwen2p5_math_7b", f"ckpt={model}",
                           "benchmark=aime24", "benchmark.limit=4", "benchmark.max_new_tokens=64", "benchmark.sampling.n=2",
                           "backend.name=vllm", "backend.gpu_memory_utilization=0.5", "backend.max_model_len=2048"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-5000:]
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert results["tasks"]["tf_aime24"]["n_problems"] == 4
    assert results["tasks"]["tf_aime24_avg16"]["samples_per_problem"] == 2
    assert results["tasks"]["tf_aime24"]["lm_eval_acc"] == pytest.approx(results["tasks"]["tf_aime24"]["accuracy"])
