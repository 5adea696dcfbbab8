"""Quiet runs: the console keeps stage lines and errors, the log file keeps everything; `-v` restores it."""

import logging

import pytest

from trajfusion import console


@pytest.fixture
def handlers(tmp_path):
    root = logging.getLogger()
    saved = (root.handlers[:], root.level, console._state["verbose"])
    stream, file = logging.StreamHandler(), logging.FileHandler(tmp_path / "run.log")
    root.handlers[:] = [stream, file]
    root.setLevel(logging.INFO)
    yield stream, tmp_path / "run.log"
    file.close()
    root.handlers[:], _, console._state["verbose"] = saved[0], root.setLevel(saved[1]), saved[2]


def _shown(stream, *records):
    return [r.getMessage() for r in records if all(f.filter(r) for f in stream.filters)]


def test_quiet_console_shows_stage_lines_and_errors_only(handlers, monkeypatch):
    monkeypatch.delenv("WANDB_SILENT", raising=False)
    stream, log_file = handlers
    assert console.setup(verbose=False) == log_file
    make = logging.getLogger("x").makeRecord
    stage = logging.getLogger(console.STAGE_LOGGER).makeRecord(console.STAGE_LOGGER, logging.INFO, "f", 1, "data built", (), None)
    records = [stage, make("transformers", logging.WARNING, "f", 1, "chatty", (), None),
               make("trajfusion.x", logging.ERROR, "f", 1, "bad input", (), None),
               make("trajfusion.data.dataset", logging.WARNING, "f", 1, "2 samples unknown", (), None),
               make("trajfusion.data.dataset", logging.INFO, "f", 1, "detail", (), None)]
    assert _shown(stream, *records) == ["data built", "bad input", "2 samples unknown"]
    import os

    assert os.environ["WANDB_SILENT"] == "true"
    logging.getLogger("DeepSpeed").warning("accelerator chatter")  # a library's own handler never sees it
    console.stage("train    done")
    text = log_file.read_text()
    assert "accelerator chatter" in text and "train    done" in text


def test_verbose_leaves_the_console_alone(handlers):
    stream, _ = handlers
    console.setup(verbose=True)
    assert stream.filters == [] and console.is_verbose()


def test_v_flag_becomes_the_verbose_override():
    argv = ["train.py", "-v", "student=tiny_random", "--verbose"]
    console.expand_verbose_flag(argv)
    assert argv == ["train.py", "verbose=true", "student=tiny_random", "verbose=true"]
