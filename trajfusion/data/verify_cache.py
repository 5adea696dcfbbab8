"""The sqlite verdict cache (`<data_root>/cache/verify.sqlite`), safe for many jobs at once.

Many SLURM jobs may share one data root on a network filesystem, where sqlite's WAL mode does not
work (it needs shared memory between the hosts) and its own byte-range locks are not always
honoured. So the cache uses the rollback journal (`journal_mode=DELETE`), waits for a busy
database instead of failing (`busy_timeout`), and every access takes a POSIX lock on a sibling
`verify.sqlite.lock` file (shared for reads, exclusive for writes) that `lockf` carries over NFS.
Writes are batched, so the lock is taken once per batch, not once per verdict.
"""

from __future__ import annotations

import contextlib
import fcntl
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

BUSY_TIMEOUT_MS = 600_000
_READ_BATCH = 400  # keys per SELECT (sqlite's default limit is 999 host parameters)


def _storable(key: tuple[str, str]) -> bool:
    """sqlite stores UTF-8: a key holding a lone surrogate (valid in a Python str read from a JSON
    escape, not in UTF-8) is simply not cached."""
    try:
        key[0].encode("utf-8"), key[1].encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


class VerdictCache:
    """(version, gold, pred) → stored verdict string; reads and writes in batches under a file lock."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock_file = open(self.path.with_name(self.path.name + ".lock"), "a+")  # noqa: SIM115 - closed in close()
        with self._locked(exclusive=True):
            self._db = sqlite3.connect(str(self.path), timeout=BUSY_TIMEOUT_MS / 1000)
            self._db.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            self._db.execute("PRAGMA journal_mode=DELETE")  # also leaves WAL if an older run set it
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS verdicts ("
                " version TEXT NOT NULL, gold TEXT NOT NULL, pred TEXT NOT NULL,"
                " verdict TEXT NOT NULL, PRIMARY KEY (version, gold, pred)"
                ") WITHOUT ROWID"
            )
            self._db.commit()

    @contextlib.contextmanager
    def _locked(self, exclusive: bool) -> Iterator[None]:
        fd = self._lock_file.fileno()
        fcntl.lockf(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        try:
            yield
        finally:
            fcntl.lockf(fd, fcntl.LOCK_UN)

    def get_many(self, version: str, keys: Sequence[tuple[str, str]]) -> dict[tuple[str, str], str]:
        """Stored verdicts of those `keys` that have one."""
        found: dict[tuple[str, str], str] = {}
        keys = [key for key in keys if _storable(key)]
        if not keys:
            return found
        with self._locked(exclusive=False):
            for start in range(0, len(keys), _READ_BATCH):
                batch = keys[start : start + _READ_BATCH]
                placeholders = ",".join("(?,?)" for _ in batch)
                params = [version] + [x for key in batch for x in key]
                rows = self._db.execute(
                    "SELECT gold, pred, verdict FROM verdicts WHERE version=? AND (gold, pred) IN "
                    f"(VALUES {placeholders})",
                    params,
                ).fetchall()
                found.update({(g, p): v for g, p, v in rows})
            self._db.commit()  # ends the read transaction, releasing sqlite's shared lock
        return found

    def put_many(self, version: str, items: Iterable[tuple[tuple[str, str], str]]) -> None:
        rows = [(version, g, p, v) for (g, p), v in items if _storable((g, p))]
        if not rows:
            return
        with self._locked(exclusive=True):
            self._db.executemany("INSERT OR REPLACE INTO verdicts(version, gold, pred, verdict) VALUES (?,?,?,?)", rows)
            self._db.commit()

    def close(self) -> None:
        try:
            self._db.close()
        finally:
            self._lock_file.close()

