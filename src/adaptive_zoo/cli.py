"""`adaptive-zoo` command line: train, evaluate, calibrate, push, quickstart."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

from huggingface_hub.errors import StrictDataclassError

from .data import KNOWN_DATASETS

METHODS = ("deebert", "adapler", "hashee", "dat")
# The dataset `train` uses when --dataset is not given.
DEFAULT_TRAIN_DATASETS = {"dat": "bbc_headlines"}


def _positive_int(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return number


def _add_column_arguments(parser) -> None:
    parser.add_argument("--text-column", default=None, help="Text column of a local file (default: text).")
    parser.add_argument("--label-column", default=None, help="Label column of a local file (default: label).")


def _add_train_parser(subparsers) -> None:
    train = subparsers.add_parser("train", help="Train a model and write a Hub-ready folder.")
    train.add_argument("method", choices=METHODS)
    train.add_argument("--dataset", default=None,
                       help=f"Bundled name ({', '.join(sorted(KNOWN_DATASETS))}), a local CSV/JSON file, or a Hub id "
                       "(default: bbc_news; bbc_headlines for dat).")
    _add_column_arguments(train)
    train.add_argument("--output-dir", required=True, help="The Hub folder to write (replaced atomically).")
    train.add_argument("--base-model", default="minilm", help="'minilm' (bundled), a local folder, or a Hub id.")
    train.add_argument("--max-train-samples", type=_positive_int, default=None)
    train.add_argument("--max-eval-samples", type=_positive_int, default=None,
                       help="Cap on validation and test samples (tuning and measurement).")
    train.add_argument("--num-train-epochs", type=float, default=None,
                       help="Fine-tuning epochs (DeeBERT stage 1, AdapLeR phase 1).")
    train.add_argument("--learning-rate", type=float, default=None, help="Fine-tuning learning rate.")
    train.add_argument("--max-length", type=_positive_int, default=None)
    train.add_argument("--batch-size", type=_positive_int, default=None)
    train.add_argument("--seed", type=int, default=None)
    train.add_argument("--accuracy-budget", type=float, default=1.0,
                       help="Accuracy points the adaptive model may lose against full depth on validation.")
    deebert = train.add_argument_group("deebert")
    deebert.add_argument("--off-ramp-epochs", type=float, default=None, help="Stage 2 (off-ramps) epochs.")
    deebert.add_argument("--off-ramp-pooling", choices=("auto", "cls", "mean"), default=None,
                         help="Off-ramp input: [CLS] (paper) or token mean; auto = the backbone's own pooling.")
    deebert.add_argument("--off-ramp-learning-rate", type=float, default=None)
    adapler = train.add_argument_group("adapler")
    adapler.add_argument("--preset", default=None, help="The paper's hyperparameters for a dataset (Tables 3-4), "
                         "e.g. sst2, imdb, ag_news; explicit flags override it.")
    adapler.add_argument("--adaptive-epochs", type=float, default=None, help="Phase 3 epochs (lambda grows each).")
    adapler.add_argument("--adaptive-learning-rate", type=float, default=None, help="Phase 3 weights' learning rate.")
    adapler.add_argument("--eta-theta-learning-rate", type=float, default=None)
    adapler.add_argument("--contribution-predictor-learning-rate", type=float, default=None,
                         help="Phase-3 learning rate of the contribution predictors (default 1e-3; the paper's "
                         "code uses the weights' rate, --adaptive-learning-rate).")
    adapler.add_argument("--eta-scales", type=float, nargs="+", default=None,
                         help="Factors in (0, 1] the learned eta may be scaled by when the operating point is chosen "
                         "on validation (default 1.0 0.95 ... 0.7; 1.0 alone keeps the paper's learned eta).")
    adapler.add_argument("--reuse-phases-from", default=None,
                         help="Output folder of an earlier run on the same data: reuse its phase-1 checkpoints and "
                         "saliencies and run phase 3 only.")
    adapler.add_argument("--gamma", type=float, default=None, help="Weight of the CP loss (eq. 5).")
    adapler.add_argument("--phi", type=float, default=None, help="Weight of the length loss (eq. 8).")
    adapler.add_argument("--lambda-init", type=float, default=None)
    adapler.add_argument("--lambda-growth", type=float, default=None, help="lambda = init * growth ** epoch.")
    hashee = train.add_argument_group("hashee")
    hashee.add_argument("--hash-function", default=None,
                        help="frequency (default), frequency_mass, mutual_information, clustered, random, "
                        "random_inconsistent.")
    hashee.add_argument("--num-buckets", type=_positive_int, default=None, help="B (default: one per encoder layer).")
    hashee.add_argument("--hash-table", default=None, help="A table file from `adaptive-zoo hash build`.")
    hashee.add_argument("--max-target-length", type=_positive_int, default=None,
                        help="Summary tokens (seq2seq: hashee, dat).")
    hashee.add_argument("--num-beams", type=_positive_int, default=None,
                        help="Beams when generating (seq2seq: hashee, dat).")
    hashee.add_argument("--cross-attention-init", default=None,
                        help="Seq2seq warm start (hashee, dat): self_attention (default: each decoder layer's "
                        "cross-attention starts as a copy of its BERT self-attention) or fresh (random, as bert2bert).")
    hashee.add_argument("--train-vanilla", action="store_true", default=None,
                        help="Also fine-tune the backbone the same way without exits (the paper's baseline).")
    # Values are checked by the model's config (a clear error, exit 2), not by argparse choices.
    dat = train.add_argument_group("dat (Depth-Adaptive Transformer)")
    dat.add_argument("--exit-prediction", default=None,
                     help="sequence, multinomial (default), geometric, or confidence (thresholds tuned on validation).")
    dat.add_argument("--oracle", default=None, help="What learned exits are trained towards: likelihood or correctness.")
    dat.add_argument("--oracle-sigma", type=float, default=None, help="sigma > 0 of the token oracles' smoothing.")
    dat.add_argument("--oracle-depth-penalty", type=float, default=None,
                     help="lambda >= 0: larger values make the oracle (and the predictor) exit earlier.")
    dat.add_argument("--exit-loss-weight", type=float, default=None, help="alpha in L = L_dec + alpha L_exit.")
    dat.add_argument("--training-regime", default=None, help="aligned (default) or mixed.")
    dat.add_argument("--num-mixed-samples", type=int, default=None, help="M, sampled exit sequences (mixed regime).")
    dat.add_argument("--decoder-layers", type=int, default=None,
                     help="N decoder blocks (>= 2, at most the base model's layers; default: all of them).")
    dat.add_argument("--encoder-layers", type=int, default=None,
                     help="Keep only the base model's lowest layers in the encoder (decoder-heavy; default: all).")
    dat.add_argument("--from-scratch", action="store_true", default=None,
                     help="A randomly initialised BART of the same shape instead of the warm start from BERT.")
    dat.add_argument("--compute-budget", type=float, default=None,
                     help="confidence: the largest average exit allowed, as a fraction of N (default 0.5).")
    dat.add_argument("--threshold-trials", type=int, default=None,
                     help="confidence: random threshold settings tried on validation (default 100).")


def _add_evaluate_parser(subparsers) -> None:
    evaluate = subparsers.add_parser("evaluate", help="Measure accuracy and real speed-ups of a saved model.")
    evaluate.add_argument("model", help="A saved folder or Hub repo id.")
    evaluate.add_argument("--dataset", default="bbc_news")
    _add_column_arguments(evaluate)
    evaluate.add_argument("--split", default="test", choices=("train", "validation", "test"))
    evaluate.add_argument("--batch-size", type=_positive_int, default=32)
    evaluate.add_argument("--max-eval-samples", type=_positive_int, default=None)
    evaluate.add_argument("--max-length", type=_positive_int, default=None,
                          help="Defaults to the saved tokenizer's model_max_length.")
    evaluate.add_argument("--repeats", type=_positive_int, default=5, help="Interleaved timing repetitions.")
    evaluate.add_argument("--no-wallclock", action="store_true", help="Skip timing (accuracy and FLOPs only).")
    evaluate.add_argument("--max-new-tokens", type=_positive_int, default=32, help="Seq2seq: generated tokens.")
    evaluate.add_argument("--num-beams", type=_positive_int, default=1, help="Seq2seq: beams.")
    evaluate.add_argument("--seed", type=int, default=42, help="Seed of the dataset split.")
    evaluate.add_argument("--json", dest="json_path", default=None, help="Also write the report to this file.")


def _add_calibrate_parser(subparsers) -> None:
    calibrate = subparsers.add_parser(
        "calibrate",
        help="Re-tune a saved model's operating point (DeeBERT's S, AdapLeR's eta scale, DAT's confidence "
        "thresholds) on validation data, e.g. after fine-tuning it with a stock Trainer script.",
    )
    calibrate.add_argument("model", help="A saved folder (rewritten in place, atomically) or a Hub repo id.")
    calibrate.add_argument("--dataset", required=True, help="The data to tune on (a bundled name or a local file).")
    _add_column_arguments(calibrate)
    calibrate.add_argument("--split", default="validation", choices=("train", "validation", "test"),
                           help="The split to tune on (default: validation; never tune on test).")
    calibrate.add_argument("--accuracy-budget", type=float, default=1.0,
                           help="Classifiers: accuracy points the adaptive model may lose against the same "
                           "weights at full depth (default: 1.0).")
    calibrate.add_argument("--compute-budget", type=float, default=None,
                           help="DAT: the largest average exit, as a fraction of the decoder depth (default: 0.5).")
    calibrate.add_argument("--threshold-trials", type=int, default=None,
                           help="DAT: random threshold settings to try (default: 100).")
    calibrate.add_argument("--max-eval-samples", type=_positive_int, default=None)
    calibrate.add_argument("--batch-size", type=_positive_int, default=32)
    calibrate.add_argument("--max-length", type=_positive_int, default=None,
                           help="Defaults to the saved tokenizer's model_max_length.")
    calibrate.add_argument("--seed", type=int, default=42, help="Seed of the dataset split.")
    calibrate.add_argument("--output-dir", default=None,
                           help="Write the calibrated model here instead of over MODEL (required for a repo id).")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="adaptive-zoo", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true")
    subparsers = parser.add_subparsers(dest="command", required=True)
    _add_train_parser(subparsers)
    _add_evaluate_parser(subparsers)
    _add_calibrate_parser(subparsers)

    explain = subparsers.add_parser(
        "explain", help="Show which tokens survive each layer of a token-dropping model (AdapLeR), as HTML and PNG."
    )
    explain.add_argument("model", help="A saved folder or Hub repo id.")
    explain.add_argument("text")
    explain.add_argument("--output-dir", default=".", help="Where explanation.html and explanation.png go.")
    explain.add_argument("--max-length", type=_positive_int, default=None)

    hash_parser = subparsers.add_parser("hash", help="HashEE hash tables (token id -> exit layer).")
    hash_commands = hash_parser.add_subparsers(dest="hash_command", required=True)
    build = hash_commands.add_parser("build", help="Build a table from a dataset's training split and save it.")
    build.add_argument("--dataset", default="tweet_sentiment")
    _add_column_arguments(build)
    build.add_argument("--base-model", default="minilm", help="Its tokenizer, layer count and (clustered) embeddings.")
    build.add_argument("--hash-function", default="frequency")
    build.add_argument("--num-buckets", type=_positive_int, default=None, help="B (default: one per layer).")
    build.add_argument("--num-layers", type=_positive_int, default=None, help="L (default: the base model's).")
    build.add_argument("--max-length", type=_positive_int, default=None)
    build.add_argument("--max-train-samples", type=_positive_int, default=None)
    build.add_argument("--seed", type=int, default=42)
    build.add_argument("--output", default="hash_table.safetensors")

    push = subparsers.add_parser("push", help="Upload a saved folder to the Hub as one commit.")
    push.add_argument("folder")
    push.add_argument("repo_id")
    push.add_argument("--private", action="store_true")
    push.add_argument("--commit-message", default=None)

    quickstart = subparsers.add_parser(
        "quickstart", help="The main job: DeeBERT on bbc_news from MiniLM, measured, saved, checked (~10 min on 2 cores)."
    )
    quickstart.add_argument("--output-dir", default="adaptive-zoo-quickstart/deebert-minilm-bbc_news")
    quickstart.add_argument("--max-train-samples", type=_positive_int, default=None)
    quickstart.add_argument("--max-eval-samples", type=_positive_int, default=None)
    quickstart.add_argument("--num-train-epochs", type=float, default=2.0)
    quickstart.add_argument("--off-ramp-epochs", type=float, default=2.0)
    return parser


# Which training flags each method takes (the CLI name of each is the flag with dashes).
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


def run_train(args: argparse.Namespace) -> dict[str, Any] | None:
    from .recipes import train_adapler_recipe, train_dat_recipe, train_deebert_recipe, train_hashee_recipe

    given = {name: value for name, value in vars(args).items() if value is not None}
    foreign = [name for method, names in METHOD_FLAGS.items() if method != args.method for name in names
               if name in given and name not in METHOD_FLAGS[args.method]]
    if foreign:
        raise ValueError(f"`train {args.method}` does not take --{', --'.join(n.replace('_', '-') for n in foreign)}.")
    recipe = {"deebert": train_deebert_recipe, "adapler": train_adapler_recipe,
              "hashee": train_hashee_recipe, "dat": train_dat_recipe}[args.method]
    extra = {"accuracy_budget": args.accuracy_budget} if args.method in TUNED_METHODS else {}
    dataset = args.dataset if args.dataset is not None else DEFAULT_TRAIN_DATASETS.get(args.method, "bbc_news")
    return recipe(
        dataset=dataset, text_column=args.text_column, label_column=args.label_column,
        output_dir=args.output_dir, base_model=args.base_model, max_train_samples=args.max_train_samples,
        max_eval_samples=args.max_eval_samples, **extra,
        **{name: given[name] for name in METHOD_FLAGS[args.method] if name in given},
    )


def run_evaluate(args: argparse.Namespace) -> dict[str, Any]:
    from transformers import AutoConfig, AutoModelForSeq2SeqLM, AutoModelForSequenceClassification, AutoTokenizer

    from .data import load_task_data, select_first
    from .evaluation.classification import evaluate_classifier
    from .hub.folder import check_hub_folder
    from .training.common import check_label_count

    if Path(args.model).exists():
        check_hub_folder(args.model)
    config = AutoConfig.from_pretrained(args.model)
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    task = load_task_data(args.dataset, seed=args.seed, text_column=args.text_column, label_column=args.label_column)
    expected = "seq2seq" if config.is_encoder_decoder else "classification"
    if task.task != expected:
        raise ValueError(f"{args.dataset!r} is a {task.task} dataset; {args.model} is a {expected} model.")
    split = select_first(task.dataset[args.split], args.max_eval_samples)
    max_length = args.max_length or min(tokenizer.model_max_length, config.max_position_embeddings)
    if config.is_encoder_decoder:
        from .evaluation.seq2seq import evaluate_seq2seq

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
            from .evaluation.classification import mean_token_exit

            report["mean_exit_layer_per_token"] = mean_token_exit(model, tokenizer, split["text"], max_length)
    report = {"model": args.model, "model_type": model.config.model_type, "dataset": args.dataset,
              "split": args.split, **report}
    if args.json_path:
        Path(args.json_path).write_text(json.dumps(report, indent=2))
    return report


def run_calibrate(args: argparse.Namespace) -> dict[str, Any]:
    from .calibrate import CalibrationSettings, calibrate_folder

    settings = CalibrationSettings(
        dataset=args.dataset, split=args.split, accuracy_budget=args.accuracy_budget,
        compute_budget=args.compute_budget, threshold_trials=args.threshold_trials,
        max_eval_samples=args.max_eval_samples, batch_size=args.batch_size, max_length=args.max_length,
        seed=args.seed, text_column=args.text_column, label_column=args.label_column,
    )
    report = calibrate_folder(args.model, settings, output_dir=args.output_dir)
    return {"model": args.output_dir or args.model, "calibration": report}


def run_explain(args: argparse.Namespace) -> dict[str, Any]:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from .evaluation.explain import explain_text, render_html, render_png

    model = AutoModelForSequenceClassification.from_pretrained(args.model).eval()
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    rationale = explain_text(model, tokenizer, args.text, max_length=args.max_length)
    output_dir = Path(args.output_dir)
    paths = {"html": render_html(rationale, output_dir / "explanation.html"),
             "png": render_png(rationale, output_dir / "explanation.png")}
    return {"predicted_label": rationale.predicted_label, "tokens_per_layer": rationale.kept_counts,
            **{kind: str(path) for kind, path in paths.items()}}


def run_hash_build(args: argparse.Namespace) -> dict[str, Any]:
    from transformers import AutoConfig, AutoTokenizer

    from .backbones import resolve_base_model
    from .data import load_task_data, select_first
    from .hashing import build_hash_table, save_hash_table
    from .training.hashee import input_embeddings_for

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
    from .hub.push import push_folder

    return push_folder(args.folder, args.repo_id, private=args.private, commit_message=args.commit_message)


def run_quickstart(args: argparse.Namespace) -> dict[str, Any]:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from .hub.verify import verify_fresh_process_load
    from .recipes import train_deebert_recipe

    start = time.perf_counter()
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
    return {"output_dir": args.output_dir, "minutes": round((time.perf_counter() - start) / 60, 1),
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


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
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
    except (ValueError, FileNotFoundError, ImportError, OSError, StrictDataclassError) as error:
        print(f"adaptive-zoo: error: {error}", file=sys.stderr)
        return 2
    if report is not None:
        print(json.dumps(report, indent=2, default=str))
        _print_summary(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
