"""`compare --table`: the paper's Tables 1–3 exactly as printed when fed only the paper's numbers, our runs
beneath the rows they reproduce (local run directories or the W&B API), and `--group --wandb` pulling a
group's files into the same paired comparison as local runs."""

import logging
import os
import shutil
from pathlib import Path

import pytest

from trajfusion.evaluation.compare import main, paper_numbers
from trajfusion.evaluation.outputs import load_results
from trajfusion.evaluation.paper_table import render, table_groups
from trajfusion.evaluation.tracking import scalar_metrics
from trajfusion.io import read_json

from .helpers import fake_eval_run

SIX = ["tf_math", "tf_gsm8k", "tf_college_math", "tf_deepmind_mathematics", "tf_olympiadbench", "tf_theoremqa"]
PAPER_MD = Path(__file__).resolve().parents[2] / "shared" / "PAPER.md"

TABLE1_LLAMA = """**LLaMA3-8B**

| Method | Train size | MATH | GSM8K | College | DM | Olympiad | Theorem | AVG |
|---|---|---|---|---|---|---|---|---|
| Base Model ICL | — | 21.2 | 51.0 | 19.9 | 27.4 | 4.2 | 19.8 | 23.9 |
| MetaMath | 400k | 32.5 | 77.3 | 20.6 | 35.0 | 5.5 | 13.8 | 30.8 |
| MMIQC | 2.3M | 39.5 | 77.6 | 29.5 | 41.0 | 9.6 | 16.2 | 35.6 |
| DART-Math | 590k | 46.6 | 81.1 | 28.8 | 48.0 | 14.5 | 19.4 | 39.7 |
| MathFusion | 60k | 46.5 | 79.2 | 27.9 | 43.4 | 17.2 | 20.0 | 39.0 |
| LEMMA | 89k | 38.3 | 79.2 | 24.7 | — | — | — | — |
| Vanilla RFT | 15k | 29.5 | 72.3 | 15.8 | 28.4 | 6.4 | 14.9 | 27.9 |
| Vanilla RFT | 100k | 48.5 | 76.9 | 28.9 | 41.1 | 14.5 | 22.6 | 38.8 |
| **TrajFusion** | 15k | 36.6 | 79.2 | 21.6 | 37.9 | 8.6 | 20.0 | 34.0 |
| **TrajFusion** | 100k | 51.4 | 77.3 | 31.6 | 43.7 | 20.2 | 23.3 | 41.3 |
"""

TABLE2 = """| Strategy | #Err | GSM8K Acc | GSM8K Tokens | MATH Acc | MATH Tokens |
|---|---|---|---|---|---|
| TF (k_max=1) | 0.62 | 72.0 | 125 | 39.6 | 912 |
| TF (k_max=2) | 1.02 | 72.9 | 145 | 41.9 | 1056 |
| TF (k_max=4) | 1.49 | 74.8 | 155 | 44.2 | 1173 |
| TF (k_max=6) | 1.74 | 74.0 | 153 | 44.1 | 1192 |
| TF (LowDiv) | 1.13 | 72.3 | 291 | 40.7 | 1603 |
| TF (HighDiv) | 1.13 | 74.0 | 120 | 43.2 | 1056 |
"""

TABLE3 = """| Method | AIME24 P@1 / Avg@16 | AIME25 P@1 / Avg@16 | MATH-500 P@1 |
|---|---|---|---|
| RFT (4K) | 16.7 / 15.6 | 10.0 / 12.1 | 79.4 |
| TrajFusion (4K) | 23.3 / 15.6 | 16.7 / 13.8 | 82.6 |
| RFT (32K) | 40.0 / 36.7 | 26.7 / 27.9 | 88.4 |
| TrajFusion (32K) | 43.3 / 40.8 | 30.0 / 29.6 | 90.4 |
"""


def test_the_papers_numbers_alone_give_the_papers_tables_as_printed():
    numbers = paper_numbers()
    table1, filled = render("table1", numbers)
    assert filled == [] and table1.startswith(TABLE1_LLAMA) and "**DeepSeekMath-7B**" in table1
    assert render("table2", numbers)[0] == TABLE2
    assert render("table3", numbers)[0] == TABLE3


