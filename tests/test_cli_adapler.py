"""`adaptive-zoo train adapler`: the three phases behind one command, on a tiny base model and the toy CSV."""

from __future__ import annotations

import json
import os

import pytest
import torch
from safetensors.torch import load_file

from adaptive_zoo.cli import main
from adaptive_zoo.hub.folder import check_hub_folder

COLUMNS = ["--text-column", "sentence", "--label-column", "category"]
ARGS = ["--num-train-epochs", "3", "--adaptive-epochs", "2", "--max-length", "32", "--batch-size", "8",
        "--learning-rate", "1e-3"]


@pytest.fixture(scope="module")
def adapler_folder(tmp_path_factory, tiny_bert_dir, tiny_csv):
    folder = tmp_path_factory.mktemp("runs") / "adapler-toy"
    assert main(["train", "adapler", "--dataset", str(tiny_csv), *COLUMNS, "--output-dir", str(folder),
                 "--base-model", str(tiny_bert_dir), *ARGS]) == 0
    return folder


def test_three_phases_write_a_hub_folder_with_their_records(adapler_folder):
    check_hub_folder(adapler_folder, require_tokenizer=True)
    training = adapler_folder.with_name(adapler_folder.name + "-training")
    assert {"phase1", "phase3", "saliency"} <= set(os.listdir(training))
    record = json.loads((adapler_folder / "adaptive_zoo_results.json").read_text())
    assert len(record["saliency_checkpoints"]) == 3
    assert sum(entry["chosen"] for entry in record["phase3_selection"]) == 1
    assert record["test"]["finetuned_checkpoint"] == record["saliency_checkpoints"][0]
    assert 0.0 <= record["test"]["finetuned_accuracy"] <= 1.0
    kept = record["test"]["mean_kept_tokens_per_layer"]
    assert len(kept) == 4 and all(a >= b for a, b in zip(kept, kept[1:]))
    # Every phase-3 checkpoint is measured at every eta scale, and the saved eta is the learned one scaled.
    scales = record["training"]["eta_scales"]
    assert len(record["phase3_selection"]) == 2 * len(scales)
    assert {entry["eta_scale"] for entry in record["phase3_selection"]} == set(scales)
    chosen = next(entry for entry in record["phase3_selection"] if entry["chosen"])
    assert chosen["eta_scale"] == record["eta_scale"]
    allowed = [e for e in record["phase3_selection"] if e["accuracy"] >= record["phase1_validation_accuracy"] - 0.01]
    if allowed:  # the fastest point within the 1-point budget, else the most accurate
        assert chosen["flops_speedup"] == max(e["flops_speedup"] for e in allowed)
    else:
        assert chosen["accuracy"] == max(e["accuracy"] for e in record["phase3_selection"])
    config = json.loads((adapler_folder / "config.json").read_text())
    expected = [value * record["eta_scale"] for value in record["learned_eta"]]
    torch.testing.assert_close(torch.tensor(config["eta"]), torch.tensor(expected), rtol=0, atol=1e-6)


def test_a_successful_run_keeps_only_what_reuse_needs(adapler_folder):
    training = adapler_folder.with_name(adapler_folder.name + "-training")
    assert list(training.rglob("checkpoint-*/model.safetensors")), "the checkpoints' weights stay"
    assert not list(training.rglob("optimizer.pt")) and not list(training.rglob("scheduler.pt"))


def test_phase3_only_run_reuses_phases_1_and_2(adapler_folder, tmp_path, tiny_bert_dir, tiny_csv):
    folder = tmp_path / "adapler-phase3-only"
    assert main(["train", "adapler", "--dataset", str(tiny_csv), *COLUMNS, "--output-dir", str(folder),
                 "--base-model", str(tiny_bert_dir), *ARGS, "--phi", "0.5", "--eta-scales", "1.0", "0.5",
                 "--reuse-phases-from", str(adapler_folder)]) == 0
    check_hub_folder(folder, require_tokenizer=True)
    assert set(os.listdir(folder.with_name(folder.name + "-training"))) == {"phase3"}, "phases 1-2 not rerun"
    first = json.loads((adapler_folder / "adaptive_zoo_results.json").read_text())
    record = json.loads((folder / "adaptive_zoo_results.json").read_text())
    assert record["phases_1_2_from"] == str(adapler_folder.with_name(adapler_folder.name + "-training"))
    assert record["saliency_checkpoints"] == first["saliency_checkpoints"]
    assert record["phase1_validation_accuracy"] == first["phase1_validation_accuracy"]
    assert {entry["eta_scale"] for entry in record["phase3_selection"]} == {1.0, 0.5}


