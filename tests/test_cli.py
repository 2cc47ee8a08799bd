"""The command-line contract, end to end on a tiny base model and a tiny local CSV: train writes a Hub-ready
folder, evaluate reports the agreed keys, push uploads it, and bad input gets a clear error."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys

import pytest
from huggingface_hub import ModelCard

from adaptive_zoo.cli import _OncePerMessage, configure_output, main
from adaptive_zoo.hub.folder import check_hub_folder

COLUMNS = ["--text-column", "sentence", "--label-column", "category"]
TRAIN_ARGS = ["--max-length", "32", "--num-train-epochs", "2", "--off-ramp-epochs", "2", "--batch-size", "8"]


@pytest.fixture(scope="module")
def trained_folder(tmp_path_factory, tiny_bert_dir, tiny_csv):
    """`adaptive-zoo train deebert` on the toy CSV, whose columns have custom names (sentence, category)."""
    folder = tmp_path_factory.mktemp("runs") / "deebert-toy"
    code = main(["train", "deebert", "--dataset", str(tiny_csv), *COLUMNS, "--output-dir", str(folder),
                 "--base-model", str(tiny_bert_dir), *TRAIN_ARGS])
    assert code == 0
    return folder


def test_train_writes_a_complete_hub_folder(trained_folder):
    check_hub_folder(trained_folder, require_tokenizer=True)
    names = set(os.listdir(trained_folder))
    assert {"config.json", "model.safetensors", "configuration_deebert.py", "modeling_deebert.py", "README.md",
            "threshold_sweep.png", "adaptive_zoo_results.json", "tokenizer.json"} <= names
    assert not any(name.startswith(".tmp") for name in os.listdir(trained_folder.parent))
    config = json.loads((trained_folder / "config.json").read_text())
    results = json.loads((trained_folder / "adaptive_zoo_results.json").read_text())
    assert config["model_type"] == "deebert"
    assert config["entropy_threshold"] == results["validation_sweep"]["chosen_threshold"]
    assert set(config["auto_map"]) == {"AutoConfig", "AutoModel", "AutoModelForSequenceClassification"}


def test_model_card_has_measured_results_and_custom_code_tag(trained_folder):
    card = ModelCard.load(trained_folder / "README.md")
    results = json.loads((trained_folder / "adaptive_zoo_results.json").read_text())["test"]
    assert "custom_code" in card.data.tags
    accuracy = [r for r in card.data.eval_results if r.metric_type == "accuracy" and r.metric_name is None]
    assert accuracy[0].metric_value == round(results["accuracy"], 4)
    assert "trust_remote_code=True" in card.text and "@inproceedings" in card.text


def test_evaluate_reports_the_agreed_keys(trained_folder, tiny_csv, tmp_path, capsys):
    report_path = tmp_path / "report.json"
    code = main(["evaluate", str(trained_folder), "--dataset", str(tiny_csv), *COLUMNS,
                 "--batch-size", "4", "--repeats", "1", "--json", str(report_path)])
    assert code == 0
    report = json.loads(report_path.read_text())
    for key in ("accuracy", "baseline_accuracy", "flops_speedup", "wallclock_speedup", "latency_speedup",
                "batch_size", "exit"):
        assert key in report, key
    assert report["batch_size"] == 4
    assert sum(report["exit"]["histogram"]) == report["num_samples"]
    assert "accuracy" in capsys.readouterr().out


def test_pipeline_text_classification_with_trust_remote_code(trained_folder):
    code = f"""
import sys
sys.modules["adaptive_zoo"] = None
from transformers import pipeline
classifier = pipeline("text-classification", model={str(trained_folder)!r}, trust_remote_code=True)
try:
    classifier(["w40 w41 " * 200])
except ValueError as error:
    assert "truncation=True" in str(error), error
else:
    raise AssertionError("an over-long input must be a clear error without truncation")
print(classifier(["w1 w2 w3", "w40 w41 " * 200], truncation=True)[1]["label"])
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] in {"alpha", "beta", "gamma"}


