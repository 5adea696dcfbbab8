"""JsonlWriter: streamed gzip bytes equal one write of the whole payload; nothing left on failure."""

import gzip
import io

import pytest

from trajfusion.io import JsonlWriter, dumps_line, read_jsonl, write_jsonl


def _one_shot_gzip(rows) -> bytes:
    buffer = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buffer, mtime=0) as gz:
        gz.write("".join(dumps_line(r) for r in rows).encode("utf-8"))
    return buffer.getvalue()


ROWS = [{"id": f"p{i}", "text": "x" * (i * 997 % 40_000), "n": i, "u": "é∑"} for i in range(300)]


def test_streamed_gzip_equals_one_shot_bytes(tmp_path):
    path = tmp_path / "rows.jsonl.gz"
    write_jsonl(path, iter(ROWS))
    assert path.read_bytes() == _one_shot_gzip(ROWS)
    assert [row for _, row in read_jsonl(path)] == ROWS


def test_plain_file_and_row_count(tmp_path):
    path = tmp_path / "rows.jsonl"
    with JsonlWriter(path) as out:
        for row in ROWS[:5]:
            out.write(row)
    assert out.rows == 5
    assert path.read_text(encoding="utf-8") == "".join(dumps_line(r) for r in ROWS[:5])


def test_a_failed_write_leaves_neither_file_nor_temporary(tmp_path):
    path = tmp_path / "rows.jsonl.gz"
    path.write_bytes(b"old")

    def rows():
        yield ROWS[0]
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        write_jsonl(path, rows())
    assert path.read_bytes() == b"old"  # the previous file is untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rows.jsonl.gz"]
