"""`adaptive-zoo` command line: train, evaluate, calibrate, explain, hash build, push, quickstart.

Progress goes to stderr as the work runs (one line per phase with its size; the Trainer's bars on a terminal, a
compact line with an ETA otherwise); the report goes to stdout. A bad command line or bad input is one line on
stderr and exit status 2; an unreachable Hub is exit status 1. `-v` (or `--debug`) adds tracebacks and
transformers' own logs.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import resource
import sys
import time
import traceback
from dataclasses import MISSING, fields
from pathlib import Path
from typing import Any

import datasets
import transformers
from huggingface_hub.errors import StrictDataclassError
from transformers import AutoConfig, AutoModelForSeq2SeqLM, AutoModelForSequenceClassification, AutoTokenizer

from .backbones import base_model_problem, looks_like_hub_repo_id, resolve_base_model
from .calibrate import CalibrationSettings, calibrate_folder
from .data import KNOWN_DATASETS, check_label_count, load_task_data, select_first
from .evaluation.classification import evaluate_classifier, mean_token_exit
from .evaluation.explain import explain_text, render_html, render_png
from .evaluation.seq2seq import evaluate_seq2seq
from .hashing import build_hash_table, save_hash_table
from .hub.folder import check_hub_folder
from .hub.push import push_folder
from .hub.verify import verify_fresh_process_load
from .progress import announce, bars_enabled, duration
from .recipes import train_adapler_recipe, train_dat_recipe, train_deebert_recipe, train_hashee_recipe
from .training.adapler import AdapLeRTrainingArguments
from .training.common import remove_trainer_checkpoints, trainer_work_dir
from .training.dat import DATTrainingArguments
from .training.deebert import DeeBertTrainingArguments
from .training.hashee import HashEETrainingArguments, input_embeddings_for

METHODS = ("deebert", "adapler", "hashee", "dat")
# The dataset `train` uses when --dataset is not given.
DEFAULT_TRAIN_DATASETS = {"dat": "bbc_headlines"}
QUICKSTART_OUTPUT_DIR = "adaptive-zoo-quickstart/deebert-minilm-bbc_news"
HELP_HINT = "see `{prog} --help`"


class UsageError(Exception):
    """A command line that cannot run as given: reported in one line, exit status 2."""


# -- value checks: each names the flag, the value and what would work ---------------------------------------------


def _number(value: str, kind: type) -> int | float:
    try:
        return kind(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be {'an integer' if kind is int else 'a number'}, got {value!r}")


def _positive_int(value: str) -> int:
    number = _number(value, int)
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return number


def _positive_float(value: str) -> float:
    number = _number(value, float)
    if not number > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {value}")
    return number


def _non_negative_float(value: str) -> float:
    number = _number(value, float)
    if not number >= 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return number


def _one_line_usage_error(message: str) -> str:
    """argparse's "argument --max-length: must be >= 1, got 0" as "--max-length must be >= 1, got 0"."""
    match = re.match(r"argument (\S+): (.*)", message, flags=re.DOTALL)
    if match is None:
        return message
    names = match.group(1).split("/")
    flag = next((name for name in names if name.startswith("--")), names[0])
    detail = match.group(2)
    return f"{flag} {detail}" if detail.startswith("must ") else f"{flag}: {detail}"


class _HelpFormatter(argparse.HelpFormatter):
    """Every flag's help ends with its default, unless the help already says it."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if not action.option_strings or "default" in text or action.default is argparse.SUPPRESS or action.required:
            return text
        default = "off" if action.nargs == 0 else "%(default)s"  # nargs 0: an on/off switch
        return f"{text[:-1]} (default: {default})." if text.endswith(".") else f"{text} (default: {default})"


class _Parser(argparse.ArgumentParser):
    """Errors are one line (no usage block) and point to this command's --help."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", _HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str):
        raise UsageError(f"{_one_line_usage_error(message)}; {HELP_HINT.format(prog=self.prog)}")


def _verbosity_flags(parser: argparse.ArgumentParser, default: Any) -> None:
    parser.add_argument("-v", "--verbose", "--debug", dest="verbose", action="store_true", default=default,
                        help="Tracebacks on errors, INFO logs and transformers' own reports.")


def _subcommand(subparsers, name: str, help: str, description: str | None = None, epilog: str | None = None):
    parser = subparsers.add_parser(name, help=help, description=description or help, epilog=epilog)
    _verbosity_flags(parser, argparse.SUPPRESS)  # also accepted after the subcommand
    return parser


def _add_column_arguments(parser) -> None:
    parser.add_argument("--text-column", default=None, help="Text column of a local file (default: text).")
    parser.add_argument("--label-column", default=None,
                        help="Label (classification) or summary (summarization) column of a local file "
                        "(default: label, or summary).")


# -- train: common flags, then one function per method ----------------------------------------------------------


def _training_defaults(method: str) -> dict[str, Any]:
    """The defaults of a method's training settings, read from its settings dataclass (the one source of them)."""
    settings = {"deebert": DeeBertTrainingArguments, "adapler": AdapLeRTrainingArguments,
                "hashee": HashEETrainingArguments, "dat": DATTrainingArguments}[method]
    defaults = {field.name: field.default for field in fields(settings) if field.default is not MISSING}
    if method == "dat":  # None there means "the class default"
        defaults["compute_budget"] = DATTrainingArguments.DEFAULT_COMPUTE_BUDGET
        defaults["threshold_trials"] = DATTrainingArguments.DEFAULT_THRESHOLD_TRIALS
    return defaults


