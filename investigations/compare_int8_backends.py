"""Is torchao's int8 a faster CPU replacement for `torch.ao.quantization.quantize_dynamic`?

torch 2.13 marks `torch.ao.quantization` as moving to torchao, and `adaptive-zoo benchmark` builds its int8 points
with `quantize_dynamic` (`adaptive_zoo.evaluation.benchmark.quantize_int8`). This script times, on the bundled MiniLM
as a 3-label classifier and real tweets (batch 32, padded to the batch's longest tweet), the float model against:

- `quantize_int8` (dynamic int8 `nn.Linear`, eager);
- torchao's `quantize_` with `Int8DynamicActivationInt8WeightConfig` (eager, and under `torch.compile` with
  `--compile`), when torchao is installed (it is not a dependency of the project: `pip install torchao`).

It prints each candidate's throughput ratio against the float model (interleaved medians, `compare_wallclock`) and
the largest absolute logit difference from it. Run it on an otherwise idle machine:

    python investigations/compare_int8_backends.py --texts 256 --threads 2 [--compile]
"""

from __future__ import annotations

import argparse
import copy
import importlib.metadata
import json
import platform

import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

import adaptive_zoo  # noqa: F401  (registers the model classes)
from adaptive_zoo.backbones import resolve_base_model
from adaptive_zoo.data import load_task_data
from adaptive_zoo.evaluation.benchmark import quantize_int8
from adaptive_zoo.evaluation.measure import compare_wallclock
from adaptive_zoo.evaluation.operating_points import encoded_batches


def torchao_int8(model: torch.nn.Module) -> torch.nn.Module | None:
    """A copy of `model` with torchao's dynamic-activation int8 / int8-weight linear layers, or None without torchao."""
    try:
        from torchao.quantization import Int8DynamicActivationInt8WeightConfig, quantize_
    except ImportError:
        return None
    quantized = copy.deepcopy(model).eval()
    quantize_(quantized, Int8DynamicActivationInt8WeightConfig())
    return quantized


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="tweet_sentiment_3class")
    parser.add_argument("--texts", type=int, default=256, help="test texts timed (default 256)")
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--compile", action="store_true", help="also time torchao's model under torch.compile")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    base = resolve_base_model("minilm")
    tokenizer = AutoTokenizer.from_pretrained(base)
    model = AutoModelForSequenceClassification.from_pretrained(base, num_labels=3).eval()
    texts = load_task_data(args.dataset).dataset["test"]["text"][: args.texts]
    _, batches = encoded_batches(tokenizer, texts, args.max_length, 32)  # as the benchmark encodes and pads them

    candidates = {"float32": model, "quantize_dynamic int8": quantize_int8(model)}
    ao = torchao_int8(model)
    if ao is not None:
        candidates["torchao int8"] = ao
        if args.compile:
            candidates["torchao int8 + torch.compile"] = torch.compile(ao)
    else:
        print("torchao is not installed: timing quantize_dynamic only")

    with torch.inference_mode():
        reference = [model(**batch).logits for batch in batches]
        error = {name: max(float((candidate(**batch).logits - ref).abs().max())  # also warms up (and compiles)
                           for batch, ref in zip(batches, reference))
                 for name, candidate in candidates.items()}
        timing = compare_wallclock(
            {name: (lambda c=candidate: [c(**batch) for batch in batches]) for name, candidate in candidates.items()},
            repeats=args.repeats, baseline="float32", warmup=0,
        )
    result = {"machine": platform.processor() or platform.machine(), "threads": args.threads,
              "torch": torch.__version__, "texts": len(texts), "max_length": args.max_length,
              "candidates": {name: {"throughput_speedup": timing.speedup[name], "max_abs_logit_error": error[name]}
                             for name in candidates}}
    if ao is not None:
        result["torchao"] = importlib.metadata.version("torchao")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
