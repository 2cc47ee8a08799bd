"""HashEE benchmarks: each run trains with `adaptive-zoo train hashee` (and the same backbone fine-tuned the same
way without exits, the paper's baseline), measures on test, and prints a markdown table for BENCHMARKS.md.

    python investigations/benchmark_hashee.py --dataset tweet_sentiment          # HashEE-BERT, frequency hash
    python investigations/benchmark_hashee.py --dataset bbc_headlines            # HashEE-BART (warm-started from MiniLM)
    python investigations/benchmark_hashee.py --dataset tweet_sentiment --compare-hashes --max-train-samples 4000 \
        --num-train-epochs 2                                              # the paper's Table 3, redone

Speed-ups are against the vanilla transformers model with the same weights, measured in the same run:
executed FLOPs (FlopCounterMode) and wall-clock as interleaved medians. Run on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import json
import platform
from pathlib import Path

import torch

from adaptive_zoo.evaluation.plots import plot_tradeoff
from adaptive_zoo.hashing import HASH_FUNCTIONS
from adaptive_zoo.recipes import RESULTS_FILE, run_recipe

# Settings behind BENCHMARKS.md (CPU budget: training subsets, short epochs).
SETTINGS = {
    # All 18242 training tweets for the main row; the hash comparison (`--compare-hashes`) was run with
    # `--max-train-samples 4000 --num-train-epochs 2` to fit six models in the CPU budget.
    "tweet_sentiment": dict(max_train_samples=None, num_train_epochs=3, learning_rate=5e-5, max_length=64,
                            batch_size=32),
    "bbc_news": dict(max_train_samples=None, num_train_epochs=3, learning_rate=5e-5, max_length=256, batch_size=16),
    "bbc_headlines": dict(num_train_epochs=5, learning_rate=3e-4, max_length=256, max_target_length=24,
                          batch_size=16),
}


def classification_row(name: str, results: dict) -> str:
    return (f"| {name} | {100 * results['accuracy']:.2f} | {100 * results.get('vanilla_finetuned_accuracy', float('nan')):.2f} | "
            f"{results['flops_speedup']:.2f}x | {results['wallclock_speedup']:.2f}x | {results['latency_speedup']:.2f}x | "
            f"{results['mean_exit_layer_per_token']:.2f} |")


def baseline_key(results: dict) -> str | None:
    """The results key of the model trained without exits, where this run carries it."""
    for key in ("vanilla_finetuned_accuracy", "vanilla_finetuned_rouge"):
        if key in results:
            return key
    return None


def reusable_results(folder: Path, settings: dict) -> dict | None:
    """A finished run's test results, if its record says it was trained with `settings`; otherwise None."""
    record_file = folder / RESULTS_FILE
    if not record_file.is_file():
        return None
    record = json.loads(record_file.read_text())
    recorded = {**record.get("training", {}), "max_train_samples": record.get("max_train_samples", "unrecorded")}
    if any(recorded.get(key) != value for key, value in settings.items()):
        return None
    return record["test"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="tweet_sentiment", choices=sorted(SETTINGS))
    parser.add_argument("--hash-function", default="frequency", choices=sorted(HASH_FUNCTIONS))
    parser.add_argument("--compare-hashes", action="store_true", help="Train one model per hash function.")
    parser.add_argument("--hashes", nargs="+", choices=sorted(HASH_FUNCTIONS), default=None,
                        help="With --compare-hashes: only these hash functions (default: all).")
    parser.add_argument("--output-dir", default="runs/benchmark_hashee")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--max-train-samples", type=int, default=None,
                        help="Override the dataset's setting (e.g. more data for the main row than the hash "
                             "comparison uses; --reuse only reuses runs trained with the same settings).")
    parser.add_argument("--num-train-epochs", type=float, default=None, help="Override the dataset's setting.")
    parser.add_argument("--reuse", action="store_true",
                        help="Reuse a hash's finished run in --output-dir when it was trained with these settings "
                             "(its results record is read back instead of training it again).")
    args = parser.parse_args()

    output_dir = Path(args.output_dir)
    settings = dict(SETTINGS[args.dataset])
    for key in ("max_train_samples", "num_train_epochs"):
        if getattr(args, key) is not None:
            settings[key] = getattr(args, key)
    machine = f"{platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}"
    hashes = (args.hashes or sorted(HASH_FUNCTIONS)) if args.compare_hashes else [args.hash_function]
    runs = {}
    for hash_function in hashes:
        folder = output_dir / f"hashee-{hash_function}-{args.dataset}"
        reused = reusable_results(folder, settings) if args.reuse else None
        if reused is not None:
            print(f"reusing {folder} (trained with the same settings)")
            runs[hash_function] = reused
        else:
            # the baseline without exits does not depend on the hash: train it once
            runs[hash_function] = run_recipe("hashee", dataset=args.dataset, output_dir=str(folder), hash_function=hash_function,
                train_vanilla=not any(baseline_key(r) for r in runs.values()),
                wallclock_repeats=args.repeats, **settings,
            ).to_dict()
    # order the table the way the hashes were asked for, with the run that carries the baseline first
    runs = dict(sorted(runs.items(), key=lambda item: baseline_key(item[1]) is None))
    report = {"dataset": args.dataset, "settings": settings, "machine": machine, "runs": runs}
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / f"benchmark_{args.dataset}{'_hashes' if args.compare_hashes else ''}.json").write_text(
        json.dumps(report, indent=2, default=str))

    first = next(iter(runs.values()))
    if "rouge" in first:
        baseline = first.get("vanilla_finetuned_rouge", {}).get("rouge1")
        print("| hash | ROUGE-1 | ROUGE-2 | ROUGE-L | ROUGE-1 of BART trained without exits | ROUGE-1 ratio | "
              "encoder FLOPs speed-up | generate FLOPs speed-up | generate wall-clock speed-up | "
              "the same at equal output length (FLOPs, wall-clock) | mean exit layer |")
        print("|---|---|---|---|---|---|---|---|---|---|---|")
        for name, results in runs.items():
            rouge = results["rouge"]
            ratio = f"{100 * rouge['rouge1'] / baseline:.1f}%" if baseline else "n/a"
            print(f"| {name} | {rouge['rouge1']:.2f} | {rouge['rouge2']:.2f} | {rouge['rougeL']:.2f} | "
                  f"{baseline if baseline is not None else float('nan'):.2f} | {ratio} | "
                  f"{results['encoder_flops_speedup']:.2f}x | {results['generate_flops_speedup']:.2f}x | "
                  f"{results['generate_wallclock_speedup']:.2f}x | "
                  f"{results.get('equal_length_generate_flops_speedup', float('nan')):.2f}x, "
                  f"{results.get('equal_length_generate_wallclock_speedup', float('nan')):.2f}x | "
                  f"{results['mean_exit_layer_per_token']:.2f} |")
        return
    vanilla = first["vanilla_finetuned_accuracy"]
    print(f"BERT fine-tuned the same way without exits: accuracy {100 * vanilla:.2f} ({machine})")
    print("| hash | accuracy | accuracy without exits | executed-FLOPs speed-up | throughput speed-up (batch 32) | "
          "latency speed-up (batch 1) | mean exit layer per token |")
    print("|---|---|---|---|---|---|---|")
    for name, results in runs.items():
        results.setdefault("vanilla_finetuned_accuracy", vanilla)
        print(classification_row(name, results))
    if args.compare_hashes:
        points = [{"hash": name, "accuracy_pct": 100 * r["accuracy"], "flops_speedup": r["flops_speedup"]}
                  for name, r in runs.items()]
        image = plot_tradeoff(points, "flops_speedup", "accuracy_pct", output_dir / f"hashes_{args.dataset}.png",
                              label_key="hash", baseline_y=100 * vanilla, baseline_label="fine-tuned without exits",
                              title=f"HashEE hash functions on {args.dataset} (test)",
                              xlabel="executed-FLOPs speed-up vs vanilla BERT", ylabel="accuracy (%)")
        print(f"plot: {image}")


if __name__ == "__main__":
    main()
