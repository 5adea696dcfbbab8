"""One paper preset on SLURM: sample + verify (array) → fuse → train → evaluate, chained with afterok.

    slurm/pipeline.sh experiment=table1_trajfusion_llama3_8b_15k                 # submit the four jobs
    slurm/pipeline.sh --dry-run --shards 32 --nodes 2 experiment=table3_rft_32k   # job graph, commands, GPU-hours
    slurm/pipeline.sh --wait --shards 2 experiment=cpu_tiny                       # wait; last line: the evaluation run dir

Why the data jobs get derived overrides rather than `experiment=NAME`: `build_data.py experiment=NAME`
composes too, but an override of train.py's (say `student.max_seq_len=8192`) must reach the data jobs
as the same budget. So the pipeline composes train.py's config and hands build_data.py the group choices
plus every data-defining value that differs, and the fuse job writes exactly the dataset (same data_id)
that train.py then looks up; the sbatch lines also show every data setting explicitly.
The train job gets `experiment=NAME` and the overrides unchanged; the evaluate job gets the student, the
paper's benchmark for that table and the overrides evaluate.py understands.
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from trajfusion.cli import check_experiment

ROOT = Path(__file__).resolve().parent.parent
CONF = ROOT / "conf"
BUILD_GROUPS = ("data", "teacher", "selector", "length_policy", "fusion")
RUNTIME_ONLY_BUILD_KEYS = ("stage", "shard", "plots", "progress")
EVALUATE_ROOT_KEYS = ("student", "seed", "paths", "verifier", "wandb", "benchmark", "backend", "prompt")


def compose(config_name: str, overrides: list[str]) -> tuple[DictConfig, dict[str, Any]]:
    """(config without the hydra node, group choices) as the entry point would see them."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    from trajfusion.config import register_configs
    from trajfusion.training.schema import register_train_configs

    register_configs()
    register_train_configs()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = hydra_compose(config_name=config_name, overrides=overrides, return_hydra_config=True)
    choices = dict(cfg.hydra.runtime.choices)
    with_hydra = OmegaConf.to_container(cfg, resolve=False)
    del with_hydra["hydra"]
    return OmegaConf.create(with_hydra), choices


def override_value(value: Any) -> str:
    """A resolved value in Hydra's override grammar (strings quoted unless plain identifiers/paths)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, list):
        return "[" + ",".join(override_value(v) for v in value) + "]"
    text = str(value)
    plain = text and all(c.isalnum() or c in "_-./:" for c in text) and not text[0].isdigit()
    return text if plain else "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _leaves(node: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(node, dict):
        out: dict[str, Any] = {}
        for key, value in node.items():
            out.update(_leaves(value, f"{prefix}{key}."))
        return out
    return {prefix[:-1]: node}


def root_key(override: str) -> str:
    return override.lstrip("+~").split("=", 1)[0].split(".", 1)[0].split("/", 1)[0]


@dataclass
class Plan:
    """Everything the four jobs need; computed once from the composed train config."""

    experiment: str
    overrides: list[str]
    train_cfg: DictConfig
    choices: dict[str, Any]
    build_overrides: list[str]
    run_name: str
    eval_overrides: list[str]


def build_overrides_for(train_cfg: DictConfig, choices: dict[str, Any]) -> list[str]:
    """build_data.py overrides that give the same BuildDataConfig as train.py's data stage."""
    from trajfusion.training.schema import BUILD_KEYS

    groups = [f"{group}={choices[group]}" for group in BUILD_GROUPS]
    build_cfg, _ = compose("build_data", groups)
    wanted = OmegaConf.to_container(train_cfg, resolve=True)
    have = OmegaConf.to_container(build_cfg, resolve=True)
    keys = [k for k in BUILD_KEYS if k not in RUNTIME_ONLY_BUILD_KEYS]
    wanted_leaves = _leaves({k: wanted[k] for k in keys if k in wanted})
    have_leaves = _leaves({k: have[k] for k in keys if k in have})
    changed = [f"{key}={override_value(value)}" for key, value in wanted_leaves.items() if have_leaves.get(key, object()) != value]
    return groups + changed


