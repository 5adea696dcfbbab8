"""α for a pool, whole curve: mean #Err and P(#Err ≥ j) at every breakpoint of α and on a grid, and the α
that `length_policy.alpha=auto` (the default of every build) picks for the target #Err.

    python calibrate_alpha.py                                   # bundled pool, k_max=4, target 1.49
    python calibrate_alpha.py length_policy.k_max=2             # target 1.02 (paper Table 2)
    python calibrate_alpha.py length_policy.target_errors=1.2    # any target
    python calibrate_alpha.py selector=low_div length_policy.target_errors=1.13
"""

import hydra
from omegaconf import DictConfig

from trajfusion import console
from trajfusion.cli import fail_cleanly, require_known_experiment
from trajfusion.config import BuildDataEntryConfig, register_configs, to_build_config
from trajfusion.data.dataset import calibrate
from trajfusion.overrides import refuse_unknown_additions

register_configs()
console.expand_verbose_flag()


@hydra.main(version_base="1.3", config_path="conf", config_name="build_data")
def main(cfg: DictConfig) -> float:
    console.setup(cfg.verbose)
    fail_cleanly(require_known_experiment)
    fail_cleanly(lambda: refuse_unknown_additions(BuildDataEntryConfig, "calibrate_alpha.py"))
    result = fail_cleanly(lambda: calibrate(to_build_config(cfg)))
    console.stage("alpha    %s (mean #Err %s on %d problems, target %s); the grid is in %s",
                  result["alpha"], result["mean_errors"], result["problems"], result["target"], console.log_file())
    return result["alpha"]


if __name__ == "__main__":
    main()
