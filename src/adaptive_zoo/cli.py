"""`adaptive-zoo` command line: train, evaluate, calibrate, benchmark, summarize-benchmarks, explain, hash build, push,
quickstart, loadtest.

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
import shlex
import sys
import time
import traceback
import typing
from dataclasses import MISSING
from pathlib import Path
from typing import Any

import datasets
import transformers
from huggingface_hub.errors import StrictDataclassError
from transformers import AutoConfig, AutoModelForSeq2SeqLM, AutoModelForSequenceClassification, AutoTokenizer

from .backbones import base_model_problem, looks_like_hub_repo_id, resolve_base_model
from .benchmark import BenchmarkSettings, run_benchmark
from .calibrate import CalibrationSettings, calibrate_folder
from .data import KNOWN_DATASETS, check_label_count, load_task_data, select_first
from .evaluation.benchmark_results import (
    CHOICE_BLOCK,
    generated_markers,
    pareto_plots,
    quality_metric,
    quality_text,
    read_rows,
    stale_blocks,
    verdict,
    write_generated,
)
from .evaluation.explain import explain_text, render_html, render_png
from .evaluation.reports import EvaluationOptions, EvaluationReport
from .hashing import build_hash_table, save_hash_table
from .hub.folder import check_hub_folder
from .hub.push import push_folder
from .loadtest import add_arguments as add_loadtest_arguments
from .loadtest import run_from_arguments as run_loadtest_from_arguments
from .loadtest import table_from_arguments as loadtest_table_from_arguments
from .methods import METHODS, Method, method_for_model_type
from .progress import announce, bars_enabled, duration
from .recipes import RESULTS_FILE, run_recipe
from .settings import (
    Check,
    RecipeSettings,
    integer,
    non_negative_float,
    number,
    positive_float,
    positive_int,
    setting_fields,
)
from .training.common import remove_trainer_checkpoints, trainer_work_dir
from .training.hashee import input_embeddings_for

QUICKSTART_OUTPUT_DIR = "adaptive-zoo-quickstart/deebert-minilm-bbc_news"
HELP_HINT = "see `{prog} --help`"


class UsageError(Exception):
    """A command line that cannot run as given: reported in one line, exit status 2."""


# -- value checks: each names the flag, the value and what would work ---------------------------------------------


def _argparse_type(check: Check):
    """A settings check as an argparse type: its "must be ..." message becomes the flag's one-line error."""

    def parse(value: str):
        try:
            return check(value)
        except ValueError as error:
            raise argparse.ArgumentTypeError(str(error)) from None

    parse.__name__ = check.__name__
    return parse


_positive_int = _argparse_type(positive_int)
_positive_float = _argparse_type(positive_float)
_non_negative_float = _argparse_type(non_negative_float)


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


# -- train: one sub-command per registered method, its flags generated from the method's settings class ---------


def _flag_type(settings_field, annotation: Any):
    """The argparse type of a settings field: its check where that runs at parse time, else the conversion its
    annotation asks for (the check then runs when the settings are built)."""
    text_annotation = str(annotation)
    check = settings_field.metadata["check"]
    if check is not None and settings_field.metadata["check_at_parse"]:
        return _argparse_type(check)
    if "float" in text_annotation:
        return _argparse_type(number)
    return _argparse_type(integer) if "int" in text_annotation else str


def _default_text(settings_field, method: Method | None = None) -> str:
    metadata = settings_field.metadata
    if metadata["default_text"] is not None:
        return metadata["default_text"].format(default_dataset=method.default_dataset if method else "")
    default = settings_field.default
    if isinstance(default, bool):
        return "on" if default else "off"
    if isinstance(default, tuple):
        return " ".join(f"{value:g}" if isinstance(value, float) else str(value) for value in default)
    return f"{default:g}" if isinstance(default, float) else str(default)


def _add_settings_arguments(parser: argparse.ArgumentParser, method: Method) -> None:
    """One flag per settings field (`--max-length` for `max_length`); a flag's default is None, so only what the
    user gave reaches the settings class, whose defaults (and an AdapLeR preset's) fill in the rest."""
    hints = typing.get_type_hints(method.settings_class)
    common = {f.name for f in setting_fields(RecipeSettings)}
    groups = {True: parser.add_argument_group("data, output and training"),
              False: parser.add_argument_group(method.title[0].upper() + method.title[1:])}
    for settings_field in setting_fields(method.settings_class):
        if settings_field.metadata["flag"]:
            _add_setting_flag(groups[settings_field.name in common], settings_field, hints[settings_field.name],
                              method)


