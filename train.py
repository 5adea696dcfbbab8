"""Fine-tune a student on TrajFusion (or RFT) data: one process, torchrun/accelerate ranks, or SLURM.

    python train.py student=tiny_random fusion=adaptive                      # CPU smoke run
    DS_ACCELERATOR=cpu torchrun --nproc-per-node 2 train.py student=tiny_random deepspeed=zero2
    torchrun --nproc-per-node 8 train.py student=llama3_8b fusion=adaptive   # the paper's setting
    sbatch --nodes 2 slurm/train.sbatch student=llama3_8b fusion=rft

The dataset is found (or built from the cached pool) by its data_id; teacher sampling is never
started from here. Re-running a command resumes its run directory from the last checkpoint.
"""

import os
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from trajfusion import console
from trajfusion.cli import fail_cleanly, require_known_experiment
from trajfusion.config import register_configs
from trajfusion.overrides import refuse_unknown_additions
from trajfusion.training.schema import TrainConfig, register_train_configs, to_train_config

register_configs()
register_train_configs()
console.expand_verbose_flag()


def _export_submitit_ranks() -> None:
    """Under the submitit launcher each SLURM task is one rank: give it torch.distributed's variables."""
    if "SUBMITIT_EXECUTOR" in os.environ and "RANK" not in os.environ and int(os.environ.get("SLURM_NTASKS", 1)) > 1:
        from submitit.helpers import TorchDistributedEnvironment

        TorchDistributedEnvironment().export(set_cuda_visible_devices=False)


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg: DictConfig) -> str:
    console.setup(cfg.verbose)
    with console.chatter():
        from trajfusion.training.trainer import train

    fail_cleanly(require_known_experiment)
    fail_cleanly(lambda: refuse_unknown_additions(TrainConfig, "train.py"))
    _export_submitit_ranks()
    hydra_cfg = HydraConfig.get()
    run_dir = hydra_cfg.runtime.output_dir
    resolved = OmegaConf.to_container(cfg, resolve=True)
    out = fail_cleanly(lambda: train(to_train_config(cfg), resolved, Path(run_dir), dict(hydra_cfg.runtime.choices)))
    if int(os.environ.get("RANK", "0")) == 0:
        from trajfusion.summary import run_line

        console.summary(f"train    done; log: {console.log_file()}", [run_line(Path(run_dir))])
    return str(out)


if __name__ == "__main__":
    main()
