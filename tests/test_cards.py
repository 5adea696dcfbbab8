"""Dataset and model cards (hub YAML + body), `datasets.load_dataset(DIR)` on a built dataset, and
`python -m trajfusion.publish` up to the upload call (HfApi replaced), including its errors."""

import hashlib
import json
from pathlib import Path

import pytest
import yaml

from trajfusion import publish as publish_mod
from trajfusion.cards import evaluations, infer_features, record_evaluation, write_model_card
from trajfusion.data.dataset import build_dataset


def _front_matter(path: Path) -> tuple[dict, str]:
    text = path.read_text(encoding="utf-8")
    assert text.startswith("---\n")
    head, body = text[4:].split("\n---\n", 1)
    return yaml.safe_load(head), body


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    from hydra import compose, initialize_config_dir

    from trajfusion.config import register_configs, to_build_config

    register_configs()
    root = tmp_path_factory.mktemp("cards")
    with initialize_config_dir(config_dir=str(Path(__file__).resolve().parent.parent / "conf"), version_base="1.3"):
        cfg = compose(config_name="build_data", overrides=[f"paths.data_root={root}", "data.limit=6", "verifier.workers=0"])
    return build_dataset(to_build_config(cfg))


def test_dataset_card_has_hub_metadata_config_plots_and_pool_license(dataset):
    meta, body = _front_matter(dataset / "README.md")
    manifest = json.loads((dataset / "manifest.json").read_text())
    assert meta["configs"] == [{"config_name": "default", "data_files": [{"split": "train", "path": "data.jsonl"}]}]
    split = meta["dataset_info"]["splits"][0]
    assert split["num_examples"] == manifest["rows"] and split["num_bytes"] == (dataset / "data.jsonl").stat().st_size
    names = [f["name"] for f in meta["dataset_info"]["features"]]
    assert {"messages", "segments", "sources", "r", "u", "k", "data_id"} <= set(names)
    assert meta["license"] == "other" and "ZeroEval outputs Apache-2.0; MATH MIT" in body  # data/DATA_CARD.md
    assert manifest["data_id"] in body and "diverse" in body and '"k_max"' in body
    for plot in manifest["plots"]:
        assert f"]({plot})" in body and (dataset / plot).exists()


def test_load_dataset_reads_the_directory_with_the_declared_features(dataset):
    import datasets

    loaded = datasets.load_dataset(str(dataset))["train"]
    rows = [json.loads(line) for line in (dataset / "data.jsonl").read_text().splitlines()]
    assert loaded.num_rows == len(rows) and loaded[0]["id"] == rows[0]["id"]
    assert loaded[0]["messages"] == rows[0]["messages"]
    meta, _ = _front_matter(dataset / "README.md")
    declared = datasets.DatasetInfo._from_yaml_dict(meta["dataset_info"]).features
    assert loaded.features == declared


def test_the_card_leaves_data_jsonl_and_its_data_id_alone(dataset):
    before = hashlib.sha256((dataset / "data.jsonl").read_bytes()).hexdigest()
    (dataset / "README.md").unlink()
    from hydra import compose, initialize_config_dir

    from trajfusion.config import to_build_config

    root = dataset.parent.parent
    with initialize_config_dir(config_dir=str(Path(__file__).resolve().parent.parent / "conf"), version_base="1.3"):
        cfg = compose(config_name="build_data", overrides=[f"paths.data_root={root}", "data.limit=6", "verifier.workers=0"])
    assert build_dataset(to_build_config(cfg)) == dataset  # same data_id: reused, and the card written back
    assert (dataset / "README.md").exists()
    assert hashlib.sha256((dataset / "data.jsonl").read_bytes()).hexdigest() == before


def test_features_widen_ints_to_floats_and_keep_nulls():
    features = infer_features([{"r": 0, "g": None, "xs": [{"a": 1}]}, {"r": 0.5, "g": 3, "xs": [{"a": None}]}])
    assert features == {"g": "int64", "r": "float64", "xs": [{"a": "int64"}]}