def _add_setting_flag(group, settings_field, annotation: Any, method: Method | None = None) -> None:
    """`--max-length` for the field `max_length`: its help, default, metavar, check; None when not given."""
    metadata = settings_field.metadata
    symbol = f" [{metadata['symbol']} in the paper]" if metadata["symbol"] else ""
    text = metadata["help"].format(datasets=", ".join(sorted(KNOWN_DATASETS))) + symbol
    options: dict[str, Any] = {"dest": settings_field.name, "default": None}
    if settings_field.default is MISSING and settings_field.default_factory is MISSING:
        options["required"] = True
    else:
        text = f"{text[:-1] if text.endswith('.') else text} (default: {_default_text(settings_field, method)})."
    if annotation is bool:
        options["action"] = "store_true"
    else:
        options.update(type=_flag_type(settings_field, annotation), metavar=metadata["metavar"])
        if metadata["many"]:
            options["nargs"] = "+"
    group.add_argument("--" + settings_field.name.replace("_", "-"), help=text, **options)


def _add_plain_settings_arguments(parser: argparse.ArgumentParser, settings_class: type) -> None:
    """One flag per field of a settings class that is no method's (e.g. `BenchmarkSettings`)."""
    hints = typing.get_type_hints(settings_class)
    for settings_field in setting_fields(settings_class):
        if settings_field.metadata["flag"]:
            _add_setting_flag(parser, settings_field, hints[settings_field.name])


def _add_train_parser(subparsers) -> dict[str, argparse.ArgumentParser]:
    train = _subcommand(subparsers, "train", "Train a model and write a Hub-ready folder.",
                        epilog="Run `adaptive-zoo train METHOD --help` for a method's flags.")
    methods = train.add_subparsers(dest="method", required=True, metavar="METHOD",
                                   parser_class=_Parser, title="methods")
    parsers = {}
    for name, method in METHODS.items():
        parsers[name] = _subcommand(methods, name, method.summary(), description=method.description)
        _add_settings_arguments(parsers[name], method)
    return parsers


def _add_saved_model_split_arguments(parser, purpose: str, *, model_help: str, dataset_default: str | None,
                                     split_default: str, split_help: str) -> None:
    """What `evaluate` and `calibrate` both take: the model, the dataset and split, the split's size and encoding,
    and the seed that split it."""
    parser.add_argument("model", help=model_help)
    parser.add_argument("--dataset", default=dataset_default, required=dataset_default is None,
                        help="A bundled dataset, a local CSV/JSON/Parquet file, or a Hub dataset id.")
    _add_column_arguments(parser)
    parser.add_argument("--split", default=split_default, choices=("train", "validation", "test"), help=split_help)
    parser.add_argument("--max-eval-samples", type=_positive_int, default=None, metavar="N",
                        help=f"{purpose} only the first N examples of the split (default: all).")
    parser.add_argument("--batch-size", type=_positive_int, default=32, metavar="B",
                        help="Batch size of evaluation (and throughput).")
    parser.add_argument("--max-length", type=_positive_int, default=None, metavar="L",
                        help="Input tokens (default: the saved tokenizer's model_max_length, the training length).")
    parser.add_argument("--seed", type=int, default=42,
                        help="Seed of the dataset split (the one training used, to get the same splits).")


def _add_evaluate_parser(subparsers) -> None:
    evaluate = _subcommand(
        subparsers, "evaluate", "Measure accuracy (or ROUGE) and real speed-ups of a saved model.",
        description="Measure a saved model on a dataset split: accuracy (summarization: ROUGE, BLEU) of the adaptive "
        "model, of the same weights at full depth and of the vanilla transformers model, executed-FLOPs speed-ups, "
        "and wall-clock speed-ups (throughput at --batch-size, latency at batch 1, interleaved repeats).",
    )
    _add_saved_model_split_arguments(evaluate, "Measure", model_help="A saved folder or Hub repo id.",
                                     dataset_default="bbc_news", split_default="test", split_help="The split measured.")
    evaluate.add_argument("--repeats", type=_positive_int, default=5, help="Interleaved timing repetitions.")
    evaluate.add_argument("--no-wallclock", action="store_true", help="Skip timing (accuracy and FLOPs only).")
    evaluate.add_argument("--max-new-tokens", type=_positive_int, default=32, help="Summarization: generated tokens.")
    evaluate.add_argument("--num-beams", type=_positive_int, default=1, help="Summarization: beams.")
    evaluate.add_argument("--json", dest="json_path", default=None,
                          help="Also write the report to this file (default: stdout only).")


