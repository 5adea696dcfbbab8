"""Benchmark a student or checkpoint on the project's lm-eval tasks, graded by the project's verifier.

    python evaluate.py student=smollm2_135m benchmark=math500 benchmark.limit=20 benchmark.max_new_tokens=256
    python evaluate.py student=llama3_8b ckpt=outputs/runs/<run>/final benchmark=paper_main backend=vllm
    python evaluate.py student=qwen2p5_math_7b_32k ckpt=PATH benchmark=long_form backend.name=vllm backend.data_parallel_size=8

Writes results.json, results.md and samples/<task>.jsonl to the Hydra run directory and logs W&B.
"""

from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from trajfusion import console
from trajfusion.cli import fail_cleanly
from trajfusion.evaluation.schema import EvalConfig, register_eval_configs, to_eval_config
from trajfusion.overrides import refuse_unknown_additions

register_eval_configs()
console.expand_verbose_flag()


@hydra.main(version_base="1.3", config_path="conf", config_name="evaluate")
def main(cfg: DictConfig) -> dict:
    from trajfusion.evaluation.runner import evaluate

    console.setup(cfg.verbose)
    fail_cleanly(lambda: refuse_unknown_additions(EvalConfig, "evaluate.py"))
    hydra_cfg = HydraConfig.get()
    results = fail_cleanly(lambda: evaluate(
        to_eval_config(cfg), OmegaConf.to_container(cfg, resolve=True), Path(hydra_cfg.runtime.output_dir),
        dict(hydra_cfg.runtime.choices),
    ))
    from trajfusion.cards import record_evaluation
    from trajfusion.summary import eval_line

    record_evaluation(cfg.ckpt, Path(hydra_cfg.runtime.output_dir), results)  # scores into the checkpoint's card
    console.summary(f"eval     done; log: {console.log_file()}", [eval_line(Path(hydra_cfg.runtime.output_dir))])
    return results


if __name__ == "__main__":
    main()
