"""Build a TrajFusion (or RFT) training set from a teacher pool.

    python build_data.py                                  # bundled pool, TrajFusion
    python build_data.py fusion=rft selector=low_div ...  # any config group option
    python build_data.py -m length_policy.k_max=1,2,4,6   # sweep; the verified pool is reused
"""

import hydra
from omegaconf import DictConfig, OmegaConf

from trajfusion import console
from trajfusion.cli import fail_cleanly, require_known_experiment
from trajfusion.config import BuildDataEntryConfig, register_configs, to_build_config
from trajfusion.data.dataset import build_dataset
from trajfusion.data.verified import shard_stage
from trajfusion.overrides import refuse_unknown_additions
from trajfusion.summary import dataset_lines

register_configs()
console.expand_verbose_flag()


@hydra.main(version_base="1.3", config_path="conf", config_name="build_data")
def main(cfg: DictConfig) -> str | dict:
    console.setup(cfg.verbose)
    fail_cleanly(require_known_experiment)
    fail_cleanly(lambda: refuse_unknown_additions(BuildDataEntryConfig, "build_data.py"))
    build_cfg = fail_cleanly(lambda: to_build_config(cfg))
    if build_cfg.stage != "all":  # one shard: sample (a sampled pool) and verify it (a SLURM array task)
        return fail_cleanly(lambda: shard_stage(build_cfg))
    out_dir = fail_cleanly(lambda: build_dataset(build_cfg, OmegaConf.to_container(cfg, resolve=True)))
    console.summary(f"data     done; log: {console.log_file()}", dataset_lines(out_dir))
    return str(out_dir)


if __name__ == "__main__":
    main()