def _add_common_train_arguments(parser, method: str, defaults: dict[str, Any]) -> None:
    data = parser.add_argument_group("data and output")
    data.add_argument("--dataset", default=None, metavar="NAME_OR_FILE",
                      help=f"A bundled dataset ({', '.join(sorted(KNOWN_DATASETS))}), a local CSV/JSON/Parquet file, "
                      f"or a Hub dataset id (default: {DEFAULT_TRAIN_DATASETS.get(method, 'bbc_news')}).")
    _add_column_arguments(data)
    data.add_argument("--output-dir", required=True, metavar="DIR",
                      help="The Hub-ready folder to write (replaced atomically when the run succeeds). Trainer "
                      "checkpoints go to OUTPUT_DIR-training beside it.")
    data.add_argument("--base-model", default="minilm", metavar="NAME_OR_DIR",
                      help="'minilm' (sentence-transformers/all-MiniLM-L6-v2, bundled), a local BERT folder, or a Hub "
                      "repo id.")
    data.add_argument("--max-train-samples", type=_positive_int, default=None, metavar="N",
                      help="Use only the first N training examples (default: all).")
    data.add_argument("--max-eval-samples", type=_positive_int, default=None, metavar="N",
                      help="Use only the first N validation and test examples, for tuning and measurement "
                      "(default: all).")
    what_epochs = {"deebert": "Stage 1 (backbone + final classifier) epochs",
                   "adapler": "Phase 1 (fine-tuning) epochs",
                   "hashee": "Fine-tuning epochs, token exits on",
                   "dat": "Fine-tuning epochs"}[method]
    what_length = {"deebert": "Input tokens", "adapler": "Input tokens",
                   "hashee": "Input tokens (summarization: source tokens)", "dat": "Source tokens"}[method]
    training = parser.add_argument_group("training")
    training.add_argument("--num-train-epochs", type=_positive_float, default=None, metavar="E",
                          help=f"{what_epochs} (default: {defaults['num_train_epochs']:g}).")
    training.add_argument("--learning-rate", type=_positive_float, default=None, metavar="LR",
                          help=f"Fine-tuning learning rate (default: {defaults['learning_rate']:g}).")
    training.add_argument("--max-length", type=_positive_int, default=None, metavar="L",
                          help=f"{what_length}: longer texts are truncated. Saved as the tokenizer's "
                          f"model_max_length, so pipelines truncate to it too (default: {defaults['max_length']}).")
    training.add_argument("--batch-size", type=_positive_int, default=None, metavar="B",
                          help=f"Training batch size per device (default: {defaults['batch_size']}).")
    training.add_argument("--seed", type=int, default=None,
                          help=f"Seed of the data split, the new weights and training (default: {defaults['seed']}).")
    removed = ("only the checkpoints' optimizer states are removed: their weights and the saliencies stay for "
               "--reuse-phases-from" if method == "adapler" else "that folder is removed")
    training.add_argument("--keep-checkpoints", action="store_true",
                          help=f"Keep the Trainer checkpoints in OUTPUT_DIR-training after a successful run; without "
                          f"it, {removed}.")


def _add_accuracy_budget(group, reference: str) -> None:
    group.add_argument("--accuracy-budget", type=_non_negative_float, default=1.0,
                       help=f"Accuracy points the adaptive model may lose on validation against {reference}.")


def _add_deebert_arguments(parser, defaults: dict[str, Any]) -> None:
    group = parser.add_argument_group("DeeBERT")
    group.add_argument("--off-ramp-epochs", type=_positive_float, default=None, metavar="E",
                       help="Stage 2 (off-ramps only, backbone frozen) epochs "
                       f"(default: {defaults['off_ramp_epochs']:g}).")
    group.add_argument("--off-ramp-learning-rate", type=_positive_float, default=None, metavar="LR",
                       help=f"Stage 2 learning rate (default: {defaults['off_ramp_learning_rate']:g}).")
    group.add_argument("--off-ramp-pooling", choices=("auto", "cls", "mean"), default=None,
                       help="Off-ramp input: [CLS] (the paper) or the token mean; auto = the backbone's own pooling "
                       "(mean for MiniLM) (default: auto).")
    _add_accuracy_budget(group, "full depth (chooses the entropy threshold)")


