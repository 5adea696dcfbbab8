"""Files: JSONL in and out (plain or gzip), atomic writes, content hashes, input errors that point
at the file, line and field.

Everything written goes to a temporary sibling first and is renamed into place, so a killed run
never leaves a half-written file that a later run would trust.
"""

from __future__ import annotations

import contextlib
import errno
import gzip
import hashlib
import json
import os
import shutil
import tempfile
import zlib
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


GZIP_MAGIC = b"\x1f\x8b"
MAX_INT_DIGITS = 4300  # Python's int-conversion limit: longer JSON integers are refused, located


def _check_readable(path: Path) -> None:
    """A located error for a path that is not a readable regular file (before any hashing or reading)."""
    if not path.exists():
        raise DataError(path, None, None, "file not found")
    if path.is_dir():
        raise DataError(path, None, None, "is a directory, expected a JSONL file")
    if not os.access(path, os.R_OK):
        raise DataError(path, None, None, "not readable (permission denied)")


def _is_gzip(path: Path) -> bool:
    with open(path, "rb") as handle:
        return handle.read(2) == GZIP_MAGIC


def _raw_lines(path: Path) -> Iterator[bytes]:
    """The file's lines as bytes (gzip by name or by magic bytes); a damaged gzip stream is a DataError."""
    gzipped = _is_gzip(path)
    if path.suffix == ".gz" and not gzipped:
        raise DataError(path, None, None, "not gzip data (the .gz name says it should be; re-compress it or drop the suffix)")
    if not gzipped:
        with open(path, "rb") as handle:
            yield from handle
        return
    line_no = 0
    try:
        with gzip.open(path, "rb") as handle:
            for line_no, line in enumerate(handle, start=1):
                yield line
    except (EOFError, OSError, zlib.error) as exc:  # truncated stream, bad CRC, corrupt block
        reason = "truncated (the gzip stream ends early)" if isinstance(exc, EOFError) else f"corrupt gzip data ({exc})"
        raise DataError(path, line_no + 1, None, reason) from None


def _parse_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise ValueError(f"an integer of {len(text.lstrip('-'))} digits (more than {MAX_INT_DIGITS}; write it as a string)")
    return int(text)


def _decode_line(path: Path, line_no: int, raw: bytes) -> Any:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        bad = raw[exc.start:exc.start + 1].hex()
        raise DataError(path, line_no, None, f"not valid UTF-8 (byte 0x{bad} at byte offset {exc.start} of the line)") from None
    if line_no == 1:
        text = text.removeprefix("\ufeff")  # a UTF-8 byte-order mark
    try:
        return json.loads(text, parse_int=_parse_int)
    except json.JSONDecodeError as exc:
        raise DataError(path, line_no, None, f"not valid JSON ({exc.msg} at column {exc.colno})") from None
    except RecursionError:
        raise DataError(path, line_no, None, "not valid JSON here (nested too deeply)") from None
    except ValueError as exc:
        raise DataError(path, line_no, None, f"not valid JSON here ({exc})") from None


def read_jsonl(path: str | Path) -> Iterator[tuple[int, dict]]:
    """(line number, object) for every non-blank line. Read as bytes so every failure is located:
    a missing path, a directory, damaged gzip, non-UTF-8 bytes, malformed or too deeply nested JSON and
    over-long integers each raise DataError with the file (and line), never a bare traceback."""
    path = Path(path)
    _check_readable(path)
    try:
        for line_no, raw in enumerate(_raw_lines(path), start=1):
            if not raw.strip():
                continue
            obj = _decode_line(path, line_no, raw)
            if not isinstance(obj, dict):
                raise DataError(path, line_no, None, f"expected a JSON object, got {json_type(obj)}")
            yield line_no, obj
    except PermissionError:
        raise DataError(path, None, None, "not readable (permission denied)") from None


def json_type(value: Any) -> str:
    """The JSON name of a value's type, for messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "a list" if isinstance(value, list) else "an object" if isinstance(value, dict) else type(value).__name__


def text_value(path: str | Path, line: int | None, field: str, value: Any) -> str | None:
    """A field that must hold text: a string as is, a number as its JSON text, None when absent;
    a list, object or boolean is a located DataError (it would otherwise be silently stringified)."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return json.dumps(value)
    raise DataError(path, line, field, f"must be a string or a number, got {json_type(value)}")


def dumps_line(obj: Any) -> str:
    """Canonical JSON line: sorted keys, UTF-8 kept, so equal content gives equal bytes."""
    return json.dumps(obj, ensure_ascii=False, sort_keys=True) + "\n"


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
    with JsonlWriter(path) as out:
        for row in rows:
            out.write(row)


class JsonlWriter:
    """Rows streamed to a temporary sibling (gzip by suffix) and renamed into place on a clean exit, so
    memory holds one line, never the file. A killed or failed write leaves no file; the bytes equal
    those of one gzip write of the whole payload (mtime 0), so streamed outputs stay reproducible.

        with JsonlWriter(path) as out:
            for row in rows:
                out.write(row)
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.rows = 0

    def __enter__(self) -> JsonlWriter:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, self._tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.", suffix=".tmp")
        self._raw = os.fdopen(fd, "wb")
        gzipped = self.path.suffix == ".gz"
        self._out = gzip.GzipFile(filename="", mode="wb", fileobj=self._raw, mtime=0) if gzipped else self._raw
        return self

    def write(self, row: Any) -> None:
        self._out.write(_line_bytes(row))
        self.rows += 1

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if self._out is not self._raw:
                self._out.close()  # the gzip trailer; leaves the file open
            self._raw.flush()
            if exc_type is None:
                os.fsync(self._raw.fileno())
            self._raw.close()
            if exc_type is None:
                os.replace(self._tmp, self.path)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._tmp)


def _line_bytes(obj: Any) -> bytes:
    try:
        return dumps_line(obj).encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate (from a JSON escape in an input): escape this line only
        return (json.dumps(obj, ensure_ascii=True, sort_keys=True) + "\n").encode("utf-8")  # reads back the same


def write_json(path: str | Path, obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(obj, ensure_ascii=False, sort_keys=True, indent=2) + "\n").encode("utf-8"))


def read_json(path: str | Path) -> Any:
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


@contextlib.contextmanager
def atomic_directory(path: str | Path) -> Iterator[Path]:
    """Fill a temporary sibling directory, then rename it to `path`.

    An older `path` is renamed aside first and deleted only after the new one is in place, so `path`
    is never missing for long and never half-deleted; if another process renames a directory onto
    `path` in between, that one is moved aside too and the rename retried, so the final rename never
    fails on a directory someone else just created (the last writer wins, whole)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"))
    aside: list[Path] = []
    try:
        yield tmp
        for _ in range(100):
            try:
                os.rename(tmp, path)  # fails on an existing non-empty directory (ENOTEMPTY/EEXIST)
                break
            except OSError as exc:
                if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST) and not path.exists():
                    raise
                old = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".old"))
                try:
                    os.replace(path, old)  # onto the empty placeholder: atomic
                except FileNotFoundError:
                    old.rmdir()  # it went away by itself: just retry
                    continue
                aside.append(old)
        else:
            raise OSError(f"{path}: could not rename the new directory into place")
    finally:
        for leftover in [tmp, *aside]:
            if leftover.exists():
                shutil.rmtree(leftover, ignore_errors=True)


def sha256_file(path: str | Path) -> str:
    _check_readable(Path(path))
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def content_hash(obj: Any, length: int = 12) -> str:
    """Short hash of a JSON-able object (key-sorted), used for data_id and cache keys."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:length]
