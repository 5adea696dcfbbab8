"""`python -m trajfusion.show`: the terminal view labels and colours each segment kind, finds the RFT twin,
and the HTML page, rendered by a real headless Chromium, shows every segment kind in its colour."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from trajfusion.show import KINDS, LEGEND, main, pieces, render_html, render_terminal, select

HERE = Path(__file__).resolve().parent
IDENTITY = {"pool": "p1", "verifier": "v1", "budget": {"max_tokens": 4096}, "correct": "shortest", "seed": 0}


def _dataset(root: Path, name: str, golden: str, identity: dict) -> Path:
    directory = root / "fused" / name
    directory.mkdir(parents=True)
    shutil.copy(HERE / "golden" / golden, directory / "data.jsonl")
    (directory / "manifest.json").write_text(json.dumps({"data_id": name.split("-")[-1], "identity": identity}))
    return directory


@pytest.fixture
def datasets(tmp_path):
    fused = _dataset(tmp_path, "adaptive-aaa", "adaptive-diverse.jsonl", {**IDENTITY, "fusion": {"name": "adaptive"}})
    _dataset(tmp_path, "rft-bbb", "rft.jsonl", {**IDENTITY, "fusion": {"name": "rft"}})
    _dataset(tmp_path, "rft-ccc", "rft.jsonl", {**IDENTITY, "pool": "another pool"})
    return fused


def test_segments_cover_the_assistant_message_in_order(datasets):
    row = select(datasets, ["mixed-diverse"], 1)[0].row
    parts = pieces(row)
    content = next(m["content"] for m in row["messages"] if m["role"] == "assistant")
    assert "".join(text for _, text in parts) == content
    assert [k for k, _ in parts if k != "format"] == ["error", "reflection"] * 4 + ["correct", "feedback", "answer"]


def test_terminal_view_shows_numbers_sources_twin_and_coloured_segments(datasets):
    from rich.console import Console

    console = Console(record=True, width=120, color_system="truecolor", force_terminal=True)
    render_terminal(select(datasets, ["mixed-diverse"], 1), datasets, console)
    ansi = console.export_text(styles=True)
    from rich.text import Text

    text = Text.from_ansi(ansi).plain
    for label in ("r ", "0.750", "u ", "k ", "answer", "error groups", "g0=7", "g3=-4", "teacher-3", "RFT twin"):
        assert label in text
    assert "114 tokens (this row 370, +256)" in text  # the rft-bbb twin, not rft-ccc (another pool)
    assert "\x1b[1;31mAdd 3: $2x=14$" in ansi  # error: bold red
    assert "\x1b[33mLet me verify this." in ansi  # reflection: yellow
    assert "\x1b[32mSubtract 3: $2x=8$" in ansi  # correct: green
    assert "\x1b[36mThis time the result" in ansi  # feedback: cyan


def test_unknown_id_is_a_clear_error(datasets, capsys):
    assert main([str(datasets), "--id", "nope"]) == 2
    assert "no row with id nope" in capsys.readouterr().err


def test_html_is_self_contained_and_labelled(datasets, tmp_path):
    page = render_html(select(datasets, None, 3), datasets)
    assert "<script" not in page and "http" not in page and "<link" not in page
    for kind in LEGEND:
        assert f"class='k-{kind}'" in page and KINDS[kind][1] in page


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(_chromium() is None, reason="Chromium not installed (scripts/ci_deps.sh installs Debian's as root)")
def test_html_in_headless_chromium_shows_every_segment_colour(datasets, tmp_path):
    import matplotlib.image

    page = tmp_path / "rows.html"
    proc = subprocess.run([sys.executable, "-m", "trajfusion.show", str(datasets), "--id", "mixed-diverse", "--html", str(page)],
                          capture_output=True, text=True, timeout=60, env={**os.environ, "PYTHONPATH": str(HERE.parent)})
    assert proc.returncode == 0, proc.stderr
    shot = tmp_path / "shot.png"
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp_path / 'profile'}", "--force-color-profile=srgb", "--hide-scrollbars",
             "--window-size=1200,1400", f"--screenshot={shot}", page.as_uri()]
    subprocess.run([_chromium(), *flags], capture_output=True, timeout=120)
    assert shot.exists(), "Chromium wrote no screenshot"
    pixels = (matplotlib.image.imread(shot)[..., :3] * 255).round().astype(int)
    colours = pixels.reshape(-1, 3)
    packed = set((colours[:, 0] << 16 | colours[:, 1] << 8 | colours[:, 2]).tolist())
    for kind in LEGEND:
        rgb = int(KINDS[kind][1].lstrip("#"), 16)
        assert rgb in packed, f"no {kind} colour {KINDS[kind][1]} in the screenshot"
    assert (colours == [255, 255, 255]).all(axis=1).mean() > 0.3  # a page, not a blank or error screen