CALIBRATE_HELP = "Re-tune a saved model's operating point on validation data (after its weights changed)."
CALIBRATE_DESCRIPTION = (
    "Choose a saved model's operating point anew on a dataset split and write it back: DeeBERT's entropy threshold S, "
    "the scale of AdapLeR's learned eta, or a Depth-Adaptive Transformer's confidence thresholds T_n. Run it after "
    "fine-tuning a zoo model with a stock Trainer script, which flags the old point stale (`operating_point_stale` in "
    "config.json). The folder is rewritten atomically; every point measured is recorded in adaptive_zoo_results.json "
    "(`calibrations`)."
)


def _add_calibrate_parser(subparsers) -> None:
    calibrate = _subcommand(subparsers, "calibrate", CALIBRATE_HELP, description=CALIBRATE_DESCRIPTION)
    _add_saved_model_split_arguments(
        calibrate, "Tune on", model_help="A saved folder (rewritten in place) or a Hub repo id (needs --output-dir).",
        dataset_default=None, split_default="validation",
        split_help="The split to tune on (never tune on the split you report).")
    calibrate.add_argument("--accuracy-budget", type=_non_negative_float, default=1.0, metavar="POINTS",
                           help="Classifiers: accuracy points the adaptive model may lose against the same weights "
                           "at full depth.")
    calibrate.add_argument("--compute-budget", type=_positive_float, default=None, metavar="FRACTION",
                           help="Depth-Adaptive Transformer: the largest average exit, as a fraction of the decoder's "
                           "depth (default: 0.5).")
    calibrate.add_argument("--threshold-trials", type=_positive_int, default=None, metavar="N",
                           help="Depth-Adaptive Transformer: random threshold settings to try (default: 100).")
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


def _add_benchmark_parsers(subparsers) -> None:
    benchmark = _subcommand(
        subparsers, "benchmark", "Measure a saved model against the static shortcuts (fewer layers, shorter inputs, "
        "int8) in one run.",
        description="Measure a saved adaptive model, in one run on one split, against the static alternatives a user "
        "would deploy instead, each fine-tuned with the model's own training budget and cached. A classifier: the "
        "backbone cut to k layers, inputs truncated to shorter lengths, int8 dynamic quantization of the full model "
        "and of the adaptive one; every point's accuracy. A seq2seq model (Depth-Adaptive Transformer, HashEE-BART): "
        "the same starting BART with only its lowest k decoder layers (Depth-Adaptive Transformer) or encoder layers "
        "(HashEE-BART, whose tokens exit the encoder), and int8; every candidate, vanilla BART included, generates "
        "greedily with the model's generation settings, and each point's ROUGE-1 (ROUGE-2/L too) is recorded under "
        "its own name. Every point: executed FLOPs (of the whole generate call for seq2seq), throughput (batch 32) and "
        "latency (batch 1) as ratios against the full vanilla model timed in the same run; rows are appended to "
        "--output.",
    )
    benchmark.add_argument("model", help="A folder written by `adaptive-zoo train` (a classifier, or a Depth-Adaptive "
                           "Transformer or HashEE-BART summarizer).")
    _add_plain_settings_arguments(benchmark, BenchmarkSettings)
    summarize = _subcommand(
        subparsers, "summarize-benchmarks", "Write BENCHMARKS.md's summary table, README's model table and the "
        "Pareto plots from the results file.",
        description="Read the benchmark results file, keep each (method, dataset)'s latest run, and write the summary "
        "table (the two targets read off the rows, the command of each row) between the markers of the Markdown "
        "file, README's \"which model for what\" table (one line per method and dataset, linking to its section) "
        "between its markers, and one Pareto plot per dataset (accuracy, or ROUGE-1 for a summarization dataset, "
        "against measured throughput speed-up). Every figure between the markers comes from the results file.",
    )
    summarize.add_argument("--results", default="benchmarks/results.jsonl", help="The results file.")
    summarize.add_argument("--markdown", default="BENCHMARKS.md", help="The Markdown file whose summary is replaced.")
    summarize.add_argument("--readme", default=None,
                           help="The README whose model table is replaced (default: README.md beside --markdown, "
                           "where it has the table's markers).")
    summarize.add_argument("--plots-dir", default="benchmarks", help="Where the pareto_<dataset>.png files go.")
    summarize.add_argument("--check", action="store_true",
                           help="Write nothing; exit with status 1 if a generated table differs from what would be "
                           "written now.")