def _add_adapler_arguments(parser, defaults: dict[str, Any]) -> None:
    group = parser.add_argument_group("AdapLeR (a --preset changes the defaults of the flags it sets)")
    group.add_argument("--preset", default=None,
                       help="The paper's hyperparameters for a dataset (Tables 3-4): sst2, imdb, hatexplain, mrpc, "
                       "mnli, qnli, ag_news, dbpedia; explicit flags override it (default: none).")
    group.add_argument("--adaptive-epochs", type=_positive_float, default=None, metavar="E",
                       help=f"Phase 3 epochs; lambda grows each (default: {defaults['adaptive_epochs']:g}).")
    group.add_argument("--adaptive-learning-rate", type=_positive_float, default=None, metavar="LR",
                       help=f"Phase 3 learning rate of the weights (default: {defaults['adaptive_learning_rate']:g}).")
    group.add_argument("--eta-theta-learning-rate", type=_positive_float, default=None, metavar="LR",
                       help="Phase 3 learning rate of eta and theta "
                       f"(default: {defaults['eta_theta_learning_rate']:g}).")
    group.add_argument("--contribution-predictor-learning-rate", type=_positive_float, default=None, metavar="LR",
                       help="Phase 3 learning rate of the contribution predictors; the paper's code uses "
                       "--adaptive-learning-rate (default: "
                       f"{defaults['contribution_predictor_learning_rate']:g}).")
    group.add_argument("--eta-scales", type=float, nargs="+", default=None,
                       help="Factors in (0, 1] the learned eta may be scaled by when the operating point is chosen on "
                       "validation; 1.0 alone keeps the paper's learned eta (default: "
                       f"{' '.join(f'{v:g}' for v in defaults['eta_scales'])}).")
    group.add_argument("--reuse-phases-from", default=None,
                       help="Output folder of an earlier run on the same data: reuse its phase-1 checkpoints and "
                       "saliencies, run phase 3 only (default: run all three phases).")
    group.add_argument("--gamma", type=_non_negative_float, default=None,
                       help=f"Weight of the contribution-predictor loss, eq. 5 (default: {defaults['gamma']:g}).")
    group.add_argument("--phi", type=_non_negative_float, default=None,
                       help=f"Weight of the length loss, eq. 8 (default: {defaults['phi']:g}).")
    group.add_argument("--lambda-init", type=_positive_float, default=None,
                       help=f"Initial lambda of the soft removal (default: {defaults['lambda_init']:g}).")
    group.add_argument("--lambda-growth", type=_positive_float, default=None,
                       help=f"lambda = init * growth ** epoch (default: {defaults['lambda_growth']:g}).")
    _add_accuracy_budget(group, "phase 1 (chooses the operating point)")


def _add_seq2seq_arguments(group, defaults: dict[str, Any]) -> None:
    group.add_argument("--max-target-length", type=_positive_int, default=None,
                       help=f"Summary tokens in training, and new tokens when generating (summarization) (default: "
                       f"{defaults['max_target_length']}).")
    group.add_argument("--num-beams", type=_positive_int, default=None,
                       help="Beams when generating for measurement (summarization) "
                       f"(default: {defaults['num_beams']}).")
    group.add_argument("--cross-attention-init", default=None,
                       help="Warm start of the BART (summarization): self_attention (each decoder layer's "
                       "cross-attention starts as a copy of its BERT self-attention) or fresh (random, as bert2bert) "
                       "(default: self_attention).")


def _add_hashee_arguments(parser, defaults: dict[str, Any]) -> None:
    group = parser.add_argument_group("HashEE (a classification dataset gives HashEE-BERT, a summarization one "
                                      "HashEE-BART)")
    group.add_argument("--hash-function", default=None,
                       help="frequency, frequency_mass, mutual_information, clustered, random or random_inconsistent "
                       f"(default: {defaults['hash_function']}).")
    group.add_argument("--num-buckets", type=_positive_int, default=None,
                       help="B, the number of distinct exit layers (default: one per encoder layer).")
    group.add_argument("--hash-table", default=None,
                       help="A table file from `adaptive-zoo hash build` (default: built from the training split).")
    group.add_argument("--train-vanilla", action="store_true", default=None,
                       help="Also fine-tune the backbone the same way without exits (the paper's baseline).")
    _add_seq2seq_arguments(group, defaults)


def _add_dat_arguments(parser, defaults: dict[str, Any]) -> None:
    group = parser.add_argument_group("Depth-Adaptive Transformer (values are checked by the model's config)")
    group.add_argument("--exit-prediction", default=None,
                       help="sequence, multinomial, geometric, or confidence (thresholds tuned on validation) "
                       f"(default: {defaults['exit_prediction']}).")
    group.add_argument("--oracle", default=None,
                       help=f"What learned exits are trained towards: likelihood or correctness (default: "
                       f"{defaults['oracle']}).")
    group.add_argument("--oracle-sigma", type=float, default=None,
                       help=f"sigma > 0 of the token oracles' smoothing (default: {defaults['oracle_sigma']:g}).")
    group.add_argument("--oracle-depth-penalty", type=float, default=None,
                       help="lambda >= 0: larger values make the oracle (and the predictor) exit earlier (default: "
                       f"{defaults['oracle_depth_penalty']:g}).")
    group.add_argument("--exit-loss-weight", type=float, default=None,
                       help=f"alpha in L = L_dec + alpha L_exit (default: {defaults['exit_loss_weight']:g}).")
    group.add_argument("--training-regime", default=None,
                       help=f"aligned or mixed (default: {defaults['training_regime']}).")
    group.add_argument("--num-mixed-samples", type=int, default=None,
                       help="M, sampled exit sequences in the mixed regime "
                       f"(default: {defaults['num_mixed_samples']}).")
    group.add_argument("--decoder-layers", type=int, default=None,
                       help="N decoder blocks, >= 2 and at most the base model's layers (default: all of them).")
    group.add_argument("--encoder-layers", type=int, default=None,
                       help="Keep only the base model's lowest K layers in the encoder, for a decoder-heavy model "
                       "(default: all of them).")
    group.add_argument("--from-scratch", action="store_true", default=None,
                       help="A randomly initialised BART of the same shape instead of the warm start from BERT.")
    group.add_argument("--compute-budget", type=float, default=None,
                       help="confidence only: the largest average exit allowed, as a fraction of N (default: "
                       f"{defaults['compute_budget']:g}).")
    group.add_argument("--threshold-trials", type=int, default=None,
                       help="confidence only: random threshold settings tried on validation (default: "
                       f"{defaults['threshold_trials']}).")
    _add_seq2seq_arguments(group, defaults)


METHOD_ARGUMENTS = {"deebert": _add_deebert_arguments, "adapler": _add_adapler_arguments,
                    "hashee": _add_hashee_arguments, "dat": _add_dat_arguments}