def test_phase3_only_run_refuses_saliencies_of_other_data(adapler_folder, tmp_path, tiny_bert_dir, tiny_csv,
                                                          capsys):
    assert main(["train", "adapler", "--dataset", str(tiny_csv), *COLUMNS, "--output-dir", str(tmp_path / "x"),
                 "--base-model", str(tiny_bert_dir), *ARGS, "--max-train-samples", "5",  # other training data
                 "--reuse-phases-from", str(adapler_folder)]) == 2
    assert "does not match the training data" in capsys.readouterr().err
    assert not (tmp_path / "x").exists() and not (tmp_path / "x-training").exists()


def test_saved_config_carries_the_trained_eta_and_theta(adapler_folder):
    config = json.loads((adapler_folder / "config.json").read_text())
    weights = load_file(adapler_folder / "model.safetensors")
    assert config["model_type"] == "adapler"
    torch.testing.assert_close(torch.tensor(config["eta"]), weights["eta"], rtol=0, atol=1e-6)
    torch.testing.assert_close(torch.tensor(config["theta"]), weights["theta"], rtol=0, atol=1e-6)


def test_evaluate_reports_kept_tokens(adapler_folder, tiny_csv, tmp_path):
    report_path = tmp_path / "report.json"
    assert main(["evaluate", str(adapler_folder), "--dataset", str(tiny_csv), *COLUMNS, "--no-wallclock",
                 "--json", str(report_path)]) == 0
    report = json.loads(report_path.read_text())
    assert report["model_type"] == "adapler"
    assert len(report["mean_kept_tokens_per_layer"]) == 4 and report["flops_speedup"] > 0


@pytest.mark.parametrize(
    "extra, message",
    [(["--preset", "no_such_preset"], "sst2"), (["--off-ramp-epochs", "2"], "--off-ramp-epochs"),
     (["--eta-scales", "1.0", "1.5"], "eta_scales"), (["--reuse-phases-from", "no/such/run"], "No finished run")],
)
def test_bad_adapler_arguments_are_clear_errors(extra, message, tmp_path, tiny_bert_dir, tiny_csv, capsys):
    assert main(["train", "adapler", "--dataset", str(tiny_csv), *COLUMNS, "--output-dir", str(tmp_path / "x"),
                 "--base-model", str(tiny_bert_dir), *extra]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_explain_writes_html_and_png(adapler_folder, tmp_path, capsys):
    assert main(["explain", str(adapler_folder), "w1 w2 w3 w40 w41 w70", "--output-dir", str(tmp_path)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert len(report["tokens_per_layer"]) == 4
    assert (tmp_path / "explanation.html").read_text().count("Layer") >= 4
    assert (tmp_path / "explanation.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_explain_refuses_an_empty_text(adapler_folder, tmp_path, capsys):
    assert main(["explain", str(adapler_folder), "   ", "--output-dir", str(tmp_path)]) == 2
    assert "empty" in capsys.readouterr().err.lower()


def test_model_card_has_measured_results(adapler_folder):
    from huggingface_hub import ModelCard

    card = ModelCard.load(adapler_folder / "README.md")
    record = json.loads((adapler_folder / "adaptive_zoo_results.json").read_text())["test"]
    assert {"custom_code", "adapler"} <= set(card.data.tags)
    speedups = [r for r in card.data.eval_results if r.metric_name == "executed FLOPs speed-up vs vanilla"]
    assert speedups[0].metric_value == round(record["flops_speedup"], 3)
    assert "trust_remote_code=True" in card.text and "modarressi" in card.text
    assert f"{100 * record['finetuned_accuracy']:.2f}" in card.text
