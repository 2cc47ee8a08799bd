"""Token rationales (`evaluation/explain.py`): what `explain_text` records, and the HTML and PNG renderings."""

from __future__ import annotations

import html

import pytest
import test_adapler  # module imports: importing the Test* classes would make pytest collect them here again
import test_deebert
import torch
from tiny import TEXTS
from transformers import AutoTokenizer

from adaptive_zoo.evaluation.explain import (
    TokenRationale,
    explain_text,
    explain_to_files,
    render_html,
    render_png,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
LONGEST = TEXTS[-1]  # make_adaptive drops tokens from the batch's longest row


@pytest.fixture(scope="module")
def tokenizer(tiny_tokenizer_dir):
    return AutoTokenizer.from_pretrained(tiny_tokenizer_dir)


@pytest.fixture(scope="module")
def model(tokenizer):
    tester = test_adapler.AdapLeRModelTester()
    model = tester.create_model()
    tester.make_adaptive(model, dict(tokenizer(TEXTS, padding=True, return_tensors="pt")))
    return model


@pytest.fixture(scope="module")
def rationale(model, tokenizer):
    return explain_text(model, tokenizer, LONGEST)


def hand_built() -> TokenRationale:
    """Tokenizer-independent: a token that needs escaping and a WordPiece continuation."""
    tokens = ["[CLS]", "<b>", "bold", "un", "##kind", "[SEP]"]
    kept = [[True] * 6, [True, True, False, True, True, True], [True, False, False, False, True, False]]
    return TokenRationale(
        tokens=tokens,
        kept=kept,
        kept_counts=[sum(row) for row in kept],
        predicted_label="neg & <odd>",
        probabilities={"neg & <odd>": 0.75, "pos": 0.25},
        num_layers=3,
    )


def test_rationale_matches_the_model_outputs(model, tokenizer, rationale):
    inputs = tokenizer(LONGEST, return_tensors="pt")
    with torch.inference_mode():
        outputs = model(**inputs)
    num_layers = model.config.num_hidden_layers
    assert rationale.num_layers == num_layers == len(rationale.kept)
    assert rationale.tokens == tokenizer.convert_ids_to_tokens(inputs["input_ids"][0])
    assert rationale.tokens[0] == "[CLS]" and rationale.tokens[-1] == "[SEP]"
    assert all(len(row) == len(rationale.tokens) for row in rationale.kept)
    assert all(row[0] for row in rationale.kept), "[CLS] enters every layer"
    assert rationale.kept_counts == outputs.kept_tokens[0].tolist()
    assert rationale.kept_counts == sorted(rationale.kept_counts, reverse=True)
    assert rationale.kept_counts[0] < len(rationale.tokens), "make_adaptive removes tokens before layer 1"
    # Removal is for good: a token absent from a layer is absent from all later ones.
    for earlier, later in zip(rationale.kept, rationale.kept[1:]):
        assert all(e or not lt for e, lt in zip(earlier, later))
    assert rationale.probabilities.keys() == set(model.config.id2label.values())
    assert sum(rationale.probabilities.values()) == pytest.approx(1.0, abs=1e-5)
    assert rationale.predicted_label == model.config.id2label[int(outputs.logits.argmax())]
    assert not rationale.truncated and not model.training


def test_truncation_to_max_length(model, tokenizer):
    rationale = explain_text(model, tokenizer, LONGEST, max_length=5)
    assert len(rationale.tokens) == 5 and rationale.tokens[-1] == "[SEP]" and rationale.truncated


@pytest.mark.parametrize("text", ["", "   \n\t"])
def test_empty_text_raises(model, tokenizer, text):
    with pytest.raises(ValueError, match="non-empty"):
        explain_text(model, tokenizer, text)


def test_model_without_kept_masks_raises(tokenizer):
    deebert = test_deebert.DeeBertModelTester().create_model()
    with pytest.raises(ValueError, match="DeeBertForSequenceClassification does not report which tokens"):
        explain_text(deebert, tokenizer, LONGEST)


def test_html_has_every_layer_and_escapes_tokens(tmp_path):
    page = render_html(hand_built(), tmp_path / "sub" / "page.html").read_text(encoding="utf-8")
    assert page.count('class="layer-row"') == 3
    for layer, count in zip((1, 2, 3), (6, 5, 2)):
        assert f"Layer {layer}</td>" in page and f"{count} / 6 tokens" in page
    assert "<b>" not in page and "&lt;b&gt;" in page
    assert html.escape("neg & <odd>") in page and "<odd>" not in page
    assert "##kind" not in page.split("<body>")[1].replace('title="##kind"', ""), "the ## marker is not shown"
    assert "<script" not in page and "http" not in page, "self-contained"


def test_html_of_a_model_rationale(rationale, tmp_path):
    page = render_html(rationale, tmp_path / "page.html").read_text(encoding="utf-8")
    assert page.count('class="layer-row"') == rationale.num_layers
    assert f"{rationale.kept_counts[-1]} / {len(rationale.tokens)} tokens" in page


def test_png_is_a_png(tmp_path):
    path = render_png(hand_built(), tmp_path / "strip.png")
    data = path.read_bytes()
    assert data.startswith(PNG_SIGNATURE) and len(data) > 1000


def test_png_of_a_long_text_shows_its_start(tmp_path):
    tokens = ["[CLS]"] + [f"w{i}" for i in range(120)] + ["[SEP]"]
    kept = [[True] * len(tokens), [i % 2 == 0 for i in range(len(tokens))]]
    rationale = TokenRationale(tokens, kept, [sum(r) for r in kept], "a", {"a": 0.6, "b": 0.4}, num_layers=2)
    assert render_png(rationale, tmp_path / "long.png").read_bytes().startswith(PNG_SIGNATURE)


def test_explain_to_files(model, tokenizer, tmp_path):
    paths = explain_to_files(model, tokenizer, LONGEST, tmp_path / "out", stem="example")
    assert paths == {"html": tmp_path / "out" / "example.html", "png": tmp_path / "out" / "example.png"}
    assert paths["png"].read_bytes().startswith(PNG_SIGNATURE)
    assert "Layer 4</td>" in paths["html"].read_text(encoding="utf-8")


def test_rationale_shapes_are_checked():
    with pytest.raises(ValueError, match="one flag per token"):
        TokenRationale(["[CLS]", "[SEP]"], [[True]], [1], "a", {"a": 1.0}, num_layers=1)
