"""The attention and loss kernels a training run uses, chosen explicitly: a long-context run on CUDA that
silently lost one of them would need several times the memory, or run out of it.

- Attention. Packed sequences carry per-sample `position_ids`; flash-attention turns them into
  variable-length segments, while sdpa/eager turn them into an L×L block-diagonal mask per sequence
  (quadratic memory: 32,768² ≈ 1.1e9 entries per 32K sequence). On CUDA a packed run that
  asks for flash-attention and cannot have it is therefore an error, not a fallback. On CPU (tests, demos)
  sdpa with the block-diagonal mask is the path.
- Loss. The plain causal-LM loss materialises fp32 logits of tokens × vocabulary: 32,768 × 152,064 × 4 B
  ≈ 20 GB per 32K sequence, again for their gradient. Liger's fused linear + cross-entropy computes the
  loss and its gradients chunk by chunk from the last hidden states and the LM head, so the full logits never
  exist. It patches the model's forward, so it sees the packed collator's `position_ids` (passed to the
  decoder unchanged) and shifts the labels itself with ignore index -100, exactly as the plain loss does;
  the LM-head weight is read inside the model's forward, where ZeRO-3 gathers it. Triton/CUDA only.
"""

from __future__ import annotations

import importlib.util
import logging

log = logging.getLogger(__name__)

FUSED_LOSS_OPTIONS = ("auto", "liger", "none")
# model_type → Liger's public patch function for that family (the project's students: Llama-3, DeepSeekMath
# (a Llama architecture), Qwen2.5-Math)
LIGER_FAMILIES = {"llama": "apply_liger_kernel_to_llama", "qwen2": "apply_liger_kernel_to_qwen2"}
GPU_EXTRA = "pip install --no-build-isolation -e '.[gpu]' (flash-attn and liger-kernel, pinned in pyproject.toml)"


def installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def choose_attention(requested: str, *, packed: bool, cuda: bool, flash_installed: bool) -> str:
    """The attn_implementation to load the model with. An explicit sdpa/eager is taken as asked."""
    if requested != "flash_attention_2":
        return requested
    if not cuda:
        log.info("no CUDA: using sdpa with a per-sample (block-diagonal) mask instead of flash-attention")
        return "sdpa"
    if flash_installed:
        return "flash_attention_2"
    if packed:
        raise RuntimeError(
            "student.attn_implementation=flash_attention_2 on CUDA, but flash-attn is not installed: packed sequences "
            "would fall back to sdpa with an L×L block-diagonal mask per sequence (quadratic memory; a 32K run does not "
            f"fit). Install the gpu extra: {GPU_EXTRA}; or choose explicitly student.attn_implementation=sdpa "
            "(short sequences) or training.packing=false"
        )
    log.warning("flash-attn is not installed: padded batches use sdpa (%s)", GPU_EXTRA)
    return "sdpa"


def choose_fused_loss(option: str, *, model_type: str | None, cuda: bool, liger_installed: bool) -> str:
    """`liger` or `none` for training.fused_loss: `auto` takes Liger on CUDA when it is installed and
    supports the model family, the plain loss otherwise; `liger` insists (an error says what is missing)."""
    if option not in FUSED_LOSS_OPTIONS:
        raise ValueError(f"training.fused_loss: unknown option {option!r}; supported: {', '.join(FUSED_LOSS_OPTIONS)}")
    if option == "none":
        return "none"
    missing = [why for ok, why in [
        (cuda, "CUDA (Liger's kernels are Triton GPU kernels)"),
        (liger_installed, f"liger-kernel ({GPU_EXTRA})"),
        (model_type in LIGER_FAMILIES, (f"a supported model family (model_type {model_type!r}; supported: "
                                        f"{', '.join(sorted(LIGER_FAMILIES))})")),
    ] if not ok]
    if not missing:
        return "liger"
    if option == "liger":
        raise RuntimeError(f"training.fused_loss=liger needs {'; '.join(missing)}; or set training.fused_loss=auto|none")
    log.info("training.fused_loss=auto: plain loss (full logits); a fused loss would need %s", "; ".join(missing))
    return "none"


def apply_fused_loss(model) -> None:
    """Patch `model` (and its class) so that, in training with labels, its forward returns Liger's fused
    linear + cross-entropy loss and no logits. Only the loss is swapped: norms, RoPE and MLP stay as loaded."""
    import liger_kernel.transformers as liger

    patch = getattr(liger, LIGER_FAMILIES[model.config.model_type])
    patch(rope=False, cross_entropy=False, fused_linear_cross_entropy=True, rms_norm=False, swiglu=False, model=model)
    log.info("fused linear + cross-entropy loss (Liger) on %s", type(model).__name__)
