"""How sure is a ROUGE ratio between two seq2seq models? A paired bootstrap over the evaluation set.

Both models generate (greedy by default) for the same split. Each sample's ROUGE F-measure is scored, and the
split is resampled with replacement (the same resample for both models, since they answer the same inputs). This
gives the distribution of the ratio of the mean scores, e.g. HashEE-BART against the same BART trained without
exits, whose target is a ROUGE-1 ratio of at least 97%. The script prints the ratio, its 95% percentile interval
and the share of resamples at or above `--target`.

    python investigations/bootstrap_rouge_ratio.py --dataset bbc_headlines --split test \
        runs/benchmark_hashee10/hashee-frequency-bbc_headlines \
        runs/benchmark_hashee10/hashee-frequency-bbc_headlines-training/vanilla/checkpoint-630

The interval covers the test set's sampling noise only: not the training noise of either model (seeds), which
would need several trainings of each.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

import adaptive_zoo  # noqa: F401  (registers the model classes)
from adaptive_zoo.data import load_task_data
from adaptive_zoo.data.registry import get_dataset_spec
from adaptive_zoo.evaluation.seq2seq import batched, decode_all, encode_sources, generate_all
from adaptive_zoo.evaluation.text_metrics import load_rouge, rouge_scores


def per_sample_rouge(predictions: list[str], references: list[str], rouge_type: str) -> np.ndarray:
    """One F-measure per sample, 0-100 (the mean of these is what `rouge_scores` reports)."""
    scores = load_rouge().compute(predictions=predictions, references=references, rouge_types=[rouge_type],
                                  use_stemmer=True, use_aggregator=False)
    return 100 * np.asarray(scores[rouge_type], dtype=np.float64)


def bootstrap_ratios(numerator: np.ndarray, denominator: np.ndarray, num_resamples: int, seed: int) -> np.ndarray:
    """Ratio of means over paired resamples of the samples (the same indices for both score arrays)."""
    if numerator.shape != denominator.shape:
        raise ValueError(f"Paired scores differ in shape: {numerator.shape} and {denominator.shape}.")
    rng = np.random.default_rng(seed)
    indices = rng.integers(0, len(numerator), size=(num_resamples, len(numerator)))  # (R, n)
    return numerator[indices].mean(axis=1) / denominator[indices].mean(axis=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", help="Folder of the model whose score is the numerator (e.g. HashEE-BART).")
    parser.add_argument("baseline", help="Folder of the model whose score is the denominator.")
    parser.add_argument("--dataset", default="bbc_headlines")
    parser.add_argument("--split", default="test")
    parser.add_argument("--max-length", type=int, default=256, help="Source tokens.")
    parser.add_argument("--max-new-tokens", type=int, default=24)
    parser.add_argument("--num-beams", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--rouge-type", default="rouge1", choices=["rouge1", "rouge2", "rougeL"])
    parser.add_argument("--target", type=float, default=0.97, help="Ratio whose share of resamples is reported.")
    parser.add_argument("--num-resamples", type=int, default=10000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", default=None, help="Also write the result as JSON here.")
    args = parser.parse_args()

    spec = get_dataset_spec(args.dataset)
    if spec.summary_column is None:
        parser.error(f"{args.dataset!r} is not a summarization dataset")
    split = load_task_data(args.dataset).dataset[args.split]
    references = list(split[spec.summary_column])

    scores, corpus_scores = {}, {}
    for role, folder in (("model", args.model), ("baseline", args.baseline)):
        model = AutoModelForSeq2SeqLM.from_pretrained(folder).eval()
        tokenizer = AutoTokenizer.from_pretrained(folder)
        batches = batched(encode_sources(tokenizer, list(split[spec.text_column]), args.max_length),
                          args.batch_size, tokenizer.pad_token_id or 0)
        predictions = decode_all(tokenizer, generate_all(model, batches, max_new_tokens=args.max_new_tokens,
                                                         num_beams=args.num_beams))
        scores[role] = per_sample_rouge(predictions, references, args.rouge_type)
        corpus_scores[role] = rouge_scores(predictions, references)[args.rouge_type]

    ratios = bootstrap_ratios(scores["model"], scores["baseline"], args.num_resamples, args.seed)
    low, high = np.percentile(ratios, [2.5, 97.5])
    result = {
        "dataset": args.dataset, "split": args.split, "num_samples": len(references), "rouge_type": args.rouge_type,
        "model": args.model, "baseline": args.baseline, "num_beams": args.num_beams,
        "model_score": corpus_scores["model"], "baseline_score": corpus_scores["baseline"],
        "ratio": float(scores["model"].mean() / scores["baseline"].mean()),
        "ratio_ci95": [float(low), float(high)],
        "target": args.target, "share_of_resamples_at_or_above_target": float((ratios >= args.target).mean()),
        "num_resamples": args.num_resamples, "seed": args.seed,
    }
    print(f"{args.rouge_type}: {result['model_score']:.2f} against {result['baseline_score']:.2f}, ratio "
          f"{100 * result['ratio']:.1f}% (95% interval {100 * low:.1f}% to {100 * high:.1f}%; "
          f"{100 * result['share_of_resamples_at_or_above_target']:.1f}% of resamples at or above "
          f"{100 * args.target:.0f}%)")
    if args.output:
        Path(args.output).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
