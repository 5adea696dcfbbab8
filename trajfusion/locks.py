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

from trajfusion.console import stage

log = logging.getLogger(__name__)


def _acquire(path: Path, name: str) -> int:
    """An fd holding the lock on the file now at `path` (a releasing holder deletes the file, so a lock
    won on a file already unlinked is retried on the new one)."""
    waited = None
    while True:
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except FileNotFoundError:  # the locks folder was removed in between
            continue
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:  # EACCES or EAGAIN: another process holds it
            if waited is None:
                stage("data     another build of %s is running; waiting for it (lock %s)", name, path)
                waited = time.perf_counter()
            fcntl.lockf(fd, fcntl.LOCK_EX)
        try:
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            if waited is not None:
                log.info("lock %s acquired after %.1fs", path, time.perf_counter() - waited)
            return fd
        os.close(fd)


@contextlib.contextmanager
def output_lock(data_root: str | Path, name: str) -> Iterator[Path]:
    """Hold `<data_root>/locks/<name>.lock` exclusively; logs once when it has to wait. The lock file
    (and an empty locks folder) is removed on release, so a failed build leaves nothing behind."""
    path = Path(data_root) / "locks" / f"{name}.lock"
    fd = _acquire(path, name)
    try:
        yield path
    finally:
        try:
            path.unlink(missing_ok=True)  # still holding the lock: waiters re-check the inode
            with contextlib.suppress(OSError):
                path.parent.rmdir()  # only when empty
        finally:
            os.close(fd)  # closing releases the lock