def evaluation_overrides(experiment: str, student_max_seq_len: int) -> list[str]:
    """The benchmark each paper table reports: Table 1 the six-benchmark suite, Table 2 GSM8K + MATH,
    Table 3 AIME24/25 + MATH-500 (long outputs for the 32K student)."""
    if experiment.startswith("table2"):
        return ["benchmark=paper_main", "benchmark.tasks=[tf_gsm8k,tf_math]"]
    if experiment.startswith("cpu_"):  # CPU presets: a two-problem smoke evaluation
        return ["benchmark=gsm8k", "benchmark.limit=2", "benchmark.max_new_tokens=32", "backend.batch_size=2"]
    if experiment.startswith("table3"):
        long_outputs = [f"benchmark.max_new_tokens={student_max_seq_len - 2768}"] if student_max_seq_len > 4096 else []
        return ["benchmark=long_form", *long_outputs]
    return ["benchmark=paper_main"]


def plan(experiment_and_overrides: list[str]) -> Plan:
    experiments = [o for o in experiment_and_overrides if o.startswith("experiment=")]
    if len(experiments) != 1:
        raise SystemExit("give exactly one experiment=NAME (a file of conf/experiment/)")
    experiment = experiments[0].split("=", 1)[1]
    try:
        check_experiment(CONF, experiment)  # Hydra would skip a missing optional preset silently
    except ValueError as exc:
        raise SystemExit(str(exc)) from None
    overrides = [o for o in experiment_and_overrides if not o.startswith("experiment=")]
    from trajfusion.overrides import check_additions
    from trajfusion.training.schema import TrainConfig

    try:
        check_additions(overrides, TrainConfig, "train.py")  # Hydra adds any `+key`; the jobs would run without it
    except ValueError as exc:
        raise SystemExit(str(exc)) from None
    train_cfg, choices = compose("train", [f"experiment={experiment}", *overrides])
    from trajfusion.training.schema import to_train_config

    to_train_config(train_cfg)  # fail here, not in the third job, on a bad override
    from trajfusion.runs import run_id_of

    run_name = f"{experiment}-{run_id_of(train_cfg)}"  # every knob that defines the run, not only the preset
    passed_to_eval = [o for o in overrides if root_key(o) in EVALUATE_ROOT_KEYS]
    eval_overrides = [f"student={choices['student']}", *evaluation_overrides(experiment, int(train_cfg.student.max_seq_len)),
                      f"wandb.group={train_cfg.wandb.group}", *passed_to_eval]
    passed_to_build = [o for o in overrides if root_key(o) in (*BUILD_GROUPS, "seed", "paths", "verifier")]
    given = {o.lstrip("+~").split("=", 1)[0] for o in passed_to_build}
    derived = [o for o in build_overrides_for(train_cfg, choices) if o.split("=", 1)[0] not in given]
    return Plan(experiment, overrides, train_cfg, choices, derived + passed_to_build, run_name, eval_overrides)


@dataclass
class Job:
    name: str
    after: str | None
    sbatch_args: list[str]
    script: str
    args: list[str]

    def command(self, dependency_id: str | None, extra: list[str] = ()) -> list[str]:
        dependency = [f"--dependency=afterok:{dependency_id}"] if dependency_id else []
        return ["sbatch", "--parsable", *dependency, *self.sbatch_args, *extra, f"slurm/{self.script}", *self.args]


def data_root() -> Path:
    """Where the jobs write (train.sbatch and evaluate.sbatch read TRAJFUSION_DATA_ROOT, relative to the repo)."""
    return ROOT / os.environ.get("TRAJFUSION_DATA_ROOT", "outputs")


