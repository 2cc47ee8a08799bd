"""Depth-Adaptive Transformer benchmarks, the paper's Figure 3 redone on summarization: one model per exit-prediction
method (sequence, multinomial, geometric; one per oracle depth penalty lambda), each trained with
`adaptive-zoo train dat`, plus one confidence-thresholded model whose thresholds are tuned on validation under a
few compute budgets (one random search; each budget keeps its best setting). Each operating point is measured on
test against the same weights at full depth; the script plots ROUGE-1 against the average exit and prints a
markdown table for BENCHMARKS.md.

    python investigations/benchmark_dat.py --dataset bbc_headlines
    python investigations/benchmark_dat.py --dataset aclsum
    # one trained decoder at every fixed exit and at tuned confidence thresholds (no retraining), with its own row:
    python investigations/benchmark_dat.py --methods sequence --depth-penalties 0.3 --reuse \
        --operating-points-of runs/benchmark_dat/dat-sequence-lambda0.3-bbc_headlines
    # a quick end-to-end check of the script (minutes, not a benchmark):
    python investigations/benchmark_dat.py --max-train-samples 32 --max-eval-samples 8 --num-train-epochs 1 \
        --threshold-trials 4 --depth-penalties 0 --budgets 0.4 --repeats 1 --output-dir runs/benchmark_dat_smoke

Configuration (documented in the printed table's header): decoder-heavy, a BART warm-started from MiniLM
(`bart_from_bert`) whose encoder keeps only BERT's lowest 2 layers while the decoder has all 6 (`--encoder-layers
2 --decoder-layers 6`). The DAT adapts only the decoder, which runs once per generated token while the encoder
runs once per input; a light encoder makes the decoder the cost that matters, as in the paper's translation
models. `bart_from_bert` caps the decoder at BERT's layer count, so "more decoder than encoder layers" means a
shallower encoder. Sources are cut to 64 tokens (the article's lead, where most headline words are) for the same
reason: the encoder and the decoder's source keys and values then cost less next to the blocks.

Targets reported per row (not asserted): average exit at most 40% of the decoder's depth, ROUGE-1 within 1.0
point of the same model at full depth, and a `generate` wall-clock speed-up of at least 1.5x against full depth.
Speed-ups are measured in the same run (executed FLOPs with FlopCounterMode; wall-clock as interleaved paired
medians). Run on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import json
import platform
from pathlib import Path

import torch
from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

from adaptive_zoo.data import load_task_data, select_first
from adaptive_zoo.evaluation.operating_points import (
    choose_confidence_thresholds,
    fixed_exit_thresholds,
    tune_confidence_thresholds,
)
from adaptive_zoo.evaluation.plots import plot_tradeoff
from adaptive_zoo.evaluation.reports import EvaluationOptions
from adaptive_zoo.evaluation.seq2seq import evaluate_dat
from adaptive_zoo.recipes import RESULTS_FILE, run_recipe

LEARNED = ("sequence", "multinomial", "geometric")
METHODS = (*LEARNED, "confidence")
# Settings behind BENCHMARKS.md (CPU budget: short epochs; decoder-heavy, see the module docstring).
SETTINGS = {
    "bbc_headlines": dict(encoder_layers=2, decoder_layers=6, num_train_epochs=10, learning_rate=3e-4,
                          max_length=64, max_target_length=24, batch_size=16),
    "aclsum": dict(encoder_layers=2, decoder_layers=6, num_train_epochs=4, learning_rate=1e-4, max_length=512,
                   max_target_length=64, batch_size=8),
}
TARGET_EXIT_FRACTION, TARGET_ROUGE1_DROP, TARGET_WALLCLOCK = 0.40, 1.0, 1.5


def point(method: str, setting: str, results: dict, epochs: float | None = None) -> dict:
    """One operating point: what the table and the plot need."""
    rouge, base = results["rouge"], results["baseline_rouge"]
    return {
        "method": method, "setting": setting, "epochs": epochs, "rouge1": rouge["rouge1"], "rouge2": rouge["rouge2"],
        "rougeL": rouge["rougeL"], "bleu": results["bleu"], "average_exit": results["average_exit"],
        "num_decoder_layers": results["num_decoder_layers"], "average_exit_fraction": results["average_exit_fraction"],
        "full_depth_rouge1": base["rouge1"], "full_depth_bleu": results["baseline_bleu"],
        "generate_flops_speedup": results["generate_flops_speedup"],
        "generate_flops_fraction": results["generate_flops"] / results["full_depth_generate_flops"],
        "decoder_flops_speedup": results["decoder_flops_speedup"],
        "generate_wallclock_speedup": results.get("generate_wallclock_speedup", float("nan")),
    }


def targets_met(p: dict) -> str:
    misses = []
    if not p["average_exit_fraction"] <= TARGET_EXIT_FRACTION:
        misses.append(f"AE/N > {TARGET_EXIT_FRACTION:.0%}")
    if not p["rouge1"] >= p["full_depth_rouge1"] - TARGET_ROUGE1_DROP:
        misses.append(f"ROUGE-1 drop > {TARGET_ROUGE1_DROP}")
    if not p["generate_wallclock_speedup"] >= TARGET_WALLCLOCK:
        misses.append(f"wall-clock < {TARGET_WALLCLOCK}x")
    return "yes" if not misses else "no: " + ", ".join(misses)


def load_run(folder: Path):
    """A finished run's results record, its model (eval mode) and its tokenizer."""
    record = json.loads((folder / RESULTS_FILE).read_text())
    return record, AutoModelForSeq2SeqLM.from_pretrained(folder).eval(), AutoTokenizer.from_pretrained(folder)


