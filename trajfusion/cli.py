"""Shared by the entry points: bad input ends the run with one located message, not a traceback."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from trajfusion.io import DataError

T = TypeVar("T")
log = logging.getLogger("trajfusion")


def fail_cleanly(run: Callable[[], T]) -> T:
    try:
        return run()
    except (DataError, ValueError) as exc:
        log.error("%s", exc)
        sys.exit(2)


def require_known_experiment() -> None:
    """Hydra silently skips an `optional experiment` whose file does not exist, so a mistyped preset would
    run the defaults; refuse it, naming the presets there are. Call inside a @hydra.main function."""
    from hydra.core.hydra_config import HydraConfig

    runtime = HydraConfig.get().runtime
    name = runtime.choices.get("experiment")
    if not name:
        return
    conf = next(Path(s.path.removeprefix("file://")) for s in runtime.config_sources if s.provider == "main")
    if not (conf / "experiment" / f"{name}.yaml").exists():
        known = sorted(p.stem for p in (conf / "experiment").glob("*.yaml"))
        raise ValueError(f"experiment={name}: no {conf / 'experiment' / name}.yaml; supported: {', '.join(known)}")
