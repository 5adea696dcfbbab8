"""evaluate.py end to end on CPU with the tiny random student: every output of a run (results.json, the
markdown table, per-sample JSONL, W&B offline), greedy and Avg@k tasks, a checkpoint directory; then the
compare command on two runs."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from trajfusion.evaluation.metrics import problem_scores

ROOT = Path(__file__).resolve().parent.parent
SAMPLE_FIELDS = {"task", "problem_id", "sample_index", "prompt", "output", "extracted", "reference", "verdict",
                 "n_tokens", "hit_max_new_tokens"}


def evaluate(data_root, run_dir, *overrides):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "WANDB_MODE": "offline",
           "WANDB_SILENT": "true", "TOKENIZERS_PARALLELISM": "false"}
    cmd = [sys.executable, str(ROOT / "evaluate.py"), f"paths.data_root={data_root}", f"hydra.run.dir={run_dir}",
           "student=tiny_random", "backend.batch_size=4", *overrides]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    return proc


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    return tmp_path_factory.mktemp("eval_root")


@pytest.fixture(scope="module")
def aime_run(data_root):
    run_dir = data_root / "aime"
    evaluate(data_root, run_dir, "benchmark=aime24", "benchmark.limit=3", "benchmark.max_new_tokens=6",
             "benchmark.sampling.n=2")
    return run_dir


def test_a_run_writes_results_table_samples_and_wandb(aime_run):
    results = json.loads((aime_run / "results.json").read_text())
    assert set(results["tasks"]) == {"tf_aime24", "tf_aime24_avg16"}
    greedy, sampled = results["tasks"]["tf_aime24"], results["tasks"]["tf_aime24_avg16"]
    assert greedy["metric"] == "pass@1" and greedy["samples_per_problem"] == 1 and greedy["n_problems"] == 3
    assert sampled["metric"] == "avg@2" and sampled["samples_per_problem"] == 2
    assert sampled["decoding"]["temperature"] == 0.7 and greedy["decoding"]["temperature"] == 0.0
    assert results["template"] == "base_plain" and results["system_prompt"].startswith("Please reason")
    for task, summary in results["tasks"].items():
        rows = [json.loads(line) for line in (aime_run / "samples" / f"{task}.jsonl").read_text().splitlines()]
        assert len(rows) == summary["n_problems"] * summary["samples_per_problem"]
        assert all(set(r) == SAMPLE_FIELDS for r in rows)
        # counted by re-tokenising the text: exact for real text, a little more for broken byte pieces
        assert all(0 <= r["n_tokens"] <= 12 for r in rows)
        scores = problem_scores(rows)
        assert summary["accuracy"] == pytest.approx(sum(scores.values()) / len(scores))
        assert summary["lm_eval_acc"] == pytest.approx(summary["accuracy"])  # lm-eval's view agrees
        assert summary["mean_output_tokens"] == pytest.approx(sum(r["n_tokens"] for r in rows) / len(rows))
        assert rows[0]["prompt"].startswith("<s>") and rows[0]["prompt"].endswith("Solution:\n")
    table = (aime_run / "results.md").read_text()
    assert "| tf_aime24 | pass@1 |" in table and "| tf_aime24_avg16 | avg@2 |" in table
    offline = list((aime_run / "wandb").glob("offline-run-*"))
    assert offline
    uploaded = offline[0] / "files"  # what `wandb sync` uploads and `compare --wandb` downloads
    assert (uploaded / "results.json").read_bytes() == (aime_run / "results.json").read_bytes()
    assert sorted(p.name for p in (uploaded / "samples").glob("*.jsonl")) == ["tf_aime24.jsonl", "tf_aime24_avg16.jsonl"]


def test_a_checkpoint_directory_is_evaluated_and_compared(tmp_path, data_root, aime_run):
    """Save the tiny student as a HF checkpoint (as train.py's final/ looks), evaluate it, compare both runs."""
    from trajfusion.evaluation.schema import StudentConfig
    from trajfusion.evaluation.training_api import load_student

    student = StudentConfig(name="tiny_random", source="tiny_random", tokenizer=str(data_root / "tokenizers" / "tiny_bpe_v1"),
                            template="base_plain", max_seq_len=2048,
                            tiny={"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
                                  "num_attention_heads": 4, "num_key_value_heads": 2})
    model, tokenizer = load_student(student, None, seed=1)
    ckpt = tmp_path / "final"
    model.save_pretrained(ckpt)
    tokenizer.save_pretrained(ckpt)
    (ckpt / "training_manifest.json").write_text(json.dumps(
        {"data_id": "abc", "config": {"student": {"template": "base_plain"}, "fusion": {"system_prompt": "Think."}}}))
    run_dir = tmp_path / "ckpt_run"
    evaluate(data_root, run_dir, f"ckpt={ckpt}", "benchmark=aime24", "benchmark.limit=3", "benchmark.max_new_tokens=6",
             "benchmark.sampling.n=2", "wandb.enabled=false")
    results = json.loads((run_dir / "results.json").read_text())
    assert results["ckpt"] == str(ckpt) and results["training_data_id"] == "abc"
    assert results["system_prompt"] == "Think."  # the prompt the checkpoint was trained with
    first = json.loads((run_dir / "samples" / "tf_aime24.jsonl").read_text().splitlines()[0])
    assert first["prompt"].startswith("<s>Think.\n\nProblem:\n")
    assert not (run_dir / "wandb").exists()

    out = tmp_path / "compare"
    proc = subprocess.run([sys.executable, "-m", "trajfusion.evaluation.compare", str(aime_run), str(run_dir),
                           "--labels", "base", "ckpt", "--paper", "qwen2p5_math_7b/4k", "--out", str(out),
                           "--iterations", "500"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "| tf_aime24 | pass@1 |" in proc.stdout and "16.7" in proc.stdout and "23.3" in proc.stdout
    assert (out / "compare.png").stat().st_size > 1000


def test_a_bad_value_fails_at_compose_time_with_the_key(data_root, tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, str(ROOT / "evaluate.py"), f"paths.data_root={data_root}",
                           f"hydra.run.dir={tmp_path}", "student=tiny_random", "benchmark=gsm8k",
                           "benchmark.tasks=[tf_gsm9k]"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "unknown task 'tf_gsm9k'" in proc.stderr + proc.stdout