def measure_dat(model, tokenizer, test, training: dict, batch_size: int, repeats: int) -> dict:
    """`evaluate_dat` on `test`, generating as the run did in its own evaluation (source length, new tokens,
    beams)."""
    options = EvaluationOptions(batch_size=batch_size, repeats=repeats, max_new_tokens=training["max_target_length"],
                                num_beams=training["num_beams"])
    return evaluate_dat(model, tokenizer, test["text"], test["summary"], max_source_length=training["max_length"],
                        options=options).to_dict()


def best_within_budget(recorded: dict[tuple, tuple[float, float]], num_exits: int, fraction: float) -> list[float]:
    """The best of already scored threshold settings (thresholds -> (score, average exit)) whose average exit is at
    most `fraction` of the N blocks: a search's trials re-read under another budget, nothing re-evaluated."""
    return tune_confidence_thresholds(lambda t: recorded[tuple(t)], num_exits, budget=fraction * num_exits,
                                      num_trials=0, candidates=list(recorded)).best_thresholds


def budget_points(folder: Path, budgets: list[float], dataset: str, max_eval_samples: int | None, seed: int,
                  eval_batch_size: int, repeats: int) -> list[dict]:
    """The confidence model at further compute budgets: the validation search the recipe recorded is reused (same
    data, same trials; only the budget differs), and each budget's best setting is measured on test."""
    record, model, tokenizer = load_run(folder)
    search, test_results, training = record["threshold_search"], record["test"], record["training"]
    epochs = training["num_train_epochs"]
    recorded = {tuple(trial["thresholds"]): (trial["score"], trial["average_exit"]) for trial in search["trials"]}
    test = select_first(load_task_data(dataset, seed=seed).dataset["test"], max_eval_samples)
    points = []
    for fraction in budgets:
        if fraction == search["budget_fraction"]:
            points.append(point("confidence", f"AE <= {fraction:.0%} N", test_results, epochs))
            continue
        model.config.confidence_thresholds = best_within_budget(recorded, model.config.num_exits, fraction)
        results = measure_dat(model, tokenizer, test, training, eval_batch_size, repeats)
        points.append(point("confidence", f"AE <= {fraction:.0%} N", results, epochs))
    return points


