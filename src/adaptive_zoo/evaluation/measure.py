# Copyright 2025 The adaptive-zoo authors.
# Licensed under the Apache License, Version 2.0.
"""Measured (not estimated) cost of running a model: executed FLOPs and interleaved wall-clock.

Input-adaptive models only earn their keep if they are *actually* cheaper than the vanilla model they
were built from. Everything here is therefore measured on the real forward pass, in the same process,
against the same weights:

* **FLOPs** are counted with `torch.utils.flop_counter.FlopCounterMode` while the callable really runs,
  so a layer an early-exit model skips contributes nothing. Only matrix-multiply-like ops are counted
  (`mm`, `addmm`, `bmm`, `baddbmm`, convolutions, attention kernels); element-wise ops (softmax,
  LayerNorm, GELU, additions) are not, exactly as in the upstream counter.
* **Wall-clock** is timed with the candidates *interleaved* (A, B, A, B, ... with a rotating order) so
  that slow drifts of a noisy machine hit all candidates alike, and the headline speed-up is the median
  of per-repetition ratios.

The module is generic: a "model" is any `nn.Module` called as `model(**batch)` with a dict of tensors.
"""

from __future__ import annotations

import contextlib
import math
import statistics
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode, flop_registry, sdpa_flop_count

from ..progress import steps

__all__ = [
    "WallclockResult",
    "compare_wallclock",
    "count_flops",
    "exit_histogram",
    "exit_summary",
    "flop_breakdown",
    "latency_and_throughput",
    "model_flops",
    "pad_batch",
]

_aten = torch.ops.aten


# ----------------------------------------------------------------------------------------------------
# FLOPs
# ----------------------------------------------------------------------------------------------------


