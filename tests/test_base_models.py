"""Bring your own checkpoint: which base models each method starts from, and the clear, early refusal of the rest.

A pretrained BART (here a tiny random one saved with a byte-level BPE tokenizer trained in this session) starts
HashEE-BART and the Depth-Adaptive Transformer as it is, with its own tokenizer; a T5, a GPT-2, an mBART are refused
at check time, before any data is tokenized or any training runs."""

from __future__ import annotations

import json

import pytest
import torch
from tiny import (
    TEXTS,
    save_tiny_bart,
    save_tiny_tokenizer,
    tiny_roberta_config,
    write_tiny_summarization_csv,
)
from transformers import (
    AutoTokenizer,
    BartForConditionalGeneration,
    GPT2Config,
    GPT2Model,
    MBartConfig,
    MBartForConditionalGeneration,
    T5Config,
    T5ForConditionalGeneration,
)

from adaptive_zoo.cli import main
from adaptive_zoo.data import tokenize_seq2seq
from adaptive_zoo.hashing import build_hash_table
from adaptive_zoo.hub.folder import check_hub_folder
from adaptive_zoo.training.dat import build_dat
from adaptive_zoo.training.hashee import build_hashee_bart

CLASSIFIER_ARGS = ["--num-train-epochs", "1", "--max-length", "32", "--batch-size", "8", "--learning-rate", "1e-3",
                   "--max-train-samples", "16", "--max-eval-samples", "8"]
ARGS = [*CLASSIFIER_ARGS, "--max-target-length", "8"]


@pytest.fixture(scope="module")
def tiny_bart_dir(tmp_path_factory):
    return save_tiny_bart(tmp_path_factory.mktemp("tiny_bart"))


@pytest.fixture(scope="module")
def summarization_csv(tmp_path_factory):
    return write_tiny_summarization_csv(tmp_path_factory.mktemp("sum") / "toy_sum.csv")


def save_other_family(folder, family: str):
    torch.manual_seed(0)
    if family == "t5":
        T5ForConditionalGeneration(T5Config(vocab_size=99, d_model=16, d_ff=32, num_layers=1, num_heads=2,
                                            d_kv=8)).save_pretrained(folder)
    elif family == "gpt2":
        GPT2Model(GPT2Config(vocab_size=99, n_embd=16, n_layer=1, n_head=2, n_positions=64)).save_pretrained(folder)
    else:
        MBartForConditionalGeneration(MBartConfig(vocab_size=99, d_model=16, encoder_layers=1, decoder_layers=1,
                                                  encoder_attention_heads=2, decoder_attention_heads=2,
                                                  encoder_ffn_dim=32, decoder_ffn_dim=32,
                                                  max_position_embeddings=64)).save_pretrained(folder)
    save_tiny_tokenizer(folder)
    return folder


# -- refusals ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("method", "family", "dataset", "named"), [
    ("hashee", "t5", "summarization", ["'t5'", "bart", "bert"]),
    ("dat", "t5", "summarization", ["'t5'", "bart", "bert"]),
    ("dat", "mbart", "summarization", ["'mbart'", "pre-LayerNorm"]),
    ("deebert", "gpt2", "classification", ["'gpt2'", "bert"]),
    ("hashee", "gpt2", "classification", ["'gpt2'", "bert"]),
    ("adapler", "gpt2", "classification", ["'gpt2'", "bert"]),
])
def test_an_unsupported_family_is_refused_before_training_naming_the_supported_ones(
        method, family, dataset, named, tmp_path, tiny_csv, summarization_csv, capsys):
    base = save_other_family(tmp_path / family, family)
    data = (["--dataset", str(summarization_csv), *ARGS] if dataset == "summarization" else
            ["--dataset", str(tiny_csv), "--text-column", "sentence", "--label-column", "category", *CLASSIFIER_ARGS])
    output = tmp_path / "out"
    assert main(["train", method, *data, "--output-dir", str(output), "--base-model", str(base)]) == 2
    error = capsys.readouterr().err
    assert "Supported base-model families" in error and "AttributeError" not in error
    for word in named:
        assert word in error
    assert not output.exists() and not (tmp_path / "out-training").exists()  # nothing trained, nothing written


