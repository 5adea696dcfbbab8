"""slurm/build_data.sh against a fake sbatch: array size, dependency, overrides passed through."""

import subprocess
from pathlib import Path

from tests.helpers import fake_sbatch

ROOT = Path(__file__).resolve().parent.parent


def test_build_data_submits_array_then_dependent_fuse(tmp_path):
    log, env = fake_sbatch(tmp_path)
    out = subprocess.run([str(ROOT / "slurm/build_data.sh"), "4", "data=math_train", "teacher=qwen2p5_math_7b_instruct"],
                         env=env, capture_output=True, text=True, check=True)
    sample, fuse = log.read_text().splitlines()
    assert sample.startswith("--parsable --array=0-3 ") and sample.endswith("build_data.sbatch shard.count=4 data=math_train teacher=qwen2p5_math_7b_instruct")
    assert fuse.startswith("--parsable --dependency=afterok:4201 ") and fuse.endswith("fuse.sbatch shard.count=4 data=math_train teacher=qwen2p5_math_7b_instruct")
    assert "array 4201 (4 shards) -> fuse 4202" in out.stdout


def test_a_stored_pool_gets_a_verify_array(tmp_path):
    log, env = fake_sbatch(tmp_path)
    out = subprocess.run([str(ROOT / "slurm/build_data.sh"), "3", "teacher=replay_math_l5"], env={**env, "STAGE": "verify"},
                         capture_output=True, text=True, check=True)
    verify, fuse = log.read_text().splitlines()
    assert verify.startswith("--parsable --array=0-2 ") and verify.endswith("verify.sbatch shard.count=3 teacher=replay_math_l5")
    assert fuse.startswith("--parsable --dependency=afterok:4201 ") and fuse.endswith("fuse.sbatch shard.count=3 teacher=replay_math_l5")
    assert "verify array 4201 (3 shards) -> fuse 4202" in out.stdout
    script = (ROOT / "slurm/verify.sbatch").read_text()
    assert "--gpus" not in script and "stage=verify" in script and "--mem=" in script
