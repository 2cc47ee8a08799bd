"""Measuring an adaptive classifier against the static shortcuts, in one run, on one split: every candidate's
accuracy and executed FLOPs (one counted pass over batches of 32), then throughput (batches of 32) and latency
(batch 1) of all candidates timed interleaved, as ratios against the full vanilla model timed in the same
repetitions. A candidate is any classifier called as `model(**batch)` with its own max length; candidates that
share one model at different operating points set theirs before every call (`Candidate.prepare`)."""

from __future__ import annotations

import copy
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn

from ..progress import announce, steps
from .classification import encode_examples, predict_with_flops
from .measure import compare_wallclock, pad_batch

__all__ = ["BenchmarkPoint", "Candidate", "measure_candidates", "quantize_int8"]


def quantize_int8(model: nn.Module) -> nn.Module:
    """A copy of `model` with every `nn.Linear` replaced by a dynamically quantized int8 one (weights int8,
    activations quantized per batch at run time): `torch.ao.quantization.quantize_dynamic`, the CPU recipe
    PyTorch documents for BERT. Embeddings, LayerNorm and the attention products stay float."""
    with warnings.catch_warnings():  # torch 2.13 flags torch.ao.quantization as moving to torchao; it still runs
        warnings.simplefilter("ignore")
        quantized = torch.ao.quantization.quantize_dynamic(copy.deepcopy(model).eval(), {nn.Linear},
                                                           dtype=torch.qint8)
    return quantized.eval()


def _nothing() -> None:
    return None


@dataclass
class Candidate:
    """One point to measure: a model at one operating point and one input length."""

    name: str
    """Unique within a benchmark, e.g. "deebert S=0.12" or "first 2 layers (mean pooling)"."""
    series: str
    """The line it belongs to in the Pareto plot: the method, "<method>+int8", "vanilla", "vanilla+int8", "depth",
    "length"."""
    model: nn.Module
    max_length: int
    operating_point: dict[str, Any] = field(default_factory=dict)
    prepare: Callable[[], None] = _nothing
    """Sets the model's operating point; called before each measured pass and each timed call."""
    chosen: bool = False
    """The operating point the saved model ships with."""


@dataclass
class BenchmarkPoint:
    """What was measured for one candidate; ratios are against the baseline candidate (the full vanilla model)."""

    name: str
    series: str
    operating_point: dict[str, Any]
    chosen: bool
    max_length: int
    accuracy: float
    flops: int
    flops_speedup: float
    throughput_speedup: float | None = None
    latency_speedup: float | None = None
    throughput_samples_per_s: float | None = None
    latency_ms_per_sample: float | None = None
    mean_exit_layer: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _batches(features, batch_size: int, pad_id: int) -> list[dict[str, torch.Tensor]]:
    return [pad_batch(features[i : i + batch_size], pad_id) for i in range(0, len(features), batch_size)]


def _timed(candidate: Candidate, inputs: Sequence[dict[str, torch.Tensor]]) -> Callable[[], None]:
    def run() -> None:
        candidate.prepare()
        for batch in inputs:
            candidate.model(**batch)

    return run


def measure_candidates(candidates: Sequence[Candidate], tokenizer, texts: Sequence[str], labels: Sequence[int], *,
                       baseline: str, batch_size: int = 32, latency_samples: int = 64, repeats: int = 5,
                       measure_wallclock: bool = True) -> list[BenchmarkPoint]:
    """Accuracy and executed FLOPs of every candidate, then interleaved throughput and latency of all of them;
    every ratio is against the candidate named `baseline`."""
    names = [candidate.name for candidate in candidates]
    if len(set(names)) != len(names) or baseline not in names:
        raise ValueError(f"Candidate names must be unique and include the baseline {baseline!r}: {names}")
    pad_id = tokenizer.pad_token_id or 0
    lengths = sorted({candidate.max_length for candidate in candidates})
    features = {length: encode_examples(tokenizer, texts, length) for length in lengths}
    batches = {length: _batches(features[length], batch_size, pad_id) for length in lengths}
    gold = torch.as_tensor(list(labels))
    for candidate in candidates:
        candidate.model.eval()
    announce(f"benchmark: accuracy and executed FLOPs of {len(candidates)} candidates on {len(texts):,} texts "
             f"(batches of {batch_size})")
    measured = {}
    for candidate in steps(candidates, "counted passes"):
        candidate.prepare()
        measured[candidate.name] = predict_with_flops(candidate.model, batches[candidate.max_length])
    base_flops = measured[baseline].flops
    points = [_point(candidate, measured[candidate.name], gold, base_flops) for candidate in candidates]
    if measure_wallclock:
        _add_timing(points, candidates, features, batches, baseline=baseline, batch_size=batch_size,
                    latency_samples=latency_samples, repeats=repeats)
    return points


def _point(candidate: Candidate, predictions, gold: torch.Tensor, base_flops: int) -> BenchmarkPoint:
    exits = predictions.exit_layers
    return BenchmarkPoint(
        name=candidate.name, series=candidate.series, operating_point=dict(candidate.operating_point),
        chosen=candidate.chosen, max_length=candidate.max_length,
        accuracy=float((predictions.labels == gold).float().mean()), flops=predictions.flops,
        flops_speedup=base_flops / predictions.flops,
        mean_exit_layer=None if exits is None else float(exits.float().mean()),
    )


def _add_timing(points: list[BenchmarkPoint], candidates: Sequence[Candidate], features, batches, *, baseline: str,
                batch_size: int, latency_samples: int, repeats: int) -> None:
    """Throughput (all texts, batched) and latency (the first `latency_samples` texts, one at a time) of all
    candidates, interleaved (`compare_wallclock`), into `points`."""
    count = len(next(iter(features.values())))
    singles = {length: [dict(f) for f in found[:latency_samples]] for length, found in features.items()}
    announce(f"benchmark: timing {len(candidates)} candidates interleaved, {repeats} repeats: throughput on "
             f"{count:,} texts (batch {batch_size}), latency on "
             f"{min(count, latency_samples)} texts (batch 1)")
    throughput = compare_wallclock({c.name: _timed(c, batches[c.max_length]) for c in candidates},
                                   baseline=baseline, repeats=repeats, progress="throughput repeats")
    latency = compare_wallclock({c.name: _timed(c, singles[c.max_length]) for c in candidates},
                                baseline=baseline, repeats=repeats, progress="latency repeats (batch 1)")
    for point in points:
        point.throughput_speedup = throughput.speedup[point.name]
        point.latency_speedup = latency.speedup[point.name]
        point.throughput_samples_per_s = count / throughput.median_s[point.name]
        point.latency_ms_per_sample = 1000.0 * latency.median_s[point.name] / min(count, latency_samples)