def _add_loadtest_parser(subparsers) -> None:
    loadtest = _subcommand(
        subparsers, "loadtest", "Serve one saved model from many threads and check every answer against a "
        "sequential reference.",
        description="One model, many requests: load ONE model (and one text-classification pipeline) from a saved "
        "folder, compute a seeded mix of requests sequentially (the reference), then call the shared model from "
        "--threads threads for --seconds and compare every answer exactly with its reference (logits, exits, kept "
        "tokens, attentions, hidden states, pipeline labels and scores; seq2seq folders: generated ids). Reports "
        "requests and rows per second, mismatches and resident memory; exit status 1 on any mismatch, any error or "
        "memory growth past warm-up beyond --max-rss-growth-mb. Torch's intra-op threads are process-wide and "
        "shared by all request threads (left as they are). Also `python -m adaptive_zoo.loadtest`.",
    )
    add_loadtest_arguments(loadtest)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="adaptive-zoo", description=__doc__)
    _verbosity_flags(parser, False)
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Parser,
                                       title="commands")
    parser.method_parsers = _add_train_parser(subparsers)
    _add_evaluate_parser(subparsers)
    _add_calibrate_parser(subparsers)
    _add_benchmark_parsers(subparsers)
    _add_loadtest_parser(subparsers)

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


Outcome = tuple[Any, list[str]]


class CheckFailed(Exception):
    """A `--check` found something to fix: one line on stderr, exit status 1."""
"""What a command printed: the report on stdout as JSON (None: nothing), then its summary lines."""


def _report_outcome(report: EvaluationReport | None, **head: Any) -> Outcome:
    if report is None:  # a non-main process of a distributed run
        return None, []
    return {**head, **report.to_dict()}, [report.summary_line()]


def run_train(args: argparse.Namespace) -> Outcome:
    method = METHODS[args.method]
    given = {f.name: getattr(args, f.name) for f in setting_fields(method.settings_class)
             if f.metadata["flag"] and getattr(args, f.name) is not None}
    check_base_model_argument(given.get("base_model", "minilm"))
    report = run_recipe(method, **given)
    if report is not None:  # the main process of a finished run (others return None)
        clean_up_checkpoints(args.output_dir, keep=bool(args.keep_checkpoints),
                             keep_weights=method.keeps_checkpoint_weights)
    return _report_outcome(report)


def run_evaluate(args: argparse.Namespace) -> Outcome:
    check_model_argument(args.model)
    config = AutoConfig.from_pretrained(args.model)
    method = method_for_model_type(config.model_type)
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    task = load_task_data(args.dataset, seed=args.seed, text_column=args.text_column, label_column=args.label_column)
    expected = "seq2seq" if config.is_encoder_decoder else "classification"
    if task.task != expected:
        raise ValueError(f"{args.dataset!r} is a {task.task} dataset; {args.model} is a {expected} model.")
    auto_class = AutoModelForSeq2SeqLM if config.is_encoder_decoder else AutoModelForSequenceClassification
    model = auto_class.from_pretrained(args.model).eval()
    if not config.is_encoder_decoder:
        check_label_count(task.dataset, model.config.num_labels)
    options = EvaluationOptions(batch_size=args.batch_size, measure_wallclock=not args.no_wallclock,
                                repeats=args.repeats, max_new_tokens=args.max_new_tokens, num_beams=args.num_beams)
    report = method.evaluate(model, tokenizer, select_first(task.dataset[args.split], args.max_eval_samples),
                             max_length=args.max_length or min(tokenizer.model_max_length,
                                                               config.max_position_embeddings), options=options)
    outcome = _report_outcome(report, model=args.model, model_type=config.model_type, dataset=args.dataset,
                              split=args.split)
    if args.json_path:
        Path(args.json_path).write_text(json.dumps(outcome[0], indent=2))
    return outcome


