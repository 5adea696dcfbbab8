"""metrics.jsonl is cut back to the checkpoint a run resumes from (unit level; the end-to-end check is
tests/test_train_run.py's kill-and-resume test)."""

import json

from trajfusion.training.resume import load_loss_sum, save_loss_sum, truncate_metrics


def test_truncate_keeps_steps_up_to_the_checkpoint_and_drops_summaries(tmp_path):
    path = tmp_path / "metrics.jsonl"
    lines = [{"step": s, "train/loss": 1.0 / s} for s in range(1, 6)]
    lines.insert(2, {"step": 2, "train/train_runtime": 1.0, "train/train_loss": 0.7})  # a pre-empted call's summary
    path.write_text("".join(json.dumps(x) + "\n" for x in lines) + '{"step": 6, "tra')  # cut by the kill
    assert truncate_metrics(path, 3) == 4
    assert [json.loads(x)["step"] for x in path.read_text().splitlines()] == [1, 2, 3]
    assert truncate_metrics(path, 0) == 3 and path.read_text() == ""  # a restart from scratch
    assert truncate_metrics(tmp_path / "absent.jsonl", 3) == 0


def test_loss_sum_belongs_to_its_step(tmp_path):
    save_loss_sum(tmp_path, 4, 12.5)
    assert load_loss_sum(tmp_path, 4) == 12.5
    assert load_loss_sum(tmp_path, 5) is None and load_loss_sum(tmp_path / "x", 4) is None