METHOD_DESCRIPTIONS = {
    "deebert": "DeeBERT (Xin et al., 2020): stage 1 fine-tunes the backbone and final classifier, stage 2 trains an "
    "off-ramp after every layer; the entropy threshold is chosen on validation within --accuracy-budget, then "
    "accuracy and speed-ups against vanilla BERT are measured on test.",
    "adapler": "AdapLeR (Modarressi et al., 2022): phase 1 fine-tunes, phase 2 extracts saliencies from the 3 best "
    "checkpoints, phase 3 trains the contribution predictors with soft token removal; the operating point is "
    "chosen on validation within --accuracy-budget.",
    "hashee": "HashEE (Sun et al., 2022): a hash table sends each token id to its exit layer; fine-tuned with the "
    "exits on. A classification dataset gives HashEE-BERT, a summarization dataset HashEE-BART warm-started from "
    "the BERT base model.",
    "dat": "Depth-Adaptive Transformer (Elbayad et al., 2020): a BART warm-started from the BERT base model whose "
    "decoder picks a depth per sequence or per token; fine-tuned with Seq2SeqTrainer on a summarization dataset.",
}


def _add_train_parser(subparsers) -> dict[str, argparse.ArgumentParser]:
    train = _subcommand(subparsers, "train", "Train a model and write a Hub-ready folder.",
                        epilog="Run `adaptive-zoo train METHOD --help` for a method's flags.")
    methods = train.add_subparsers(dest="method", required=True, metavar="METHOD",
                                   parser_class=_Parser, title="methods")
    parsers = {}
    for method in METHODS:
        defaults = _training_defaults(method)
        parser = _subcommand(methods, method, METHOD_DESCRIPTIONS[method].split(":")[0] + ".",
                             description=METHOD_DESCRIPTIONS[method])
        _add_common_train_arguments(parser, method, defaults)
        METHOD_ARGUMENTS[method](parser, defaults)
        parsers[method] = parser
    return parsers


def _add_evaluate_parser(subparsers) -> None:
    evaluate = _subcommand(
        subparsers, "evaluate", "Measure accuracy (or ROUGE) and real speed-ups of a saved model.",
        description="Measure a saved model on a dataset split: accuracy (summarization: ROUGE, BLEU) of the adaptive "
        "model, of the same weights at full depth and of the vanilla transformers model, executed-FLOPs speed-ups, "
        "and wall-clock speed-ups (throughput at --batch-size, latency at batch 1, interleaved repeats).",
    )
    evaluate.add_argument("model", help="A saved folder or Hub repo id.")
    evaluate.add_argument("--dataset", default="bbc_news",
                          help="A bundled dataset, a local CSV/JSON/Parquet file, or a Hub dataset id.")
    _add_column_arguments(evaluate)
    evaluate.add_argument("--split", default="test", choices=("train", "validation", "test"),
                          help="The split measured.")
    evaluate.add_argument("--batch-size", type=_positive_int, default=32, metavar="B",
                          help="Batch size of accuracy and throughput.")
    evaluate.add_argument("--max-eval-samples", type=_positive_int, default=None, metavar="N",
                          help="Measure only the first N examples of the split (default: all).")
    evaluate.add_argument("--max-length", type=_positive_int, default=None, metavar="L",
                          help="Input tokens (default: the saved tokenizer's model_max_length, the training length).")
    evaluate.add_argument("--repeats", type=_positive_int, default=5, help="Interleaved timing repetitions.")
    evaluate.add_argument("--no-wallclock", action="store_true", help="Skip timing (accuracy and FLOPs only).")
    evaluate.add_argument("--max-new-tokens", type=_positive_int, default=32, help="Summarization: generated tokens.")
    evaluate.add_argument("--num-beams", type=_positive_int, default=1, help="Summarization: beams.")
    evaluate.add_argument("--seed", type=int, default=42,
                          help="Seed of the dataset split (the one training used, to measure the same test split).")
    evaluate.add_argument("--json", dest="json_path", default=None,
                          help="Also write the report to this file (default: stdout only).")


def _add_calibrate_parser(subparsers) -> None:
    calibrate = _subcommand(
        subparsers, "calibrate",
        "Re-tune a saved model's operating point on validation data (after its weights changed).",
        description="Choose a saved model's operating point anew on a dataset split and write it back: DeeBERT's "
        "entropy threshold S, the scale of AdapLeR's learned eta, or a Depth-Adaptive Transformer's confidence "
        "thresholds T_n. Run it after fine-tuning a zoo model with a stock Trainer script, which flags the old point "
        "stale (`operating_point_stale` in config.json). The folder is rewritten atomically; every point measured is "
        "recorded in adaptive_zoo_results.json (`calibrations`).",
    )
    calibrate.add_argument("model", help="A saved folder (rewritten in place) or a Hub repo id (needs --output-dir).")
    calibrate.add_argument("--dataset", required=True,
                           help="A bundled dataset, a local CSV/JSON/Parquet file, or a Hub dataset id.")
    _add_column_arguments(calibrate)
    calibrate.add_argument("--split", default="validation", choices=("train", "validation", "test"),
                           help="The split to tune on (never tune on the split you report).")
    calibrate.add_argument("--accuracy-budget", type=_non_negative_float, default=1.0, metavar="POINTS",
                           help="Classifiers: accuracy points the adaptive model may lose against the same weights "
                           "at full depth.")
    calibrate.add_argument("--compute-budget", type=_positive_float, default=None, metavar="FRACTION",
                           help="Depth-Adaptive Transformer: the largest average exit, as a fraction of the decoder's "
                           "depth (default: 0.5).")
    calibrate.add_argument("--threshold-trials", type=_positive_int, default=None, metavar="N",
                           help="Depth-Adaptive Transformer: random threshold settings to try (default: 100).")
    calibrate.add_argument("--max-eval-samples", type=_positive_int, default=None, metavar="N",
                           help="Tune on only the first N examples of the split (default: all).")
    calibrate.add_argument("--batch-size", type=_positive_int, default=32, metavar="B", help="Evaluation batch size.")
    calibrate.add_argument("--max-length", type=_positive_int, default=None, metavar="L",
                           help="Input tokens (default: the saved tokenizer's model_max_length, the training length).")
    calibrate.add_argument("--seed", type=int, default=42,
                           help="Seed of the dataset split (the one training used).")
    calibrate.add_argument("--output-dir", default=None,
                           help="Write the calibrated model here instead of over MODEL (default: MODEL itself).")