def run_calibrate(args: argparse.Namespace) -> Outcome:
    check_model_argument(args.model)
    settings = CalibrationSettings(
        dataset=args.dataset, split=args.split, accuracy_budget=args.accuracy_budget,
        compute_budget=args.compute_budget, threshold_trials=args.threshold_trials,
        max_eval_samples=args.max_eval_samples, batch_size=args.batch_size, max_length=args.max_length,
        seed=args.seed, text_column=args.text_column, label_column=args.label_column,
    )
    report = calibrate_folder(args.model, settings, output_dir=args.output_dir)
    point = ", ".join(f"{name} = {value}" for name, value in report["operating_point"].items())
    measured = ", ".join(f"{name} {value:.4g}" for name, value in (report.get("chosen") or {}).items()
                         if isinstance(value, float))
    return ({"model": args.output_dir or args.model, "calibration": report},
            [f"calibrated on {report['dataset']} ({report['split']}): {point} | {measured}"])


def run_explain(args: argparse.Namespace) -> Outcome:
    check_model_argument(args.model)
    model = AutoModelForSequenceClassification.from_pretrained(args.model).eval()
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    rationale = explain_text(model, tokenizer, args.text, max_length=args.max_length)
    output_dir = Path(args.output_dir)
    paths = {"html": render_html(rationale, output_dir / "explanation.html"),
             "png": render_png(rationale, output_dir / "explanation.png")}
    return {"predicted_label": rationale.predicted_label, "tokens_per_layer": rationale.kept_counts,
            **{kind: str(path) for kind, path in paths.items()}}, []


def run_hash_build(args: argparse.Namespace) -> Outcome:
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
    return {"output": args.output, **table.summary(texts=train["text"], tokenizer=tokenizer)}, []


def _target_text(flag: bool | None) -> str:
    return "not measured" if flag is None else ("met" if flag else "missed")


def run_benchmark_command(args: argparse.Namespace) -> Outcome:
    check_model_argument(args.model)
    if not Path(args.model).is_dir():
        raise UsageError(f"{args.model}: `benchmark` needs a local folder written by `adaptive-zoo train`")
    settings = BenchmarkSettings(**{f.name: getattr(args, f.name) for f in setting_fields(BenchmarkSettings)
                                    if getattr(args, f.name) is not None})
    rows = run_benchmark(args.model, settings, command="adaptive-zoo " + shlex.join(args.argv))
    metric = quality_metric(rows[0]).label
    lines = [f"{row['point']:<40} {metric} {quality_text(row).split()[0]:>6} | FLOPs "
             f"{row['ratios']['flops_speedup']:5.2f}x | throughput {row['ratios']['throughput_speedup']:5.2f}x | "
             f"latency {row['ratios']['latency_speedup']:5.2f}x" for row in rows]
    result = verdict(rows)
    lines += [f"target 1 (at least as good by {metric} as every static alternative at least as fast): "
              f"{_target_text(result.target_1)}",
              f"target 2 (adaptive+int8 the fastest point within 1 {metric} point of the full model): "
              f"{_target_text(result.target_2)} (the fastest: {result.fastest_within_tolerance['point']})",
              f"{len(rows)} rows appended to {settings.output}"]
    return None, lines


def summary_readme(args: argparse.Namespace) -> Path | None:
    """The README whose model table `summarize-benchmarks` writes: --readme, else README.md beside the Markdown file
    where that one has the table's markers."""
    if args.readme is not None:
        return Path(args.readme)
    beside = Path(args.markdown).parent / "README.md"
    has_block = beside.is_file() and generated_markers(CHOICE_BLOCK)[0] in beside.read_text(encoding="utf-8")
    return beside if has_block else None


def run_summarize_benchmarks(args: argparse.Namespace) -> Outcome:
    rows, readme = read_rows(args.results), summary_readme(args)
    if args.check:
        stale = stale_blocks(rows, args.markdown, readme, args.plots_dir)
        if stale:
            raise CheckFailed(f"generated tables out of date in {', '.join(map(str, stale))}: run "
                              "`adaptive-zoo summarize-benchmarks`")
        return {"up_to_date": [str(path) for path in (args.markdown, readme) if path is not None]}, []
    plots = pareto_plots(rows, args.plots_dir)
    written = write_generated(rows, args.markdown, readme, plots)
    return {"markdown": [str(path) for path in written], "plots": [str(plot) for plot in plots]}, []


def run_push(args: argparse.Namespace) -> Outcome:
    print(push_folder(args.folder, args.repo_id, private=args.private, commit_message=args.commit_message))
    return None, []


def run_loadtest(args: argparse.Namespace) -> Outcome:
    """The report and its final JSON line on stdout; a failed check (a mismatch, an error, memory growth) is exit
    status 1."""
    if args.table:
        return None, loadtest_table_from_arguments(args)
    result, lines = run_loadtest_from_arguments(args)
    args.exit_status = 0 if result["passed"] else 1
    return None, lines