def test_push_command(trained_folder, loopback_hub, capsys):
    assert main(["push", str(trained_folder), "user/deebert-toy"]) == 0
    files = loopback_hub.files("user/deebert-toy")
    assert {"README.md", "modeling_deebert.py", "threshold_sweep.png", "tokenizer.json"} <= set(files)


def test_push_refuses_a_broken_folder(trained_folder, tmp_path, loopback_hub, capsys):
    broken = tmp_path / "broken"
    shutil.copytree(trained_folder, broken)
    (broken / "modeling_deebert.py").unlink()
    assert main(["push", str(broken), "user/broken"]) == 2
    assert "modeling_deebert.py" in capsys.readouterr().err
    assert "user/broken" not in loopback_hub.repo_ids()


@pytest.mark.parametrize(
    "argv, message",
    [
        (["train", "deebert", "--dataset", "no_such_dataset", "--output-dir", "{tmp}/x"], "bbc_news"),
        (["train", "deebert", "--dataset", "{csv}", "--text-column", "sentence", "--label-column", "category", "--output-dir", "{tmp}/x",
          "--base-model", "{tmp}/no_such_model"], "no_such_model"),
        (["evaluate", "{tmp}/missing_folder"], "missing_folder"),
    ],
)
def test_bad_input_is_a_clear_error(argv, message, tmp_path, tiny_csv, capsys):
    argv = [a.format(tmp=tmp_path, csv=tiny_csv) for a in argv]
    assert main(argv) == 2
    assert message.format(tmp=tmp_path) in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_evaluate_refuses_a_dataset_with_another_label_count(trained_folder, capsys):
    assert main(["evaluate", str(trained_folder), "--dataset", "bbc_news", "--no-wallclock"]) == 2
    assert "3 labels" in capsys.readouterr().err


def test_empty_text_is_refused(tmp_path, tiny_bert_dir, capsys):
    data = tmp_path / "empty.csv"
    data.write_text("text,label\n" + "".join(f"w{i} w{i + 1},{'ab'[i % 2]}\n" for i in range(20)) + "   ,a\n")
    assert main(["train", "deebert", "--dataset", str(data), "--output-dir", str(tmp_path / "out"),
                 "--base-model", str(tiny_bert_dir), *TRAIN_ARGS]) == 2
    assert "empty" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_a_failure_while_writing_leaves_no_folder(tmp_path, tiny_bert_dir, tiny_csv, monkeypatch):
    import adaptive_zoo.recipes as recipes

    def broken_card(*args, **kwargs):
        raise RuntimeError("disk full while writing the card")

    monkeypatch.setattr(recipes, "render_model_card", broken_card)
    with pytest.raises(RuntimeError):
        main(["train", "deebert", "--dataset", str(tiny_csv), *COLUMNS, "--output-dir",
              str(tmp_path / "out"), "--base-model", str(tiny_bert_dir), *TRAIN_ARGS])
    assert os.listdir(tmp_path) == ["out-training"] or not (tmp_path / "out").exists()
    assert not (tmp_path / "out").exists()


def test_repeated_generate_warnings_are_shown_once():
    """transformers repeats some `generate` warnings on every call; a benchmark makes thousands of calls."""
    generation_logger = logging.getLogger("transformers.generation.utils")
    records: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: records.append(record.getMessage())
    generation_logger.addHandler(handler)
    filters_before = list(generation_logger.filters)
    generation_logger.filters[:] = [kept for kept in filters_before if not isinstance(kept, _OncePerMessage)]
    try:
        configure_output(False)
        configure_output(False)  # a second command in the same process adds no second filter
        for _ in range(3):
            generation_logger.warning("Both `max_new_tokens` (=%d) and `max_length` seem to have been set.", 24)
        generation_logger.warning("another warning")
        assert records == ["Both `max_new_tokens` (=24) and `max_length` seem to have been set.", "another warning"]
        assert sum(isinstance(kept, _OncePerMessage) for kept in generation_logger.filters) == 1
    finally:
        generation_logger.removeHandler(handler)
        generation_logger.filters[:] = filters_before
