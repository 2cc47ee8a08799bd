"""Evaluate an input-adaptive classifier the way the zoo reports it: accuracy of the adaptive model, accuracy
of the same weights at full depth, executed-FLOPs and wall-clock speed-ups against the vanilla transformers
model with the same weights, measured in the same run, and the exit statistics.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from transformers import (
    AutoConfig,
    AutoModelForSeq2SeqLM,
    AutoModelForSequenceClassification,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from ..data.text import check_texts, check_token_content
from ..progress import announce
from .measure import count_flops, exit_summary, latency_and_throughput, pad_batch
from .reports import ClassificationReport, EvaluationOptions


@contextlib.contextmanager
def full_depth(model: PreTrainedModel) -> Iterator[PreTrainedModel]:
    """Temporarily switch the model's adaptivity off: `config.adaptive = False`, every family's "never exit"."""
    saved = model.config.adaptive
    model.config.adaptive = False
    try:
        yield model
    finally:
        model.config.adaptive = saved


# Bookkeeping fields of an adaptive config that must not reach the vanilla one: the Auto-class map of the shipped
# code (the stock Auto class would look for remote code) and the adaptive architecture names.
NOT_VANILLA_FIELDS = ("model_type", "auto_map", "architectures")


def vanilla_counterpart(model: PreTrainedModel) -> PreTrainedModel:
    """The plain transformers model with the adaptive model's weights (its extra heads dropped), built from the
    config alone: its class's `vanilla_model_type` ("bert", "bart") and the stock Auto class of its task."""
    fields = {k: v for k, v in model.config.to_dict().items() if k not in NOT_VANILLA_FIELDS}
    config = AutoConfig.for_model(model.config.vanilla_model_type, **fields)
    config._attn_implementation = model.config._attn_implementation
    auto_class = AutoModelForSeq2SeqLM if config.is_encoder_decoder else AutoModelForSequenceClassification
    vanilla = auto_class.from_config(config)
    missing, _ = vanilla.load_state_dict(model.state_dict(), strict=False)
    if missing:
        raise RuntimeError(f"The vanilla {type(vanilla).__name__} lacks weights from the adaptive model: {missing}")
    return vanilla.to(model.device).eval()


def encode_examples(
    tokenizer: PreTrainedTokenizerBase, texts: Sequence[str], max_length: int
) -> list[dict[str, torch.Tensor]]:
    """One unpadded (1, T) encoding per text, truncated to `max_length`."""
    check_texts(texts, "evaluation data")
    features = [dict(tokenizer(text, truncation=True, max_length=max_length, return_tensors="pt")) for text in texts]
    check_token_content(texts, (feature["input_ids"][0] for feature in features), tokenizer, "evaluation data")
    return features


@dataclass
class Predictions:
    """What one measured pass over a split gives: predicted classes, each family's routing record, FLOPs."""

    labels: torch.Tensor  # (N,)
    flops: int
    exit_layers: torch.Tensor | None = None  # (N,) early-exit models
    kept_tokens: torch.Tensor | None = None  # (N, L) token-dropping models: tokens entering each layer


def predict_with_flops(model: nn.Module, batches: Sequence[dict[str, torch.Tensor]]) -> Predictions:
    """Predictions, routing (exit layers or kept tokens, if the model reports them) and the FLOPs executed to
    get them, in one pass."""
    outputs: list[Any] = []

    def run() -> None:
        for batch in batches:
            outputs.append(model(**batch))

    flops = count_flops(run)

    def gathered(name: str) -> torch.Tensor | None:
        values = [getattr(output, name, None) for output in outputs]
        return torch.cat(values) if all(v is not None for v in values) else None

    return Predictions(
        labels=torch.cat([output.logits.argmax(-1) for output in outputs]),
        flops=flops,
        exit_layers=gathered("exit_layers"),
        kept_tokens=gathered("kept_tokens"),
    )


def accuracy_of(model: nn.Module, tokenizer, texts: Sequence[str], labels: Sequence[int], *, batch_size: int = 32,
                max_length: int = 128) -> float:
    """Plain accuracy of a classifier on a split (no measurement): e.g. the fine-tuned model before any
    adaptive training, which is what an adaptive model's accuracy is compared with."""
    features = encode_examples(tokenizer, texts, max_length)
    pad_id = tokenizer.pad_token_id or 0
    model.eval()
    predicted = []
    with torch.inference_mode():
        for start in range(0, len(features), batch_size):
            predicted.append(model(**pad_batch(features[start : start + batch_size], pad_id)).logits.argmax(-1))
    return float((torch.cat(predicted) == torch.as_tensor(list(labels))).float().mean())


def mean_token_exit(model: nn.Module, tokenizer, texts: Sequence[str], max_length: int, batch_size: int = 32) -> float:
    """Mean exit layer over every real token of `texts`, for models with per-token exits (HashEE)."""
    features = encode_examples(tokenizer, texts, max_length)
    total = count = 0
    with torch.inference_mode():
        for start in range(0, len(features), batch_size):
            batch = pad_batch(features[start : start + batch_size], tokenizer.pad_token_id or 0)
            exits = model(**batch).token_exit_layers[batch["attention_mask"].bool()]  # (tokens,)
            total, count = total + int(exits.sum()), count + exits.numel()
    return total / count


def kept_token_summary(kept_tokens: torch.Tensor) -> dict[str, Any]:
    """Mean tokens entering each layer, and the mean fraction of each input's tokens that each layer sees."""
    kept = kept_tokens.float()  # (N, L)
    return {
        "mean_kept_tokens_per_layer": kept.mean(dim=0).tolist(),
        "mean_kept_fraction_per_layer": (kept / kept[:, :1]).mean(dim=0).tolist(),
    }


def evaluate_classifier(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, texts: Sequence[str],
                        labels: Sequence[int], *, max_length: int = 128,
                        options: EvaluationOptions = EvaluationOptions()) -> ClassificationReport:
    """Everything `adaptive-zoo evaluate` reports for a classifier, on one split."""
    batch_size, repeats, latency_samples = options.batch_size, options.repeats, options.latency_samples
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

    announce(f"measuring on {len(texts):,} texts: accuracy and executed FLOPs of the adaptive model, the same "
             f"weights at full depth and the vanilla {type(vanilla).__name__} (3 passes, batches of {batch_size})")
    adaptive = predict_with_flops(model, batches)
    with full_depth(model):
        full = predict_with_flops(model, batches)
    plain = predict_with_flops(vanilla, batches)

    report: dict[str, Any] = {
        "num_samples": len(texts),
        "batch_size": batch_size,
        "max_length": max_length,
        "accuracy": float((adaptive.labels == gold).float().mean()),
        "baseline_accuracy": float((full.labels == gold).float().mean()),
        "vanilla_accuracy": float((plain.labels == gold).float().mean()),
        "flops": adaptive.flops,
        "vanilla_flops": plain.flops,
        "flops_speedup": plain.flops / adaptive.flops,
    }
    if adaptive.exit_layers is not None:
        report["exit"] = exit_summary(adaptive.exit_layers, model.config.num_hidden_layers)
    if adaptive.kept_tokens is not None:
        report.update(kept_token_summary(adaptive.kept_tokens))
    if options.measure_wallclock:
        announce(f"timing against the vanilla model: throughput on {len(texts):,} texts (batch {batch_size}) and "
                 f"latency on {min(len(texts), latency_samples)} texts (batch 1), {repeats} interleaved repeats")
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
    return ClassificationReport(**report)
