"""Measuring an adaptive model against the static shortcuts, in one run, on one split: every candidate's quality
and executed FLOPs (one counted pass over batches of 32), then throughput (batches of 32) and latency (batch 1) of
all candidates timed interleaved, as ratios against the full vanilla model timed in the same repetitions.

What a pass is depends on the task, and is the only task-specific part (a `Scorer`): a classifier candidate is
called as `model(**batch)` and scored by accuracy (`ClassificationScorer`); a seq2seq candidate generates greedily
with the same generation settings as every other candidate, and is scored by ROUGE of its output against the
references (`GenerationScorer`: "rouge1" is the headline metric, never called accuracy). A candidate has its own
max (source) length; candidates that share one model at different operating points set theirs before every call
(`Candidate.prepare`)."""

from __future__ import annotations

import copy
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

import torch
from torch import nn

from ..progress import announce, steps
from .classification import encode_examples, predict_with_flops
from .measure import compare_wallclock, pad_batch
from .seq2seq import decode_all, encode_sources, generate_with_flops, generation_mean_exit, mean_generated_tokens
from .text_metrics import rouge_scores

__all__ = ["BenchmarkPoint", "Candidate", "ClassificationScorer", "GenerationScorer", "Scored", "Scorer",
           "measure_candidates", "quantize_int8"]


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
    "length", "own weights", "own weights+int8"."""
    model: nn.Module
    max_length: int
    operating_point: dict[str, Any] = field(default_factory=dict)
    prepare: Callable[[], None] = _nothing
    """Sets the model's operating point; called before each measured pass and each timed call."""
    chosen: bool = False
    """The operating point the saved model ships with."""


@dataclass
class Scored:
    """What one counted pass of a candidate over the split gives."""

    scores: dict[str, float]
    """The quality metrics, the scorer's `quality_metric` first (e.g. {"accuracy": ...} or ROUGE-1/2/L)."""
    flops: int
    mean_exit_layer: float | None = None


