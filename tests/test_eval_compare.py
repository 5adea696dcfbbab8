"""The compare command on two synthetic runs with a known difference: paper-style table, intervals that
contain the observed difference, the paper's numbers beside, and a bar chart."""

from pathlib import Path

import pytest
import yaml

from trajfusion.evaluation.compare import compare_runs, format_table, group_runs, main, paper_numbers
from trajfusion.evaluation.paper_table import table_rows
from trajfusion.evaluation.schema import shipped_tasks

from .helpers import fake_eval_run as fake_run

PRESETS = Path(__file__).resolve().parents[1] / "conf" / "experiment"

SIX = ["tf_math", "tf_gsm8k", "tf_college_math", "tf_deepmind_mathematics", "tf_olympiadbench", "tf_theoremqa"]


@pytest.fixture
def two_runs(tmp_path):
    base = fake_run(tmp_path / "rft", "rft", {t: 0.30 for t in SIX})
    better = fake_run(tmp_path / "tf", "tf", {t: 0.30 + 0.05 * (i + 1) for i, t in enumerate(SIX)})
    return base, better


def test_intervals_contain_the_observed_difference_and_paper_numbers_sit_beside(two_runs):
    comparison = compare_runs(list(two_runs), ["RFT", "TrajFusion"], paper="llama3_8b/15k", iterations=2000)
    rows = {r["task"]: r for r in comparison["rows"]}
    for i, task in enumerate(SIX):
        d = rows[task]["diffs"]["TrajFusion"]
        assert d["diff"] == pytest.approx(5.0 * (i + 1))
        assert d["low"] <= d["diff"] <= d["high"] and d["high"] - d["low"] > 0
    avg = rows["average"]["diffs"]["TrajFusion"]
    assert avg["diff"] == pytest.approx(17.5) and avg["low"] < 17.5 < avg["high"] and avg["low"] > 0
    assert rows["tf_math"]["paper"] == [29.5, 36.6]
    assert rows["average"]["paper"][1] == pytest.approx(33.98, abs=0.01)
    table = format_table(comparison)
    assert "| tf_math | pass@1 | 30.0 | 35.0 | +5.0 [" in table and "| 29.5 | 36.6 | +7.1 |" in table


def test_cli_prints_the_table_and_writes_a_bar_chart(two_runs, tmp_path, capsys):
    out = tmp_path / "cmp"
    assert main([str(p) for p in two_runs] + ["--out", str(out), "--iterations", "300"]) == 0
    printed = capsys.readouterr().out
    assert "Δ" in printed and "tf_theoremqa" in printed
    png = (out / "compare.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000
    assert (out / "compare.json").exists() and (out / "compare.md").read_text() == printed


def test_one_run_or_unknown_paper_setting_is_refused(two_runs):
    with pytest.raises(ValueError, match="at least two"):
        compare_runs([two_runs[0]])
    with pytest.raises(ValueError, match="llama3_8b/15k"):
        compare_runs(list(two_runs), paper="llama3_8b/50k")


def test_paper_numbers_name_only_shipped_tasks_and_match_the_paper_averages():
    numbers = paper_numbers()
    tasks = set(shipped_tasks())
    keys = tasks | {t + "/tokens" for t in tasks} | {"average", "mean_errors"}
    assert set(numbers["columns"].values()) <= tasks
    for name, row in numbers["rows"].items():
        assert set(row) <= keys, name
        if "average" in row:
            assert sum(row[t] for t in SIX) / 6 == pytest.approx(row["average"], abs=0.051), name
    for base, method in numbers["comparisons"].values():
        assert base in numbers["rows"] and method in numbers["rows"]


def test_every_table_row_and_preset_named_in_the_tables_exists():
    numbers = paper_numbers()
    groups = {}
    for preset in PRESETS.glob("table*.yaml"):  # the paper's presets; cpu_* are the local-cluster smoke runs
        groups[yaml.safe_load(preset.read_text())["wandb"]["group"]] = preset.stem
    named = []
    for name, spec in numbers["tables"].items():
        for section in spec["sections"]:
            for row in table_rows(spec, section["rows"]):
                assert row.key in numbers["rows"], (name, row.key)
                if row.group:
                    assert groups.get(row.group) == row.group, f"{name}: no preset logs to W&B group {row.group}"
                    named.append(row.group)
    assert sorted(named) == sorted(groups), "every preset reproduces exactly one paper row"


def test_group_finds_the_runs_of_a_wandb_group_rft_first(tmp_path):
    eval_dir = tmp_path / "eval"
    tf = fake_run(eval_dir / "b" / "2026-01-01", "table2-tf", {"tf_math": 0.4}, group="table2")
    rft = fake_run(eval_dir / "a" / "2026-01-02", "table2-rft", {"tf_math": 0.3}, group="table2")
    fake_run(eval_dir / "c", "other-rft", {"tf_math": 0.1}, group="table1")
    assert group_runs("table2", tmp_path) == [rft, tf]
    with pytest.raises(ValueError, match="found 0 evaluation run"):
        group_runs("table3", tmp_path)
    assert main(["--group", "table2", "--root", str(tmp_path), "--out", str(tmp_path / "cmp"), "--iterations", "200"]) == 0
    assert "+10.0 [" in (tmp_path / "cmp" / "compare.md").read_text()


def test_footnote_says_what_each_arm_trained_on(tmp_path):
    trained = {"mean_errors": 1.49, "trained_rows": 540, "trained_tokens": 350000, "trained_optimizer_steps": 45,
               "trained_samples_per_step": 60.5, "trained_batch_unit": "packs", "trained_dropped_overlong": 3}
    runs = [fake_run(tmp_path / "rft", "rft", {t: 0.3 for t in SIX}, training_data={**trained, "mean_errors": 0.0}),
            fake_run(tmp_path / "tf", "tf", {t: 0.4 for t in SIX}, training_data=trained)]
    table = format_table(compare_runs(runs, ["RFT", "TF"], iterations=200))
    assert ("Training data, TF: 540 rows, 350000 tokens, 45 optimizer steps, 60.5 samples/step (batch unit: packs), "
            "#Err 1.49, 3 over-long problems dropped from both arms") in table
    assert "Training data, RFT: 540 rows" in table
