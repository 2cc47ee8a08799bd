"""Choosing DeeBERT's entropy threshold S on validation data.

Every candidate S is run for real: its accuracy and executed FLOPs come from one pass of the early-exit model
over the validation split, its wall-clock throughput from interleaved timing against the vanilla model. The
chosen S is the one with the largest FLOPs speed-up whose accuracy stays within a budget of full depth.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..models.deebert import prediction_entropy
from ..progress import announce, steps
from .classification import encode_examples, full_depth, predict_with_flops, vanilla_counterpart
from .measure import compare_wallclock, exit_summary, pad_batch
from .plots import plot_tradeoff


@dataclass
class ThresholdSweep:
    points: list[dict[str, Any]]
    full_depth_accuracy: float
    accuracy_budget: float
    chosen_threshold: float | None
    chosen_index: int | None = None
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def candidate_thresholds(entropies: np.ndarray, count: int = 10) -> list[float]:
    """Thresholds spread over the intermediate off-ramps' observed entropies, so each candidate changes which
    samples exit: `count` quantiles, denser at the top where accuracy starts to drop, up to just above the
    largest entropy (everything exits at layer 1); 0 (nothing exits) is always included."""
    levels = np.concatenate([np.linspace(0.05, 0.95, count), [0.97, 0.98, 0.99, 1.0]])
    quantiles = np.quantile(entropies.reshape(-1), levels) * (1 + 1e-6)
    return sorted({0.0, *(round(float(q), 6) for q in quantiles)})


def sweep_entropy_thresholds(
    model,
    tokenizer,
    texts: Sequence[str],
    labels: Sequence[int],
    *,
    thresholds: Sequence[float] | None = None,
    accuracy_budget: float = 1.0,
    batch_size: int = 32,
    max_length: int = 128,
    wallclock_samples: int = 64,
    repeats: int = 3,
) -> ThresholdSweep:
    """Run the model at each threshold on (texts, labels); `accuracy_budget` is in accuracy points (1.0 = 1%)."""
    model.eval()
    vanilla = vanilla_counterpart(model)
    features = encode_examples(tokenizer, texts, max_length)
    pad_id = tokenizer.pad_token_id or 0
    batches = [pad_batch(features[i : i + batch_size], pad_id) for i in range(0, len(features), batch_size)]
    timed_batches = [
        pad_batch(features[i : min(i + batch_size, wallclock_samples)], pad_id)
        for i in range(0, min(len(features), wallclock_samples), batch_size)
    ]
    gold = torch.as_tensor(list(labels))

    with full_depth(model), torch.inference_mode():
        ramp_logits = torch.cat([model(**batch, output_ramp_logits=True).ramp_logits for batch in batches])
    full_accuracy = float((ramp_logits[:, -1].argmax(-1) == gold).float().mean())
    if thresholds is None:
        thresholds = candidate_thresholds(prediction_entropy(ramp_logits[:, :-1]).numpy())
    vanilla_flops = predict_with_flops(vanilla, batches).flops

    def run(module, inputs):
        return lambda: [module(**batch) for batch in inputs]

    points = []
    saved_threshold = model.config.entropy_threshold
    announce(f"threshold sweep on validation: {len(thresholds)} entropy thresholds x {len(features):,} texts "
             f"(accuracy + executed FLOPs each; wall-clock on {min(len(features), wallclock_samples)} texts, "
             f"{repeats} repeats)")
    try:
        for threshold in steps(thresholds, "threshold sweep"):
            model.config.entropy_threshold = float(threshold)
            measured = predict_with_flops(model, batches)
            timing = compare_wallclock(
                {"vanilla": run(vanilla, timed_batches), "adaptive": run(model, timed_batches)},
                baseline="vanilla",
                repeats=repeats,
            )
            summary = exit_summary(measured.exit_layers, model.config.num_hidden_layers)
            points.append(
                {
                    "threshold": float(threshold),
                    "accuracy": float((measured.labels == gold).float().mean()),
                    "flops_speedup": vanilla_flops / measured.flops,
                    "wallclock_speedup": timing.speedup["adaptive"],
                    "mean_exit_layer": summary["mean_exit_layer"],
                    "exit_histogram": summary["histogram"],
                }
            )
    finally:
        model.config.entropy_threshold = saved_threshold

    floor = full_accuracy - accuracy_budget / 100.0
    allowed = [i for i, p in enumerate(points) if p["accuracy"] >= floor - 1e-12]
    chosen_index = max(allowed, key=lambda i: (points[i]["flops_speedup"], -i)) if allowed else None
    chosen = points[chosen_index]["threshold"] if chosen_index is not None else None
    notes = [] if chosen_index is not None else ["No threshold kept accuracy within the budget; early exit stays off."]
    return ThresholdSweep(points, full_accuracy, accuracy_budget, chosen, chosen_index, notes)


def plot_threshold_sweep(sweep: ThresholdSweep, path: str | Path, *, title: str | None = None) -> Path:
    """Accuracy against speed-up, one curve for executed FLOPs and one for wall-clock throughput."""
    series = []
    for point in sweep.points:
        for kind, key in (("executed FLOPs", "flops_speedup"), ("wall-clock, batch 32", "wallclock_speedup")):
            series.append({"speedup": point[key], "accuracy": 100 * point["accuracy"], "measure": kind})
    chosen, chosen_text = None, "early exit off"
    if sweep.chosen_index is not None:
        chosen = {"speedup": sweep.points[sweep.chosen_index]["flops_speedup"],
                  "accuracy": 100 * sweep.points[sweep.chosen_index]["accuracy"]}
        chosen_text = f"chosen S = {sweep.chosen_threshold:.3g}"
    return plot_tradeoff(
        series, "speedup", "accuracy", path,
        series_key="measure", baseline_y=100 * sweep.full_depth_accuracy,
        baseline_label="full depth", chosen=chosen,
        title=title or f"DeeBERT threshold sweep: {chosen_text} (budget {sweep.accuracy_budget:g} pt)",
        xlabel="speed-up over vanilla BERT (x)", ylabel="validation accuracy (%)",
    )
