"""The sqlite verdict cache under many concurrent jobs: rollback journal (no WAL, which needs shared
memory a network filesystem does not have), a busy timeout and a file lock around every access."""

import os
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

from trajfusion.data.verify_cache import VerdictCache

REPO = Path(__file__).resolve().parents[1]

WRITER = textwrap.dedent(
    """
    import sys
    from trajfusion.data.verify_cache import VerdictCache
    me, path = int(sys.argv[1]), sys.argv[2]
    cache = VerdictCache(path)
    for batch in range(25):
        items = [((f"g{batch}", f"p{me}-{i}"), "correct") for i in range(20)]
        items += [((f"shared{batch}", f"p{i}"), "incorrect") for i in range(5)]  # every writer writes these
        cache.put_many("v", items)
        got = cache.get_many("v", [k for k, _ in items])
        assert len(got) == len(items), (me, batch, len(got))
    cache.close()
    """
)


def test_concurrent_processes_share_one_cache(tmp_path):
    db = tmp_path / "cache" / "verify.sqlite"
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(me), str(db)], env=env, stderr=subprocess.PIPE, text=True)
             for me in range(4)]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    with sqlite3.connect(db) as con:
        assert con.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert con.execute("SELECT COUNT(*) FROM verdicts").fetchone()[0] == 4 * 25 * 20 + 25 * 5
    assert not Path(str(db) + "-wal").exists()


def test_cache_leaves_wal_mode_and_reads_in_batches(tmp_path):
    db = tmp_path / "verify.sqlite"
    with sqlite3.connect(db) as con:  # a cache written by an older version in WAL mode
        con.execute("PRAGMA journal_mode=WAL")
    cache = VerdictCache(db)
    keys = [(f"g{i}", f"p{i}") for i in range(1000)]  # more than one SELECT's worth of parameters
    cache.put_many("v", [(k, "unknown:too_long") for k in keys])
    assert cache.get_many("v", keys + [("x", "y")]) == {k: "unknown:too_long" for k in keys}
    assert cache.get_many("other-version", keys) == {}
    cache.close()
    with sqlite3.connect(db) as con:
        assert con.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
