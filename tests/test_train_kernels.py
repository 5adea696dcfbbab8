"""Kernel choices for training (trajfusion.training.kernels): flash-attention is required for packed runs
on CUDA, the fused loss is taken only where it can run, and both are wired into load_model. CPU only:
CUDA and the GPU packages are faked where a test needs them."""

import sys
import types

import pytest

from trajfusion.training import students
from trajfusion.training.kernels import choose_attention, choose_fused_loss
from trajfusion.training.schema import StudentConfig, StudentSource


@pytest.fixture
def tiny_student():
    return StudentConfig(name="tiny", source=StudentSource.tiny_random, tokenizer=None, attn_implementation="flash_attention_2",
                         tiny={"vocab_size": 64, "pad_token_id": 0, "bos_token_id": 1, "eos_token_id": 2})


class _Tokenizer:
    bos_token_id, eos_token_id, pad_token_id = 1, 2, 0

    def __len__(self):
        return 64


def fake_cuda(monkeypatch, available: bool = True):
    monkeypatch.setattr("torch.cuda.is_available", lambda: available)


def test_cpu_keeps_sdpa_with_the_block_diagonal_mask():
    assert choose_attention("flash_attention_2", packed=True, cuda=False, flash_installed=False) == "sdpa"
    assert choose_attention("flash_attention_2", packed=True, cuda=False, flash_installed=True) == "sdpa"


def test_cuda_with_flash_attn_uses_it():
    assert choose_attention("flash_attention_2", packed=True, cuda=True, flash_installed=True) == "flash_attention_2"


def test_a_packed_cuda_run_without_flash_attn_is_an_error():
    with pytest.raises(RuntimeError, match=r"flash-attn is not installed.*L×L.*\[gpu\].*attn_implementation=sdpa"):
        choose_attention("flash_attention_2", packed=True, cuda=True, flash_installed=False)


def test_padded_cuda_run_without_flash_attn_and_explicit_choices_are_taken():
    assert choose_attention("flash_attention_2", packed=False, cuda=True, flash_installed=False) == "sdpa"
    assert choose_attention("sdpa", packed=True, cuda=True, flash_installed=False) == "sdpa"  # asked for, not a fallback
    assert choose_attention("eager", packed=True, cuda=False, flash_installed=False) == "eager"


@pytest.mark.parametrize("cuda, liger, family, expected", [
    (False, True, "qwen2", "none"),   # a CUDA-less run keeps the plain loss
    (True, False, "qwen2", "none"),   # liger-kernel not installed
    (True, True, "gpt2", "none"),     # a family Liger is not wired for here
    (True, True, "qwen2", "liger"),
    (True, True, "llama", "liger"),
])
def test_auto_takes_the_fused_loss_only_where_it_runs(cuda, liger, family, expected):
    assert choose_fused_loss("auto", model_type=family, cuda=cuda, liger_installed=liger) == expected
    assert choose_fused_loss("none", model_type=family, cuda=cuda, liger_installed=liger) == "none"


@pytest.mark.parametrize("cuda, liger, family, message", [
    (False, True, "qwen2", "CUDA"), (True, False, "qwen2", r"liger-kernel \(pip install"), (True, True, "gpt2", "'gpt2'"),
])
def test_liger_insists_and_names_what_is_missing(cuda, liger, family, message):
    with pytest.raises(RuntimeError, match=message):
        choose_fused_loss("liger", model_type=family, cuda=cuda, liger_installed=liger)
    with pytest.raises(ValueError, match="training.fused_loss"):
        choose_fused_loss("fused", model_type=family, cuda=cuda, liger_installed=liger)


def test_training_fused_loss_is_validated_and_runtime_only():
    from trajfusion.runs import config_fingerprint
    from trajfusion.training.schema import TrainingConfig

    with pytest.raises(ValueError, match="training.fused_loss"):
        TrainingConfig(fused_loss="always")
    resolved = {"training": {"packing": True, "fused_loss": "auto"}}
    assert config_fingerprint(resolved) == config_fingerprint({"training": {"packing": True, "fused_loss": "none"}})


def test_load_model_on_cpu_picks_sdpa_and_the_plain_loss(tiny_student, monkeypatch):
    import torch

    fake_cuda(monkeypatch, False)
    model = students.load_model(tiny_student, _Tokenizer(), seed=0, packed=True, fused_loss="auto")
    assert model.config._attn_implementation == "sdpa"
    ids = torch.tensor([[5, 6, 7, 8, 9, 10]])
    labels = torch.tensor([[-100, 6, 7, -100, 9, 10]])
    out = model(input_ids=ids, labels=labels, position_ids=torch.tensor([[0, 1, 2, 0, 1, 2]]))
    assert out.logits.shape == (1, 6, 64) and torch.isfinite(out.loss)  # the plain loss: full logits


