"""ROUGE / BLEU through the bundled local `evaluate` metrics, and the Seq2SeqTrainer compute_metrics."""

from __future__ import annotations

import socket
from pathlib import Path

import numpy as np
import pytest
from transformers import EvalPrediction

from adaptive_zoo.evaluation import text_metrics
from adaptive_zoo.evaluation.text_metrics import (
    bleu_score,
    load_rouge,
    metric_path,
    newline_sentences,
    rouge_scores,
    seq2seq_compute_metrics,
)


def test_rouge_by_hand():
    # 6 tokens each; unigram matches (clipped): the x2, cat, on, mat = 5 -> P = R = F = 5/6.
    # Bigrams: the-cat, on-the, the-mat of 5 each -> 3/5. LCS "the cat on the mat" = 5 -> 5/6.
    scores = rouge_scores(["the cat sat on the mat"], ["the cat lay on the mat"])
    assert scores == {"rouge1": 83.3333, "rouge2": 60.0, "rougeL": 83.3333, "rougeLsum": 83.3333}


def test_rouge_averages_over_examples_and_picks_the_best_reference():
    scores = rouge_scores(["a b", "c d"], ["a b", "x y"], digits=None)
    assert scores["rouge1"] == pytest.approx(50.0)
    multi = rouge_scores(["a b"], [["x y", "a b"]])
    assert multi["rouge1"] == 100.0


def test_rouge_lsum_uses_sentences():
    # Same sentences in another order: the whole-text LCS is "c d" (2 of 4), the sentence-level union LCS is 4/4.
    scores = rouge_scores(["c d. a b."], ["a b. c d."])
    assert scores["rougeL"] == 50.0 and scores["rougeLsum"] == 100.0
    assert newline_sentences("One. Two!  Three? four") == "One.\nTwo!\nThree?\nfour"
    unsplit = rouge_scores(["c d. a b."], ["a b. c d."], split_sentences=False)
    assert unsplit["rougeLsum"] == 50.0


def test_rouge_stemming():
    assert rouge_scores(["cats running"], ["cat runs"])["rouge1"] == 100.0
    assert rouge_scores(["cats running"], ["cat runs"], use_stemmer=False)["rouge1"] == 0.0


def test_rouge_metric_module_is_unscaled_and_per_example():
    rouge = load_rouge()
    result = rouge.compute(predictions=["the cat sat"], references=["the cat sat down"])
    assert result["rouge1"] == pytest.approx(6 / 7)  # P = 1, R = 3/4
    per_example = rouge.compute(predictions=["a", "b"], references=["a", "c"], use_aggregator=False,
                                rouge_types=["rouge1"])
    assert per_example == {"rouge1": [1.0, 0.0]}


def test_bleu():
    assert bleu_score(["hello there general kenobi"], ["hello there general kenobi"]) == 100.0
    assert bleu_score(["the quick brown fox jumps"], [["a slow dog", "the quick brown fox jumps"]]) == 100.0
    details = bleu_score(["hello there general kenobi"], ["hello there general kenobi"], details=True)
    assert details["counts"] == [4, 3, 2, 1] and details["bp"] == 1.0
    assert bleu_score(["completely different words here"], ["hello there general kenobi"]) == 0.0
    with pytest.raises(ValueError, match="same number of references"):
        bleu_score(["a", "b"], [["a"], ["b", "c"]])


def test_input_errors():
    with pytest.raises(ValueError, match="2 predictions but 1 references"):
        rouge_scores(["a", "b"], ["a"])
    with pytest.raises(ValueError, match="empty"):
        rouge_scores([], [])
    with pytest.raises(ValueError, match="No bundled metric 'meteor'.*rouge, sacrebleu"):
        metric_path("meteor")


def test_compute_metrics_decodes_and_ignores_minus_100(tiny_tokenizer_dir):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_tokenizer_dir)
    cls, sep = tokenizer.cls_token_id, tokenizer.sep_token_id
    w = tokenizer.convert_tokens_to_ids
    # Generated ids as Seq2SeqTrainer gathers them: [CLS] start, [SEP] end, -100 where batches were padded.
    predictions = np.array([[cls, w("w1"), w("w2"), w("w4"), sep, -100, -100],
                            [cls, w("w5"), w("w6"), sep, -100, -100, -100]])
    labels = np.array([[w("w1"), w("w2"), w("w3"), sep, -100],
                       [w("w5"), w("w6"), sep, -100, -100]])
    metrics = seq2seq_compute_metrics(tokenizer)(EvalPrediction(predictions=predictions, label_ids=labels))
    # Example 1: "w1 w2 w4" vs "w1 w2 w3": rouge1 2/3, rouge2 1/2, rougeL 2/3. Example 2: exact match.
    assert metrics == {
        "rouge1": round((2 / 3 + 1) / 2 * 100, 4),
        "rouge2": 75.0,
        "rougeL": round((2 / 3 + 1) / 2 * 100, 4),
        "rougeLsum": round((2 / 3 + 1) / 2 * 100, 4),
        "gen_len": 4.5,  # 5 and 4 non-pad ids
    }
    with_bleu = seq2seq_compute_metrics(tokenizer, with_bleu=True)(EvalPrediction((predictions,), labels))
    assert with_bleu["bleu"] == bleu_score(["w1 w2 w4", "w5 w6"], ["w1 w2 w3", "w5 w6"])  # decoded texts
    with pytest.raises(ValueError, match="predict_with_generate=True"):
        seq2seq_compute_metrics(tokenizer)(EvalPrediction(np.zeros((2, 3, 99)), labels))


def test_metrics_load_offline_without_network(monkeypatch, tmp_path):
    """evaluate.load of the bundled folders makes no network call (sockets are cut) with the offline switches on."""
    import evaluate

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")

    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    text_metrics._load.cache_clear()
    try:
        for name in ("rouge", "sacrebleu"):
            module = evaluate.load(metric_path(name), keep_in_memory=True, cache_dir=str(tmp_path))
            assert isinstance(module, evaluate.Metric)
        assert rouge_scores(["a b"], ["a b"])["rouge2"] == 100.0
        assert bleu_score(["a b c d"], ["a b c d"]) == 100.0
    finally:
        text_metrics._load.cache_clear()


def test_metric_files_are_package_data():
    tomllib = pytest.importorskip("tomllib")
    pyproject = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())
    patterns = pyproject["tool"]["setuptools"]["package-data"]["adaptive_zoo"]
    package = Path(text_metrics.__file__).resolve().parents[1]
    shipped = {path for pattern in patterns for path in package.glob(pattern)}
    for name in ("rouge", "sacrebleu"):
        assert Path(metric_path(name)) / f"{name}.py" in shipped


def test_agreement_with_full_depth_measures_how_much_exits_change_the_output():
    from adaptive_zoo.evaluation.seq2seq import agreement_with_full_depth

    same = agreement_with_full_depth(["a cat sat", "dogs run"], ["a cat sat", "dogs run"])
    assert same["same_output_fraction"] == 1.0 and same["rouge_against_full_depth"]["rouge1"] == pytest.approx(100.0)
    half = agreement_with_full_depth(["a cat sat", "birds fly"], ["a cat sat", "dogs run"])
    assert half["same_output_fraction"] == 0.5
    assert half["rouge_against_full_depth"]["rouge1"] == pytest.approx(50.0)
