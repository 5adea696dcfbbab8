"""The project's SLURM scripts under a real scheduler (slurm/local/up.sh: one node, partition `debug`), at CPU scale:
the whole job graph of a preset, pre-emption and requeue of a training job, a submitit multirun, two pipelines
sharing a teacher pool, and two DeepSpeed ranks launched by slurm/train.sbatch. Skipped, saying why, when no
scheduler answers."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from omegaconf import OmegaConf

ROOT = Path(__file__).resolve().parent.parent
PARTITION = "debug"
CPU_JOB = ["--gpus-per-node=0", "--cpus-per-task=1", "--oversubscribe", f"--partition={PARTITION}"]
# the bundled replay pool (no sampling), the random tiny student, short sequences
TINY = ["student=tiny_random", "data.limit=8", "student.max_seq_len=1024", "student.global_batch_size=2",
        "student.micro_batch_size=1", "progress=false", "plots=false"]
WIDE = ["student.tiny.hidden_size=256", "student.tiny.intermediate_size=512"]  # steps long enough for a signal to land mid-run


def scheduler_problem() -> str | None:
    if shutil.which("sbatch") is None:
        return "no sbatch on PATH (start a local cluster with: sudo bash slurm/local/up.sh)"
    try:
        ping = subprocess.run(["scontrol", "ping"], capture_output=True, text=True, timeout=20).stdout
        part = subprocess.run(["sinfo", "-h", "-p", PARTITION, "-o", "%a"], capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        return f"SLURM not reachable: {exc}"
    if "UP" not in ping:
        return "slurmctld does not answer (sudo bash slurm/local/up.sh)"
    if "up" not in part:
        return f"no partition {PARTITION!r} that is up"
    return None


pytestmark = [pytest.mark.slurm, pytest.mark.skipif(scheduler_problem() is not None, reason=str(scheduler_problem()))]


def env(data_root: Path, **extra) -> dict:
    path = f"{ROOT / '.venv' / 'bin'}:{os.environ.get('PATH', '')}"
    return {**os.environ, "PATH": path, "TRAJFUSION_DATA_ROOT": str(data_root), "HF_HUB_OFFLINE": "1",
            "HF_DATASETS_OFFLINE": "1", "WANDB_MODE": "offline", "WANDB_SILENT": "true", **extra}


SUBMITTED: list[str] = []


@pytest.fixture(autouse=True)
def cancel_leftover_jobs():
    """A failed test leaves no job behind on the shared cluster."""
    yield
    if SUBMITTED:
        subprocess.run(["scancel", *SUBMITTED], capture_output=True)
        SUBMITTED.clear()


def sbatch(data_root: Path, *args: str, **extra_env) -> str:
    (data_root / "logs").mkdir(parents=True, exist_ok=True)
    out = subprocess.run(["sbatch", "--parsable", f"--output={data_root}/logs/%x-%j.out", *args], cwd=ROOT,
                         env=env(data_root, **extra_env), capture_output=True, text=True, check=True, timeout=60)
    SUBMITTED.append(out.stdout.strip().split(";")[0])
    return SUBMITTED[-1]


def job(job_id: str) -> dict[str, str]:
    out = subprocess.run(["scontrol", "show", "job", "-o", job_id], capture_output=True, text=True, timeout=30).stdout
    return dict(f.split("=", 1) for f in out.split() if "=" in f)


def wait_until(check, what: str, timeout: float = 240, poll: float = 0.3):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = check()
        if value:
            return value
        time.sleep(poll)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def log_of(data_root: Path, job_id: str) -> str:
    logs = list((data_root / "logs").glob(f"*-{job_id}.out"))
    return logs[0].read_text()[-4000:] if logs else "(no log)"


def wait_job(data_root: Path, job_id: str, timeout: float = 300) -> None:
    state = wait_until(lambda: job(job_id).get("JobState") in ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT") and job(job_id)["JobState"],
                       f"job {job_id}", timeout)
    assert state == "COMPLETED", f"job {job_id} {state}:\n{log_of(data_root, job_id)}"


def losses(run_dir: Path) -> dict[int, float]:
    """Last logged loss per step (a resumed run logs the steps after its checkpoint again)."""
    by_step = {}
    path = run_dir / "metrics.jsonl"
    for line in path.read_text().splitlines() if path.exists() else []:
        rec = json.loads(line)
        if "train/loss" in rec:
            by_step[rec["step"]] = rec["train/loss"]
    return by_step


def wandb_run_ids(run_dir: Path) -> list[str]:
    """The W&B run id of each offline run directory (one per job that ran it)."""
    return sorted(p.name.rsplit("-", 1)[1] for p in run_dir.glob("wandb/offline-run-*"))



# ----------------------------------------------------------------------------- the job graph, twice at once


@pytest.fixture(scope="module")
def two_pipelines(tmp_path_factory):
    """RFT and TrajFusion of cpu_tiny submitted at the same moment into one fresh data root (one teacher pool)."""
    data_root = tmp_path_factory.mktemp("pipelines")
    started = time.time()
    procs = {arm: subprocess.Popen(["bash", "slurm/pipeline.sh", "--wait", "--shards", "2", "experiment=cpu_tiny", *extra],
                                   cwd=ROOT, env=env(data_root), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for arm, extra in (("adaptive", []), ("rft", ["fusion=rft"]))}
    results = {arm: (*proc.communicate(timeout=900), proc.returncode) for arm, proc in procs.items()}
    print(f"two cpu_tiny pipelines: {time.time() - started:.0f}s")
    return data_root, results


def test_pipeline_job_graph_ends_with_an_evaluation_run(two_pipelines):
    data_root, results = two_pipelines
    out, err, code = results["adaptive"]
    assert code == 0, out + err
    eval_dir = Path(out.strip().splitlines()[-1])
    results_json = json.loads((eval_dir / "results.json").read_text())
    assert results_json["tasks"]["tf_gsm8k"]["n_problems"] == 2
    for name in ("sample", "fuse", "train", "evaluate"):
        assert f"{name} job" in err and "completed" in err
    [pool] = (data_root / "pools").iterdir()
    assert sorted(p.name for p in (pool / "shards").glob("*.jsonl")) == ["shard-00000-of-00002.jsonl", "shard-00001-of-00002.jsonl"]
    run_name = eval_dir.parent.name
    manifest = json.loads((data_root / "runs" / run_name / "manifest.json").read_text())
    assert manifest["global_step"] > 0 and manifest["final_checkpoint"]


def test_two_pipelines_sharing_a_pool_sample_it_once(two_pipelines):
    data_root, results = two_pipelines
    for arm, (out, err, code) in results.items():
        assert code == 0, f"{arm}: {out}{err}"
        assert (Path(out.strip().splitlines()[-1]) / "results.json").exists()
    [pool] = (data_root / "pools").iterdir()
    ids = [json.loads(line)["id"] for shard in (pool / "shards").glob("*.jsonl") for line in shard.read_text().splitlines()]
    assert len(ids) == len(set(ids)) == 4, ids  # every problem sampled once, not once per pipeline
    sampled = sum(json.loads(meta.read_text())["problems_sampled"] for meta in (pool / "shards").glob("*.json"))
    assert sampled == 4
    fused = sorted(p.name.split("-")[0] for p in (data_root / "fused").iterdir() if not p.name.startswith("."))
    assert fused == ["adaptive", "rft"]  # each arm's dataset once
    runs = sorted(p.name for p in (data_root / "runs").iterdir())
    assert len(runs) == 2 and runs[0] != runs[1]


def test_two_jobs_verifying_at_once_share_one_verdict_cache(tmp_path):
    """Two fuse jobs submitted together verify the bundled pool (two verifier timeouts: two verified pools, the same
    verdict keys) into one <data_root>/cache/verify.sqlite: both finish, the cache is intact, in rollback-journal
    mode, and holds every verdict a job needed exactly once."""
    data_root = tmp_path
    ids = [sbatch(data_root, *CPU_JOB, "slurm/fuse.sbatch", "data.limit=8", f"verifier.timeout_s={timeout}",
                  "progress=false", "plots=false") for timeout in (5, 6)]
    for job_id in ids:
        wait_job(data_root, job_id, 300)
    (start_a, end_a), (start_b, end_b) = ((job(j)["StartTime"], job(j)["EndTime"]) for j in ids)
    assert start_a <= end_b and start_b <= end_a  # they ran at the same time
    [pool] = (data_root / "pools").iterdir()
    reports = [json.loads(p.read_text()) for p in pool.glob("verified-*.report.json")]
    assert len(reports) == 2
    # every distinct (gold, pred) pair a job sent to the verifier was either computed or found in the cache
    needed = [sum(r[k]["cache_hits"] + r[k]["computed"] for k in ("answer_checks", "grouping_checks")) for r in reports]
    db = data_root / "cache" / "verify.sqlite"
    with sqlite3.connect(db) as con:
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert con.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
        rows = con.execute("SELECT COUNT(*) FROM verdicts").fetchone()[0]
    assert needed[0] == needed[1] == rows > 0, (needed, rows)  # nothing lost, nothing stored twice
    assert not list(db.parent.glob("verify.sqlite-*"))  # no WAL or journal left behind


# ----------------------------------------------------------------------------- pre-emption


def checkpoints(run_dir: Path) -> list[int]:
    return sorted(int(p.name.split("-")[1]) for p in run_dir.glob("checkpoint-*") if (p / "trainer_state.json").exists())


@pytest.fixture(scope="module")
def replay_root(tmp_path_factory) -> Path:
    """One data root for the train.sbatch tests: the bundled pool is verified and its dataset built once."""
    return tmp_path_factory.mktemp("replay")


def test_a_training_job_survives_timeout_signal_sigterm_and_requeue(replay_root):
    data_root = replay_root
    # a wider tiny model so each step takes a moment and the signals land mid-run; only pre-emption checkpoints
    steps = 40  # three interruptions take a few steps each
    args = [*TINY, *WIDE, f"training.max_steps={steps}",
            "training.save_steps=1000", "training.save_final=false"]
    # REQUEUE_ON_TERM: as on a cluster whose pre-emption cancels (PreemptMode=CANCEL), SIGTERM requeues too
    job_id = sbatch(data_root, *CPU_JOB, "--export=ALL,RUN_NAME=preempted,REQUEUE_ON_TERM=1", "slurm/train.sbatch", *args)
    run_dir = data_root / "runs" / "preempted"
    reference = None
    for restarts, how in enumerate(("USR1", "TERM", "requeue"), start=1):
        last = max(losses(run_dir), default=0)
        wait_until(lambda: max(losses(run_dir), default=0) >= last + 2, f"steps after {last} (before {how})", 300, 0.05)
        if reference is None:  # the dataset exists now: the uninterrupted run, outside SLURM, alongside
            reference = subprocess.Popen([sys.executable, "train.py", f"paths.data_root={data_root}",
                                          f"hydra.run.dir={data_root}/runs/reference", *args],
                                         cwd=ROOT, env=env(data_root, OMP_NUM_THREADS="1"),  # the job's threads: same sums
                                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        saved = max(checkpoints(run_dir), default=0)
        if how == "USR1":  # SLURM's pre-timeout signal (--signal=B:USR1@300) to the batch script
            subprocess.run(["scancel", "--signal=USR1", "--batch", job_id], check=True)
        elif how == "TERM":  # pre-emption: SIGTERM to every process of the job
            subprocess.run(["scancel", "--signal=TERM", "--full", job_id], check=True)
        else:
            subprocess.run(["scontrol", "requeue", job_id], check=True)
        # requeue: SIGCONT and SIGTERM to every process of the job (the W&B service too), SIGKILL KillWait (30 s) later
        wait_until(lambda: max(checkpoints(run_dir), default=0) > saved, f"a checkpoint on {how}", 120)
        assert not (run_dir / "manifest.json").exists() or json.loads((run_dir / "manifest.json").read_text())["preempted"]
        wait_until(lambda: int(job(job_id).get("Restarts", 0)) >= restarts, f"the requeue after {how}", 120)
    wait_job(data_root, job_id, 300)
    assert reference.wait(300) == 0, reference.stderr.read()[-3000:]
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["resumed_from"] and manifest["global_step"] == steps and not manifest["preempted"]
    assert checkpoints(run_dir)[-1] == steps  # the last step's save (save_total_limit 2 dropped the first)
    assert len(wandb_run_ids(run_dir)) == 4 and len(set(wandb_run_ids(run_dir))) == 1  # four jobs, one W&B run
    expected, got = losses(data_root / "runs" / "reference"), losses(run_dir)
    assert sorted(got) == sorted(expected) == list(range(1, steps + 1))
    for step, loss in expected.items():
        assert got[step] == pytest.approx(loss, rel=1e-4, abs=1e-5), step


def test_scancel_cancels_a_training_job_after_it_saved(replay_root):
    """A plain scancel (SIGTERM to every process, the job CANCELLED) must end the job: the ranks save a checkpoint
    to resume from later, and nothing requeues it."""
    data_root = replay_root
    args = [*TINY, *WIDE, "training.max_steps=200", "training.save_steps=1000", "training.save_final=false"]
    job_id = sbatch(data_root, *CPU_JOB, "--export=ALL,RUN_NAME=cancelled", "slurm/train.sbatch", *args)
    run_dir = data_root / "runs" / "cancelled"
    wait_until(lambda: max(losses(run_dir), default=0) >= 2, "two training steps", 300, 0.05)
    subprocess.run(["scancel", job_id], check=True)
    wait_until(lambda: checkpoints(run_dir), "the checkpoint saved on scancel", 120)
    wait_until(lambda: job(job_id).get("JobState") == "CANCELLED", "the job to end cancelled", 120)
    time.sleep(8)  # a requeue would show within cred_expire (5 s) + 1 s
    state = job(job_id)
    assert state["JobState"] == "CANCELLED" and int(state.get("Restarts", 0)) == 0, state
    assert "and requeue" not in log_of(data_root, job_id)


# ----------------------------------------------------------------------------- submitit multirun


def test_a_submitit_multirun_gives_one_job_run_dataset_and_wandb_run_per_point_and_requeues_the_right_one(tmp_path):
    """Two points as one SLURM array; point k_max=2 gets submitit's pre-timeout signal (USR2) mid-training: it saves
    a checkpoint in its own run directory and submitit requeues it; then `scontrol requeue` (SIGTERM, as pre-emption):
    it saves again and leaves no result, so the sweep waits for the requeued job. That one resumes from the point's
    last checkpoint and ends with the loss trail of an uninterrupted run of the point; point k_max=1 runs untouched."""
    data_root = tmp_path
    steps = 30
    # (few overrides: Hydra names each point's directory after them, and a file name has 255 bytes at most)
    point = [*TINY, *WIDE, f"training.max_steps={steps}"]  # save_steps (200) > steps: only pre-emption saves mid-run
    command = [sys.executable, "train.py", "-m", "hydra/launcher=slurm", *point, "length_policy.k_max=1,2",
               f"paths.data_root={data_root}", f"hydra.launcher.partition={PARTITION}", "hydra.launcher.tasks_per_node=1",
               "hydra.launcher.gpus_per_node=0", "hydra.launcher.cpus_per_task=1", "hydra.launcher.timeout_min=20",
               f"hydra.launcher.submitit_folder={data_root}/submitit/%j"]
    threads = {"OMP_NUM_THREADS": "1"}  # the jobs inherit it; the reference run below uses it too: same sums
    sweep = subprocess.Popen(command, cwd=ROOT, env=env(data_root, **threads), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)
    try:
        run_dir = wait_until(lambda: next((data_root / "runs" / "multirun").glob("*/*length_policy.k_max=2,*"), None),
                             "the run directory of point k_max=2", 300)
        wait_until(lambda: max(losses(run_dir), default=0) >= 2, "two steps of point k_max=2", 300, 0.05)
        job_id = str(OmegaConf.load(run_dir / ".hydra" / "hydra.yaml").hydra.job.id)  # <array>_<task>
        SUBMITTED.append(job_id.split("_")[0])
        subprocess.run(["scancel", "--signal=USR2", job_id], check=True)  # to the job's srun step, as submitit's --signal
        reference = subprocess.Popen([sys.executable, "train.py", *point, "length_policy.k_max=2", f"paths.data_root={data_root}",
                                      f"hydra.run.dir={data_root}/runs/reference"],
                                     cwd=ROOT, env=env(data_root, **threads), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        first = wait_until(lambda: max(checkpoints(run_dir), default=0), "a checkpoint on USR2", 120)
        wait_until(lambda: int(job(job_id).get("Restarts", 0)) >= 1, "submitit's requeue", 120)
        # then the way pre-emption ends a job: SIGTERM to every process; the point saves and leaves no result behind
        wait_until(lambda: max(losses(run_dir), default=0) >= first + 2, f"two steps after checkpoint-{first}", 300, 0.05)
        subprocess.run(["scontrol", "requeue", job_id], check=True)
        saved = wait_until(lambda: max((c for c in checkpoints(run_dir) if c > first), default=0), "a checkpoint on requeue", 120)
        wait_until(lambda: int(job(job_id).get("Restarts", 0)) >= 2, "the requeue", 120)
        out, err = sweep.communicate(timeout=600)
    finally:
        sweep.kill()
    assert sweep.returncode == 0, out[-3000:] + err[-5000:]
    tasks = [p.name for p in (data_root / "submitit").iterdir() if p.is_dir() and "_" in p.name]
    assert len(tasks) == 2 and len({t.split("_")[0] for t in tasks}) == 1, tasks  # one array, one task per point
    manifests = {m["config"]["length_policy"]["k_max"]: m for m in
                 (json.loads(p.read_text()) for p in (data_root / "runs" / "multirun").glob("*/*/manifest.json"))}
    assert sorted(manifests) == [1, 2]
    assert len({m["run_dir"] for m in manifests.values()}) == 2 and len({m["data_id"] for m in manifests.values()}) == 2
    assert len([p for p in (data_root / "fused").iterdir() if not p.name.startswith(".")]) == 2
    resumed, untouched = manifests[2], manifests[1]
    assert Path(resumed["run_dir"]) == run_dir
    assert resumed["resumed_from"] == str(run_dir / f"checkpoint-{saved}")  # its own checkpoint, not the other point's
    assert resumed["global_step"] == steps and not resumed["preempted"]
    assert "Requeued job" in (data_root / "submitit" / job_id / f"{job_id}_0_log.out").read_text()
    assert len(wandb_run_ids(run_dir)) == 3 and len(set(wandb_run_ids(run_dir))) == 1  # three jobs, one W&B run
    other = Path(untouched["run_dir"])
    assert untouched["resumed_from"] is None and not untouched["preempted"] and untouched["global_step"] == steps
    assert not checkpoints(other) or max(checkpoints(other)) == steps  # no pre-emption save there
    assert len(wandb_run_ids(other)) == 1 and int(job(str(OmegaConf.load(other / ".hydra" / "hydra.yaml").hydra.job.id))["Restarts"]) == 0
    assert sorted(losses(other)) == list(range(1, steps + 1))
    assert reference.wait(300) == 0, reference.stderr.read()[-3000:]
    expected, got = losses(data_root / "runs" / "reference"), losses(run_dir)
    assert sorted(got) == sorted(expected) == list(range(1, steps + 1))
    for step, loss in expected.items():
        assert got[step] == pytest.approx(loss, rel=1e-4, abs=1e-5), step


# ----------------------------------------------------------------------------- multi-rank


def test_two_deepspeed_ranks_through_train_sbatch(replay_root):
    data_root = replay_root
    job_id = sbatch(data_root, "--gpus-per-node=0", "--cpus-per-task=2", "--oversubscribe", f"--partition={PARTITION}",
                    "--export=ALL,RUN_NAME=zero2", "slurm/train.sbatch", *TINY, "deepspeed=zero2", "student.global_batch_size=4",
                    "training.max_steps=2", RANKS_PER_NODE="2")
    wait_job(data_root, job_id, 420)
    manifest = json.loads((data_root / "runs" / "zero2" / "manifest.json").read_text())
    assert manifest["world_size"] == 2 and manifest["deepspeed"]["stage"] == 2 and manifest["global_step"] == 2
    assert "2 ranks" in log_of(data_root, job_id)