def _fused_sdpa_flop(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
    """FLOPs of a fused scaled-dot-product-attention kernel: the two batched matmuls QK^T and PV."""
    return sdpa_flop_count(query_shape, key_shape, value_shape)


def _fused_attention_flop_formulas() -> dict[Any, Callable[..., int]]:
    """Formulas for fused attention kernels that `FlopCounterMode` does not know about.

    Why: on CPU, `F.scaled_dot_product_attention` dispatches to `aten._scaled_dot_product_flash_attention_for_cpu`,
    which torch's registry (2.13) does not cover; it has no decomposition either, so without this entry
    every attention matmul of an sdpa model silently counts as 0 FLOPs (while the eager implementation's
    `bmm`s are counted). `_scaled_dot_product_fused_attention_overrideable` (XPU and out-of-tree backends)
    has the same gap. Passed through `custom_mapping`, so torch's global registry is left untouched; ops
    a future torch already covers are not overridden.
    """
    candidates = ("_scaled_dot_product_flash_attention_for_cpu", "_scaled_dot_product_fused_attention_overrideable")
    formulas: dict[Any, Callable[..., int]] = {}
    for name in candidates:
        op = getattr(_aten, name, None)
        if op is not None and op not in flop_registry:
            formulas[op] = _fused_sdpa_flop
    return formulas


def _dynamic_int8_linear_flop(input_shape, packed_params, *args, out_shape=None, **kwargs) -> int:
    """Operations of a dynamically quantized linear layer (`quantized::linear_dynamic`): the same multiply-adds as
    the float layer, done in int8, counted alike (2 per multiply-add) so int8 and float points compare."""
    return 2 * math.prod(input_shape) * out_shape[-1]


def _extra_flop_formulas() -> dict[Any, Callable[..., int]]:
    """The fused attention kernels (`_fused_attention_flop_formulas`) and the int8 linear layers of
    `torch.ao.quantization.quantize_dynamic` (else an int8 model's matmuls would count as nothing)."""
    formulas = _fused_attention_flop_formulas()
    quantized = getattr(torch.ops, "quantized", None)
    dynamic_linear = getattr(quantized, "linear_dynamic", None) if quantized is not None else None
    if dynamic_linear is not None and dynamic_linear not in flop_registry:
        formulas[dynamic_linear] = _dynamic_int8_linear_flop
    return formulas


_EXTRA_FLOP_FORMULAS = _extra_flop_formulas()


def _run_counted(fn: Callable[[], Any]) -> FlopCounterMode:
    counter = FlopCounterMode(display=False, custom_mapping=_EXTRA_FLOP_FORMULAS)
    with torch.inference_mode(), counter:
        fn()
    return counter


def count_flops(fn: Callable[[], Any]) -> int:
    """Executed FLOPs of one call of `fn()` (multiply-add = 2 FLOPs), under `torch.inference_mode()`.

    The count follows the ops that actually ran, so data-dependent control flow (early exits, token
    dropping) is reflected. Attention is counted for both the eager (`bmm`/`matmul`) and the sdpa
    implementations, including the CPU fused kernel (see `_extra_flop_formulas`), and the two agree.
    """
    return int(_run_counted(fn).get_total_flops())


def flop_breakdown(fn: Callable[[], Any]) -> dict[str, int]:
    """Executed FLOPs of one call of `fn()` per aten op (e.g. `{"aten.addmm": ..., "aten.bmm": ...}`).

    Handy to check *where* FLOPs come from, e.g. that attention kernels are counted at all.
    """
    per_op = _run_counted(fn).get_flop_counts().get("Global", {})
    return {str(op): int(flops) for op, flops in per_op.items()}


@contextlib.contextmanager
def _eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Put `model` in eval mode (no dropout, deterministic exits) and restore its previous mode after."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


def model_flops(model: nn.Module, batches: Iterable[Mapping[str, torch.Tensor]]) -> int:
    """Total executed FLOPs of `model(**batch)` over `batches`, with the model in eval mode."""
    total = 0
    with _eval_mode(model):
        for batch in batches:
            total += count_flops(lambda batch=batch: model(**batch))
    return total


# ----------------------------------------------------------------------------------------------------
# Wall-clock
# ----------------------------------------------------------------------------------------------------


@dataclass
class WallclockResult:
    """Interleaved timings of several candidates against a baseline.

    Attributes:
        baseline: name of the reference candidate.
        samples: seconds of every timed call, per candidate, in repetition order.
        median_s: median seconds per candidate.
        speedup: headline speed-up, `speedup_paired` (see below). 1.0 for the baseline.
        speedup_paired: median over repetitions r of `baseline_r / candidate_r`. Both timings of one
            repetition are taken back to back, so machine-wide slowdowns (another process, thermal
            throttling) cancel out in the ratio; this is why it is the headline.
        speedup_of_medians: `median(baseline) / median(candidate)`, reported for reference.
        repeats: number of timed repetitions per candidate.
        warmup: number of untimed warm-up calls per candidate.
    """

    baseline: str
    samples: dict[str, list[float]]
    median_s: dict[str, float]
    speedup: dict[str, float]
    speedup_paired: dict[str, float]
    speedup_of_medians: dict[str, float]
    repeats: int
    warmup: int
    order: list[list[str]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _rotated(names: Sequence[str], shift: int) -> list[str]:
    shift %= len(names)
    return list(names[shift:]) + list(names[:shift])


def _time_call(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def compare_wallclock(
    candidates: Mapping[str, Callable[[], Any]],
    *,
    repeats: int = 5,
    warmup: int = 1,
    baseline: str,
    progress: str | None = None,
) -> WallclockResult:
    """Time `candidates` interleaved and report their speed-ups over `baseline`.

    Each repetition calls every candidate once, in an order rotated by one per repetition, so no
    candidate systematically runs first (cold caches) or last. Runs under `torch.inference_mode()`;
    nothing global (thread count, gc) is changed, so what is measured is what users get. `progress` names the
    repetitions in progress lines (`adaptive_zoo.progress.steps`); None shows none.
    """
    if baseline not in candidates:
        raise ValueError(f"baseline {baseline!r} is not one of the candidates {sorted(candidates)}")
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    names = list(candidates)
    samples: dict[str, list[float]] = {name: [] for name in names}
    orders: list[list[str]] = []
    with torch.inference_mode():
        for _ in range(warmup):
            for name in names:
                candidates[name]()
        repetitions = range(repeats) if progress is None else steps(range(repeats), progress)
        for rep in repetitions:
            order = _rotated(names, rep)
            orders.append(order)
            for name in order:
                samples[name].append(_time_call(candidates[name]))

    median_s = {name: statistics.median(times) for name, times in samples.items()}
    base = samples[baseline]
    speedup_paired = {
        name: statistics.median(b / c for b, c in zip(base, times)) for name, times in samples.items()
    }
    speedup_of_medians = {name: median_s[baseline] / median_s[name] for name in names}
    return WallclockResult(
        baseline=baseline,
        samples=samples,
        median_s=median_s,
        speedup=dict(speedup_paired),
        speedup_paired=speedup_paired,
        speedup_of_medians=speedup_of_medians,
        repeats=repeats,
        warmup=warmup,
        order=orders,
    )


# ----------------------------------------------------------------------------------------------------
# Batching and dataset-level latency / throughput
# ----------------------------------------------------------------------------------------------------



def _pad_value(key: str, pad_token_id: int) -> int:
    return pad_token_id if key == "input_ids" else 0


def pad_batch(examples: Sequence[Mapping[str, torch.Tensor]], pad_token_id: int = 0) -> dict[str, torch.Tensor]:
    """Collate unpadded single examples into one right-padded batch.

    Sequence tensors are shaped `(1, T, ...)` and are padded along `T` to the longest example:
    `input_ids` with `pad_token_id`, everything else (`attention_mask`, `token_type_ids`, ...) with 0,
    so padded positions are masked out. Per-example values (0-d or 1-d tensors, e.g. `labels` of shape
    `(1,)`) are concatenated. Right padding matches what the models see at training time and keeps
    position ids of real tokens unchanged.
    """
    if not examples:
        raise ValueError("pad_batch needs at least one example")
    batch: dict[str, torch.Tensor] = {}
    for key in examples[0]:
        tensors = [example[key] for example in examples]
        if tensors[0].dim() == 0:
            batch[key] = torch.stack(tensors)
        elif tensors[0].dim() == 1:
            batch[key] = torch.cat(tensors)
        else:
            batch[key] = _pad_sequences(tensors, _pad_value(key, pad_token_id))
    return batch


def _pad_sequences(tensors: Sequence[torch.Tensor], value: int) -> torch.Tensor:
    max_len = max(t.shape[1] for t in tensors)
    first = tensors[0]
    rows = sum(t.shape[0] for t in tensors)
    out = first.new_full((rows, max_len, *first.shape[2:]), value)
    row = 0
    for t in tensors:
        out[row : row + t.shape[0], : t.shape[1]] = t
        row += t.shape[0]
    return out


def _batches(features: Sequence[Mapping[str, torch.Tensor]], batch_size: int, pad_token_id: int) -> list[dict]:
    return [pad_batch(features[i : i + batch_size], pad_token_id) for i in range(0, len(features), batch_size)]


def _run_all(model: nn.Module, inputs: Sequence[Mapping[str, torch.Tensor]]) -> Callable[[], None]:
    def run() -> None:
        for batch in inputs:
            model(**batch)

    return run


def latency_and_throughput(
    models: Mapping[str, nn.Module],
    features: Sequence[Mapping[str, torch.Tensor]],
    *,
    baseline: str,
    batch_size: int = 32,
    latency_samples: int = 64,
    repeats: int = 5,
    pad_token_id: int = 0,
) -> dict[str, Any]:
    """Latency (batch size 1) and throughput (batched) speed-ups of `models` over `baseline`.

    Latency: the first `latency_samples` examples are run one at a time, as one timed unit per
    candidate (a single example is too short to time reliably). This is the setting where early exit
    pays off fully, since each example exits on its own. Throughput: all `features` are run in
    right-padded batches of `batch_size`, built once outside the timed region. Both use
    `compare_wallclock` (interleaved candidates, one warm-up); speed-ups are its paired medians.

    Returns a dict with `latency_speedup` and `throughput_speedup` (`{name: speed-up}`, the baseline
    maps to 1.0), `latency_ms_per_sample` and `throughput_samples_per_s` (`{name: value}` from median
    times), `batch_size`, `repeats`, `latency_samples` and the raw `latency` / `throughput`
    `WallclockResult`s as dicts.
    """
    if baseline not in models:
        raise ValueError(f"baseline {baseline!r} is not one of the models {sorted(models)}")
    if not features:
        raise ValueError("latency_and_throughput needs at least one example")
    singles = list(features[:latency_samples])
    batches = _batches(features, batch_size, pad_token_id)
    with contextlib.ExitStack() as stack:
        for model in models.values():
            stack.enter_context(_eval_mode(model))
        latency = compare_wallclock(
            {name: _run_all(model, singles) for name, model in models.items()}, repeats=repeats, baseline=baseline,
            progress="latency repeats (batch 1)",
        )
        throughput = compare_wallclock(
            {name: _run_all(model, batches) for name, model in models.items()}, repeats=repeats, baseline=baseline,
            progress=f"throughput repeats (batch {batch_size})",
        )
    return {
        "latency_speedup": latency.speedup,
        "throughput_speedup": throughput.speedup,
        "latency_ms_per_sample": {name: 1000.0 * s / len(singles) for name, s in latency.median_s.items()},
        "throughput_samples_per_s": {name: len(features) / s for name, s in throughput.median_s.items()},
        "batch_size": batch_size,
        "repeats": repeats,
        "latency_samples": len(singles),
        "latency": latency.to_dict(),
        "throughput": throughput.to_dict(),
    }


# ----------------------------------------------------------------------------------------------------
# Exit statistics
# ----------------------------------------------------------------------------------------------------


def _as_int_list(exit_layers: torch.Tensor | Sequence[int]) -> list[int]:
    if isinstance(exit_layers, torch.Tensor):
        return [int(v) for v in exit_layers.reshape(-1).tolist()]
    return [int(v) for v in exit_layers]


def exit_histogram(exit_layers: torch.Tensor | Sequence[int], num_layers: int) -> list[int]:
    """Number of samples exiting at each layer 1..`num_layers` (1-based: exiting at layer L = full depth)."""
    layers = _as_int_list(exit_layers)
    bad = [layer for layer in layers if not 1 <= layer <= num_layers]
    if bad:
        raise ValueError(f"exit layers must lie in 1..{num_layers} (1-based), got e.g. {bad[:5]}")
    counts = [0] * num_layers
    for layer in layers:
        counts[layer - 1] += 1
    return counts


def exit_summary(exit_layers: torch.Tensor | Sequence[int], num_layers: int) -> dict[str, Any]:
    """Mean exit layer, histogram and per-layer fraction of samples.

    `mean_layer_fraction` (mean exit layer / `num_layers`) is the fraction of encoder layers executed on
    average, i.e. the ideal encoder-cost ratio the measured FLOPs should approach.
    """
    histogram = exit_histogram(exit_layers, num_layers)
    total = sum(histogram)
    mean = sum(layer * count for layer, count in enumerate(histogram, start=1)) / total if total else float("nan")
    return {
        "num_samples": total,
        "num_layers": num_layers,
        "mean_exit_layer": mean,
        "mean_layer_fraction": mean / num_layers if total else float("nan"),
        "histogram": histogram,
        "fraction": [count / total if total else 0.0 for count in histogram],
    }
