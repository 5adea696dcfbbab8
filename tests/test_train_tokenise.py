"""Templates, label masks and packing, checked token by token on real rows of the bundled pool."""

import json

import pytest
import torch

from trajfusion.training.packing import PackedCollator, PaddedCollator, SequenceDataset, pack_best_fit
from trajfusion.training.schema import StudentConfig
from trajfusion.training.students import load_tokenizer, tiny_llama_config
from trajfusion.training.tokenise import (
    IGNORE_INDEX, TokenisedRow, character_loss, load_template, render, token_loss, tokenise_row,
)


@pytest.fixture(scope="module")
def tiny_student(tmp_path_factory):
    root = tmp_path_factory.mktemp("tok")
    return StudentConfig(name="tiny_random", source="tiny_random", tokenizer=str(root / "tiny_bpe"), max_seq_len=2048,
                         attn_implementation="sdpa")


@pytest.fixture(scope="module")
def tokenizer(tiny_student):
    return load_tokenizer(tiny_student)


@pytest.fixture(scope="module")
def fused_rows(tmp_path_factory):
    """TrajFusion rows (with errors) built from a slice of the bundled pool."""
    from hydra import compose, initialize_config_dir

    from trajfusion.config import register_configs, to_build_config
    from trajfusion.data.dataset import build_dataset
    from tests.test_train_run import CONF

    register_configs()
    root = tmp_path_factory.mktemp("data")
    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        cfg = compose("build_data", [f"paths.data_root={root}", "data.limit=20", "plots=false", "progress=false"])
    out = build_dataset(to_build_config(cfg))
    rows = [json.loads(line) for line in (out / "data.jsonl").read_text().splitlines()]
    assert any(r["n_errors"] for r in rows)
    return rows


def expected_kinds(row, rendered, position):
    """The segment kind of a character of the rendered text, or 'prompt' / 'suffix'."""
    if position < rendered.answer_start:
        return "prompt"
    offset = position - rendered.answer_start
    for seg in row["segments"]:
        if seg["start"] <= offset < seg["end"]:
            return seg["kind"]
    return "suffix"


@pytest.mark.parametrize("loss_on_errors", [True, False])
def test_labels_follow_segments_token_by_token(fused_rows, tokenizer, loss_on_errors):
    template = load_template("base_plain")
    masked_kinds = {"prompt"} | (set() if loss_on_errors else {"error"})
    straddling = 0
    for row in fused_rows:
        rendered = render(tokenizer, row["messages"], template)
        sample = tokenise_row(row, tokenizer, template, loss_on_errors)
        enc = tokenizer(rendered.text, add_special_tokens=False, return_offsets_mapping=True)
        assert sample.input_ids == enc["input_ids"]
        for i, ((start, end), label) in enumerate(zip(enc["offset_mapping"], sample.labels)):
            kinds = {expected_kinds(row, rendered, p) for p in range(start, end)}
            if i == 0 or not kinds:
                assert label == IGNORE_INDEX or not kinds
                continue
            if kinds & masked_kinds:
                assert label == IGNORE_INDEX, (row["id"], i, kinds)
                straddling += len(kinds) > 1
            else:
                assert label == sample.input_ids[i], (row["id"], i, kinds)
        # every error character is masked or trained, exactly as asked
        error_tokens = [l for (s, e), l in zip(enc["offset_mapping"], sample.labels)
                        if any(expected_kinds(row, rendered, p) == "error" for p in range(s, e))]
        if error_tokens:
            assert all(l == IGNORE_INDEX for l in error_tokens) != loss_on_errors
    assert straddling <= len(fused_rows) * 8  # boundaries fall on whitespace: straddling tokens are rare


def test_masked_and_trained_text_reassemble(fused_rows, tokenizer):
    """Decoding the trained tokens gives the assistant text minus errors, plus the EOS (no prompt)."""
    template = load_template("base_plain")
    row = next(r for r in fused_rows if r["n_errors"])
    sample = tokenise_row(row, tokenizer, template, loss_on_errors=False)
    trained = tokenizer.decode([t for t, l in zip(sample.input_ids, sample.labels) if l != IGNORE_INDEX])
    answer = row["messages"][-1]["content"]
    kept = "".join(answer[s["start"]:s["end"]] for s in row["segments"] if s["kind"] != "error")
    assert trained.replace(" ", "").replace("\n", "") == (kept + tokenizer.eos_token).replace(" ", "").replace("\n", "")
    assert row["messages"][1]["content"][:30] not in trained


def test_straddling_token_is_masked():
    # chars 0-3 prompt, 4-7 error; a token covering 2..6 straddles: masked; gaps belong to the next token
    char_loss = bytearray([0, 0, 0, 0, 1, 1, 1, 1, 0, 0])
    assert token_loss([(0, 2), (2, 6), (6, 8), (8, 10)], char_loss) == [False, False, True, False]
    assert token_loss([(0, 4), (5, 8)], char_loss) == [False, True]  # char 4 (skipped) belongs to token 2
    assert token_loss([(0, 4), (4, 8), (7, 8)], char_loss) == [False, True, True]  # shared char: follows previous


