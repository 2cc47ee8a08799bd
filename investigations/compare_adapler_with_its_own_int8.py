"""Does AdapLeR's token removal beat the static shortcut applied to its *own* weights?

`adaptive-zoo benchmark` fine-tunes each static alternative with phase 1's budget, but AdapLeR's weights also train
through phase 3, so its accuracy lead over those alternatives mixes training with adaptivity. This script holds the
weights fixed: on one split it scores and times AdapLeR as saved, the same weights with nothing removed (the vanilla
`BertForSequenceClassification` they load into), and that vanilla model with `quantize_int8` (the benchmark's int8),
plus AdapLeR with int8 stacked. Accuracy, executed FLOPs and throughput at batch 32 (interleaved, against the
vanilla model with the same weights). Run it on an otherwise idle machine:

    python investigations/compare_adapler_with_its_own_int8.py runs/adapler-minilm-tweet3 \
        --dataset tweet_sentiment_3class --max-length 64 --max-samples 1000
"""

from __future__ import annotations

import argparse
import json

import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

import adaptive_zoo  # noqa: F401  (registers the model classes)
from adaptive_zoo.data import load_task_data
from adaptive_zoo.evaluation.benchmark import quantize_int8
from adaptive_zoo.evaluation.classification import predict_with_flops, vanilla_counterpart
from adaptive_zoo.evaluation.measure import compare_wallclock
from adaptive_zoo.evaluation.operating_points import encoded_batches


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model_dir")
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--split", default="test")
    parser.add_argument("--max-samples", type=int, default=None)
    parser.add_argument("--max-length", type=int, default=64, help="the length the model was trained at")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    adaptive = AutoModelForSequenceClassification.from_pretrained(args.model_dir).eval()
    tokenizer = AutoTokenizer.from_pretrained(args.model_dir)
    split = load_task_data(args.dataset).dataset[args.split]
    if args.max_samples is not None:
        split = split.select(range(min(args.max_samples, len(split))))
    _, batches = encoded_batches(tokenizer, split["text"], args.max_length, 32)
    gold = torch.as_tensor(split["label"])
    vanilla = vanilla_counterpart(adaptive).eval()
    candidates = {"same weights, nothing removed": vanilla, "AdapLeR as saved": adaptive,
                  "same weights, nothing removed, int8": quantize_int8(vanilla),
                  "AdapLeR as saved, int8": quantize_int8(adaptive)}
    scored = {name: predict_with_flops(model, batches) for name, model in candidates.items()}
    base_flops = scored["same weights, nothing removed"].flops
    with torch.inference_mode():
        timing = compare_wallclock({name: (lambda m=model: [m(**batch) for batch in batches])
                                    for name, model in candidates.items()},
                                   repeats=args.repeats, baseline="same weights, nothing removed")
    print(json.dumps({"model": args.model_dir, "dataset": args.dataset, "split": args.split, "texts": len(gold),
                      "threads": args.threads, "repeats": args.repeats, "torch": torch.__version__,
                      "points": {name: {"accuracy": round(100 * float((result.labels == gold).float().mean()), 2),
                                        "flops_speedup": round(base_flops / result.flops, 3),
                                        "throughput_speedup": round(timing.speedup[name], 3)}
                                 for name, result in scored.items()}}, indent=2))


if __name__ == "__main__":
    main()