def _add_quickstart_parser(subparsers) -> None:
    quickstart = _subcommand(
        subparsers, "quickstart",
        "The main job: DeeBERT on bbc_news from MiniLM, measured, saved, checked to load.",
        description="Train DeeBERT on the bundled BBC News data from the bundled MiniLM encoder (`train deebert` with "
        "its defaults), choose the entropy threshold on validation, measure test accuracy and speed-ups against "
        "vanilla BERT, write a Hub-ready folder and check that it loads in a fresh process with trust_remote_code. "
        "Prints the wall and CPU time it took at the end (measured: see the README).",
    )
    quickstart.add_argument("--output-dir", default=QUICKSTART_OUTPUT_DIR, help="The Hub-ready folder to write.")
    quickstart.add_argument("--max-train-samples", type=_positive_int, default=None, metavar="N",
                            help="Use only the first N training articles (default: all 1,672).")
    quickstart.add_argument("--max-eval-samples", type=_positive_int, default=None, metavar="N",
                            help="Use only the first N validation and test articles (default: all 210 each).")
    quickstart.add_argument("--num-train-epochs", type=_positive_float, default=2.0, metavar="E",
                            help="Stage 1 (backbone + final classifier) epochs.")
    quickstart.add_argument("--off-ramp-epochs", type=_positive_float, default=2.0, metavar="E",
                            help="Stage 2 (off-ramps) epochs.")
    quickstart.add_argument("--keep-checkpoints", action="store_true",
                            help="Keep the Trainer checkpoints in OUTPUT_DIR-training after a successful run.")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="adaptive-zoo", description=__doc__)
    _verbosity_flags(parser, False)
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Parser,
                                       title="commands")
    parser.method_parsers = _add_train_parser(subparsers)
    _add_evaluate_parser(subparsers)
    _add_calibrate_parser(subparsers)

    explain = _subcommand(subparsers, "explain",
                          "Show which tokens survive each layer of a token-dropping model (AdapLeR), as HTML and PNG.")
    explain.add_argument("model", help="A saved folder or Hub repo id.")
    explain.add_argument("text", help="The text to explain.")
    explain.add_argument("--output-dir", default=".", help="Where explanation.html and explanation.png go.")
    explain.add_argument("--max-length", type=_positive_int, default=None, metavar="L",
                         help="Input tokens (default: the saved tokenizer's model_max_length).")

    hash_parser = _subcommand(subparsers, "hash", "HashEE hash tables (token id -> exit layer).")
    hash_commands = hash_parser.add_subparsers(dest="hash_command", required=True, metavar="COMMAND",
                                               parser_class=_Parser)
    build = _subcommand(hash_commands, "build", "Build a table from a dataset's training split and save it.")
    build.add_argument("--dataset", default="tweet_sentiment",
                       help="A bundled dataset, a local CSV/JSON/Parquet file, or a Hub dataset id.")
    _add_column_arguments(build)
    build.add_argument("--base-model", default="minilm", help="Its tokenizer, layer count and (clustered) embeddings.")
    build.add_argument("--hash-function", default="frequency",
                       help="frequency, frequency_mass, mutual_information, clustered, random or random_inconsistent.")
    build.add_argument("--num-buckets", type=_positive_int, default=None,
                       help="B, the number of distinct exit layers (default: one per layer).")
    build.add_argument("--num-layers", type=_positive_int, default=None, help="L (default: the base model's).")
    build.add_argument("--max-length", type=_positive_int, default=None, metavar="L",
                       help="Tokens per text counted (default: the tokenizer's model_max_length).")
    build.add_argument("--max-train-samples", type=_positive_int, default=None, metavar="N",
                       help="Use only the first N training examples (default: all).")
    build.add_argument("--seed", type=int, default=42, help="Seed of the dataset split.")
    build.add_argument("--output", default="hash_table.safetensors", help="The table file to write.")

    push = _subcommand(subparsers, "push", "Upload a saved folder to the Hub as one commit.",
                       description="Upload a saved folder to the Hub (HF_ENDPOINT, default https://huggingface.co) as "
                       "one commit, after checking that it is complete; uses your `hf auth login` token or HF_TOKEN.")
    push.add_argument("folder", help="A folder written by `adaptive-zoo train` or `quickstart`.")
    push.add_argument("repo_id", help="OWNER/NAME on the Hub (created if needed).")
    push.add_argument("--private", action="store_true", help="Create the repo private (a new repo only).")
    push.add_argument("--commit-message", default=None,
                      help="The commit message (default: Upload FOLDER with adaptive-zoo).")

    _add_quickstart_parser(subparsers)
    return parser