def same_weights_points(folder: Path, budgets: list[float], dataset: str, max_eval_samples: int | None, seed: int,
                        eval_batch_size: int, repeats: int, threshold_trials: int, threshold_samples: int) -> list[dict]:
    """More operating points of one trained decoder, without retraining (the aligned regime trains every exit):
    every fixed exit n = 1 .. N (the paper's fixed-depth baselines), and confidence thresholds tuned on validation
    by one random search, each budget keeping its best setting. Each point is measured on test like the others."""
    record, model, tokenizer = load_run(folder)
    training = record["training"]
    epochs = training["num_train_epochs"]
    num_exits = model.config.num_exits
    data = load_task_data(dataset, seed=seed).dataset
    test = select_first(data["test"], max_eval_samples)
    validation = select_first(data["validation"], threshold_samples)
    generation = dict(max_source_length=training["max_length"], max_new_tokens=training["max_target_length"],
                      num_beams=training["num_beams"])
    model.config.exit_prediction = "confidence"  # thresholds decide; the run's own exit predictor is not used

    def measured(thresholds: list[float]) -> dict:
        model.config.confidence_thresholds = thresholds
        return measure_dat(model, tokenizer, test, training, eval_batch_size, repeats)

    points = [point("fixed exit (same weights)", f"n={n}", measured(fixed_exit_thresholds(n, num_exits)), epochs)
              for n in range(1, num_exits + 1)]
    search = choose_confidence_thresholds(model, tokenizer, list(validation["text"]), list(validation["summary"]),
                                          budget_fraction=budgets[0], num_trials=threshold_trials, seed=seed,
                                          batch_size=eval_batch_size, **generation)
    recorded = {tuple(trial.thresholds): (trial.score, trial.average_exit) for trial in search.trials}
    for fraction in budgets:
        points.append(point("confidence (same weights)", f"AE <= {fraction:.0%} N",
                            measured(best_within_budget(recorded, num_exits, fraction)), epochs))
    return points


