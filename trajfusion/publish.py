"""Upload a dataset directory or a final checkpoint to the Hugging Face hub, with its card.

    python -m trajfusion.publish outputs/fused/adaptive-<data_id> --repo ORG/NAME [--private]
    python -m trajfusion.publish outputs/runs/<run>/final --repo ORG/NAME [--private]

The card (README.md) is written again first, so it shows the latest evaluations. Needs a token
(`HF_TOKEN`, or `hf auth login`) and the network: unset HF_HUB_OFFLINE, which the Makefile sets.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from huggingface_hub import HfApi, get_token

from trajfusion.cards import write_dataset_card, write_model_card

log = logging.getLogger("trajfusion.publish")

# what never goes up: intermediate trainer state and local W&B logs
IGNORE = ["checkpoint-*/**", "wandb/**", ".*", "**/.*"]


def kind_of(directory: Path) -> str:
    """`dataset` (data.jsonl + manifest.json) or `model` (train.py's final/ with config.json)."""
    if (directory / "data.jsonl").exists() and (directory / "manifest.json").exists():
        return "dataset"
    if (directory / "config.json").exists() and (directory / "training_manifest.json").exists():
        return "model"
    raise ValueError(f"{directory}: neither a dataset directory (data.jsonl, manifest.json) nor a final checkpoint "
                     "(config.json, training_manifest.json)")


def publish(directory: Path, repo: str, private: bool = False, token: str | None = None, api: HfApi | None = None) -> str:
    """Create (or reuse) the hub repo and upload the directory; returns the repo URL."""
    if repo.count("/") != 1 or not all(repo.split("/")):
        raise ValueError(f"--repo {repo!r}: give ORG/NAME")
    kind = kind_of(directory)
    if os.environ.get("HF_HUB_OFFLINE", "0") not in ("", "0", "false", "False"):
        raise ValueError("HF_HUB_OFFLINE is set (the Makefile sets it for offline runs); unset it to publish")
    token = token or get_token()
    if not token:
        raise ValueError("no Hugging Face token: set HF_TOKEN or run `hf auth login` (a token with write access)")
    (write_dataset_card if kind == "dataset" else write_model_card)(directory)
    api = api or HfApi(token=token)
    url = api.create_repo(repo, repo_type=kind, private=private, exist_ok=True)
    api.upload_folder(folder_path=str(directory), repo_id=repo, repo_type=kind, ignore_patterns=IGNORE,
                      commit_message=f"Upload {directory.name} from trajfusion")
    return str(url)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("directory", type=Path, help="<data_root>/fused/<fusion>-<data_id> or <data_root>/runs/<run>/final")
    parser.add_argument("--repo", required=True, help="hub repo id, ORG/NAME")
    parser.add_argument("--private", action="store_true")
    parser.add_argument("--token", help="default: HF_TOKEN or the cached login")
    args = parser.parse_args(argv)
    try:
        url = publish(args.directory, args.repo, args.private, args.token)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"published {args.directory} → {url}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
