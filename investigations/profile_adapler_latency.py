"""Where AdapLeR's batch-1 time goes: the latency speed-up the kept tokens allow, and what the rest costs.

At batch 1 the executed-FLOPs saving does not all turn into time: a transformer layer costs more per token on a
few tokens than on hundreds, because its matrix multiplies run far below peak. This script separates that from
AdapLeR's own overhead (contribution predictors, thresholds, re-packing), on a trained folder:

- the cost per token of one of the model's layers at a few lengths (batch 1);
- per article (batch 1): vanilla `BertForSequenceClassification` and AdapLeR with the same weights, end to end,
  and their encoder layers alone, vanilla on every token and AdapLeR on the token counts it kept for that
  article. The layers alone give the speed-up the kept tokens allow on this machine; the time outside the
  layers, less what vanilla spends there too (embeddings, pooler, classifier), is AdapLeR's own overhead.

Timings are interleaved medians (`compare_wallclock`); run it on an otherwise idle machine.

    python investigations/profile_adapler_latency.py --model-dir runs/adapler-bbc --dataset bbc_news
"""

from __future__ import annotations

import argparse
import json
import platform
from pathlib import Path

import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer, BertForSequenceClassification

import adaptive_zoo  # noqa: F401  (registers the model classes)
from adaptive_zoo.data import load_task_data
from adaptive_zoo.evaluation.measure import compare_wallclock

LAYER_COST_LENGTHS = (512, 256, 128, 64, 32, 16, 8)


