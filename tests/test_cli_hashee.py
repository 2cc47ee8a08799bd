"""`adaptive-zoo train hashee` / `hash build` / `evaluate` on HashEE folders: a tiny base model, the toy CSVs."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file
from tiny import write_tiny_summarization_csv

from adaptive_zoo.cli import main
from adaptive_zoo.hashing import load_hash_table
from adaptive_zoo.hub.folder import check_hub_folder
from adaptive_zoo.hub.verify import load_in_fresh_process

COLUMNS = ["--text-column", "sentence", "--label-column", "category"]
ARGS = ["--num-train-epochs", "2", "--max-length", "32", "--batch-size", "8", "--learning-rate", "1e-3"]


@pytest.fixture(scope="module")
def summarization_csv(tmp_path_factory):
    return write_tiny_summarization_csv(tmp_path_factory.mktemp("sum") / "toy_sum.csv")


@pytest.fixture(scope="module")
def classifier_folder(tmp_path_factory, tiny_bert_dir, tiny_csv):
    folder = tmp_path_factory.mktemp("runs") / "hashee-cls"
    assert main(["train", "hashee", "--dataset", str(tiny_csv), *COLUMNS, "--output-dir", str(folder),
                 "--base-model", str(tiny_bert_dir), "--train-vanilla", *ARGS]) == 0
    return folder


@pytest.fixture(scope="module")
def seq2seq_folder(tmp_path_factory, tiny_bert_dir, summarization_csv):
    folder = tmp_path_factory.mktemp("runs") / "hashee-s2s"
    assert main(["train", "hashee", "--dataset", str(summarization_csv), "--output-dir", str(folder),
                 "--base-model", str(tiny_bert_dir), "--max-target-length", "8", "--train-vanilla",
                 "--cross-attention-init", "fresh", *ARGS]) == 0
    return folder


@pytest.mark.parametrize("folder_fixture", ["classifier_folder", "seq2seq_folder"])
def test_the_shipped_table_is_the_one_in_the_weights(folder_fixture, request):
    folder = request.getfixturevalue(folder_fixture)
    check_hub_folder(folder, require_tokenizer=True)
    config = json.loads((folder / "config.json").read_text())
    table = load_hash_table(folder / "hash_table.safetensors", vocab_size=config["vocab_size"])
    buffers = [value for name, value in load_file(folder / "model.safetensors").items() if name.endswith("hash_table")]
    assert len(buffers) == 1 and torch.equal(buffers[0], table.exit_layers)
    assert table.hash_function == config["hash_function"] == "frequency"


def test_classifier_record_and_card_carry_measured_figures(classifier_folder):
    from huggingface_hub import ModelCard

    record = json.loads((classifier_folder / "adaptive_zoo_results.json").read_text())["test"]
    assert 1.0 <= record["mean_exit_layer_per_token"] <= 4.0
    assert record["flops_speedup"] > 1.0  # frequent tokens leave early
    assert 0.0 <= record["vanilla_finetuned_accuracy"] <= 1.0
    card = ModelCard.load(classifier_folder / "README.md")
    assert {"custom_code", "hashee", "text-classification"} <= set(card.data.tags)
    assert f"{100 * record['accuracy']:.2f}" in card.text and "without exits" in card.text


def test_seq2seq_record_card_and_table10_check(seq2seq_folder):
    from huggingface_hub import ModelCard

    record = json.loads((seq2seq_folder / "adaptive_zoo_results.json").read_text())
    test = record["test"]
    assert test["encoder_flops_speedup"] > 1.0
    assert test["identical_to_vanilla_at_full_depth"]
    assert 0.0 <= test["agreement_with_full_depth"]["same_output_fraction"] <= 1.0
    assert json.loads((seq2seq_folder / "config.json").read_text())["use_cache"] is True
    assert test["table10_check"]["measured_over_table10"] == pytest.approx(1.0, rel=1e-6)
    # at equal output length only the encoder differs, and its exits save compute
    assert test["equal_length_generate_flops_speedup"] > 1.0
    assert test["equal_length_generate_wallclock_speedup"] > 0
    assert set(test["rouge"]) >= {"rouge1", "rouge2", "rougeL"} and "vanilla_finetuned_rouge" in test
    assert record["warm_start"]["fresh"] > 0  # --cross-attention-init fresh: bert2bert's random cross-attention
    assert record["training"]["cross_attention_init"] == "fresh"
    card = ModelCard.load(seq2seq_folder / "README.md")
    assert card.data.pipeline_tag == "summarization"
    assert "Which weights were pretrained" in card.text and "encoder_attn" in card.text


def test_seq2seq_folder_generates_from_plain_tokenizer_output(seq2seq_folder):
    """transformers 5 removed the summarization/text2text pipelines, so generate() on the tokenizer's own output
    is the user path: the saved tokenizer must not emit token type ids, which BART's generate refuses."""
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    child = load_in_fresh_process(seq2seq_folder, ["w1 w2 w3 w4 w5 w6"], auto_class="AutoModelForSeq2SeqLM")
    assert child["class"].startswith("transformers_modules.")
    model = AutoModelForSeq2SeqLM.from_pretrained(seq2seq_folder)
    tokenizer = AutoTokenizer.from_pretrained(seq2seq_folder)
    inputs = tokenizer(["w1 w2 w3 w4 w5 w6 w7", "w8 w9"], padding=True, return_tensors="pt")
    assert "token_type_ids" not in inputs
    generated = model.generate(**inputs, max_new_tokens=4, num_beams=2)
    assert generated.shape[0] == 2 and all(isinstance(t, str) for t in tokenizer.batch_decode(generated))


