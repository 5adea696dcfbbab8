"""Share of real (non-pad) tokens: packed sequences vs padded micro-batches, on the bundled fused dataset.

    python benchmarks/packing_efficiency.py                       # TrajFusion rows, 4096-token sequences
    python benchmarks/packing_efficiency.py fusion=rft student.max_seq_len=2048

Both figures come from the same tokenised rows in this run: packed = real tokens / (sequences × max_seq_len),
the real share of a fixed-shape batch of packs; padded = real tokens / Σ(micro-batch × its longest row) for
micro-batches of B rows in a seeded random order (the unpacked baseline). The tokenizer is the tiny
student's (exact, offline); the first run verifies the bundled pool (~1.5 min), later runs reuse it.
Exits non-zero if packing keeps less than 95% real tokens.
"""

import logging
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hydra import compose, initialize_config_dir  # noqa: E402

from trajfusion.config import register_configs  # noqa: E402
from trajfusion.training.packing import SequenceDataset  # noqa: E402
from trajfusion.training.schema import register_train_configs, to_train_config  # noqa: E402
from trajfusion.training.students import load_tokenizer, prepare_tokenizer  # noqa: E402
from trajfusion.training.tokenise import load_template  # noqa: E402
from trajfusion.training.trainer import build_config_of_train, tokenise_dataset  # noqa: E402

TARGET = 0.95


def padded_share(lengths, batch_size, seed=0):
    order = list(range(len(lengths)))
    random.Random(seed).shuffle(order)
    real = slots = 0
    for i in range(0, len(order), batch_size):
        chunk = [lengths[j] for j in order[i:i + batch_size]]
        real += sum(chunk)
        slots += len(chunk) * max(chunk)
    return real / slots


def main(overrides):
    from trajfusion.data.dataset import build_dataset

    logging.basicConfig(level=logging.WARNING)
    register_configs()
    register_train_configs()
    conf = Path(__file__).resolve().parent.parent / "conf"
    with initialize_config_dir(config_dir=str(conf), version_base="1.3"):
        cfg = to_train_config(compose("train", ["student=tiny_random", "student.max_seq_len=4096", "progress=false",
                                                "plots=false", *overrides]))
    prepare_tokenizer(cfg.student)
    dataset_dir = build_dataset(build_config_of_train(cfg), allow_sampling=False)
    rows, report = tokenise_dataset(dataset_dir, load_tokenizer(cfg.student), load_template(cfg.student.template), cfg)
    capacity = cfg.student.max_seq_len
    packed = SequenceDataset(rows, capacity, packing=True)
    lengths = rows.lengths.tolist()  # the cache's lengths column: no row is fetched
    print(f"dataset {dataset_dir.name}: {len(rows)} rows, {sum(lengths)} tokens, mean {sum(lengths) / len(rows):.0f}, "
          f"max {max(lengths)} (dropped over-long: {report['dropped_overlong']})")
    print(f"{'layout':34s} {'sequences':>9s} {'real share':>10s}")
    print(f"{'packed, ' + str(capacity) + '-token sequences':34s} {len(packed):9d} {packed.fill:10.4f}")
    for batch in (4, 8, 16):
        print(f"{'padded to longest, batch ' + str(batch):34s} {len(rows):9d} {padded_share(lengths, batch):10.4f}")
    print(f"{'padded to ' + str(capacity):34s} {len(rows):9d} {sum(lengths) / (len(rows) * capacity):10.4f}")
    ok = packed.fill >= TARGET
    print(f"packed real-token share {packed.fill:.4f} {'>=' if ok else '<'} {TARGET}: {'PASS' if ok else 'FAIL'}; "
          f"vs padded batch 8: ×{packed.fill / padded_share(lengths, 8):.2f}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
