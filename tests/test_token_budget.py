"""The token budget counts with the student's tokenizer when one is configured."""

import pytest

from trajfusion.data.budget import token_counter


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory):
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    corpus = ["Let me check this answer again.", "The final answer is $\\boxed{42}$.", "x^2 + 2x + 1 = (x+1)^2"] * 20
    tok.train_from_iterator(corpus, trainers.BpeTrainer(vocab_size=300, special_tokens=["<unk>"], show_progress=False))
    path = tmp_path_factory.mktemp("tok")
    PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>").save_pretrained(path)
    return path


def test_counts_with_the_configured_tokenizer(tokenizer_dir):
    from transformers import AutoTokenizer

    count = token_counter(str(tokenizer_dir))
    text = "The final answer is $\\boxed{42}$. Let me check."
    assert count(text) == len(AutoTokenizer.from_pretrained(tokenizer_dir)(text, add_special_tokens=False)["input_ids"]) > 0


def test_proxy_is_utf8_bytes_over_three():
    assert token_counter(None)("abcdef") == 2 and token_counter(None)("é") == 1 and token_counter(None)("") == 0


def test_build_uses_the_tokenizer_for_the_budget(compose, tokenizer_dir):
    import json

    from trajfusion.data.dataset import build_dataset

    out = build_dataset(compose("data.limit=10", f"length_policy.tokenizer={tokenizer_dir}", "length_policy.max_tokens=1500", "plots=false", "progress=false"))
    rows = [json.loads(line) for line in (out / "data.jsonl").read_text().splitlines()]
    assert rows and all(r["n_tokens"] <= 1500 for r in rows)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["identity"]["budget"]["tokenizer"].startswith("sha256:")


def test_data_id_follows_tokenizer_content_not_its_path(compose, tokenizer_dir, tmp_path):
    import shutil

    from trajfusion.data.dataset import load_prompts
    from trajfusion.data.identity import dataset_dir

    def data_id(tok):
        cfg = compose(f"length_policy.tokenizer={tok}")
        return dataset_dir(cfg, load_prompts(cfg))[0]

    copy = tmp_path / "moved_tokenizer"
    shutil.copytree(tokenizer_dir, copy)
    assert data_id(tokenizer_dir) == data_id(copy) != data_id("org/some-hub-tokenizer")


def test_hub_tokenizer_ids_are_not_turned_into_paths():
    from trajfusion.data.budget import _tokenizer_source, tokenizer_identity

    assert _tokenizer_source("meta-llama/Meta-Llama-3-8B") == "meta-llama/Meta-Llama-3-8B"
    assert tokenizer_identity("meta-llama/Meta-Llama-3-8B") == "meta-llama/Meta-Llama-3-8B"


@pytest.mark.parametrize("student,hub_id", [("llama3_8b", "meta-llama/Meta-Llama-3-8B"),
                                            ("deepseekmath_7b", "deepseek-ai/deepseek-math-7b-base"),
                                            ("qwen2p5_math_7b", "Qwen/Qwen2.5-Math-7B"), ("qwen2p5_math_7b_32k", "Qwen/Qwen2.5-Math-7B")])
def test_paper_students_budget_with_their_hub_tokenizer(compose, student, hub_id):
    from trajfusion.training.schema import register_train_configs

    register_train_configs()
    cfg = compose(f"student={student}", config_name="train", validate=False)
    assert cfg.student.tokenizer == hub_id and cfg.length_policy.tokenizer == hub_id


def test_a_tokenizer_that_does_not_load_falls_back_loudly_and_is_recorded(compose, caplog):
    import json
    import logging

    from trajfusion.data.dataset import build_dataset, load_prompts
    from trajfusion.data.identity import dataset_dir

    def data_id(*overrides):
        cfg = compose("data.limit=6", *overrides)
        return dataset_dir(cfg, load_prompts(cfg))[0]

    missing = "no-such-org/no-such-tokenizer"  # tests run with HF_HUB_OFFLINE=1
    with caplog.at_level(logging.WARNING, logger="trajfusion.data.budget"):
        assert data_id(f"length_policy.tokenizer={missing}") == data_id()  # the data_id follows the counter used
        out = build_dataset(compose("data.limit=6", f"length_policy.tokenizer={missing}", "plots=false", "progress=false"))
    assert any("TOKEN BUDGET" in r.getMessage() and missing in r.getMessage() for r in caplog.records)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["token_counter"] == {"configured": missing, "used": "bytes/3"}