@pytest.mark.skipif(not PAPER_MD.exists(), reason="the paper notes live outside the repository")
def test_each_rendered_table_is_verbatim_in_the_paper_notes():
    paper = PAPER_MD.read_text(encoding="utf-8")
    for name in paper_numbers()["tables"]:
        assert render(name, paper_numbers())[0] in paper, name


def test_unknown_table_lists_the_known_ones():
    with pytest.raises(ValueError, match="table1, table2, table3"):
        render("table9", paper_numbers())


@pytest.fixture
def eval_root(tmp_path):
    """Local evaluation runs of two Table 1 presets (the RFT group twice: the newer one must win) and a
    Table 2 preset whose checkpoint's training set had #Err 1.5; plus one run outside any group."""
    root = tmp_path / "outputs"
    old = fake_eval_run(root / "eval" / "rft" / "old", "rft-old", {t: 0.10 for t in SIX}, group="table1_rft_llama3_8b_15k")
    fake_eval_run(root / "eval" / "rft" / "new", "rft-new", {t: 0.30 for t in SIX}, group="table1_rft_llama3_8b_15k")
    os.utime(old / "results.json", (1, 1))  # older than the "new" run whatever the file system's clock
    fake_eval_run(root / "eval" / "tf", "tf", {t: 0.30 + 0.05 * i for i, t in enumerate(SIX)}, seed=1,
                  group="table1_trajfusion_llama3_8b_15k", limit=120)
    fake_eval_run(root / "eval" / "k4", "k4", {"tf_gsm8k": 0.75, "tf_math": 0.4}, group="table2_kmax4",
                  training_data={"mean_errors": 1.5, "rows": 549})
    fake_eval_run(root / "eval" / "adhoc", "adhoc", {"tf_math": 0.9})
    return root