def test_a_tokenizer_that_is_not_the_models_is_refused(tmp_path, tiny_bart_dir, summarization_csv, capsys):
    folder = tmp_path / "bart-with-wordpiece"
    BartForConditionalGeneration.from_pretrained(tiny_bart_dir).save_pretrained(folder)
    save_tiny_tokenizer(folder)  # BERT's WordPiece: [PAD] is id 0, the BART pads with 1
    assert main(["train", "dat", "--dataset", str(summarization_csv), "--output-dir", str(tmp_path / "out"),
                 "--base-model", str(folder), *ARGS]) == 2
    assert "not this model's tokenizer" in capsys.readouterr().err


def test_warm_start_options_are_refused_for_a_pretrained_bart(tmp_path, tiny_bart_dir, summarization_csv, capsys):
    assert main(["train", "hashee", "--dataset", str(summarization_csv), "--output-dir", str(tmp_path / "out"),
                 "--base-model", str(tiny_bart_dir), "--cross-attention-init", "fresh", *ARGS]) == 2
    assert "pretrained BART" in capsys.readouterr().err


# -- targets end with the tokenizer's own EOS --------------------------------------------------------------------------


def test_targets_use_the_tokenizers_own_special_tokens(tiny_bart_dir, tiny_tokenizer_dir):
    from datasets import Dataset, DatasetDict

    data = DatasetDict(train=Dataset.from_dict({"text": TEXTS[:2], "summary": ["w1 w2", "w3"]}))
    bpe = AutoTokenizer.from_pretrained(tiny_bart_dir)
    labels = tokenize_seq2seq(data, bpe, 32, 8, decoder_start_token_id=2)["train"]["labels"]
    assert all(row[0] == bpe.bos_token_id and row[-1] == bpe.eos_token_id for row in labels)  # <s> ... </s>
    assert bpe.decode(labels[0], skip_special_tokens=True) == "w1 w2" and all(len(row) <= 8 for row in labels)
    wordpiece = AutoTokenizer.from_pretrained(tiny_tokenizer_dir)
    labels = tokenize_seq2seq(data, wordpiece, 32, 8, decoder_start_token_id=wordpiece.cls_token_id)["train"]["labels"]
    assert labels[0] == wordpiece("w1 w2", add_special_tokens=False)["input_ids"] + [wordpiece.sep_token_id]


# -- a pretrained BART becomes HashEE-BART / DAT, equal to it at full depth ---------------------------------------------


def adaptive_from(kind: str, bart, tokenizer):
    if kind == "dat":
        return build_dat(bart, exit_prediction="multinomial")
    table = build_hash_table("frequency", tokenizer=tokenizer, num_layers=bart.config.encoder_layers,
                             num_buckets=bart.config.encoder_layers, texts=TEXTS, max_length=32)
    return build_hashee_bart(bart, table, tokenizer.all_special_ids)


@pytest.mark.parametrize("kind", ["hashee", "dat"])
def test_converted_bart_at_full_depth_is_the_vanilla_bart(kind, tiny_bart_dir):
    tokenizer = AutoTokenizer.from_pretrained(tiny_bart_dir)
    bart = BartForConditionalGeneration.from_pretrained(tiny_bart_dir).eval()
    model = adaptive_from(kind, bart, tokenizer).eval()
    model.config.adaptive = False
    inputs = tokenizer(TEXTS, return_tensors="pt", padding=True)
    decoder_input_ids = tokenizer(["w1 w2 w3"] * len(TEXTS), return_tensors="pt")["input_ids"]
    with torch.no_grad():
        expected = bart(**inputs, decoder_input_ids=decoder_input_ids).logits
        got = model(**inputs, decoder_input_ids=decoder_input_ids).logits
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-5)
    options = dict(max_new_tokens=8, do_sample=False, num_beams=1)
    assert torch.equal(model.generate(**inputs, **options), bart.generate(**inputs, **options))
    model.config.adaptive = True  # and the adaptive model does differ (the parts are really there)
    with torch.no_grad():
        assert not torch.allclose(model(**inputs, decoder_input_ids=decoder_input_ids).logits, expected)