def test_evaluate_dispatches_on_the_model_kind(classifier_folder, seq2seq_folder, tiny_csv, summarization_csv,
                                               tmp_path):
    cls_report, s2s_report = tmp_path / "cls.json", tmp_path / "s2s.json"
    assert main(["evaluate", str(classifier_folder), "--dataset", str(tiny_csv), *COLUMNS, "--no-wallclock",
                 "--json", str(cls_report)]) == 0
    assert json.loads(cls_report.read_text())["mean_exit_layer_per_token"] >= 1.0
    assert main(["evaluate", str(seq2seq_folder), "--dataset", str(summarization_csv), "--no-wallclock",
                 "--max-new-tokens", "6", "--json", str(s2s_report)]) == 0
    report = json.loads(s2s_report.read_text())
    assert report["model_type"] == "hashee_bart" and "rouge" in report and report["encoder_flops_speedup"] > 1.0


def test_evaluate_refuses_a_dataset_of_the_other_kind(seq2seq_folder, tiny_csv, capsys):
    assert main(["evaluate", str(seq2seq_folder), "--dataset", str(tiny_csv), *COLUMNS, "--no-wallclock"]) == 2
    assert "seq2seq model" in capsys.readouterr().err


def test_hash_build_then_train_from_the_file(tmp_path, tiny_bert_dir, tiny_csv, capsys):
    table_file = tmp_path / "mi.safetensors"
    assert main(["hash", "build", "--dataset", str(tiny_csv), *COLUMNS, "--base-model", str(tiny_bert_dir),
                 "--hash-function", "mutual_information", "--num-buckets", "2", "--output", str(table_file)]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["hash_function"] == "mutual_information" and summary["bucket_layers"] == [1, 3]
    folder = tmp_path / "from-file"
    assert main(["train", "hashee", "--dataset", str(tiny_csv), *COLUMNS, "--output-dir", str(folder),
                 "--base-model", str(tiny_bert_dir), "--hash-table", str(table_file), *ARGS]) == 0
    config = json.loads((folder / "config.json").read_text())
    assert config["hash_function"] == "mutual_information" and config["num_buckets"] == 2


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--hash-function", "sha256"], "Unknown hash function"),
        (["--num-buckets", "9"], "num_buckets"),
        (["--hash-table", "no/such/table.safetensors"], "no/such/table.safetensors"),
        (["--gamma", "0.1"], "--gamma"),
        (["--cross-attention-init", "fresh"], "classification dataset"),
    ],
)
def test_bad_hashee_arguments_are_clear_errors(extra, message, tmp_path, tiny_bert_dir, tiny_csv, capsys):
    assert main(["train", "hashee", "--dataset", str(tiny_csv), *COLUMNS, "--output-dir", str(tmp_path / "x"),
                 "--base-model", str(tiny_bert_dir), *ARGS, *extra]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_hash_build_refuses_a_clustered_table_of_the_wrong_size(tmp_path, tiny_bert_dir, tiny_csv, capsys):
    table_file = tmp_path / "t.safetensors"
    assert main(["hash", "build", "--dataset", str(tiny_csv), *COLUMNS, "--base-model", str(tiny_bert_dir),
                 "--num-layers", "4", "--output", str(table_file)]) == 0
    capsys.readouterr()
    with pytest.raises(ValueError, match="vocab"):
        load_hash_table(table_file, vocab_size=12345)
