import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "offline")


@pytest.fixture
def compose(tmp_path):
    """Compose build_data's config with overrides, data_root in a temp dir; returns the validated objects."""
    from pathlib import Path

    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    from trajfusion.config import register_configs, to_build_config

    register_configs()
    conf_dir = str(Path(__file__).resolve().parent.parent / "conf")

    def _compose(*overrides: str, config_name: str = "build_data", validate: bool = True):
        with initialize_config_dir(config_dir=conf_dir, version_base="1.3"):
            cfg = hydra_compose(config_name=config_name, overrides=[f"paths.data_root={tmp_path}/data", *overrides])
        return to_build_config(cfg) if validate else cfg

    return _compose