def parse_arguments(parser: argparse.ArgumentParser, argv: list[str] | None) -> argparse.Namespace:
    """Parse `argv`; a flag of another `train` method, or any unknown flag, is a one-line UsageError."""
    args, extras = parser.parse_known_args(argv)
    if not extras:
        return args
    prog = "adaptive-zoo " + " ".join(p for p in (args.command, getattr(args, "method", None),
                                                   getattr(args, "hash_command", None)) if p)
    flags = [extra.split("=", 1)[0] for extra in extras if extra.startswith("-")]
    if args.command == "train" and flags:
        owners = {flag: [method for method, method_parser in parser.method_parsers.items()
                         if flag in method_parser._option_string_actions] for flag in flags}
        foreign = [flag for flag in flags if owners[flag]]
        if foreign:
            of = "; ".join(f"{flag} is a flag of `train {'/'.join(owners[flag])}`" for flag in foreign)
            raise UsageError(f"`train {args.method}` does not take {', '.join(foreign)} ({of}); "
                             f"{HELP_HINT.format(prog=prog)}")
    raise UsageError(f"unrecognized arguments: {' '.join(extras)}; {HELP_HINT.format(prog=prog)}")


# Which training flags each method passes to its recipe (the CLI name of each is the flag with dashes).
METHOD_FLAGS = {
    "deebert": ("num_train_epochs", "off_ramp_epochs", "off_ramp_pooling", "off_ramp_learning_rate", "learning_rate",
                "max_length", "batch_size", "seed"),
    "adapler": ("preset", "num_train_epochs", "learning_rate", "adaptive_epochs", "adaptive_learning_rate",
                "eta_theta_learning_rate", "contribution_predictor_learning_rate", "eta_scales", "reuse_phases_from",
                "gamma", "phi", "lambda_init", "lambda_growth", "max_length", "batch_size", "seed"),
    "hashee": ("hash_function", "num_buckets", "hash_table", "num_train_epochs", "learning_rate", "max_length",
               "max_target_length", "num_beams", "cross_attention_init", "batch_size", "seed", "train_vanilla"),
    "dat": ("exit_prediction", "oracle", "oracle_sigma", "oracle_depth_penalty", "exit_loss_weight", "training_regime",
            "num_mixed_samples", "decoder_layers", "encoder_layers", "from_scratch", "compute_budget",
            "threshold_trials", "num_train_epochs", "learning_rate", "max_length", "max_target_length", "num_beams",
            "cross_attention_init", "batch_size", "seed"),
}
# Recipe arguments only some methods take.
TUNED_METHODS = ("deebert", "adapler")  # pick an operating point within --accuracy-budget


def check_base_model_argument(base_model: str) -> None:
    """`--base-model` must be a short name, an existing model folder or a Hub repo id: checked before any work."""
    problem = base_model_problem(base_model)
    if problem is not None:
        raise UsageError(f"--base-model {base_model}: {problem}; use 'minilm' (bundled), a local model folder or a Hub "
                         "repo id")


def check_model_argument(model: str) -> None:
    """A saved model folder must be complete (weights intact); anything else must be a Hub repo id."""
    if Path(model).exists():
        check_hub_folder(model)
    elif not looks_like_hub_repo_id(model) or model.startswith(("/", "~")):
        raise UsageError(f"{model}: no such local folder (and not a Hub repo id, which looks like OWNER/NAME); give "
                         "the folder `adaptive-zoo train` wrote or a Hub repo id")


def clean_up_checkpoints(output_dir: str, *, keep: bool, keep_weights: bool = False) -> None:
    """After a successful run: remove the Trainer checkpoints beside the folder unless `--keep-checkpoints`."""
    work_dir = trainer_work_dir(output_dir)
    if keep or not work_dir.exists():
        return
    freed = remove_trainer_checkpoints(output_dir, keep_weights=keep_weights)
    if keep_weights:
        announce(f"removed the checkpoints' optimizer states from {work_dir} ({freed / 2**20:,.0f} MB); their weights "
                 "and the saliencies stay for --reuse-phases-from (--keep-checkpoints keeps everything)")
    else:
        announce(f"removed the Trainer checkpoints in {work_dir} ({freed / 2**20:,.0f} MB; --keep-checkpoints keeps "
                 "them)")


def run_train(args: argparse.Namespace) -> dict[str, Any] | None:
    check_base_model_argument(args.base_model)
    given = {name: value for name, value in vars(args).items() if value is not None}
    recipe = {"deebert": train_deebert_recipe, "adapler": train_adapler_recipe,
              "hashee": train_hashee_recipe, "dat": train_dat_recipe}[args.method]
    extra = {"accuracy_budget": args.accuracy_budget} if args.method in TUNED_METHODS else {}
    dataset = args.dataset if args.dataset is not None else DEFAULT_TRAIN_DATASETS.get(args.method, "bbc_news")
    report = recipe(
        dataset=dataset, text_column=args.text_column, label_column=args.label_column,
        output_dir=args.output_dir, base_model=args.base_model, max_train_samples=args.max_train_samples,
        max_eval_samples=args.max_eval_samples, **extra,
        **{name: given[name] for name in METHOD_FLAGS[args.method] if name in given},
    )
    if report is not None:  # the main process of a finished run (others return None)
        clean_up_checkpoints(args.output_dir, keep=args.keep_checkpoints, keep_weights=args.method == "adapler")
    return report


