"""Files: JSONL in and out (plain or gzip), atomic writes, content hashes, input errors that point
at the file, line and field.

Everything written goes to a temporary sibling first and is renamed into place, so a killed run
never leaves a half-written file that a later run would trust.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class DataError(ValueError):
    """Bad input, located: `file:line: field: what is wrong`."""

    def __init__(self, path: str | Path, line: int | None, field: str | None, message: str):
        where = f"{path}:{line}" if line is not None else str(path)
        super().__init__(f"{where}: {field + ': ' if field else ''}{message}")
        self.path, self.line, self.field = str(path), line, field


def resolve_path(path: str | Path) -> Path:
    """A path as given, or relative to the project root (bundled files work from any directory)."""
    candidate = Path(path).expanduser()
    if candidate.is_absolute() or candidate.exists():
        return candidate.resolve()
    bundled = PROJECT_ROOT / candidate
    return bundled if bundled.exists() else candidate.resolve()


def _open_text(path: Path):
    return gzip.open(path, "rt", encoding="utf-8") if path.suffix == ".gz" else open(path, encoding="utf-8")


def read_jsonl(path: str | Path) -> Iterator[tuple[int, dict]]:
    """(line number, object) for every non-blank line; a malformed line raises DataError."""
    path = Path(path)
    if not path.exists():
        raise DataError(path, None, None, "file not found")
    with _open_text(path) as handle:
        for line_no, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(path, line_no, None, f"not valid JSON ({exc.msg} at column {exc.colno})") from None
            if not isinstance(obj, dict):
                raise DataError(path, line_no, None, f"expected a JSON object, got {type(obj).__name__}")
            yield line_no, obj


def dumps_line(obj: Any) -> str:
    """Canonical JSON line: sorted keys, UTF-8 kept, so equal content gives equal bytes."""
    return json.dumps(obj, ensure_ascii=False, sort_keys=True) + "\n"


def _encode(path: Path, payload: bytes) -> bytes:
    if path.suffix != ".gz":
        return payload
    buffer = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buffer, mtime=0) as gz:  # mtime=0: reproducible bytes
        gz.write(payload)
    return buffer.getvalue()


def atomic_write_bytes(path: str | Path, payload: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_jsonl(path: str | Path, rows: Iterable[Any]) -> None:
    path = Path(path)
    rows = list(rows)
    text = "".join(dumps_line(r) for r in rows)
    try:
        payload = text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate (from a JSON escape in an input): escape that line
        payload = "".join(_ascii_if_needed(dumps_line(r), r) for r in rows).encode("utf-8")
    atomic_write_bytes(path, _encode(path, payload))


def _ascii_if_needed(line: str, obj: Any) -> str:
    try:
        line.encode("utf-8")
        return line
    except UnicodeEncodeError:
        return json.dumps(obj, ensure_ascii=True, sort_keys=True) + "\n"  # reads back as the same string


def write_json(path: str | Path, obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(obj, ensure_ascii=False, sort_keys=True, indent=2) + "\n").encode("utf-8"))


def read_json(path: str | Path) -> Any:
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


@contextlib.contextmanager
def atomic_directory(path: str | Path) -> Iterator[Path]:
    """Fill a temporary sibling directory, then rename it to `path` (replacing an older one)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"))
    try:
        yield tmp
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def content_hash(obj: Any, length: int = 12) -> str:
    """Short hash of a JSON-able object (key-sorted), used for data_id and cache keys."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:length]
