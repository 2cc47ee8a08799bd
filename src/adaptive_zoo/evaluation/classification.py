"""Evaluate an input-adaptive classifier the way the zoo reports it: accuracy of the adaptive model, accuracy
of the same weights at full depth, executed-FLOPs and wall-clock speed-ups against the vanilla transformers
model with the same weights, measured in the same run, and the exit statistics.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

import torch
from torch import nn
from transformers import BertConfig, BertForSequenceClassification, PreTrainedModel, PreTrainedTokenizerBase

from ..training.common import check_texts
from .measure import count_flops, exit_summary, latency_and_throughput, pad_batch

# How each family turns its adaptivity off (the "never exit" setting), and which vanilla transformers class
# shares its weights. A new family adds one line to each.
FULL_DEPTH_SETTINGS: dict[str, dict[str, Any]] = {
    "deebert": {"entropy_threshold": None},
    "adapler": {"inference_mode": "off"},
}
VANILLA_CLASSES: dict[str, tuple[type, type]] = {
    "deebert": (BertConfig, BertForSequenceClassification),
    "adapler": (BertConfig, BertForSequenceClassification),
}


@contextlib.contextmanager
def full_depth(model: PreTrainedModel) -> Iterator[PreTrainedModel]:
    """Temporarily switch the model's adaptivity off (its config's "never exit" setting)."""
    settings = FULL_DEPTH_SETTINGS[model.config.model_type]
    saved = {name: getattr(model.config, name) for name in settings}
    for name, value in settings.items():
        setattr(model.config, name, value)
    try:
        yield model
    finally:
        for name, value in saved.items():
            setattr(model.config, name, value)


def vanilla_counterpart(model: PreTrainedModel) -> PreTrainedModel:
    """The plain transformers model with the adaptive model's weights (its extra heads dropped)."""
    config_class, model_class = VANILLA_CLASSES[model.config.model_type]
    config = config_class.from_dict(model.config.to_dict())
    config._attn_implementation = model.config._attn_implementation
    vanilla = model_class(config)
    missing, _ = vanilla.load_state_dict(model.state_dict(), strict=False)
    if missing:
        raise RuntimeError(f"The vanilla {model_class.__name__} lacks weights from the adaptive model: {missing}")
    return vanilla.to(model.device).eval()


def encode_examples(
    tokenizer: PreTrainedTokenizerBase, texts: Sequence[str], max_length: int
) -> list[dict[str, torch.Tensor]]:
    """One unpadded (1, T) encoding per text, truncated to `max_length`."""
    check_texts(texts, "evaluation data")
    return [dict(tokenizer(text, truncation=True, max_length=max_length, return_tensors="pt")) for text in texts]


def predict_with_flops(
    model: nn.Module, batches: Sequence[dict[str, torch.Tensor]]
) -> tuple[torch.Tensor, torch.Tensor | None, int]:
    """Predictions, exit layers (if the model reports them) and the FLOPs executed to get them, in one pass."""
    outputs: list[Any] = []

    def run() -> None:
        for batch in batches:
            outputs.append(model(**batch))

    flops = count_flops(run)
    predictions = torch.cat([output.logits.argmax(-1) for output in outputs])
    exits = [getattr(output, "exit_layers", None) for output in outputs]
    exit_layers = torch.cat(exits) if all(e is not None for e in exits) else None
    return predictions, exit_layers, flops


def evaluate_classifier(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    texts: Sequence[str],
    labels: Sequence[int],
    *,
    batch_size: int = 32,
    max_length: int = 128,
    measure_wallclock: bool = True,
    repeats: int = 5,
    latency_samples: int = 64,
) -> dict[str, Any]:
    """Everything `adaptive-zoo evaluate` reports for a classifier, on one split."""
    if len(texts) != len(labels):
        raise ValueError(f"{len(texts)} texts but {len(labels)} labels.")
    if max(labels) >= model.config.num_labels or min(labels) < 0:
        raise ValueError(f"Labels must lie in [0, {model.config.num_labels}) for this model.")
    model.eval()
    vanilla = vanilla_counterpart(model)
    features = encode_examples(tokenizer, texts, max_length)
    pad_id = tokenizer.pad_token_id or 0
    batches = [pad_batch(features[i : i + batch_size], pad_id) for i in range(0, len(features), batch_size)]
    gold = torch.as_tensor(list(labels))

    predictions, exit_layers, adaptive_flops = predict_with_flops(model, batches)
    with full_depth(model):
        full_predictions, _, _ = predict_with_flops(model, batches)
    vanilla_predictions, _, vanilla_flops = predict_with_flops(vanilla, batches)

    report: dict[str, Any] = {
        "num_samples": len(texts),
        "batch_size": batch_size,
        "max_length": max_length,
        "accuracy": float((predictions == gold).float().mean()),
        "baseline_accuracy": float((full_predictions == gold).float().mean()),
        "vanilla_accuracy": float((vanilla_predictions == gold).float().mean()),
        "flops": adaptive_flops,
        "vanilla_flops": vanilla_flops,
        "flops_speedup": vanilla_flops / adaptive_flops,
    }
    if exit_layers is not None:
        report["exit"] = exit_summary(exit_layers, model.config.num_hidden_layers)
    if measure_wallclock:
        timing = latency_and_throughput(
            {"vanilla": vanilla, "adaptive": model},
            features,
            baseline="vanilla",
            batch_size=batch_size,
            latency_samples=latency_samples,
            repeats=repeats,
            pad_token_id=pad_id,
        )
        report["wallclock_speedup"] = timing["throughput_speedup"]["adaptive"]
        report["latency_speedup"] = timing["latency_speedup"]["adaptive"]
        report["throughput_samples_per_s"] = timing["throughput_samples_per_s"]
        report["latency_ms_per_sample"] = timing["latency_ms_per_sample"]
        report["wallclock_repeats"] = repeats
    return report
