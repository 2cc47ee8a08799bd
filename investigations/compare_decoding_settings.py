"""ROUGE of seq2seq models under several generation settings, on one split (validation by default).

Used to ask whether decoding, rather than training, explains a quality gap between two models: e.g. HashEE-BART
against the same BART trained without exits. Every model runs every setting on the same inputs, so settings can
be chosen on validation per model or for all models at once, and only then looked at on test.

    python investigations/compare_decoding_settings.py --dataset bbc_headlines \
        hashee=runs/benchmark_hashee/hashee-frequency-bbc_headlines \
        no_exits=runs/benchmark_hashee/hashee-frequency-bbc_headlines-training/vanilla/checkpoint-525
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

import adaptive_zoo  # noqa: F401  (registers the model classes)
from adaptive_zoo.data import load_task_data
from adaptive_zoo.data.registry import get_dataset_spec
from adaptive_zoo.evaluation.seq2seq import batched, decode_all, encode_sources, generate_all, mean_generated_tokens
from adaptive_zoo.evaluation.text_metrics import rouge_scores

SETTINGS = {
    "greedy": dict(num_beams=1),
    "greedy, no repeated 3-grams": dict(num_beams=1, no_repeat_ngram_size=3),
    "greedy, no repeated 2-grams": dict(num_beams=1, no_repeat_ngram_size=2),
    "beam 4": dict(num_beams=4),
    "beam 4, no repeated 3-grams": dict(num_beams=4, no_repeat_ngram_size=3),
    "beam 4, no repeated 2-grams": dict(num_beams=4, no_repeat_ngram_size=2),
}


def named_folder(value: str) -> tuple[str, str]:
    name, sep, folder = value.partition("=")
    if not sep or not name or not folder:
        raise argparse.ArgumentTypeError(f"expected NAME=FOLDER, got {value!r}")
    return name, folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="+", type=named_folder, help="NAME=FOLDER, a saved seq2seq model each.")
    parser.add_argument("--dataset", default="bbc_headlines")
    parser.add_argument("--split", default="validation")
    parser.add_argument("--max-length", type=int, default=256, help="Source tokens.")
    parser.add_argument("--max-new-tokens", type=int, default=24)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--output", default=None, help="Also write the scores as JSON here.")
    args = parser.parse_args()

    models = {name: AutoModelForSeq2SeqLM.from_pretrained(folder).eval() for name, folder in args.models}
    tokenizer = AutoTokenizer.from_pretrained(args.models[0][1])
    spec = get_dataset_spec(args.dataset)
    if spec.summary_column is None:
        parser.error(f"{args.dataset!r} is not a summarization dataset")
    split = load_task_data(args.dataset).dataset[args.split]
    references = list(split[spec.summary_column])
    batches = batched(encode_sources(tokenizer, split[spec.text_column], args.max_length), args.batch_size,
                      tokenizer.pad_token_id or 0)

    scores: dict[str, dict[str, dict[str, float]]] = {}
    for setting, generate_kwargs in SETTINGS.items():
        for name, model in models.items():
            generated = generate_all(model, batches, max_new_tokens=args.max_new_tokens, **generate_kwargs)
            scores.setdefault(setting, {})[name] = {
                **rouge_scores(decode_all(tokenizer, generated), references),
                "mean_generated_tokens": mean_generated_tokens(generated, tokenizer.pad_token_id),
            }

    names = list(models)
    print(f"{args.dataset} {args.split} ({len(references)} pairs), ROUGE-1 (mean generated tokens)\n")
    print("| setting | " + " | ".join(names) + " |")
    print("|---|" + "---|" * len(names))
    for setting, by_model in scores.items():
        cells = [f"{by_model[n]['rouge1']:.2f} ({by_model[n]['mean_generated_tokens']:.1f})" for n in names]
        print(f"| {setting} | " + " | ".join(cells) + " |")
    best = {n: max(scores, key=lambda s, n=n: scores[s][n]["rouge1"]) for n in names}
    print("\nbest setting per model: " + "; ".join(f"{n}: {s} ({scores[s][n]['rouge1']:.2f})" for n, s in best.items()))
    if args.output:
        Path(args.output).write_text(json.dumps({"dataset": args.dataset, "split": args.split, "scores": scores,
                                                 "settings": SETTINGS, "models": dict(args.models)}, indent=2))


if __name__ == "__main__":
    main()