def jobs(p: Plan, shards: int, nodes: int) -> list[Job]:
    """The job graph: each job starts after the one before it succeeded (the array: all its tasks)."""
    run = [f"--export=ALL,RUN_NAME={p.run_name}"]
    logs = data_root() / "logs" / "slurm"
    # each array task verifies its shard; a stored (replay) pool has nothing to sample: a CPU verify array
    first = "verify" if p.train_cfg.teacher.backend == "replay" else "sample"
    return [
        Job(first, None, [f"--array=0-{shards - 1}", f"--output={logs}/%x-%A_%a.out"],
            "verify.sbatch" if first == "verify" else "build_data.sbatch", [f"shard.count={shards}", *p.build_overrides]),
        Job("fuse", first, [f"--output={logs}/%x-%j.out"], "fuse.sbatch", [f"shard.count={shards}", *p.build_overrides]),
        Job("train", "fuse", [f"--nodes={nodes}", *run, f"--output={logs}/%x-%j.out"], "train.sbatch",
            [f"experiment={p.experiment}", *p.overrides]),
        Job("evaluate", "train", [*run, f"--output={logs}/%x-%j.out"], "evaluate.sbatch", p.eval_overrides),
    ]


def cpu_only_cluster() -> bool:
    """No node of the cluster has a GPU (sinfo's GRES column): a laptop's slurm/local cluster, say."""
    try:
        out = subprocess.run(["sinfo", "-h", "-o", "%G"], capture_output=True, text=True, check=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return False
    return "gpu" not in out


CPU_JOB_ARGS = ["--gpus-per-node=0", "--cpus-per-task=1", "--oversubscribe"]  # one core each, jobs side by side


def submit(graph: list[Job], dry_run: bool, extra: list[str] = ()) -> dict[str, str]:
    ids: dict[str, str] = {}
    if not dry_run:
        (data_root() / "logs" / "slurm").mkdir(parents=True, exist_ok=True)
    for job in graph:
        command = job.command(ids[job.after] if job.after else None, extra)
        if dry_run:
            ids[job.name] = f"{job.name.upper()}_JOB_ID"
            print(f"[{job.name}] after {job.after or '-'}:\n  {shlex.join(command)}")
        else:
            out = subprocess.run(command, check=True, capture_output=True, text=True, cwd=ROOT).stdout.strip()  # submit dir = repo
            ids[job.name] = out.split(";", 1)[0]  # --parsable: "id" or "id;cluster"
    return ids


FAILED_STATES = {"FAILED", "CANCELLED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL", "BOOT_FAIL", "DEADLINE"}


def job_states(job_id: str) -> list[dict[str, str]]:
    """One record per job (per task of an array) from `scontrol show job`, or sacct once SLURM forgot it."""
    proc = subprocess.run(["scontrol", "show", "job", "-o", job_id], capture_output=True, text=True)
    if proc.returncode == 0 and proc.stdout.strip():
        records = []
        for line in proc.stdout.splitlines():
            fields = dict(f.split("=", 1) for f in line.split() if "=" in f)
            records.append({"id": fields.get("JobId", job_id) + (f"_{fields['ArrayTaskId']}" if "ArrayTaskId" in fields else ""),
                            "state": fields.get("JobState", "UNKNOWN"), "reason": fields.get("Reason", ""),
                            "log": fields.get("StdOut", "?")})
        return records
    out = subprocess.run(["sacct", "-n", "-P", "-X", "-j", job_id, "-o", "JobID,State"], capture_output=True, text=True).stdout
    rows = [line.split("|") for line in out.splitlines() if "|" in line]
    if not rows:
        raise SystemExit(f"job {job_id}: unknown to scontrol and sacct (purged? raise MinJobAge)")
    return [{"id": r[0], "state": r[1].split()[0], "reason": "", "log": "?"} for r in rows]


def wait_for(graph: list[Job], ids: dict[str, str], poll_s: float = 5.0) -> None:
    """Block until every job completed; on the first failure cancel the rest and exit 1 naming it and its log."""
    pending = [job.name for job in graph]
    while pending:
        for name in list(pending):
            records = job_states(ids[name])
            failed = [r for r in records if r["state"] in FAILED_STATES or "DependencyNeverSatisfied" in r["reason"]]
            if failed:
                later = [ids[n] for n in pending if n != name]
                if later:
                    subprocess.run(["scancel", *later], capture_output=True)
                lines = [f"{name} job {r['id']} {r['state']} ({r['reason']}); log: {r['log']}" for r in failed]
                print("\n".join(lines), file=sys.stderr)
                raise SystemExit(1)
            if all(r["state"] == "COMPLETED" for r in records):
                print(f"{name} job {ids[name]} completed", file=sys.stderr)
                pending.remove(name)
        if pending:
            time.sleep(poll_s)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dry-run", action="store_true", help="print the job graph, sbatch commands and GPU-hours")
    parser.add_argument("--shards", type=int, default=None,
                        help="sampling + verification array tasks (one GPU each; CPU only for a stored pool); default 16, cpu_* presets 2")
    parser.add_argument("--nodes", type=int, default=1, help="training nodes (8 GPUs each)")
    parser.add_argument("--wait", action="store_true",
                        help="wait for the graph; exit 1 naming a failed job and its log; print the evaluation run dir last")
    parser.add_argument("overrides", nargs="+", help="experiment=NAME, then any Hydra overrides of train.py")
    args = parser.parse_args(argv)
    if (args.shards is not None and args.shards < 1) or args.nodes < 1:
        parser.error("--shards and --nodes must be >= 1")
    p = plan(args.overrides)
    if args.shards is None:
        args.shards = 2 if p.experiment.startswith("cpu_") else 16
    graph = jobs(p, args.shards, args.nodes)
    if args.dry_run:
        from trajfusion.cost_model import estimate, load_assumptions

        print(f"experiment {p.experiment} → run {p.run_name}: {graph[0].name}[{args.shards}] → fuse → train[{args.nodes} node(s)] → evaluate")
    extra = []
    if not args.dry_run:
        from trajfusion.training.students import prepare_tokenizer
        from trajfusion.training.schema import to_train_config

        prepare_tokenizer(to_train_config(p.train_cfg).student)  # the fuse job budgets rows with it (data_id)
        if cpu_only_cluster():
            extra = CPU_JOB_ARGS
            print(f"no GPU in this cluster: every job as a CPU job ({' '.join(extra)})", file=sys.stderr)
    ids = submit(graph, args.dry_run, extra)
    if args.dry_run:
        try:
            cost = estimate(p.experiment, p.train_cfg, load_assumptions())
        except KeyError as exc:
            print(f"GPU-hours: conf/cost_model.yaml has no throughput for {exc} (a CPU preset?)")
        else:
            print("GPU-hours (assumed throughputs, conf/cost_model.yaml): " + ", ".join(f"{k} {v:,.1f}" for k, v in cost.gpu_hours().items()))
            data = cost.data_hours(args.shards)
            print(f"data stage (CPU, measured rate, conf/cost_model.yaml): {data['cpu']:,.2f} CPU-h; about {data['wall']:,.2f} h "
                  f"wall with verification spread over the {args.shards} array tasks")
    else:
        print(" -> ".join(f"{name} {job_id}" for name, job_id in ids.items()))
        if args.wait:
            wait_for(graph, ids)
            eval_dir = data_root() / "eval" / p.run_name / f"slurm-{ids['evaluate']}"
            if not (eval_dir / "results.json").exists():
                raise SystemExit(f"evaluation job {ids['evaluate']} completed but wrote no {eval_dir / 'results.json'}")
            print(eval_dir)


if __name__ == "__main__":
    main(sys.argv[1:])