def cpu_seconds() -> float:
    """User + system CPU time of this process and its finished children (the fresh-process load check)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def run_quickstart(args: argparse.Namespace) -> Outcome:
    """`train deebert` with its defaults on bbc_news from the bundled MiniLM (its fresh-process load check
    included), timed."""
    start, cpu_start = time.perf_counter(), cpu_seconds()
    report = run_recipe(
        "deebert", output_dir=args.output_dir, dataset="bbc_news", base_model="minilm",
        max_train_samples=args.max_train_samples, max_eval_samples=args.max_eval_samples,
        num_train_epochs=args.num_train_epochs, off_ramp_epochs=args.off_ramp_epochs,
    )
    clean_up_checkpoints(args.output_dir, keep=args.keep_checkpoints)
    wall, cpu = time.perf_counter() - start, cpu_seconds() - cpu_start
    folder = Path(args.output_dir).resolve()
    results_path = folder / RESULTS_FILE
    check = json.loads(results_path.read_text()).get("fresh_process_load") if results_path.is_file() else None
    announce(f"quickstart done in {duration(wall)} wall-clock, {duration(cpu)} CPU time (user + system, all cores)")
    announce(f"the model is in {folder}: load it with AutoModelForSequenceClassification.from_pretrained("
             f"{str(folder)!r}, trust_remote_code=True)")
    payload = {"output_dir": args.output_dir, "minutes": round(wall / 60, 1), "cpu_minutes": round(cpu / 60, 1),
               "fresh_process_trust_remote_code_load": check, "test": report.to_dict()}
    return payload, [report.summary_line(), f"took {payload['minutes']} min wall-clock, {payload['cpu_minutes']} min "
                     f"CPU time | model folder: {folder}"]


class _OncePerMessage(logging.Filter):
    """Lets each distinct message through once. transformers repeats some warnings on every `generate` call (e.g.
    "Both `max_new_tokens` and `max_length` seem to have been set" for any model whose generation config has a
    `max_length`, which BART's have), thousands of times in one benchmark."""

    def __init__(self):
        super().__init__()
        self.seen: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if message in self.seen:
            return False
        self.seen.add(message)
        return True


def configure_output(verbose: bool) -> None:
    """Logging and progress display for one command: our INFO logs and transformers' own reports only with -v;
    transformers' and datasets' tqdm bars only where they render (an interactive stderr); `generate`'s warnings
    once each."""
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("adaptive_zoo").setLevel(logging.INFO if verbose else logging.WARNING)
    logging.getLogger("adaptive_zoo.progress").setLevel(logging.INFO)
    if verbose:
        transformers.logging.set_verbosity_info()
    generation_logger = logging.getLogger("transformers.generation.utils")
    if not any(isinstance(existing, _OncePerMessage) for existing in generation_logger.filters):
        generation_logger.addFilter(_OncePerMessage())
    if not bars_enabled():
        transformers.logging.disable_progress_bar()
        datasets.disable_progress_bars()


def _error_line(error: BaseException) -> str:
    """The error's message on one line (a multi-line message, e.g. a config validator's, is joined, not cut)."""
    return " ".join(line.strip() for line in str(error).splitlines() if line.strip()) or type(error).__name__


COMMANDS = {"train": run_train, "evaluate": run_evaluate, "calibrate": run_calibrate, "explain": run_explain,
            "hash": run_hash_build, "push": run_push, "quickstart": run_quickstart, "benchmark": run_benchmark_command,
            "summarize-benchmarks": run_summarize_benchmarks, "loadtest": run_loadtest}


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parse_arguments(parser, argv)
    except UsageError as error:
        print(f"adaptive-zoo: error: {error}", file=sys.stderr)
        return 2
    args.argv = list(sys.argv[1:] if argv is None else argv)  # the command as given, recorded with results
    configure_output(args.verbose)
    try:
        payload, summary = COMMANDS[args.command](args)
    except UsageError as error:
        print(f"adaptive-zoo: error: {error}", file=sys.stderr)
        return 2
    except CheckFailed as error:
        print(f"adaptive-zoo: {error}", file=sys.stderr)
        return 1
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
    if payload is not None:
        print(json.dumps(payload, indent=2, default=str))
    for line in summary:
        print(line)
    return getattr(args, "exit_status", 0)  # 0 but for a command whose check failed (loadtest)


if __name__ == "__main__":
    sys.exit(main())