def layer_cost_per_token(layer: torch.nn.Module, hidden_size: int, repeats: int) -> dict[int, float]:
    """Microseconds per token of `layer` at batch 1, for each length in LAYER_COST_LENGTHS."""
    inputs = {length: torch.randn(1, length, hidden_size) for length in LAYER_COST_LENGTHS}
    timing = compare_wallclock(
        {str(length): (lambda x=x: [layer(x, attention_mask=None) for _ in range(10)]) for length, x in inputs.items()},
        repeats=repeats, baseline=str(LAYER_COST_LENGTHS[0]),
    )
    return {length: 1e6 * timing.median_s[str(length)] / (10 * length) for length in LAYER_COST_LENGTHS}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-dir", required=True, help="A trained AdapLeR folder (`adaptive-zoo train adapler`).")
    parser.add_argument("--dataset", default="bbc_news")
    parser.add_argument("--split", default="test")
    parser.add_argument("--num-samples", type=int, default=64, help="Articles timed one at a time.")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--output", default=None, help="Also write the figures as JSON here.")
    args = parser.parse_args()

    model_dir = Path(args.model_dir)
    record = json.loads((model_dir / "adaptive_zoo_results.json").read_text())
    max_length = record["training"]["max_length"]
    model = AutoModelForSequenceClassification.from_pretrained(model_dir).eval()
    vanilla = BertForSequenceClassification.from_pretrained(model_dir).eval()
    if model.config.inference_mode != "remove":
        raise ValueError(f"{model_dir} has inference_mode={model.config.inference_mode!r}; profile a 'remove' model.")
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    texts = load_task_data(args.dataset).dataset[args.split]["text"][: args.num_samples]
    encodings = [tokenizer(text, truncation=True, max_length=max_length, return_tensors="pt") for text in texts]
    hidden_size, num_layers = model.config.hidden_size, model.config.num_hidden_layers

    with torch.inference_mode():
        kept = [model(**encoding).kept_tokens[0].tolist() for encoding in encodings]  # per article, (L,)
    lengths = [encoding["input_ids"].shape[1] for encoding in encodings]
    # Stand-in hidden states: a BERT layer's cost does not depend on the values it reads.
    full_inputs = [torch.randn(1, length, hidden_size) for length in lengths]
    kept_inputs = [[torch.randn(1, count, hidden_size) for count in counts] for counts in kept]
    vanilla_layers, adaptive_layers = vanilla.bert.encoder.layer, model.bert.encoder.layer

    def run_vanilla_layers():
        for x in full_inputs:
            for layer in vanilla_layers:
                layer(x, attention_mask=None)

    def run_adaptive_layers():
        for per_layer in kept_inputs:
            for layer, x in zip(adaptive_layers, per_layer):
                layer(x, attention_mask=None)

    timing = compare_wallclock(
        {
            "vanilla": lambda: [vanilla(**encoding) for encoding in encodings],
            "adaptive": lambda: [model(**encoding) for encoding in encodings],
            "vanilla layers only": run_vanilla_layers,
            "adaptive layers only": run_adaptive_layers,
        },
        repeats=args.repeats, baseline="vanilla",
    )
    with torch.inference_mode():
        per_token = layer_cost_per_token(adaptive_layers[0], hidden_size, args.repeats)

    ms = {name: 1000.0 * seconds / len(encodings) for name, seconds in timing.median_s.items()}
    token_layers = {"vanilla": num_layers * sum(lengths), "adaptive": sum(sum(counts) for counts in kept)}
    # Outside the encoder layers both models run the embeddings, pooler and classifier; what AdapLeR spends there
    # beyond vanilla's is its own: contribution predictors, thresholds, re-packing, masks.
    shared_outside_layers_ms = ms["vanilla"] - ms["vanilla layers only"]
    adaptive_overhead_ms = (ms["adaptive"] - ms["adaptive layers only"]) - shared_outside_layers_ms
    figures = {
        "ms_per_article": ms,
        "latency_speedup": ms["vanilla"] / ms["adaptive"],
        "layers_only_speedup": ms["vanilla layers only"] / ms["adaptive layers only"],
        "token_layer_ratio": token_layers["vanilla"] / token_layers["adaptive"],
        "shared_outside_layers_ms": shared_outside_layers_ms,
        "adaptive_overhead_ms": adaptive_overhead_ms,
        "adaptive_overhead_share": adaptive_overhead_ms / ms["adaptive"],
        "speedup_without_overhead": ms["vanilla"] / (ms["adaptive"] - adaptive_overhead_ms),
        "layer_us_per_token": per_token,
        "num_samples": len(encodings),
        "mean_length": sum(lengths) / len(lengths),
        "mean_kept_tokens_per_layer": [sum(c[i] for c in kept) / len(kept) for i in range(num_layers)],
        "machine": f"{platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}",
    }

    print(f"{len(encodings)} {args.split} articles of {args.dataset}, batch 1, {figures['machine']}")
    print(f"mean length {figures['mean_length']:.0f}; mean tokens entering each layer: "
          + " -> ".join(f"{v:.0f}" for v in figures["mean_kept_tokens_per_layer"]))
    print("\n| | ms per article | speed-up over vanilla |\n|---|---|---|")
    for name in ("vanilla", "adaptive", "vanilla layers only", "adaptive layers only"):
        print(f"| {name} | {ms[name]:.2f} | {ms['vanilla'] / ms[name]:.2f}x |")
    print(f"\ntoken-layers: {figures['token_layer_ratio']:.2f}x fewer; the layers alone on the kept tokens: "
          f"{figures['layers_only_speedup']:.2f}x; end to end: {figures['latency_speedup']:.2f}x")
    print(f"embeddings, pooler and classifier (both models): {figures['shared_outside_layers_ms']:.2f} ms per article")
    print(f"AdapLeR's own overhead (CPs, thresholds, re-packing, masks): {figures['adaptive_overhead_ms']:.2f} ms "
          f"per article, {100 * figures['adaptive_overhead_share']:.0f}% of its time; without it: "
          f"{figures['speedup_without_overhead']:.2f}x")
    print("\n| tokens | " + " | ".join(str(n) for n in LAYER_COST_LENGTHS) + " |")
    print("|---|" + "---|" * len(LAYER_COST_LENGTHS))
    print("| µs per token, one layer | " + " | ".join(f"{per_token[n]:.1f}" for n in LAYER_COST_LENGTHS) + " |")
    if args.output:
        Path(args.output).write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
