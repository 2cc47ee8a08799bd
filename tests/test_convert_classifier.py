"""Convert a fine-tuned classifier instead of retraining it: `adaptive-zoo train <method> --base-model <a fine-tuned
BertForSequenceClassification folder>` keeps its head and labels, checks them against the dataset's, and skips what
the checkpoint already did (DeeBERT: stage 1; AdapLeR: phase 1, saliencies from it; HashEE fine-tunes from it)."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file
from tiny import TEXTS, save_tiny_tokenizer, tiny_bert_config
from transformers import AutoModelForSequenceClassification, AutoTokenizer, BertConfig, BertForSequenceClassification

from adaptive_zoo.cli import main
from adaptive_zoo.hub.folder import check_hub_folder

COLUMNS = ["--text-column", "sentence", "--label-column", "category"]
NAMES = ["alpha", "beta", "gamma"]  # tiny_csv's classes, in the dataset's (sorted) order
ARGS = ["--num-train-epochs", "1", "--max-length", "32", "--batch-size", "8", "--learning-rate", "1e-3",
        "--max-train-samples", "24", "--max-eval-samples", "12"]
METHOD_ARGS = {"deebert": ["--off-ramp-epochs", "1"], "adapler": ["--adaptive-epochs", "1"], "hashee": []}


def save_classifier(folder, names, seed=1):
    """A BERT classifier head over the tiny BERT: stands in for a classifier the user fine-tuned."""
    torch.manual_seed(seed)
    config = BertConfig(**tiny_bert_config(), num_labels=len(names), id2label=dict(enumerate(names)),
                        label2id={name: i for i, name in enumerate(names)})
    BertForSequenceClassification(config).save_pretrained(folder)
    save_tiny_tokenizer(folder)
    return folder


@pytest.fixture(scope="module")
def fine_tuned_dir(tmp_path_factory):
    return save_classifier(tmp_path_factory.mktemp("fine_tuned"), NAMES)


def train(method, base, output, tiny_csv, *extra):
    return main(["train", method, "--dataset", str(tiny_csv), *COLUMNS, "--output-dir", str(output),
                 "--base-model", str(base), *ARGS, *METHOD_ARGS[method], *extra])


@pytest.mark.parametrize(("names", "message"), [
    (["alpha", "beta"], "2 labels"),
    (["gamma", "beta", "alpha"], "the same names in another order"),
    (["spam", "ham", "eggs"], "['spam', 'ham', 'eggs']"),
])
@pytest.mark.parametrize("method", ["deebert", "adapler", "hashee"])
def test_a_head_that_does_not_match_the_dataset_is_refused_before_training(method, names, message, tmp_path,
                                                                           tiny_csv, capsys):
    base = save_classifier(tmp_path / "classifier", names)
    assert train(method, base, tmp_path / "out", tiny_csv) == 2
    error = capsys.readouterr().err
    assert "fine-tuned classifier" in error and message in error and "ignore_mismatched_sizes" not in error
    assert not (tmp_path / "out-training").exists()


def test_deebert_converts_a_fine_tuned_classifier_with_stage_2_only(tmp_path, fine_tuned_dir, tiny_csv):
    folder = tmp_path / "deebert"
    assert train("deebert", fine_tuned_dir, folder, tiny_csv, "--off-ramp-pooling", "cls") == 0
    check_hub_folder(folder, require_tokenizer=True)
    record = json.loads((folder / "adaptive_zoo_results.json").read_text())
    assert "skipped" in record["training"]["stage1"] and record["base_is_fine_tuned_classifier"]
    assert not (tmp_path / "deebert-training" / "stage1").exists()
    config = json.loads((folder / "config.json").read_text())
    assert list(config["id2label"].values()) == NAMES
    # Stage 2 trains the off-ramps only: at full depth the converted model is the fine-tuned classifier itself.
    model = AutoModelForSequenceClassification.from_pretrained(folder).eval()
    model.config.adaptive = False
    original = AutoModelForSequenceClassification.from_pretrained(fine_tuned_dir).eval()
    tokenizer = AutoTokenizer.from_pretrained(fine_tuned_dir)
    inputs = tokenizer(TEXTS, return_tensors="pt", padding=True)
    with torch.no_grad():
        assert torch.equal(model(**inputs).logits, original(**inputs).logits)
    assert "stage 1 was not run again" in (folder / "README.md").read_text()


def test_adapler_takes_the_fine_tuned_classifier_as_phase_1(tmp_path, fine_tuned_dir, tiny_csv):
    folder = tmp_path / "adapler"
    assert train("adapler", fine_tuned_dir, folder, tiny_csv, "--eta-scales", "1.0") == 0
    check_hub_folder(folder, require_tokenizer=True)
    record = json.loads((folder / "adaptive_zoo_results.json").read_text())
    assert record["phase1_from_fine_tuned_base"] == str(fine_tuned_dir)
    assert record["saliency_checkpoints"] == [str(fine_tuned_dir)]
    assert 0.0 <= record["phase1_validation_accuracy"] <= 1.0
    work = tmp_path / "adapler-training"
    assert not (work / "phase1").exists() and (work / "saliency").is_dir() and (work / "phase3").is_dir()
    assert str(fine_tuned_dir) in record["test"]["finetuned_checkpoint"]


def test_adapler_refuses_a_fine_tuned_base_together_with_reused_phases(tmp_path, fine_tuned_dir, tiny_csv, capsys):
    earlier = tmp_path / "earlier"
    (tmp_path / "earlier-training" / "phase1").mkdir(parents=True)
    assert train("adapler", fine_tuned_dir, tmp_path / "out", tiny_csv, "--reuse-phases-from", str(earlier)) == 2
    assert "error" in capsys.readouterr().err


def test_hashee_fine_tunes_from_the_classifier_keeping_its_head(tmp_path, fine_tuned_dir, tiny_csv):
    from adaptive_zoo.hashing import build_hash_table
    from adaptive_zoo.training.hashee import build_hashee_bert

    tokenizer = AutoTokenizer.from_pretrained(fine_tuned_dir)
    table = build_hash_table("frequency", tokenizer=tokenizer, num_layers=4, num_buckets=4, texts=TEXTS, max_length=32)
    model = build_hashee_bert(str(fine_tuned_dir), NAMES, table, tokenizer.all_special_ids, fine_tuned=True)
    head = load_file(fine_tuned_dir / "model.safetensors")
    assert torch.equal(model.classifier.weight, head["classifier.weight"])  # the run starts from the head
    folder = tmp_path / "hashee"
    assert train("hashee", fine_tuned_dir, folder, tiny_csv) == 0
    record = json.loads((folder / "adaptive_zoo_results.json").read_text())
    assert record["base_is_fine_tuned_classifier"] and record["base_checkpoint"] == str(fine_tuned_dir.resolve())
    assert "its head and label names are kept" in (folder / "README.md").read_text()


def test_generic_label_names_are_accepted_by_count_and_said(caplog):
    from types import SimpleNamespace

    from transformers import BertConfig

    from adaptive_zoo.methods.tasks import check_classifier_labels

    config = BertConfig(num_labels=3)  # id2label LABEL_0..LABEL_2, as a classifier saved without names has
    run = SimpleNamespace(base_config=config, task=SimpleNamespace(label_names=NAMES), dataset="toy",
                          settings=SimpleNamespace(base_model="classifier"))
    check_classifier_labels(run)
    assert "only their count could be checked" in caplog.text
    config = BertConfig(num_labels=2)
    with pytest.raises(ValueError, match="2 labels"):
        check_classifier_labels(SimpleNamespace(**{**vars(run), "base_config": config}))


@pytest.mark.parametrize("method", ["deebert", "adapler", "hashee"])
def test_a_tokenizer_that_is_not_the_classifiers_is_refused_before_training(method, tmp_path, tiny_csv, capsys):
    from tiny import save_tiny_bpe_tokenizer

    folder = save_classifier(tmp_path / "classifier-with-bpe", NAMES)
    save_tiny_bpe_tokenizer(folder)  # RoBERTa-style BPE over a BERT: <pad> is id 1, the BERT pads with 0
    output = tmp_path / "out"
    assert train(method, folder, output, tiny_csv) == 2
    assert "not this model's tokenizer" in capsys.readouterr().err
    assert not output.exists() and not (tmp_path / "out-training").exists()