def test_load_model_refuses_a_packed_cuda_run_without_flash_attn(tiny_student, monkeypatch):
    fake_cuda(monkeypatch)
    monkeypatch.setattr(students, "installed", lambda module: False)
    with pytest.raises(RuntimeError, match="flash-attn is not installed"):
        students.load_model(tiny_student, _Tokenizer(), seed=0, packed=True)


def test_load_model_patches_the_family_with_the_fused_loss_only(tiny_student, monkeypatch):
    """With CUDA and liger-kernel (both faked), auto patches the loaded Llama with Liger's fused linear
    cross-entropy and nothing else; the model is built on CPU with sdpa, as asked."""
    calls = []
    liger = types.ModuleType("liger_kernel.transformers")
    liger.apply_liger_kernel_to_llama = lambda **kwargs: calls.append(kwargs)
    monkeypatch.setitem(sys.modules, "liger_kernel", types.ModuleType("liger_kernel"))
    monkeypatch.setitem(sys.modules, "liger_kernel.transformers", liger)
    fake_cuda(monkeypatch)
    monkeypatch.setattr(students, "installed", lambda module: module == "liger_kernel")
    tiny_student.attn_implementation = "sdpa"
    tiny_student.bf16 = False
    model = students.load_model(tiny_student, _Tokenizer(), seed=0, packed=True, fused_loss="auto")
    assert len(calls) == 1 and calls[0].pop("model") is model
    assert calls[0] == {"rope": False, "cross_entropy": False, "fused_linear_cross_entropy": True, "rms_norm": False,
                        "swiglu": False}


def test_gradient_checkpointing_is_non_reentrant(tmp_path):
    from tests.test_train_config import compose_train
    from trajfusion.training.schema import to_train_config
    from trajfusion.training.trainer import training_arguments

    cfg = to_train_config(compose_train("student=tiny_random", "student.gradient_checkpointing=true"))
    args = training_arguments(cfg, tmp_path, world_size=1)
    assert args.gradient_checkpointing_kwargs == {"use_reentrant": False}


def test_the_gpu_kernels_are_pinned_in_the_gpu_extra_only():
    from pathlib import Path

    tomllib = pytest.importorskip("tomllib")  # Python ≥ 3.11

    extras = tomllib.loads((Path(__file__).resolve().parent.parent / "pyproject.toml").read_text())["project"]
    extras = extras["optional-dependencies"]
    gpu = {req.split("==")[0]: req for req in extras["gpu"]}
    assert {"flash-attn", "liger-kernel", "vllm"} <= set(gpu) and all("==" in req for req in gpu.values())
    for extra in ("cpu", "dev"):  # the CPU/CI install never pulls them
        assert not any(req.startswith(("flash-attn", "liger-kernel", "vllm")) for req in extras[extra])


def _gpu_kernels_present() -> bool:
    import torch

    from trajfusion.training.kernels import installed

    return torch.cuda.is_available() and installed("liger_kernel") and installed("flash_attn")


@pytest.mark.gpu
@pytest.mark.skipif(not _gpu_kernels_present(), reason="needs CUDA, liger-kernel and flash-attn (the gpu extra)")
def test_on_cuda_the_fused_loss_equals_the_plain_loss_on_packed_rows():
    """Same packed micro-batch (position ids restart per sample, -100 on prompts and sample starts): the
    plain loss and Liger's fused one agree, as do the LM-head gradients, and the fused forward returns no
    logits. Liger patches the Qwen2 class for the rest of the process, so the plain loss is taken first."""
    import torch
    from transformers import AutoModelForCausalLM, Qwen2Config

    from trajfusion.training.kernels import apply_fused_loss

    config = Qwen2Config(vocab_size=4096, hidden_size=128, intermediate_size=256, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, use_cache=False)
    config._attn_implementation = "flash_attention_2"
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16).cuda().train()
    lengths = [300, 500, 224]
    ids = torch.randint(0, 4096, (1, sum(lengths)), device="cuda")
    positions = torch.cat([torch.arange(n) for n in lengths])[None].cuda()
    labels = ids.clone()
    labels[0, :40] = -100  # a prompt
    labels[0, [0, 300, 800]] = -100  # each sample's first label
    batch = {"input_ids": ids, "position_ids": positions, "labels": labels}

    plain = model(**batch)
    plain.loss.backward()
    plain_grad = model.lm_head.weight.grad.float().clone()
    model.zero_grad(set_to_none=True)
    apply_fused_loss(model)
    fused = model(**batch)
    fused.loss.backward()
    assert fused.logits is None and plain.logits is not None
    torch.testing.assert_close(fused.loss.float(), plain.loss.float(), rtol=2e-2, atol=2e-2)
    torch.testing.assert_close(model.lm_head.weight.grad.float(), plain_grad, rtol=5e-2, atol=1e-3)
