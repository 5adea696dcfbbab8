"""One lock per output on the data root, so concurrent builds of the same thing do the work once.

`<data_root>/locks/<output>.lock` holds a POSIX record lock (fcntl, also honoured on NFS with lockd)
while a process builds that output; a second process waits for it, then finds the output and reuses
it. The lock dies with its process, so a killed build never leaves a stale lock behind.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path

log = logging.getLogger(__name__)


@contextlib.contextmanager
def output_lock(data_root: str | Path, name: str) -> Iterator[Path]:
    """Hold `<data_root>/locks/<name>.lock` exclusively; logs once when it has to wait."""
    locks = Path(data_root) / "locks"
    locks.mkdir(parents=True, exist_ok=True)
    path = locks / f"{name}.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:  # EACCES or EAGAIN: another process holds it
            log.info("another build of %s is running; waiting for it (lock %s)", name, path)
            started = time.perf_counter()
            fcntl.lockf(fd, fcntl.LOCK_EX)
            log.info("lock %s acquired after %.1fs", path, time.perf_counter() - started)
        yield path
    finally:
        os.close(fd)  # closing releases the lock