class Scorer(Protocol):
    """The task-specific part of a benchmark: how texts become inputs, how a candidate is run and scored."""

    quality_metric: str
    batch_size: int
    pad_id: int

    def encode(self, max_length: int) -> list[dict[str, torch.Tensor]]:
        """One unpadded (1, T) input per example, truncated to `max_length`."""

    def score(self, model: nn.Module, batches: Sequence[dict[str, torch.Tensor]]) -> Scored:
        """The quality and executed FLOPs of one pass of `model` over the padded batches."""

    def run(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> None:
        """One timed call on one batch."""


class ClassificationScorer:
    """Classifiers: `model(**batch)`, scored by accuracy against the gold labels."""

    quality_metric = "accuracy"

    def __init__(self, tokenizer, texts: Sequence[str], labels: Sequence[int], *, batch_size: int = 32):
        self.tokenizer, self.texts, self.batch_size = tokenizer, list(texts), batch_size
        self.gold = torch.as_tensor(list(labels))
        self.pad_id = tokenizer.pad_token_id or 0

    def encode(self, max_length: int) -> list[dict[str, torch.Tensor]]:
        return encode_examples(self.tokenizer, self.texts, max_length)

    def score(self, model: nn.Module, batches: Sequence[dict[str, torch.Tensor]]) -> Scored:
        predictions = predict_with_flops(model, batches)
        exits = predictions.exit_layers
        return Scored({"accuracy": float((predictions.labels == self.gold).float().mean())}, predictions.flops,
                      None if exits is None else float(exits.float().mean()))

    def run(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> None:
        model(**batch)


class GenerationScorer:
    """Seq2seq models: greedy `generate` (one beam, no sampling, at most `max_new_tokens`), scored by ROUGE of the
    decoded output against the references; the FLOPs are those of the whole `generate` call (encoder and every
    decoding step). Besides ROUGE-1/2/L(sum), `mean_generated_tokens` is recorded: generate's cost also scales with
    how long the outputs are."""

    quality_metric = "rouge1"

    def __init__(self, tokenizer, texts: Sequence[str], references: Sequence[str], *, max_new_tokens: int,
                 batch_size: int = 32):
        if len(texts) != len(references):
            raise ValueError(f"{len(texts)} texts but {len(references)} references.")
        self.tokenizer, self.texts, self.references = tokenizer, list(texts), list(references)
        self.batch_size, self.max_new_tokens = batch_size, max_new_tokens
        self.pad_id = tokenizer.pad_token_id or 0

    @property
    def generate_kwargs(self) -> dict[str, Any]:
        return dict(max_new_tokens=self.max_new_tokens, num_beams=1, do_sample=False)

    def encode(self, max_length: int) -> list[dict[str, torch.Tensor]]:
        return encode_sources(self.tokenizer, self.texts, max_length)

    def score(self, model: nn.Module, batches: Sequence[dict[str, torch.Tensor]]) -> Scored:
        generated, flops = generate_with_flops(model, batches, **self.generate_kwargs)
        scores = rouge_scores(decode_all(self.tokenizer, generated), self.references)
        scores["mean_generated_tokens"] = mean_generated_tokens(generated, self.tokenizer.pad_token_id)
        return Scored(scores, flops, generation_mean_exit(model, batches, generated))

    def run(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> None:
        with torch.inference_mode():
            model.generate(**batch, **self.generate_kwargs)


@dataclass
class BenchmarkPoint:
    """What was measured for one candidate; ratios are against the baseline candidate (the full vanilla model)."""

    name: str
    series: str
    operating_point: dict[str, Any]
    chosen: bool
    max_length: int
    scores: dict[str, float]
    """The scorer's quality metrics: {"accuracy": ...} for a classifier, ROUGE (0-100) for a seq2seq model."""
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


def _timed(candidate: Candidate, scorer: Scorer, inputs: Sequence[dict[str, torch.Tensor]]) -> Callable[[], None]:
    def run() -> None:
        candidate.prepare()
        for batch in inputs:
            scorer.run(candidate.model, batch)

    return run


def measure_candidates(candidates: Sequence[Candidate], scorer: Scorer, *, baseline: str, latency_samples: int = 64,
                       repeats: int = 5, measure_wallclock: bool = True) -> list[BenchmarkPoint]:
    """Quality and executed FLOPs of every candidate, then interleaved throughput and latency of all of them;
    every ratio is against the candidate named `baseline`."""
    names = [candidate.name for candidate in candidates]
    if len(set(names)) != len(names) or baseline not in names:
        raise ValueError(f"Candidate names must be unique and include the baseline {baseline!r}: {names}")
    lengths = sorted({candidate.max_length for candidate in candidates})
    features = {length: scorer.encode(length) for length in lengths}
    batches = {length: _batches(features[length], scorer.batch_size, scorer.pad_id) for length in lengths}
    for candidate in candidates:
        candidate.model.eval()
    count = len(next(iter(features.values())))
    announce(f"benchmark: {scorer.quality_metric} and executed FLOPs of {len(candidates)} candidates on {count:,} "
             f"texts (batches of {scorer.batch_size})")
    measured: dict[str, Scored] = {}
    for candidate in steps(candidates, "counted passes"):
        candidate.prepare()
        measured[candidate.name] = scorer.score(candidate.model, batches[candidate.max_length])
    base_flops = measured[baseline].flops
    points = [_point(candidate, measured[candidate.name], base_flops) for candidate in candidates]
    if measure_wallclock:
        _add_timing(points, candidates, scorer, features, batches, baseline=baseline,
                    latency_samples=latency_samples, repeats=repeats)
    return points


def _point(candidate: Candidate, scored: Scored, base_flops: int) -> BenchmarkPoint:
    return BenchmarkPoint(
        name=candidate.name, series=candidate.series, operating_point=dict(candidate.operating_point),
        chosen=candidate.chosen, max_length=candidate.max_length, scores=dict(scored.scores), flops=scored.flops,
        flops_speedup=base_flops / scored.flops, mean_exit_layer=scored.mean_exit_layer,
    )


def _add_timing(points: list[BenchmarkPoint], candidates: Sequence[Candidate], scorer: Scorer, features, batches, *,
                baseline: str, latency_samples: int, repeats: int) -> None:
    """Throughput (all texts, batched) and latency (the first `latency_samples` texts, one at a time) of all
    candidates, interleaved (`compare_wallclock`), into `points`."""
    count = len(next(iter(features.values())))
    singles = {length: [dict(f) for f in found[:latency_samples]] for length, found in features.items()}
    announce(f"benchmark: timing {len(candidates)} candidates interleaved, {repeats} repeats: throughput on "
             f"{count:,} texts (batch {scorer.batch_size}), latency on "
             f"{min(count, latency_samples)} texts (batch 1)")
    throughput = compare_wallclock({c.name: _timed(c, scorer, batches[c.max_length]) for c in candidates},
                                   baseline=baseline, repeats=repeats, progress="throughput repeats")
    latency = compare_wallclock({c.name: _timed(c, scorer, singles[c.max_length]) for c in candidates},
                                baseline=baseline, repeats=repeats, progress="latency repeats (batch 1)")
    for point in points:
        point.throughput_speedup = throughput.speedup[point.name]
        point.latency_speedup = latency.speedup[point.name]
        point.throughput_samples_per_s = count / throughput.median_s[point.name]
        point.latency_ms_per_sample = 1000.0 * latency.median_s[point.name] / min(count, latency_samples)
