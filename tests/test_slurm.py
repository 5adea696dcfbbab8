"""slurm/build_data.sh against a fake sbatch: array size, dependency, overrides passed through."""

import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_build_data_submits_array_then_dependent_fuse(tmp_path):
    log = tmp_path / "sbatch.log"
    fake = tmp_path / "bin" / "sbatch"
    fake.parent.mkdir()
    fake.write_text(f'#!/bin/bash\necho "$@" >> {log}\nn=$(wc -l < {log}); echo "$((4200 + n))"\n')
    fake.chmod(0o755)
    env = {**os.environ, "PATH": f"{fake.parent}:{os.environ['PATH']}"}
    out = subprocess.run([str(ROOT / "slurm/build_data.sh"), "4", "data=math_train", "teacher=qwen2p5_math_7b_instruct"],
                         env=env, capture_output=True, text=True, check=True)
    sample, fuse = log.read_text().splitlines()
    assert sample.startswith("--parsable --array=0-3 ") and sample.endswith("build_data.sbatch shard.count=4 data=math_train teacher=qwen2p5_math_7b_instruct")
    assert fuse.startswith("--parsable --dependency=afterok:4201 ") and fuse.endswith("fuse.sbatch shard.count=4 data=math_train teacher=qwen2p5_math_7b_instruct")
    assert "array 4201 (4 shards) -> fuse 4202" in out.stdout
