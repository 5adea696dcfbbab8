"""One paper preset on SLURM: sample (array) → fuse → train → evaluate, chained with afterok.

    slurm/pipeline.sh experiment=table1_trajfusion_llama3_8b_15k                 # submit the four jobs
    slurm/pipeline.sh --dry-run --shards 32 --nodes 2 experiment=table3_rft_32k   # job graph, commands, GPU-hours

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
import shlex
import subprocess
import sys
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

    def command(self, dependency_id: str | None) -> list[str]:
        dependency = [f"--dependency=afterok:{dependency_id}"] if dependency_id else []
        return ["sbatch", "--parsable", *dependency, *self.sbatch_args, f"slurm/{self.script}", *self.args]


def jobs(p: Plan, shards: int, nodes: int) -> list[Job]:
    """The job graph: each job starts after the one before it succeeded (the array: all its tasks)."""
    run = [f"--export=ALL,RUN_NAME={p.run_name}"]
    return [
        Job("sample", None, [f"--array=0-{shards - 1}"], "build_data.sbatch", [f"shard.count={shards}", *p.build_overrides]),
        Job("fuse", "sample", [], "fuse.sbatch", [f"shard.count={shards}", *p.build_overrides]),
        Job("train", "fuse", [f"--nodes={nodes}", *run], "train.sbatch", [f"experiment={p.experiment}", *p.overrides]),
        Job("evaluate", "train", run, "evaluate.sbatch", p.eval_overrides),
    ]


def submit(graph: list[Job], dry_run: bool) -> dict[str, str]:
    ids: dict[str, str] = {}
    for job in graph:
        command = job.command(ids[job.after] if job.after else None)
        if dry_run:
            ids[job.name] = f"{job.name.upper()}_JOB_ID"
            print(f"[{job.name}] after {job.after or '-'}:\n  {shlex.join(command)}")
        else:
            out = subprocess.run(command, check=True, capture_output=True, text=True, cwd=ROOT).stdout.strip()  # submit dir = repo
            ids[job.name] = out.split(";", 1)[0]  # --parsable: "id" or "id;cluster"
    return ids


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dry-run", action="store_true", help="print the job graph, sbatch commands and GPU-hours")
    parser.add_argument("--shards", type=int, default=16, help="sampling array tasks (one GPU each)")
    parser.add_argument("--nodes", type=int, default=1, help="training nodes (8 GPUs each)")
    parser.add_argument("overrides", nargs="+", help="experiment=NAME, then any Hydra overrides of train.py")
    args = parser.parse_args(argv)
    if args.shards < 1 or args.nodes < 1:
        parser.error("--shards and --nodes must be >= 1")
    p = plan(args.overrides)
    graph = jobs(p, args.shards, args.nodes)
    if args.dry_run:
        from trajfusion.cost_model import estimate, load_assumptions

        print(f"experiment {p.experiment} → run {p.run_name}: sample[{args.shards}] → fuse → train[{args.nodes} node(s)] → evaluate")
    ids = submit(graph, args.dry_run)
    if args.dry_run:
        cost = estimate(p.experiment, p.train_cfg, load_assumptions())
        print("GPU-hours (assumed throughputs, conf/cost_model.yaml): " + ", ".join(f"{k} {v:,.1f}" for k, v in cost.gpu_hours().items()))
    else:
        print(" -> ".join(f"{name} {job_id}" for name, job_id in ids.items()))


if __name__ == "__main__":
    main(sys.argv[1:])
