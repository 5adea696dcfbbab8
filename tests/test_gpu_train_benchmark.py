"""benchmarks/gpu_train_throughput.py on CPU: the presets' shapes, command-line overrides, and a clear refusal
without CUDA (the measurement itself needs a GPU)."""

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "benchmarks" / "gpu_train_throughput.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("gpu_train_throughput", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_32k_preset_is_the_long_form_runs_shape(bench):
    import json

    args = bench.parse_args(["--preset", "table3_32k"])
    assert (args.seq_len, args.zero_stage, args.layouts, args.yarn_factor) == (32768, 3, ["packed"], 8.0)
    config = json.loads((ROOT / args.model_config).read_text())
    assert (config["model_type"], config["num_hidden_layers"], config["vocab_size"]) == ("qwen2", args.layers, 152064)
    lengths = bench.row_lengths(args)
    assert max(lengths) <= 32768 and sorted(lengths)[len(lengths) // 2] > 4096  # long-form rows, capped at the pack


def test_the_default_keeps_the_4k_comparison_and_flags_override_the_preset(bench):
    args = bench.parse_args([])
    assert (args.preset, args.seq_len, args.layers, args.zero_stage, args.layouts) == (
        "llama3_8b_4k", 4096, 16, 1, ["packed", "padded"])
    args = bench.parse_args(["--preset", "table3_32k", "--layers", "4", "--seq-len", "16384", "--zero-stage", "2"])
    assert (args.layers, args.seq_len, args.zero_stage) == (4, 16384, 2)
    with pytest.raises(SystemExit):
        bench.parse_args(["--preset", "table3_32k", "--seq-len", "65536"])  # beyond YaRN ×8 of 4K


@pytest.mark.skipif(importlib.util.find_spec("torch") is None or __import__("torch").cuda.is_available(),
                    reason="checks the CPU refusal")
def test_without_cuda_it_refuses_clearly():
    out = subprocess.run([sys.executable, str(SCRIPT), "--preset", "table3_32k"], capture_output=True, text=True,
                         timeout=300, check=False)
    assert out.returncode == 2 and "needs a CUDA GPU" in out.stderr and not out.stdout
