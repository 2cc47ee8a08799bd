"""A new user's first hour: per-method help with every default, one-line errors for every bad input a user tried
(exit status and the message's first line), and the same refusal of empty or special-token-only text from the
CLI, the model's forward and `pipeline(...)`. Fast: tiny models from tests/tiny.py, no training beyond a few steps."""

from __future__ import annotations

import re
import shutil
import socket
from pathlib import Path

import pytest
import torch
from tiny import save_tiny_tokenizer, tiny_bert_config, write_tiny_classification_csv
from transformers import AutoModelForSequenceClassification, AutoTokenizer, pipeline

from adaptive_zoo.cli import METHODS, build_parser, main
from adaptive_zoo.models.adapler import AdapLeRBertForSequenceClassification, AdapLeRConfig
from adaptive_zoo.models.deebert import DeeBertConfig, DeeBertForSequenceClassification
from adaptive_zoo.models.hashee import HashEEBertConfig, HashEEBertForSequenceClassification
from adaptive_zoo.settings import setting_fields

README = Path(__file__).resolve().parents[1] / "README.md"
# Flags of every command that are not settings of a method.
COMMAND_DESTS = {"help", "verbose"}


def error_lines(capsys) -> list[str]:
    return [line for line in capsys.readouterr().err.splitlines() if line.startswith("adaptive-zoo: error:")]


def options(parser) -> list:
    return [action for action in parser._actions if action.option_strings]