def test_segments_must_tile_the_answer(tokenizer):
    rendered = render(tokenizer, [{"role": "user", "content": "q"}, {"role": "assistant", "content": "abcdef"}],
                      load_template("base_plain"))
    with pytest.raises(ValueError, match="tile"):
        character_loss(rendered, [{"kind": "correct", "start": 0, "end": 3}, {"kind": "answer", "start": 4, "end": 6}], True)
    with pytest.raises(ValueError, match="end at"):
        character_loss(rendered, [{"kind": "correct", "start": 0, "end": 3}], True)


@pytest.mark.parametrize("template", ["base_plain", "chatml"])
def test_template_prompt_is_a_prefix_and_answer_verbatim(tokenizer, template):
    messages = [{"role": "system", "content": "S"}, {"role": "user", "content": "Q?"}, {"role": "assistant", "content": "<think>\nA\n</think>"}]
    rendered = render(tokenizer, messages, load_template(template))
    assert rendered.text[rendered.answer_start:rendered.answer_end] == messages[-1]["content"]
    assert rendered.text.index("Q?") < rendered.answer_start


def test_unknown_template_lists_the_supported_ones():
    with pytest.raises(ValueError, match="base_plain"):
        load_template("llama3_chat")


def test_best_fit_packs_within_capacity_and_keeps_every_sample():
    lengths = [900, 100, 500, 500, 1000, 30, 700, 300, 64]
    bins = pack_best_fit(lengths, 1000)
    assert sorted(i for b in bins for i in b) == list(range(len(lengths)))
    assert all(sum(lengths[i] for i in b) <= 1000 for b in bins)
    assert len(bins) == -(-sum(lengths) // 1000)  # optimal here: 4094 tokens in 5 bins
    with pytest.raises(ValueError, match="capacity"):
        pack_best_fit([1001], 1000)


def _rows(lengths, seed=0):
    g = torch.Generator().manual_seed(seed)
    rows = []
    for n in lengths:
        ids = torch.randint(5, 2000, (n,), generator=g).tolist()
        rows.append(TokenisedRow(str(n), ids, [IGNORE_INDEX] * 3 + ids[3:]))
    return rows


def test_packed_forward_equals_separate_forwards(tokenizer, tiny_student):
    """No attention across samples on the CPU path: packed logits equal per-sample logits."""

    from trajfusion.training.students import load_model

    model = load_model(tiny_student, tokenizer, seed=0).eval()  # as training loads it
    rows = _rows([37, 64, 21])
    batch = PackedCollator()([rows[:2], rows[2:]])
    assert batch["input_ids"].shape == (1, 122) and batch["position_ids"][0, 37].item() == 0
    with torch.no_grad():
        packed = model(input_ids=batch["input_ids"], position_ids=batch["position_ids"]).logits[0]
        separate = torch.cat([model(input_ids=torch.tensor([r.input_ids])).logits[0] for r in rows])
    assert torch.allclose(packed, separate, atol=1e-5)
    # and a cross-attending forward (no position reset) differs, so the check can fail
    with torch.no_grad():
        joined = model(input_ids=batch["input_ids"], use_cache=False).logits[0]
    assert not torch.allclose(joined[40:], separate[40:], atol=1e-3)


def test_packed_loss_is_the_token_mean_over_all_samples(tokenizer, tiny_student):
    """The loss of a packed batch (and its label count) equals the token-weighted mean of the samples':
    no label crosses a sample boundary."""
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    config = tiny_llama_config(tokenizer, tiny_student)
    config._attn_implementation = "sdpa"
    model = AutoModelForCausalLM.from_config(config).eval()
    rows = _rows([30, 50, 20], seed=1)
    batch = PackedCollator()([rows])
    with torch.no_grad():
        packed = model(input_ids=batch["input_ids"], position_ids=batch["position_ids"], labels=batch["labels"], use_cache=False).loss
        per = [model(input_ids=torch.tensor([r.input_ids]), labels=torch.tensor([r.labels])).loss for r in rows]
    counts = [sum(l != IGNORE_INDEX for l in r.labels[1:]) for r in rows]
    assert torch.allclose(packed, sum(l * c for l, c in zip(per, counts)) / sum(counts), atol=1e-5)
    assert int((batch["labels"][0, 1:] != IGNORE_INDEX).sum()) == sum(counts)


def test_padded_baseline_and_fill():
    rows = _rows([10, 30])
    batch = PaddedCollator(pad_token_id=0)([[rows[0]], [rows[1]]])
    assert batch["input_ids"].shape == (2, 30) and int(batch["attention_mask"].sum()) == 40
    assert (batch["labels"][0, 10:] == IGNORE_INDEX).all() and batch["stat_tensor_tokens"].item() == 60
    packed = SequenceDataset(_rows([600, 400, 500, 500]), capacity=1000, packing=True)
    assert len(packed) == 2 and packed.fill == 1.0
    assert SequenceDataset(_rows([600, 400]), capacity=1000, packing=False).fill == 0.5