def run_evaluate(args: argparse.Namespace) -> dict[str, Any]:
    check_model_argument(args.model)
    config = AutoConfig.from_pretrained(args.model)
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    task = load_task_data(args.dataset, seed=args.seed, text_column=args.text_column, label_column=args.label_column)
    expected = "seq2seq" if config.is_encoder_decoder else "classification"
    if task.task != expected:
        raise ValueError(f"{args.dataset!r} is a {task.task} dataset; {args.model} is a {expected} model.")
    split = select_first(task.dataset[args.split], args.max_eval_samples)
    max_length = args.max_length or min(tokenizer.model_max_length, config.max_position_embeddings)
    if config.is_encoder_decoder:
        model = AutoModelForSeq2SeqLM.from_pretrained(args.model).eval()
        report = evaluate_seq2seq(
            model, tokenizer, split["text"], split["summary"], batch_size=args.batch_size,
            max_source_length=max_length, max_new_tokens=args.max_new_tokens, num_beams=args.num_beams,
            measure_wallclock=not args.no_wallclock, repeats=args.repeats,
        )
    else:
        model = AutoModelForSequenceClassification.from_pretrained(args.model).eval()
        check_label_count(task.dataset, model.config.num_labels)
        report = evaluate_classifier(
            model, tokenizer, split["text"], split["label"], batch_size=args.batch_size, max_length=max_length,
            measure_wallclock=not args.no_wallclock, repeats=args.repeats,
        )
        if getattr(model.config, "model_type", "") == "hashee_bert":
            report["mean_exit_layer_per_token"] = mean_token_exit(model, tokenizer, split["text"], max_length)
    report = {"model": args.model, "model_type": model.config.model_type, "dataset": args.dataset,
              "split": args.split, **report}
    if args.json_path:
        Path(args.json_path).write_text(json.dumps(report, indent=2))
    return report


def run_calibrate(args: argparse.Namespace) -> dict[str, Any]:
    check_model_argument(args.model)
    settings = CalibrationSettings(
        dataset=args.dataset, split=args.split, accuracy_budget=args.accuracy_budget,
        compute_budget=args.compute_budget, threshold_trials=args.threshold_trials,
        max_eval_samples=args.max_eval_samples, batch_size=args.batch_size, max_length=args.max_length,
        seed=args.seed, text_column=args.text_column, label_column=args.label_column,
    )
    report = calibrate_folder(args.model, settings, output_dir=args.output_dir)
    return {"model": args.output_dir or args.model, "calibration": report}


def run_explain(args: argparse.Namespace) -> dict[str, Any]:
    check_model_argument(args.model)
    model = AutoModelForSequenceClassification.from_pretrained(args.model).eval()
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    rationale = explain_text(model, tokenizer, args.text, max_length=args.max_length)
    output_dir = Path(args.output_dir)
    paths = {"html": render_html(rationale, output_dir / "explanation.html"),
             "png": render_png(rationale, output_dir / "explanation.png")}
    return {"predicted_label": rationale.predicted_label, "tokens_per_layer": rationale.kept_counts,
            **{kind: str(path) for kind, path in paths.items()}}


def run_hash_build(args: argparse.Namespace) -> dict[str, Any]:
    check_base_model_argument(args.base_model)
    base_path = resolve_base_model(args.base_model)
    config = AutoConfig.from_pretrained(base_path)
    tokenizer = AutoTokenizer.from_pretrained(base_path)
    task = load_task_data(args.dataset, seed=args.seed, text_column=args.text_column, label_column=args.label_column)
    train = select_first(task.dataset["train"], args.max_train_samples)
    num_layers = args.num_layers or config.num_hidden_layers
    table = build_hash_table(
        args.hash_function, tokenizer=tokenizer, num_layers=num_layers, num_buckets=args.num_buckets or num_layers,
        texts=train["text"], labels=train["label"] if task.task == "classification" else None,
        embeddings=input_embeddings_for(args.hash_function, base_path), seed=args.seed, max_length=args.max_length,
    )
    save_hash_table(table, args.output)
    return {"output": args.output, **table.summary(texts=train["text"], tokenizer=tokenizer)}


def run_push(args: argparse.Namespace) -> str:
    return push_folder(args.folder, args.repo_id, private=args.private, commit_message=args.commit_message)