# -- end to end --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["dat"])  # HashEE-BART takes the same path (`methods.tasks.seq2seq_base`)
def test_train_from_a_pretrained_bart_keeps_its_weights_and_tokenizer(method, tmp_path, tiny_bart_dir,
                                                                    summarization_csv):
    folder = tmp_path / method
    # DAT keeps the BART's lowest 2 of 3 decoder layers (`--decoder-layers`), as it keeps BERT's lowest layers.
    extra = ["--exit-prediction", "multinomial", "--decoder-layers", "2"] if method == "dat" else []
    decoder_layers = 2 if method == "dat" else 3
    assert main(["train", method, "--dataset", str(summarization_csv), "--output-dir", str(folder),
                 "--base-model", str(tiny_bart_dir), *extra, *ARGS]) == 0
    check_hub_folder(folder, require_tokenizer=True)
    record = json.loads((folder / "adaptive_zoo_results.json").read_text())
    bart = BartForConditionalGeneration.from_pretrained(tiny_bart_dir)
    kept = sum(p.numel() for name, p in bart.named_parameters()
               if not name.startswith(tuple(f"model.decoder.layers.{i}." for i in range(decoder_layers, 3))))
    assert record["warm_start"] == {"pretrained": kept, "fresh": 0, "base_bart": str(tiny_bart_dir)}
    assert record["fresh_process_load"]
    config = json.loads((folder / "config.json").read_text())
    assert (config["d_model"], config["encoder_layers"], config["decoder_layers"]) == (32, 3, decoder_layers)
    assert (config["pad_token_id"], config["eos_token_id"], config["decoder_start_token_id"]) == (1, 2, 2)
    saved = AutoTokenizer.from_pretrained(folder, trust_remote_code=False)
    assert saved.get_vocab() == AutoTokenizer.from_pretrained(tiny_bart_dir).get_vocab()
    card = (folder / "README.md").read_text()
    assert str(tiny_bart_dir) in card and "pretrained BART checkpoint" in card


# -- RoBERTa -----------------------------------------------------------------------------------------------------------


# One method end to end; HashEE-RoBERTa and AdapLeR-RoBERTa are built by the same family tables
# (`training/hashee.py`, `training/adapler.py`) and checked through the shared mixins (fresh-process load included).
@pytest.mark.parametrize(("method", "model_type", "extra"), [
    ("deebert", "deeroberta", ["--off-ramp-epochs", "1"]),
])
def test_classifier_methods_train_from_a_roberta_checkpoint(method, model_type, extra, tmp_path, tiny_csv):
    from tiny import save_tiny_roberta

    base = save_tiny_roberta(tmp_path / "roberta")
    folder = tmp_path / method
    assert main(["train", method, "--dataset", str(tiny_csv), "--text-column", "sentence", "--label-column",
                 "category", "--output-dir", str(folder), "--base-model", str(base), *extra, *CLASSIFIER_ARGS]) == 0
    check_hub_folder(folder, require_tokenizer=True)
    config = json.loads((folder / "config.json").read_text())
    assert config["model_type"] == model_type and "Roberta" in config["auto_map"]["AutoModel"]
    record = json.loads((folder / "adaptive_zoo_results.json").read_text())
    assert record["fresh_process_load"] and record["test"]["flops_speedup"] >= 1.0
    assert "vanilla `RobertaForSequenceClassification`" in (folder / "README.md").read_text()


@pytest.mark.parametrize("family", ["xlm-roberta", "electra"])
def test_other_bert_shaped_encoders_are_refused_by_name(family, tmp_path, tiny_csv, capsys):
    from transformers import AutoConfig, AutoModel

    base = tmp_path / family
    AutoModel.from_config(AutoConfig.for_model(family, **tiny_roberta_config())).save_pretrained(base)
    save_tiny_tokenizer(base)
    assert main(["train", "deebert", "--dataset", str(tiny_csv), "--text-column", "sentence", "--label-column",
                 "category", "--output-dir", str(tmp_path / "out"), "--base-model", str(base),
                 *CLASSIFIER_ARGS]) == 2
    error = capsys.readouterr().err
    assert f"'{family}' model" in error and "Supported base-model families for this run: bert" in error
    assert {"electra": "no pooler", "xlm-roberta": "no XLM-RoBERTa family yet"}[family] in error  # the reason


def test_readme_lists_the_base_families_each_method_accepts():
    from pathlib import Path
    from types import SimpleNamespace

    from adaptive_zoo.methods import METHODS

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = readme.split("## Bring your own checkpoint")[1].split("\n## ")[0]
    names = {"bert": "BERT", "roberta": "RoBERTa", "bart": "BART"}
    for name, method in METHODS.items():
        rows = "\n".join(line for line in section.splitlines() if f"`train {name}`" in line)
        for task in method.tasks:
            run = SimpleNamespace(task=SimpleNamespace(task=task))
            for family in method.accepted_base_families(run):
                assert names[family] in rows, f"README does not list {family} for {name}"
