"""AdapLeR benchmark: accuracy against the fine-tuned model it started from (phase 1), and executed-FLOPs,
throughput (batch 32) and latency (batch 1) speed-ups against the vanilla transformers model with the same
weights, measured in one run. Prints a markdown table for BENCHMARKS.md and writes the full report as JSON.

    python investigations/benchmark_adapler.py --model-dir DIR                 # measures an already trained folder
    python investigations/benchmark_adapler.py --dataset bbc_news               # trains with the settings below first

Run it on an otherwise idle machine: wall-clock ratios are interleaved medians, robust to drift but not to
another process competing for the same cores.
"""

from __future__ import annotations

import argparse
import json
import platform
from pathlib import Path

import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

import adaptive_zoo  # noqa: F401  (registers the model classes)
from adaptive_zoo.data import load_task_data
from adaptive_zoo.evaluation.classification import accuracy_of, evaluate_classifier
from adaptive_zoo.evaluation.reports import EvaluationOptions
from adaptive_zoo.recipes import run_recipe
from adaptive_zoo.training.common import trainer_work_dir

# The settings behind BENCHMARKS.md (CPU budget: 1000 of BBC's 1672 training articles, 4000 of the tweets).
TRAINING = {
    "bbc_news": dict(max_length=512, max_train_samples=1000, num_train_epochs=3, learning_rate=5e-5,
                     adaptive_epochs=2, gamma=0.1, phi=0.1, batch_size=16, contribution_predictor_learning_rate=1e-3),
    "tweet_sentiment": dict(preset="sst2", max_train_samples=4000, num_train_epochs=3, adaptive_epochs=3,
                            learning_rate=5e-5, contribution_predictor_learning_rate=3e-5),
}


def finetuned_accuracy(model_dir: Path, record: dict, tokenizer, split, *, batch_size: int, max_length: int):
    """Accuracy of the phase-1 checkpoint the AdapLeR model started from, from the training record (or measured
    now, if the record predates it and the training folder is still there)."""
    test = record.get("test", {})
    if "finetuned_accuracy" in test:
        return test["finetuned_accuracy"], test["finetuned_checkpoint"]
    name = record["saliency_checkpoints"][0]
    phases_folder = Path(record["phases_1_2_from"]) if "phases_1_2_from" in record else trainer_work_dir(model_dir)
    checkpoint = phases_folder / "phase1" / name
    model = AutoModelForSequenceClassification.from_pretrained(checkpoint)
    return accuracy_of(model, tokenizer, split["text"], split["label"], batch_size=batch_size,
                       max_length=max_length), name


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-dir", default=None, help="A trained AdapLeR folder; trained first if omitted.")
    parser.add_argument("--dataset", default="bbc_news", choices=sorted(TRAINING))
    parser.add_argument("--split", default="test")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--output", default=None, help="JSON report (default runs/benchmark_adapler_<dataset>.json).")
    args = parser.parse_args()

    model_dir = Path(args.model_dir or f"runs/benchmark/adapler-minilm-{args.dataset}")
    if args.model_dir is None:
        run_recipe("adapler", dataset=args.dataset, output_dir=str(model_dir), **TRAINING[args.dataset]).to_dict()
    record = json.loads((model_dir / "adaptive_zoo_results.json").read_text())
    max_length = record["training"]["max_length"]
    model = AutoModelForSequenceClassification.from_pretrained(model_dir).eval()
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    split = load_task_data(args.dataset).dataset[args.split]
    report = evaluate_classifier(
        model, tokenizer, split["text"], split["label"], max_length=max_length,
        options=EvaluationOptions(batch_size=args.batch_size, repeats=args.repeats, latency_samples=len(split)),
    ).to_dict()
    report["finetuned_accuracy"], report["finetuned_checkpoint"] = finetuned_accuracy(
        model_dir, record, tokenizer, split, batch_size=args.batch_size, max_length=max_length)
    report.update(model_dir=str(model_dir), dataset=args.dataset, split=args.split, training=record["training"],
                  eta=model.config.eta, theta=model.config.theta,
                  machine=f"{platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}")
    output = Path(args.output or f"runs/benchmark_adapler_{args.dataset}.json")
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(report, indent=2))

    kept = " → ".join(f"{value:.0f}" for value in report["mean_kept_tokens_per_layer"])
    print(f"| dataset | max length | accuracy | fine-tuned accuracy (phase 1) | executed-FLOPs speed-up | "
          f"throughput speed-up (batch {args.batch_size}) | latency speed-up (batch 1) | mean tokens per layer |")
    print("|---|---|---|---|---|---|---|---|")
    print(f"| {args.dataset} ({args.split}, {report['num_samples']}) | {max_length} | "
          f"{100 * report['accuracy']:.2f} | {100 * report['finetuned_accuracy']:.2f} | "
          f"{report['flops_speedup']:.2f}x | {report['wallclock_speedup']:.2f}x | {report['latency_speedup']:.2f}x | "
          f"{kept} |")


if __name__ == "__main__":
    main()
