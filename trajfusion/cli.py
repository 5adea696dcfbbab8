"""Shared by the entry points: bad input ends the run with one located message, not a traceback."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
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