def reusable_operating_points(report_file: Path) -> list[dict]:
    """The fixed-exit and tuned-threshold points (`same_weights_points`) of an earlier report, if it has them: with
    --reuse, a combined table of newly trained methods keeps them instead of measuring them again."""
    if not report_file.is_file():
        return []
    return [p for p in json.loads(report_file.read_text())["points"] if p["method"].endswith("(same weights)")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="bbc_headlines", help="bbc_headlines, aclsum, or a local CSV/JSON file "
                        "with text and summary columns (then the bbc_headlines settings apply).")
    parser.add_argument("--base-model", default="minilm")
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--depth-penalties", nargs="+", type=float, default=[0.0, 0.1, 1.0],
                        help="lambda of the learned methods' oracle: one model per value and method.")
    parser.add_argument("--oracle", default="likelihood", choices=("likelihood", "correctness"))
    parser.add_argument("--budgets", nargs="+", type=float, default=[0.3, 0.4, 0.6],
                        help="Compute budgets of the confidence model (average exit / N); the first trains it.")
    parser.add_argument("--threshold-trials", type=int, default=50)
    parser.add_argument("--threshold-samples", type=int, default=100, help="Validation examples per trial.")
    parser.add_argument("--from-scratch", action="store_true", help="Randomly initialised BART of the same shape.")
    parser.add_argument("--encoder-layers", type=int, default=None)
    parser.add_argument("--decoder-layers", type=int, default=None)
    parser.add_argument("--num-train-epochs", type=float, default=None)
    parser.add_argument("--learning-rate", type=float, default=None)
    parser.add_argument("--max-length", type=int, default=None)
    parser.add_argument("--max-target-length", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--max-train-samples", type=int, default=None)
    parser.add_argument("--max-eval-samples", type=int, default=None)
    parser.add_argument("--eval-batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--output-dir", default="runs/benchmark_dat")
    parser.add_argument("--operating-points-of", type=Path, default=None, metavar="RUN",
                        help="A finished run folder: also measure its decoder at every fixed exit 1 .. N and with "
                             "confidence thresholds tuned on validation under each --budgets (no retraining; the "
                             "aligned regime trains every exit).")
    parser.add_argument("--reuse", action="store_true",
                        help="Reuse finished runs in --output-dir (each keeps the settings it was trained with; the "
                             "table shows its epochs) instead of training them again: train methods in separate "
                             "calls, then one call with --reuse makes the combined table and plot. With "
                             "--operating-points-of, the fixed-exit and threshold points of the report already in "
                             "--output-dir are reused too.")
    args = parser.parse_args()

    output_dir = Path(args.output_dir)
    name = Path(args.dataset).stem
    settings = dict(SETTINGS.get(args.dataset, SETTINGS["bbc_headlines"]))
    for key in ("encoder_layers", "decoder_layers", "num_train_epochs", "learning_rate", "max_length",
                "max_target_length", "batch_size"):
        if getattr(args, key) is not None:
            settings[key] = getattr(args, key)
    common = dict(dataset=args.dataset, base_model=args.base_model, max_train_samples=args.max_train_samples,
                  max_eval_samples=args.max_eval_samples, eval_batch_size=args.eval_batch_size,
                  wallclock_repeats=args.repeats, seed=args.seed, from_scratch=args.from_scratch or None, **settings)
    machine = f"{platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}"

    def finished(folder: Path) -> dict | None:
        if not (args.reuse and (folder / RESULTS_FILE).is_file()):
            return None
        print(f"reusing {folder}")
        return json.loads((folder / RESULTS_FILE).read_text())

    points, runs = [], {}
    for method in args.methods:
        if method == "confidence":
            folder = output_dir / f"dat-confidence-{name}"
            record = finished(folder)
            runs[folder.name] = record["test"] if record else run_recipe("dat", output_dir=str(folder), exit_prediction="confidence", compute_budget=args.budgets[0],
                threshold_trials=args.threshold_trials, threshold_samples=args.threshold_samples, **common).to_dict()
            points += budget_points(folder, args.budgets, args.dataset, args.max_eval_samples, args.seed,
                                    args.eval_batch_size, args.repeats)
            continue
        for penalty in args.depth_penalties:
            folder = output_dir / f"dat-{method}-lambda{penalty:g}-{name}"
            record = finished(folder)
            runs[folder.name] = record["test"] if record else run_recipe("dat", output_dir=str(folder), exit_prediction=method, oracle=args.oracle, oracle_depth_penalty=penalty,
                **common).to_dict()
            epochs = record["training"]["num_train_epochs"] if record else settings["num_train_epochs"]
            points.append(point(method, f"lambda={penalty:g}", runs[folder.name], epochs))

    if args.operating_points_of is not None:
        measured_before = reusable_operating_points(output_dir / f"benchmark_dat_{name}.json") if args.reuse else []
        if measured_before:
            print(f"reusing the operating points in {output_dir / f'benchmark_dat_{name}.json'}")
            points += measured_before
        else:
            points += same_weights_points(args.operating_points_of, args.budgets, args.dataset, args.max_eval_samples,
                                          args.seed, args.eval_batch_size, args.repeats, args.threshold_trials,
                                          args.threshold_samples)

    # Each model at full depth (same weights, every block), for reference.
    full_depth = [{"method": "full depth (same weights)", "setting": "", "rouge1": p["full_depth_rouge1"],
                   "average_exit": p["num_decoder_layers"]} for p in points]
    output_dir.mkdir(parents=True, exist_ok=True)
    image = plot_tradeoff(
        points + full_depth, "average_exit", "rouge1", output_dir / f"dat_tradeoff_{name}.png", series_key="method",
        label_key="setting", title=f"Depth-Adaptive Transformer on {name} (test)",
        xlabel="average exit (decoder blocks per generated token)", ylabel="ROUGE-1",
    )
    report = {"dataset": args.dataset, "settings": settings, "base_model": args.base_model,
              "from_scratch": args.from_scratch, "machine": machine, "points": points, "runs": runs}
    (output_dir / f"benchmark_dat_{name}.json").write_text(json.dumps(report, indent=2, default=str))

    layers = f"{settings['encoder_layers']} encoder layers, {settings['decoder_layers']} decoder blocks"
    start = "from scratch" if args.from_scratch else f"warm-started from {args.base_model}"
    print(f"Depth-Adaptive Transformer on {args.dataset} (test): {layers}, {start}; {machine}")
    print("| method | setting | epochs | ROUGE-1 | ROUGE-2 | ROUGE-L | BLEU | AE / N | full-depth ROUGE-1 | generate "
          "wall-clock speed-up vs full depth | generate FLOPs vs full depth | targets met |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for p in points:
        print(f"| {p['method']} | {p['setting']} | {p['epochs']:g} | {p['rouge1']:.2f} | {p['rouge2']:.2f} | {p['rougeL']:.2f} | "
              f"{p['bleu']:.2f} | {p['average_exit']:.2f} / {p['num_decoder_layers']} ({p['average_exit_fraction']:.0%}) | "
              f"{p['full_depth_rouge1']:.2f} | {p['generate_wallclock_speedup']:.2f}x | "
              f"{p['generate_flops_fraction']:.0%} ({p['generate_flops_speedup']:.2f}x) | {targets_met(p)} |")
    print(f"plot: {image}")


if __name__ == "__main__":
    main()
