"""DeeBERT benchmark: accuracy against the vanilla fine-tuned model, and executed-FLOPs, throughput (batch 32)
and latency (batch 1) speed-ups against the vanilla transformers model with the same weights, measured in one
run. Prints a markdown table for BENCHMARKS.md and writes the full report as JSON.

    python investigations/benchmark_deebert.py                        # trains with the quickstart defaults first
    python investigations/benchmark_deebert.py --model-dir DIR        # measures an already trained folder

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
from adaptive_zoo.evaluation.classification import evaluate_classifier
from adaptive_zoo.evaluation.reports import EvaluationOptions
from adaptive_zoo.recipes import run_recipe


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-dir", default=None, help="A trained DeeBERT folder; trained first if omitted.")
    parser.add_argument("--dataset", default="bbc_news")
    parser.add_argument("--split", default="test")
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--output", default="runs/benchmark_deebert.json")
    args = parser.parse_args()

    model_dir = args.model_dir or f"runs/benchmark/deebert-minilm-{args.dataset}"
    if args.model_dir is None:
        run_recipe("deebert", dataset=args.dataset, output_dir=model_dir, max_length=args.max_length).to_dict()
    model = AutoModelForSequenceClassification.from_pretrained(model_dir).eval()
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    split = load_task_data(args.dataset).dataset[args.split]
    report = evaluate_classifier(
        model, tokenizer, split["text"], split["label"], max_length=args.max_length,
        options=EvaluationOptions(batch_size=args.batch_size, repeats=args.repeats, latency_samples=len(split)),
    ).to_dict()
    report.update(model_dir=model_dir, dataset=args.dataset, split=args.split,
                  entropy_threshold=model.config.entropy_threshold,
                  machine=f"{platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}")
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(report, indent=2))

    print(f"| dataset | S | accuracy | vanilla accuracy | executed-FLOPs speed-up | throughput speed-up "
          f"(batch {args.batch_size}) | latency speed-up (batch 1) | mean exit layer |")
    print("|---|---|---|---|---|---|---|---|")
    threshold = model.config.entropy_threshold
    print(f"| {args.dataset} ({args.split}, {report['num_samples']}) | {'off' if threshold is None else f'{threshold:.4g}'} | "
          f"{100 * report['accuracy']:.2f} | {100 * report['vanilla_accuracy']:.2f} | "
          f"{report['flops_speedup']:.2f}x | {report['wallclock_speedup']:.2f}x | {report['latency_speedup']:.2f}x | "
          f"{report['exit']['mean_exit_layer']:.2f} / {report['exit']['num_layers']} |")


if __name__ == "__main__":
    main()
