"""One vLLM data-parallel shard: `python -m trajfusion.evaluation.shard SPEC.json` (started by the runner)."""

import logging
import sys

from trajfusion.evaluation.backends import run_shard
from trajfusion.io import read_json

if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="[shard] %(levelname)s %(name)s: %(message)s")
    run_shard(read_json(sys.argv[1]))