@pytest.fixture
def checkpoint(tmp_path, dataset):
    final = tmp_path / "runs" / "demo" / "final"
    final.mkdir(parents=True)
    (final / "config.json").write_text("{}")
    manifest = {"run_name": "demo", "data_id": "abc123", "dataset_dir": str(dataset), "global_step": 4, "world_size": 1,
                "pack_fill": 0.98, "train_metrics": {"train_loss": 1.25}, "wall_time_s": 12.0,
                "config": {"student": {"name": "smollm2_135m", "model": "HuggingFaceTB/SmolLM2-135M-Instruct", "lr": 1e-5,
                                       "max_seq_len": 2048}, "fusion": {"name": "adaptive"}, "seed": 0}}
    (final / "training_manifest.json").write_text(json.dumps(manifest))
    return final


def test_model_card_names_base_model_dataset_config_and_evaluations(checkpoint, dataset, tmp_path):
    meta, body = _front_matter(write_model_card(checkpoint))
    assert meta["base_model"] == "HuggingFaceTB/SmolLM2-135M-Instruct" and meta["library_name"] == "transformers"
    assert "abc123" in body and f"]({dataset / 'README.md'})" in body and "| lr | 1e-05 |" in body
    assert "None recorded yet" in body
    results = {"run_name": "demo-eval", "benchmark": "math500", "limit": 10,
               "tasks": {"tf_math500": {"metric": "pass@1", "accuracy": 0.3, "n_problems": 10}}}
    record_evaluation(str(checkpoint), tmp_path / "eval", results)
    _, body = _front_matter(checkpoint / "README.md")
    assert "| demo-eval | math500 | tf_math500 | pass@1 | 30.00 | 10 |" in body
    assert [e["run_name"] for e in evaluations(checkpoint)] == ["demo-eval"]
    assert record_evaluation(str(tmp_path), tmp_path, results) is None  # not a train.py checkpoint: nothing written


class FakeApi:
    def __init__(self):
        self.calls = []

    def create_repo(self, repo_id, **kwargs):
        self.calls.append(("create_repo", repo_id, kwargs))
        return f"https://huggingface.co/{kwargs.get('repo_type')}s/{repo_id}"

    def upload_folder(self, **kwargs):
        self.calls.append(("upload_folder", kwargs["repo_id"], kwargs))


@pytest.fixture
def hub(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(publish_mod, "get_token", lambda: "hf_test")
    api = FakeApi()
    monkeypatch.setattr(publish_mod, "HfApi", lambda token=None: api)
    return api


def test_publish_uploads_a_dataset_with_its_card(dataset, hub, capsys):
    assert publish_mod.main([str(dataset), "--repo", "org/tf-data", "--private"]) == 0
    (_, repo, create), (_, _, upload) = hub.calls
    assert repo == "org/tf-data" and create["repo_type"] == "dataset" and create["private"] is True
    assert upload["folder_path"] == str(dataset) and upload["repo_type"] == "dataset" and "wandb/**" in upload["ignore_patterns"]
    assert (dataset / "README.md").exists() and "published" in capsys.readouterr().out


def test_publish_uploads_a_checkpoint_as_a_model(checkpoint, hub):
    assert publish_mod.main([str(checkpoint), "--repo", "org/tf-model"]) == 0
    assert hub.calls[0][2]["repo_type"] == "model" and hub.calls[0][2]["private"] is False
    assert (checkpoint / "README.md").exists()


def test_publish_without_a_token_or_online_hub_says_so(dataset, monkeypatch, capsys, tmp_path):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(publish_mod, "get_token", lambda: None)
    monkeypatch.setattr(publish_mod, "HfApi", lambda token=None: pytest.fail("no upload without a token"))
    assert publish_mod.main([str(dataset), "--repo", "org/x"]) == 2
    assert "no Hugging Face token" in capsys.readouterr().err
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert publish_mod.main([str(dataset), "--repo", "org/x"]) == 2
    assert "HF_HUB_OFFLINE" in capsys.readouterr().err
    assert publish_mod.main([str(tmp_path), "--repo", "org/x"]) == 2
    assert "neither a dataset directory" in capsys.readouterr().err
    assert publish_mod.main([str(dataset), "--repo", "no-slash"]) == 2
