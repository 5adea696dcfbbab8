"""Read an offline W&B run's records (`<dir>/wandb/offline-run-*/run-<id>.wandb`) before it is synced.

The file is W&B's transaction log: a 7-byte header (`:W&B`, magic 0xBEE1, version 0), then 32 KiB
blocks of LevelDB-log records (crc32, length, type FULL/FIRST/MIDDLE/LAST) that each carry one
serialized `wandb_internal_pb2.Record`. wandb ≥ 0.2x reads it in its Go core only, so this is the
small Python reader the lineage checks use; the protobuf schema is wandb's own.

    python -m trajfusion.wandb_records outputs/runs/demo-rft      # the artifacts a run logged or used
"""

from __future__ import annotations

import struct
import sys
import zlib
from collections.abc import Iterator
from pathlib import Path

HEADER = struct.Struct("<4sHB")  # ident, magic, version
RECORD_HEADER = struct.Struct("<IHB")  # crc32, length, type
BLOCK = 32768
IDENT, MAGIC = b":W&B", 0xBEE1
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def raw_records(path: Path) -> Iterator[bytes]:
    data = Path(path).read_bytes()
    ident, magic, version = HEADER.unpack_from(data, 0)
    if ident != IDENT or magic != MAGIC or version != 0:
        raise ValueError(f"{path}: not a W&B transaction log (header {ident!r} {magic:#x} v{version})")
    pos, pending = HEADER.size, b""
    while pos + RECORD_HEADER.size <= len(data):
        left = BLOCK - pos % BLOCK
        if left < RECORD_HEADER.size:  # the block's tail is padding
            pos += left
            continue
        crc, length, kind = RECORD_HEADER.unpack_from(data, pos)
        if kind == 0 and length == 0:  # zero fill of a block a writer did not finish
            pos += left
            continue
        chunk = data[pos + RECORD_HEADER.size: pos + RECORD_HEADER.size + length]
        if len(chunk) < length:
            break  # a run still being written: the last record is incomplete
        if zlib.crc32(bytes([kind]) + chunk) & 0xFFFFFFFF != crc:
            raise ValueError(f"{path}: bad checksum at byte {pos}")
        pos += RECORD_HEADER.size + length
        if kind == FULL:
            yield chunk
        elif kind == FIRST:
            pending = chunk
        elif kind == MIDDLE:
            pending += chunk
        elif kind == LAST:
            yield pending + chunk
            pending = b""
        else:
            raise ValueError(f"{path}: unknown record type {kind} at byte {pos}")


def records(path: Path):
    """The run's `Record` protobufs in order."""
    from wandb.proto import wandb_internal_pb2 as pb

    for raw in raw_records(path):
        record = pb.Record()
        record.ParseFromString(raw)
        yield record


def run_files(directory: Path) -> list[Path]:
    """Every offline run log under a directory (a run dir, its wandb/ or an offline-run-* folder)."""
    return sorted(Path(directory).glob("**/offline-run-*/run-*.wandb"))


def artifacts(path: Path) -> list[dict]:
    """What a run logged (`use_after_commit` false) or declared as input (true), one dict per artifact."""
    out = []
    for record in records(path):
        kind = record.WhichOneof("record_type")
        if kind == "artifact":
            a = record.artifact
            out.append({"name": a.name, "type": a.type, "digest": a.digest, "aliases": list(a.aliases),
                        "input": a.use_after_commit, "entries": sorted(e.path for e in a.manifest.contents),
                        "refs": sorted(e.ref for e in a.manifest.contents if e.ref)})
        elif kind == "use_artifact":
            u = record.use_artifact
            out.append({"name": u.name, "type": u.type, "digest": None, "aliases": [], "input": True, "entries": [], "refs": []})
    return out


def run_info(path: Path) -> dict:
    """Name, job type and group of the run a log belongs to."""
    for record in records(path):
        if record.WhichOneof("record_type") == "run":
            r = record.run
            return {"id": r.run_id, "name": r.display_name, "job_type": r.job_type, "group": r.run_group, "project": r.project}
    raise ValueError(f"{path}: no run record")


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m trajfusion.wandb_records",
                                     description="The W&B artifacts each (offline) run under the folders logged or used.")
    parser.add_argument("folders", nargs="*", default=["."], help="folders searched for wandb/*-run-*/run-*.wandb")
    for directory in parser.parse_args(argv).folders:
        for path in run_files(Path(directory)):
            info = run_info(path)
            print(f"{info['job_type']:<6} {info['name']}  ({path.parent})")
            for a in artifacts(path):
                arrow = "in " if a["input"] else "out"
                print(f"  {arrow} {a['type']:<8} {a['name']}:{','.join(a['aliases']) or '-'}  digest {a['digest']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
