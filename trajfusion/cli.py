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


def check_experiment(conf: Path, name: str | None) -> None:
    """A preset name must be a file of `conf/experiment/`; the error lists the ones there are."""
    if name and not (conf / "experiment" / f"{name}.yaml").exists():
        known = sorted(p.stem for p in (conf / "experiment").glob("*.yaml"))
        raise ValueError(f"experiment={name}: no {conf / 'experiment' / name}.yaml; supported: {', '.join(known)}")


def require_known_experiment() -> None:
    """Hydra silently skips an `optional experiment` whose file does not exist, so a mistyped preset would
    run the defaults; refuse it. Call inside a @hydra.main function."""
    from hydra.core.hydra_config import HydraConfig

    runtime = HydraConfig.get().runtime
    conf = next(Path(s.path.removeprefix("file://")) for s in runtime.config_sources if s.provider == "main")
    check_experiment(conf, runtime.choices.get("experiment"))