def test_our_runs_sit_beneath_the_rows_they_reproduce(eval_root, tmp_path, capsys):
    out = tmp_path / "cmp"
    assert main(["--table", "table1", "--root", str(eval_root), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    lines = text.splitlines()
    rft = lines.index("| Vanilla RFT | 15k | 29.5 | 72.3 | 15.8 | 28.4 | 6.4 | 14.9 | 27.9 |")
    assert lines[rft + 1] == "| Vanilla RFT · ours[1] | 15k | 30.0 | 30.0 | 30.0 | 30.0 | 30.0 | 30.0 | 30.0 |"
    tf = lines.index("| **TrajFusion** | 15k | 36.6 | 79.2 | 21.6 | 37.9 | 8.6 | 20.0 | 34.0 |")
    assert lines[tf + 1] == "| **TrajFusion** · ours[2] | 15k | 30.0 | 35.0 | 40.0 | 45.0 | 50.0 | 55.0 | 42.5 |"
    assert "[1] W&B group `table1_rft_llama3_8b_15k`: run `rft-new`" in text and "newest of 2" in text
    assert "benchmark.limit=120 (a slice: not comparable to the paper)" in text
    assert sum("· ours" in line for line in lines) == 2  # other rows stay the paper's alone
    record = read_json(out / "table1.json")["filled"][1]
    assert record["ours"]["average"] == pytest.approx(42.5) and record["paper"]["tf_math"] == 36.6
    assert (out / "table1.md").read_text() == text
    assert (out / "table1.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_table2_shows_the_training_sets_errors_and_output_tokens(eval_root, tmp_path, capsys):
    assert main(["--table", "table2", "--root", str(eval_root), "--out", str(tmp_path / "cmp")]) == 0
    lines = capsys.readouterr().out.splitlines()
    row = lines.index("| TF (k_max=4) | 1.49 | 74.8 | 155 | 44.2 | 1173 |")
    tokens = load_results(eval_root / "eval" / "k4")["tasks"]
    assert lines[row + 1] == (f"| TF (k_max=4) · ours[1] | 1.50 | 75.0 | {tokens['tf_gsm8k']['mean_output_tokens']:.0f} | 40.0 "
                              f"| {tokens['tf_math']['mean_output_tokens']:.0f} |")


class FakeFile:
    """What `wandb.Api` run files offer: a name relative to the run and `download(root, replace)`."""

    downloads: list[str] = []

    def __init__(self, run_dir: Path, name: str):
        self.run_dir, self.name = run_dir, name

    def download(self, root=".", replace=False, exist_ok=False, api=None):
        target = Path(root) / self.name
        if target.exists() and not replace:
            raise ValueError(f"{target} exists")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(self.run_dir / self.name, target)
        FakeFile.downloads.append(self.name)
        return open(target)


class FakeRun:
    """A finished W&B evaluation run as evaluate.py logs it: summary = tracking.scalar_metrics(results)."""

    def __init__(self, run_dir: Path, index: int, job_type: str = "eval"):
        results = load_results(run_dir)
        self.run_dir, self.id, self.name = run_dir, f"run{index}", results["run_name"]
        self.group, self.job_type, self.state = results["config"]["wandb"]["group"], job_type, "finished"
        self.url, self.created_at = f"https://wandb.ai/ent/proj/runs/{self.id}", f"2026-11-30T00:00:{index:02d}"
        self.summary, self.config = scalar_metrics(results), results["config"]

    def files(self):
        return [FakeFile(self.run_dir, p.relative_to(self.run_dir).as_posix()) for p in sorted(self.run_dir.rglob("*.json*"))]


class FakeApi:
    """`wandb.Api().runs(path, filters, order)` over fake runs, honouring the filters compare sends."""

    def __init__(self, runs):
        self.runs_, self.calls = runs, []

    def runs(self, path, filters=None, order="+created_at", **_):
        self.calls.append((path, filters))
        def match(value, wanted):  # the Mongo-style filters W&B takes: a value or {"$in": [...]}
            return value in wanted["$in"] if isinstance(wanted, dict) else value == wanted

        found = [r for r in self.runs_ if all(match(getattr(r, k), v) for k, v in (filters or {}).items())]
        return sorted(found, key=lambda r: r.created_at, reverse=order.startswith("-"))


def test_the_table_from_the_wandb_api_equals_the_one_from_local_runs(eval_root, tmp_path, capsys):
    dirs = [eval_root / "eval" / d for d in ("rft/old", "rft/new", "tf", "k4", "adhoc")]
    unfinished = FakeRun(dirs[2], 8)
    unfinished.state = "running"
    api = FakeApi([FakeRun(d, i) for i, d in enumerate(dirs)] + [unfinished, FakeRun(dirs[2], 9, job_type="train")])
    assert main(["--table", "table1", "--wandb", "ent/proj", "--out", str(tmp_path / "w")], api=api) == 0
    pulled = capsys.readouterr().out
    assert main(["--table", "table1", "--root", str(eval_root), "--out", str(tmp_path / "l")]) == 0
    local = capsys.readouterr().out
    assert api.calls == [("ent/proj", {"group": {"$in": table_groups(paper_numbers(), "table1")}})]
    assert len(api.calls[0][1]["group"]["$in"]) == 8  # the table's eight presets, not the whole project
    table = [line for line in pulled.splitlines() if line.startswith("|")]
    assert table == [line for line in local.splitlines() if line.startswith("|")]
    assert "https://wandb.ai/ent/proj/runs/run1" in pulled and "run9" not in pulled and "run8" not in pulled


def test_group_pulled_from_wandb_is_compared_like_local_runs(tmp_path, caplog):
    root = tmp_path / "outputs"
    tf = fake_eval_run(root / "eval" / "tf", "table2-tf", {"tf_math": 0.4, "tf_gsm8k": 0.7}, group="table2_kmax4")
    rft = fake_eval_run(root / "eval" / "rft", "table2-rft", {"tf_math": 0.3, "tf_gsm8k": 0.7}, seed=1, group="table2_kmax4")
    other = fake_eval_run(root / "eval" / "x", "x-rft", {"tf_math": 0.1}, group="table1_rft_llama3_8b_15k")
    api = FakeApi([FakeRun(tf, 0), FakeRun(rft, 1), FakeRun(other, 2)])
    out = tmp_path / "w"
    FakeFile.downloads.clear()
    labels = ["--labels", "RFT", "TF"]
    assert main(["--group", "table2_kmax4", "--wandb", "ent/proj", "--out", str(out), "--iterations", "300", *labels], api=api) == 0
    assert sorted(FakeFile.downloads) == sorted(["results.json", "samples/tf_math.jsonl", "samples/tf_gsm8k.jsonl"] * 2)
    pulled = read_json(out / "compare.json")
    assert main(["--group", "table2_kmax4", "--root", str(root), "--out", str(tmp_path / "l"), "--iterations", "300", *labels]) == 0
    local = read_json(tmp_path / "l" / "compare.json")
    assert pulled["rows"] == local["rows"] and pulled["runs"] == [str(out / "wandb_runs" / "run1"), str(out / "wandb_runs" / "run0")]
    assert sorted(p.name for p in (out / "wandb_runs").iterdir()) == ["run0", "run1"]  # no half-written download left
    # a second pull reuses the complete downloads
    FakeFile.downloads.clear()
    assert main(["--group", "table2_kmax4", "--wandb", "ent/proj", "--out", str(out), "--iterations", "300"], api=api) == 0
    assert FakeFile.downloads == []
    # a group with one run is refused, naming where it looked
    with caplog.at_level(logging.ERROR):
        assert main(["--group", "table1_rft_llama3_8b_15k", "--wandb", "ent/proj", "--out", str(out)], api=api) == 2
    assert "found 1 evaluation run(s) in W&B ent/proj" in caplog.text


def test_wandb_path_must_be_entity_and_project(tmp_path):
    assert main(["--table", "table1", "--wandb", "just-a-project", "--out", str(tmp_path)], api=FakeApi([])) == 2


def test_results_carry_the_training_sets_errors_when_its_stats_are_here(tmp_path):
    from trajfusion.evaluation.runner import training_data_summary
    from trajfusion.io import write_json

    dataset = tmp_path / "fused" / "adaptive-abc"
    write_json(dataset / "stats.json", {"fusion": "adaptive", "counts": {"kept": 549}, "mean": {"n_errors": 1.4936, "tokens": 661.9}})
    manifest = {"data_id": "abc", "dataset_dir": str(dataset)}
    assert training_data_summary(manifest) == {"data_id": "abc", "fusion": "adaptive", "rows": 549, "mean_errors": 1.4936,
                                               "mean_tokens": 661.9}
    assert training_data_summary({"dataset_dir": str(tmp_path / "elsewhere")}) is None  # trained on another machine
    assert training_data_summary({}) is None  # the student's own weights
    metrics = scalar_metrics({"tasks": {}, "training_data": training_data_summary(manifest)})
    assert metrics["train_data/mean_errors"] == 1.4936


def test_wandb_errors_end_with_a_message_not_a_traceback(tmp_path, caplog):
    import wandb

    class NoKeyApi:
        def runs(self, *args, **kwargs):
            raise wandb.errors.UsageError("No API key configured.")

    with caplog.at_level(logging.ERROR):
        assert main(["--table", "table2", "--wandb", "ent/proj", "--out", str(tmp_path)], api=NoKeyApi()) == 2
    assert "--wandb ent/proj: No API key configured." in caplog.text


def test_a_run_without_a_group_belongs_to_its_run_name_group_locally_as_on_wandb(tmp_path):
    from trajfusion.evaluation.compare import group_runs
    from trajfusion.evaluation.paper_table import local_runs

    root = tmp_path / "outputs"
    fake_eval_run(root / "eval" / "a", "table3_rft_4k", {"tf_math500": 0.5})  # wandb.group null: W&B group = run name
    fake_eval_run(root / "eval" / "b", "table3_rft_4k", {"tf_math500": 0.6})
    assert [r.group for r in local_runs(root)] == ["table3_rft_4k"] * 2
    assert len(group_runs("table3_rft_4k", root)) == 2
