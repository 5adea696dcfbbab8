"""Every command in the README's bash blocks still works: Hydra entry points compose (and validate) with
exactly the overrides shown, and the other tools answer `--help` / `--dry-run`. The docs cannot drift."""

from __future__ import annotations

import itertools
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ENTRY_POINTS = {"build_data.py": "build_data", "calibrate_alpha.py": "build_data", "train.py": "train", "evaluate.py": "evaluate"}
# SLURM wrappers that hand their arguments to an entry point (after the leading positional ones)
WRAPPERS = {"slurm/train.sbatch": ("train", 0), "slurm/build_data.sh": ("build_data", 1)}
PLACEHOLDER = re.compile(r"<[^<>=\s]+>")  # <run>, <data_id>: stand for a name the reader fills in


def readme_commands() -> list[str]:
    """Each command of the README's ```bash blocks, continuation lines joined, comments dropped."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    commands = []
    for block in re.findall(r"^```bash\n(.*?)^```", text, flags=re.DOTALL | re.MULTILINE):
        joined = re.sub(r"\\\n\s*", " ", block)
        for line in joined.splitlines():
            words = shlex.split(line, comments=True)
            if words:
                commands.append(shlex.join(words))
    return commands


COMMANDS = readme_commands()


def entry_and_overrides(words: list[str]) -> tuple[str, list[str], bool] | None:
    """(config name, overrides, multirun) of a command that runs a Hydra entry point, else None."""
    while words and re.fullmatch(r"[A-Z_]+=.*", words[0]):  # VAR=value prefixes
        words = words[1:]
    for i, word in enumerate(words):
        name = Path(word).name
        if word in WRAPPERS:
            config, positional = WRAPPERS[word]
            return config, words[i + 1 + positional:], False
        if name in ENTRY_POINTS and word.endswith(".py") and not word.startswith("benchmarks/"):
            rest = ["verbose=true" if w in ("-v", "--verbose") else w for w in words[i + 1:]]  # console.expand_verbose_flag
            multirun = "-m" in rest or "--multirun" in rest
            return ENTRY_POINTS[name], [w for w in rest if w not in ("-m", "--multirun")], multirun
    return None


def expand_sweeps(overrides: list[str]) -> list[list[str]]:
    """The single-run override lists of a multirun (`k=1,2` → one list per value)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = OverridesParser.create().parse_overrides(overrides)
    choices = []
    for original, override in zip(overrides, parsed):
        if override.is_sweep_override():
            key = original.split("=", 1)[0]
            choices.append([f"{key}={value}" for value in override.sweep_string_iterator()])
        else:
            choices.append([original])
    return [list(combo) for combo in itertools.product(*choices)]


HYDRA = [(c, e) for c in COMMANDS if (e := entry_and_overrides(shlex.split(c)))]
OTHERS = [c for c in COMMANDS if not entry_and_overrides(shlex.split(c))]


def test_the_readme_has_commands_of_every_kind():
    assert len(HYDRA) >= 20 and {e[0] for _, e in HYDRA} == {"build_data", "train", "evaluate"}
    assert any("pipeline.sh" in c for c in OTHERS) and any(c.startswith("python -m ") for c in OTHERS)


@pytest.mark.parametrize("command,entry", HYDRA, ids=[c[:80] for c, _ in HYDRA])
def test_hydra_command_composes(command, entry, tmp_path):
    from hydra import compose, initialize_config_dir

    from trajfusion.config import BuildDataEntryConfig, register_configs, to_build_config
    from trajfusion.evaluation.schema import EvalConfig, register_eval_configs, to_eval_config
    from trajfusion.overrides import check_additions
    from trajfusion.training.schema import TrainConfig, register_train_configs, to_train_config

    register_configs()
    register_train_configs()
    register_eval_configs()
    config, overrides, multirun = entry
    overrides = [PLACEHOLDER.sub("x", o) for o in overrides]
    schema, validate = {"build_data": (BuildDataEntryConfig, to_build_config), "train": (TrainConfig, to_train_config),
                        "evaluate": (EvalConfig, to_eval_config)}[config]
    check_additions(overrides, schema, config)
    runs = expand_sweeps(overrides) if multirun else [overrides]
    for run in runs:
        with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
            cfg = compose(config_name=config, overrides=run)
        validate(cfg)
        if config == "evaluate" and cfg.student.max_seq_len > 4096 and cfg.benchmark.name == "long_form":
            assert cfg.benchmark.max_new_tokens > 4096, f"{command}: a long-context student keeps 4096 new tokens"


def _env():
    return {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
            "PYTHONPATH": str(ROOT), "WANDB_MODE": "disabled", "HF_HUB_OFFLINE": "1"}


def test_python_modules_answer_help():
    modules = sorted({shlex.split(c)[2] for c in OTHERS if c.startswith("python -m ")})
    assert modules
    for module in modules:
        proc = subprocess.run([sys.executable, "-m", module, "--help"], cwd=ROOT, env=_env(), capture_output=True,
                              text=True, timeout=60, check=False)
        assert proc.returncode == 0 and "usage" in proc.stdout.lower(), (module, proc.stderr[-2000:])


def test_pipeline_commands_dry_run(tmp_path):
    commands = [shlex.split(c) for c in OTHERS if c.startswith("slurm/pipeline.sh")]
    assert commands
    for words in commands:
        args = words[1:] if "--dry-run" in words else ["--dry-run", *words[1:]]
        proc = subprocess.run(["bash", str(ROOT / "slurm/pipeline.sh"), *args], cwd=ROOT, env=_env(),
                              capture_output=True, text=True, timeout=120, check=False)
        assert proc.returncode == 0 and "sbatch" in proc.stdout, (words, proc.stdout[-1000:], proc.stderr[-2000:])


def test_other_commands_name_what_exists():
    """make targets, sweep files and SLURM scripts the README names are there."""
    makefile = (ROOT / "Makefile").read_text()
    for command in OTHERS:
        words = shlex.split(command)
        while words and re.fullmatch(r"[A-Z_]+=.*", words[0]):
            words = words[1:]
        if words[0] == "make":
            assert re.search(rf"^{words[1]}:", makefile, flags=re.MULTILINE), command
        for word in words:
            if word.startswith(("slurm/", "sweeps/")):
                assert (ROOT / word).exists(), command