# -- help -----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", METHODS)
def test_train_method_help_lists_only_its_flags_each_with_help_and_default(method, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["train", method, "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    method_parsers = build_parser().method_parsers
    own = {flag for action in options(method_parsers[method]) for flag in action.option_strings}
    others = {flag for name, parser in method_parsers.items() if name != method
              for action in options(parser) for flag in action.option_strings} - own
    assert others, "the methods must differ"
    shown = set(re.findall(r"(?<![\w-])--[a-z][a-z-]+", text))
    assert not shown & others, f"flags of other methods in `train {method} --help`: {sorted(shown & others)}"
    assert own <= shown | {"-h", "-v"}
    assert "(default: None)" not in " ".join(text.split())
    for action in options(method_parsers[method]):
        if action.dest != "help":
            assert_documented(method_parsers[method], action)


def assert_documented(parser, action) -> None:
    """The flag has a help line that ends with its default (or it is required)."""
    flag = max(action.option_strings, key=len) if action.option_strings else action.dest
    assert action.help, f"{flag} has no help"
    if action.option_strings and not action.required and action.dest != "verbose":
        rendered = parser._get_formatter()._expand_help(action)
        assert re.search(r"\(default: [^)]+\)\.?$", rendered), f"{flag} shows no default: {rendered!r}"
        assert "(default: None)" not in rendered, flag


@pytest.mark.parametrize("command", [["quickstart"], ["evaluate"], ["push"], ["explain"], ["hash", "build"],
                                     ["loadtest"]])
def test_other_commands_document_every_flag_with_its_default(command, capsys):
    with pytest.raises(SystemExit):
        main([*command, "--help"])
    flat = " ".join(capsys.readouterr().out.split())
    assert "(default: None)" not in flat
    subparsers = build_parser()._subparsers._group_actions[0].choices
    parser = subparsers[command[0]]
    if len(command) > 1:
        parser = parser._subparsers._group_actions[0].choices[command[1]]
    assert parser.description
    for action in parser._actions:
        if action.dest != "help":
            assert_documented(parser, action)


def test_method_flags_and_parsers_agree():
    for method, parser in build_parser().method_parsers.items():
        dests = {action.dest for action in parser._actions}
        settings = {f.name for f in setting_fields(METHODS[method].settings_class) if f.metadata["flag"]}
        assert dests - COMMAND_DESTS == settings, method


def test_the_readme_commands_use_only_flags_the_parsers_know():
    parser = build_parser()
    block = README.read_text().split("## Command line", 1)[1].split("```bash", 1)[1].split("```", 1)[0]
    commands = [line.strip() for line in block.replace("\\\n", " ").splitlines() if line.startswith("adaptive-zoo ")]
    assert len(commands) >= 9
    subparsers = parser._subparsers._group_actions[0].choices
    for line in commands:
        words = line.split()
        if words[1] == "train":
            command_parser = parser.method_parsers[words[2]]
        elif words[1] == "hash":
            command_parser = subparsers["hash"]._subparsers._group_actions[0].choices[words[2]]
        else:
            command_parser = subparsers[words[1]]
        known = {flag for action in command_parser._actions for flag in action.option_strings}
        used = set(re.findall(r"(?<![\w-])--[a-z][a-z-]+", line.split("#")[0]))
        assert used <= known, f"README `{' '.join(words[:3])}` uses unknown flags {sorted(used - known)}"
        if words[1] == "evaluate":  # evaluate's flags are all in the README
            assert known - {"-h", "--help", "-v", "--verbose", "--debug"} <= used


# -- bad values: one line, exit status 2, the flag, the value and what would work ---------------------------------


@pytest.mark.parametrize(
    "argv, first_line",
    [
        (["train", "deebert", "--output-dir", "x", "--num-train-epochs", "-1"],
         "adaptive-zoo: error: --num-train-epochs must be > 0, got -1; see `adaptive-zoo train deebert --help`"),
        (["train", "deebert", "--output-dir", "x", "--max-length", "0"],
         "adaptive-zoo: error: --max-length must be >= 1, got 0; see `adaptive-zoo train deebert --help`"),
        (["train", "adapler", "--output-dir", "x", "--adaptive-epochs", "0"],
         "adaptive-zoo: error: --adaptive-epochs must be > 0, got 0; see `adaptive-zoo train adapler --help`"),
        (["train", "hashee", "--output-dir", "x", "--learning-rate", "fast"],
         "adaptive-zoo: error: --learning-rate must be a number, got 'fast'; see `adaptive-zoo train hashee --help`"),
        (["quickstart", "--num-train-epochs", "0"],
         "adaptive-zoo: error: --num-train-epochs must be > 0, got 0; see `adaptive-zoo quickstart --help`"),
        (["evaluate", "DIR", "--batch-size", "0"],
         "adaptive-zoo: error: --batch-size must be >= 1, got 0; see `adaptive-zoo evaluate --help`"),
        (["train", "deebert", "--output-dir", "x", "--gamma", "0.1"],
         "adaptive-zoo: error: `train deebert` does not take --gamma (--gamma is a flag of `train adapler`); "
         "see `adaptive-zoo train deebert --help`"),
        (["train", "deebert", "--num-train-epochs", "1"],
         "adaptive-zoo: error: the following arguments are required: --output-dir; "
         "see `adaptive-zoo train deebert --help`"),
    ],
)
def test_bad_values_are_one_line_usage_errors(argv, first_line, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.splitlines() == [first_line]  # one line: no usage block, no traceback


def test_a_missing_base_model_folder_is_named(tmp_path, capsys):
    missing = tmp_path / "nonexistent"
    assert main(["train", "deebert", "--output-dir", str(tmp_path / "x"), "--base-model", str(missing)]) == 2
    assert error_lines(capsys) == [
        f"adaptive-zoo: error: --base-model {missing}: no such local folder (and not a Hub repo id, which looks like "
        "OWNER/NAME); use 'minilm' (bundled), a local model folder or a Hub repo id"]
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("command", [["evaluate", "{missing}"], ["explain", "{missing}", "w1 w2"]])
def test_a_missing_model_folder_is_named(command, tmp_path, capsys):
    missing = tmp_path / "nonexistent"
    assert main([part.format(missing=missing) for part in command]) == 2
    assert error_lines(capsys) == [
        f"adaptive-zoo: error: {missing}: no such local folder (and not a Hub repo id, which looks like OWNER/NAME); "
        "give the folder `adaptive-zoo train` wrote or a Hub repo id"]


# -- saved folders: truncated weights, unreachable Hub, empty input ---------------------------------------------------


def save_classifier(folder: Path, kind: str = "deebert") -> Path:
    """A tiny saved classifier folder (weights, code, tokenizer) as `train` writes it, special token ids included."""
    tokenizer = save_tiny_tokenizer(folder)
    torch.manual_seed(0)
    labels = {"id2label": {0: "alpha", 1: "beta", 2: "gamma"}, "label2id": {"alpha": 0, "beta": 1, "gamma": 2}}
    if kind == "deebert":
        model = DeeBertForSequenceClassification(DeeBertConfig(**tiny_bert_config(), **labels))
    elif kind == "adapler":
        model = AdapLeRBertForSequenceClassification(AdapLeRConfig(**tiny_bert_config(), **labels))
    else:
        model = HashEEBertForSequenceClassification(HashEEBertConfig(**tiny_bert_config(), **labels))
        model.set_hash_table([1 + i % 4 for i in range(99)])
    model.config.special_token_ids = sorted(tokenizer.all_special_ids)
    model.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def classifier_folder(tmp_path_factory):
    return save_classifier(tmp_path_factory.mktemp("saved") / "deebert-tiny")


@pytest.fixture
def truncated_folder(classifier_folder, tmp_path):
    folder = tmp_path / "truncated"
    shutil.copytree(classifier_folder, folder)
    weights = folder / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2])
    return folder


@pytest.mark.parametrize("command", [["evaluate", "{folder}", "--no-wallclock"], ["push", "{folder}", "user/x"],
                                     ["explain", "{folder}", "w1 w2", "--output-dir", "{folder}"]])
def test_truncated_weights_are_named(command, truncated_folder, capsys):
    assert main([part.format(folder=truncated_folder) for part in command]) == 2
    lines = error_lines(capsys)
    assert len(lines) == 1
    assert lines[0].startswith(
        f"adaptive-zoo: error: model.safetensors in {truncated_folder} is truncated or corrupt (")


def test_truncated_base_model_weights_are_named(truncated_folder, tmp_path, capsys):
    assert main(["train", "deebert", "--output-dir", str(tmp_path / "x"), "--base-model", str(truncated_folder)]) == 2
    assert error_lines(capsys)[0].startswith(
        f"adaptive-zoo: error: --base-model {truncated_folder}: model.safetensors in {truncated_folder} is truncated "
        "or corrupt (")


def test_unreachable_hub_names_the_endpoint(classifier_folder, monkeypatch, capsys):
    import huggingface_hub.constants

    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    endpoint = f"http://127.0.0.1:{port}"
    monkeypatch.setenv("HF_ENDPOINT", endpoint)
    monkeypatch.setenv("HF_TOKEN", "hf_test")
    monkeypatch.setattr(huggingface_hub.constants, "ENDPOINT", endpoint)
    assert main(["push", str(classifier_folder), "user/x"]) == 1
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert err.startswith(f"adaptive-zoo: error: cannot reach the Hub at {endpoint} (")
    assert f"HF_ENDPOINT={endpoint}" in err


EMPTY_INPUTS = ["", "   ", "😀🎉"]  # the tiny vocabulary has no emoji: [CLS] [UNK] [UNK] [SEP]


@pytest.mark.parametrize("kind", ["deebert", "adapler", "hashee"])
def test_model_forward_and_pipeline_refuse_special_token_only_text(kind, tmp_path):
    folder = save_classifier(tmp_path / kind, kind)
    model = AutoModelForSequenceClassification.from_pretrained(folder).eval()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    classifier = pipeline("text-classification", model=model, tokenizer=tokenizer)
    assert classifier("w1 w2 w3")[0]["label"] in {"alpha", "beta", "gamma"}
    for text in EMPTY_INPUTS:
        with pytest.raises(ValueError, match=r"^Input row\(s\) \[0\] hold only special tokens"):
            model(**tokenizer([text], return_tensors="pt"))
        with pytest.raises(ValueError, match="hold only special tokens"):
            classifier(text)
    # in a padded batch only the empty row is named
    with pytest.raises(ValueError, match=r"^Input row\(s\) \[1\]"):
        model(**tokenizer(["w1 w2 w3", "😀"], return_tensors="pt", padding=True))


@pytest.mark.parametrize("text", ["😀🎉", "[UNK]"])
def test_cli_refuses_special_token_only_text(text, classifier_folder, tmp_path, capsys):
    from adaptive_zoo.data import load_task_data

    data = write_tiny_classification_csv(tmp_path / "data.csv", num_rows=30)
    with data.open("a", encoding="utf-8") as handle:
        handle.write(f"{text},alpha\n")
    columns = ["--text-column", "sentence", "--label-column", "category"]
    splits = load_task_data(str(data), seed=42, text_column="sentence", label_column="category").dataset
    split = next(name for name, rows in splits.items() if text in rows["text"])
    adapler_folder = save_classifier(tmp_path / "adapler", "adapler")
    for argv in (["evaluate", str(classifier_folder), "--dataset", str(data), *columns, "--split", split,
                  "--no-wallclock"],
                 ["explain", str(adapler_folder), text, "--output-dir", str(tmp_path)]):
        capsys.readouterr()
        assert main(argv) == 2
        lines = error_lines(capsys)
        assert len(lines) == 1 and "holds only special tokens ([CLS] [UNK]" in lines[0], lines


# -- what a run prints and leaves on disk -------------------------------------------------------------------------


def test_train_announces_each_phase_explains_new_weights_and_keeps_checkpoints_on_request(
        tiny_bert_dir, tiny_csv, tmp_path, monkeypatch, capfd):
    import adaptive_zoo.progress

    monkeypatch.setattr(adaptive_zoo.progress, "LINE_INTERVAL_S", 0.0)  # a progress line every step
    folder = tmp_path / "deebert-toy"
    assert main(["train", "deebert", "--dataset", str(tiny_csv), "--text-column", "sentence", "--label-column",
                 "category", "--output-dir", str(folder), "--base-model", str(tiny_bert_dir), "--max-length", "16",
                 "--max-train-samples", "16", "--max-eval-samples", "8", "--num-train-epochs", "1",
                 "--off-ramp-epochs", "1", "--batch-size", "8", "--keep-checkpoints"]) == 0
    err = capfd.readouterr().err
    for phase in ("[adaptive-zoo] dataset ", "[adaptive-zoo] stage 1/2 (fine-tuning backbone + final classifier): "
                  "16 examples x 1 epochs = 2 steps of 8", "[adaptive-zoo] stage 2/2 (off-ramps 1..3, backbone frozen)",
                  "[adaptive-zoo] threshold sweep on validation: ", "[adaptive-zoo] measuring on 8 texts",
                  "[adaptive-zoo] timing against the vanilla model", "[adaptive-zoo] writing the Hub folder"):
        assert phase in err, phase
    assert "off-ramps 1..3 (poolers copied from the pretrained pooler), trained in stage 2" in err
    assert "MISSING" not in err and "LOAD REPORT" not in err and "not sharded" not in err
    assert re.search(r"stage 1/2 \(fine-tuning backbone \+ final classifier\): 1/2 \(50%\), epoch 0\.50/1, "
                     r"\S+ elapsed, ETA \S+", err), err
    assert (tmp_path / "deebert-toy-training" / "stage1").is_dir()  # --keep-checkpoints


def test_a_successful_train_removes_its_checkpoints(tiny_bert_dir, tiny_csv, tmp_path, capfd):
    folder = tmp_path / "deebert-toy"
    assert main(["train", "deebert", "--dataset", str(tiny_csv), "--text-column", "sentence", "--label-column",
                 "category", "--output-dir", str(folder), "--base-model", str(tiny_bert_dir), "--max-length", "16",
                 "--max-train-samples", "16", "--max-eval-samples", "8", "--num-train-epochs", "1",
                 "--off-ramp-epochs", "1", "--batch-size", "8"]) == 0
    assert (folder / "model.safetensors").is_file()
    assert not (tmp_path / "deebert-toy-training").exists()
    assert f"removed the Trainer checkpoints in {tmp_path / 'deebert-toy-training'}" in capfd.readouterr().err
    # the saved classifier carries the special token ids its forward refuses on their own
    model = AutoModelForSequenceClassification.from_pretrained(folder)
    assert model.config.special_token_ids == [0, 1, 2, 3, 4]
    classifier = pipeline("text-classification", model=model, tokenizer=AutoTokenizer.from_pretrained(folder))
    with pytest.raises(ValueError, match="hold only special tokens"):
        classifier("")


def test_quickstart_ends_with_its_wall_and_cpu_time(tmp_path, monkeypatch, capsys):
    import adaptive_zoo.cli
    from adaptive_zoo.evaluation.reports import ClassificationReport

    def tiny_recipe(method, *, output_dir, **kwargs):  # stands in for the 45 CPU-minute recipe
        save_classifier(Path(output_dir))
        (Path(output_dir).parent / (Path(output_dir).name + "-training") / "stage1").mkdir(parents=True)
        return ClassificationReport(num_samples=2, batch_size=32, max_length=128, accuracy=0.9, baseline_accuracy=0.95,
                                    vanilla_accuracy=0.95, flops=1, vanilla_flops=2, flops_speedup=2.0)

    monkeypatch.setattr(adaptive_zoo.cli, "run_recipe", tiny_recipe)
    folder = tmp_path / "quick" / "deebert"
    assert main(["quickstart", "--output-dir", str(folder)]) == 0
    out, err = capsys.readouterr()
    assert re.search(r"quickstart done in \S+ wall-clock, \S+ CPU time", err), err
    assert re.fullmatch(rf"took [\d.]+ min wall-clock, [\d.]+ min CPU time \| model folder: {re.escape(str(folder))}",
                        out.strip().splitlines()[-1])
    assert not (tmp_path / "quick" / "deebert-training").exists()