def cpu_seconds() -> float:
    """User + system CPU time of this process and its finished children (the fresh-process load check)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def run_quickstart(args: argparse.Namespace) -> dict[str, Any]:
    start, cpu_start = time.perf_counter(), cpu_seconds()
    results = train_deebert_recipe(
        dataset="bbc_news", output_dir=args.output_dir, base_model="minilm",
        max_train_samples=args.max_train_samples, max_eval_samples=args.max_eval_samples,
        num_train_epochs=args.num_train_epochs, off_ramp_epochs=args.off_ramp_epochs,
    )
    model = AutoModelForSequenceClassification.from_pretrained(args.output_dir)
    tokenizer = AutoTokenizer.from_pretrained(args.output_dir)
    texts = ["Shares in the carmaker rose after profits beat forecasts.",
             "The striker scored twice as the champions won the cup final."]
    check = verify_fresh_process_load(model, tokenizer, args.output_dir, texts)
    clean_up_checkpoints(args.output_dir, keep=args.keep_checkpoints)
    wall, cpu = time.perf_counter() - start, cpu_seconds() - cpu_start
    folder = Path(args.output_dir).resolve()
    announce(f"quickstart done in {duration(wall)} wall-clock, {duration(cpu)} CPU time (user + system, all cores)")
    announce(f"the model is in {folder}: load it with AutoModelForSequenceClassification.from_pretrained("
             f"{str(folder)!r}, trust_remote_code=True)")
    return {"output_dir": args.output_dir, "minutes": round(wall / 60, 1), "cpu_minutes": round(cpu / 60, 1),
            "fresh_process_trust_remote_code_load": check, "test": results}


def _print_summary(report: dict[str, Any]) -> None:
    if "calibration" in report:
        calibration = report["calibration"]
        point = ", ".join(f"{name} = {value}" for name, value in calibration["operating_point"].items())
        chosen = calibration.get("chosen") or {}
        measured = ", ".join(f"{name} {value:.4g}" for name, value in chosen.items() if isinstance(value, float))
        print(f"calibrated on {calibration['dataset']} ({calibration['split']}): {point} | {measured}")
        return
    results = report.get("test", report)
    if results and "average_exit" in results:  # Depth-Adaptive Transformer: the decoder adapts
        rouge, base = results["rouge"], results["baseline_rouge"]
        line = (f"ROUGE-1/2/L {rouge['rouge1']:.2f}/{rouge['rouge2']:.2f}/{rouge['rougeL']:.2f} | BLEU "
                f"{results['bleu']:.2f} | full depth ROUGE-1 {base['rouge1']:.2f}, BLEU {results['baseline_bleu']:.2f} | "
                f"average exit {results['average_exit']:.2f} of {results['num_decoder_layers']} "
                f"({100 * results['average_exit_fraction']:.0f}%) {results['exit_histogram']} | generate FLOPs "
                f"speed-up vs full depth {results['generate_flops_speedup']:.2f}x")
        if "generate_wallclock_speedup" in results:
            line += f" | generate wall-clock speed-up vs full depth {results['generate_wallclock_speedup']:.2f}x"
        print(line)
    elif results and "accuracy" in results:
        line = (f"accuracy {100 * results['accuracy']:.2f} | full depth {100 * results['baseline_accuracy']:.2f} | "
                f"executed-FLOPs speed-up {results['flops_speedup']:.2f}x")
        if "wallclock_speedup" in results:
            line += (f" | throughput speed-up (batch {results['batch_size']}) {results['wallclock_speedup']:.2f}x"
                     f" | latency speed-up (batch 1) {results['latency_speedup']:.2f}x")
        if "exit" in results:
            line += f" | mean exit layer {results['exit']['mean_exit_layer']:.2f} {results['exit']['histogram']}"
        print(line)
    elif results and "rouge" in results:
        line = (f"ROUGE-1/2/L {results['rouge']['rouge1']:.2f}/{results['rouge']['rouge2']:.2f}/"
                f"{results['rouge']['rougeL']:.2f} | full depth ROUGE-1 {results['baseline_rouge']['rouge1']:.2f} | "
                f"encoder FLOPs speed-up {results['encoder_flops_speedup']:.2f}x | generate FLOPs speed-up "
                f"{results['generate_flops_speedup']:.2f}x | mean exit layer per token "
                f"{results['mean_exit_layer_per_token']:.2f}")
        if "generate_wallclock_speedup" in results:
            line += f" | generate wall-clock speed-up {results['generate_wallclock_speedup']:.2f}x"
        print(line)
    if "cpu_minutes" in report:  # the quickstart: what it cost, and where the model is
        print(f"took {report['minutes']} min wall-clock, {report['cpu_minutes']} min CPU time | model folder: "
              f"{Path(report['output_dir']).resolve()}")


def configure_output(verbose: bool) -> None:
    """Logging and progress display for one command: our INFO logs and transformers' own reports only with -v;
    transformers' and datasets' tqdm bars only where they render (an interactive stderr)."""
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("adaptive_zoo").setLevel(logging.INFO if verbose else logging.WARNING)
    logging.getLogger("adaptive_zoo.progress").setLevel(logging.INFO)
    if verbose:
        transformers.logging.set_verbosity_info()
    if not bars_enabled():
        transformers.logging.disable_progress_bar()
        datasets.disable_progress_bars()


def _error_line(error: BaseException) -> str:
    """The error's message on one line (a multi-line message, e.g. a config validator's, is joined, not cut)."""
    return " ".join(line.strip() for line in str(error).splitlines() if line.strip()) or type(error).__name__


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parse_arguments(parser, argv)
    except UsageError as error:
        print(f"adaptive-zoo: error: {error}", file=sys.stderr)
        return 2
    configure_output(args.verbose)
    try:
        if args.command == "train":
            report = run_train(args)
        elif args.command == "evaluate":
            report = run_evaluate(args)
        elif args.command == "calibrate":
            report = run_calibrate(args)
        elif args.command == "explain":
            report = run_explain(args)
        elif args.command == "hash":
            report = run_hash_build(args)
        elif args.command == "push":
            print(run_push(args))
            return 0
        else:
            report = run_quickstart(args)
    except UsageError as error:
        print(f"adaptive-zoo: error: {error}", file=sys.stderr)
        return 2
    except ConnectionError as error:  # the network, not the command line: exit status 1
        if args.verbose:
            traceback.print_exc()
        print(f"adaptive-zoo: error: {_error_line(error)}", file=sys.stderr)
        return 1
    except (ValueError, FileNotFoundError, ImportError, OSError, StrictDataclassError) as error:
        if args.verbose:
            traceback.print_exc()
        print(f"adaptive-zoo: error: {_error_line(error)}", file=sys.stderr)
        return 2
    if report is not None:
        print(json.dumps(report, indent=2, default=str))
        _print_summary(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
