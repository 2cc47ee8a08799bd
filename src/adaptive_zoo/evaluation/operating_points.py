"""Choosing an adaptive model's operating point on validation data, for every family that has one.

* DeeBERT's entropy threshold S (`sweep_entropy_thresholds`): every candidate S is run for real; its accuracy
  and executed FLOPs come from one pass of the early-exit model over the validation split, its wall-clock
  throughput from interleaved timing against the vanilla model.
* AdapLeR's phase-3 checkpoint and the factor its learned η is scaled by (`choose_eta_scale`,
  `measure_eta_scales`).
* The Depth-Adaptive Transformer's confidence thresholds T_1 .. T_{N-1} (`choose_confidence_thresholds`): the
  paper's random search, each setting scored on the model's generations, under a compute budget.

The two classifiers share the measurement (`encoded_batches`, `vanilla_flops_of`, `measure_on_batches`: accuracy
and executed-FLOPs speed-up of one pass over padded batches) and the rule (`index_within_budget`): the point with
the largest FLOPs speed-up whose accuracy stays within a budget of a reference accuracy.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from datasets import Dataset
from transformers import PreTrainedTokenizerBase

from ..data.text import check_texts
from ..models.adapler import (
    AdapLeRBertForSequenceClassification,
    AdapLeRConfig,
    AdapLeRRobertaConfig,
    AdapLeRRobertaForSequenceClassification,
)
from ..models.dat import DepthAdaptiveTransformer
from ..models.deebert import prediction_entropy
from ..progress import ProgressLine, announce, steps
from .classification import Predictions, encode_examples, full_depth, predict_with_flops, vanilla_counterpart
from .measure import compare_wallclock, exit_summary, pad_batch
from .plots import plot_tradeoff

ADAPLER_CLASSES = {AdapLeRConfig.model_type: AdapLeRBertForSequenceClassification,
                   AdapLeRRobertaConfig.model_type: AdapLeRRobertaForSequenceClassification}


def adapler_class(checkpoint):
    """The AdapLeR classifier class (BERT or RoBERTa family) of a saved checkpoint."""
    model_type = AdapLeRConfig.get_config_dict(str(checkpoint))[0].get("model_type")
    if model_type not in ADAPLER_CLASSES:
        raise ValueError(f"{checkpoint} is not an AdapLeR checkpoint (model_type {model_type!r}).")
    return ADAPLER_CLASSES[model_type]
from .text_metrics import bleu_score, rouge_scores

__all__ = [
    "THRESHOLD_METRICS",
    "ThresholdSearchResult",
    "ThresholdSweep",
    "ThresholdTrial",
    "best_within_budget",
    "candidate_thresholds",
    "check_eta_scales",
    "choose_confidence_thresholds",
    "choose_eta_scale",
    "encoded_batches",
    "fixed_exit_thresholds",
    "generation_evaluator",
    "index_within_budget",
    "measure_eta_scales",
    "measure_on_batches",
    "plot_threshold_sweep",
    "sample_thresholds",
    "scale_eta_",
    "score_function",
    "sweep_entropy_thresholds",
    "tune_confidence_thresholds",
    "vanilla_flops_of",
]


# -- shared by the classifiers: measuring on encoded batches, and the accuracy budget -----------------------------


def encoded_batches(tokenizer, texts: Sequence[str], max_length: int,
                    batch_size: int) -> tuple[list[dict[str, torch.Tensor]], list[dict[str, torch.Tensor]]]:
    """The texts encoded one by one (checked, truncated to `max_length`) and those encodings padded into batches
    of `batch_size`: (features, batches)."""
    features = encode_examples(tokenizer, texts, max_length)
    pad_id = tokenizer.pad_token_id or 0
    batches = [pad_batch(features[i : i + batch_size], pad_id) for i in range(0, len(features), batch_size)]
    return features, batches


def vanilla_flops_of(model, batches: Sequence[dict[str, torch.Tensor]]) -> int:
    """Executed FLOPs of the vanilla transformers model with `model`'s weights on `batches`: the speed-up's base."""
    return predict_with_flops(vanilla_counterpart(model), batches).flops


def measure_on_batches(model, batches: Sequence[dict[str, torch.Tensor]], gold: torch.Tensor,
                       baseline_flops: float) -> tuple[Predictions, dict[str, float]]:
    """One measured pass of `model` over `batches`: its predictions, and the point's accuracy against `gold` and
    executed-FLOPs speed-up over `baseline_flops` (see `vanilla_flops_of`)."""
    result = predict_with_flops(model, batches)
    return result, {"accuracy": float((result.labels == gold).float().mean()),
                    "flops_speedup": baseline_flops / result.flops}


def index_within_budget(points: Sequence[Mapping[str, Any]], reference_accuracy: float,
                        accuracy_budget: float) -> int | None:
    """The index of the point with the largest `flops_speedup` whose `accuracy` is within `accuracy_budget`
    points (1.0 = 1%) of `reference_accuracy` (ties: the earlier point); None if no point is."""
    floor = reference_accuracy - accuracy_budget / 100.0
    allowed = [i for i, point in enumerate(points) if point["accuracy"] >= floor - 1e-12]
    if not allowed:
        return None
    return max(allowed, key=lambda i: (points[i]["flops_speedup"], -i))


# -- DeeBERT: the entropy threshold S -------------------------------------------------------------------------------


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
    """Run the model at each threshold on (texts, labels); `accuracy_budget` is in accuracy points (1.0 = 1%).
    The chosen S is the one with the largest FLOPs speed-up whose accuracy stays within the budget of full depth
    (none: early exit stays off)."""
    model.eval()
    vanilla = vanilla_counterpart(model)
    features, batches = encoded_batches(tokenizer, texts, max_length, batch_size)
    pad_id = tokenizer.pad_token_id or 0
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
    baseline_flops = vanilla_flops_of(model, batches)

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
            measured, point = measure_on_batches(model, batches, gold, baseline_flops)
            timing = compare_wallclock(
                {"vanilla": run(vanilla, timed_batches), "adaptive": run(model, timed_batches)},
                baseline="vanilla",
                repeats=repeats,
            )
            summary = exit_summary(measured.exit_layers, model.config.num_hidden_layers)
            points.append(
                {
                    "threshold": float(threshold),
                    **point,
                    "wallclock_speedup": timing.speedup["adaptive"],
                    "mean_exit_layer": summary["mean_exit_layer"],
                    "exit_histogram": summary["histogram"],
                }
            )
    finally:
        model.config.entropy_threshold = saved_threshold

    chosen_index = index_within_budget(points, full_accuracy, accuracy_budget)
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


# -- AdapLeR: the phase-3 checkpoint and the scale of the learned η ---------------------------------------------------


def check_eta_scales(scales: Sequence[float]) -> tuple[float, ...]:
    """One or more factors in (0, 1] for the learned η (scaling it up would leave η's range); as floats."""
    scales = tuple(float(scale) for scale in scales)
    if not scales or any(not 0.0 < scale <= 1.0 for scale in scales):
        raise ValueError(f"`eta_scales` must be one or more factors in (0, 1], got {scales}.")
    return scales


def scale_eta_(model, scale: float) -> None:
    """Multiply every layer's η by `scale` in (0, 1] in place: a lower removal threshold δ = η / n, so fewer
    tokens removed. η stays in (0, 1]."""
    check_eta_scales((scale,))
    with torch.no_grad():
        model.eta.mul_(scale)


def measure_eta_scales(model, batches, gold: torch.Tensor, vanilla_flops: float,
                       eta_scales: Sequence[float]) -> list[dict]:
    """Accuracy, executed-FLOPs speed-up and kept tokens of an AdapLeR model (eval mode, real removal) with its
    current η scaled by each of `eta_scales`, on padded `batches` with labels `gold`. η is restored afterwards."""
    check_eta_scales(eta_scales)
    learned_eta = model.eta.detach().clone()
    measured = []
    try:
        for scale in eta_scales:
            with torch.no_grad():
                model.eta.copy_(learned_eta)
            scale_eta_(model, scale)
            result, point = measure_on_batches(model, batches, gold, vanilla_flops)
            measured.append({
                "eta_scale": scale,
                **point,
                "mean_kept_tokens_per_layer": result.kept_tokens.float().mean(dim=0).tolist(),
            })
    finally:
        with torch.no_grad():
            model.eta.copy_(learned_eta)
    return measured


def best_within_budget(measured: list[dict], reference_accuracy: float, accuracy_budget: float) -> int:
    """The index of the point with the largest FLOPs speed-up whose accuracy is within `accuracy_budget` points of
    `reference_accuracy` (`index_within_budget`); the most accurate point if none is. Marks each point's
    `chosen`."""
    best = index_within_budget(measured, reference_accuracy, accuracy_budget)
    if best is None:
        best = max(range(len(measured)), key=lambda i: measured[i]["accuracy"])
    for index, entry in enumerate(measured):
        entry["chosen"] = index == best
    return best


def choose_eta_scale(
    checkpoints: Sequence[Path],
    tokenizer: PreTrainedTokenizerBase,
    validation: Dataset,
    *,
    reference_accuracy: float,
    accuracy_budget: float,
    max_length: int,
    eta_scales: Sequence[float] = (1.0,),
    batch_size: int = 32,
) -> tuple[Path, float, list[dict]]:
    """The phase-3 checkpoint, and the factor its learned η is scaled by, with the largest executed-FLOPs speed-up
    (with real token removal) whose validation accuracy is within `accuracy_budget` points of
    `reference_accuracy` (phase 1's best); the most accurate point if none is.

    The paper keeps the learned η (`eta_scales=(1.0,)`). Scaling it down trades speed for accuracy without
    retraining: with a well-fitted contribution predictor, η = 1 at every layer can remove more than the budget
    allows, and φ only moves η through training. Returns the checkpoint, the scale and every point measured.
    """
    check_eta_scales(eta_scales)
    features, batches = encoded_batches(tokenizer, validation["text"], max_length, batch_size)
    gold = torch.as_tensor(validation["label"])
    measured, baseline_flops = [], None
    points = [(checkpoint, scale) for checkpoint in checkpoints for scale in eta_scales]
    announce(f"choosing the operating point on validation: {len(checkpoints)} phase-3 checkpoints x "
             f"{len(eta_scales)} eta scales = {len(points)} points, each {len(features):,} texts (accuracy + FLOPs)")
    for checkpoint in steps(checkpoints, f"operating points ({len(eta_scales)} per checkpoint)"):
        model = adapler_class(checkpoint).from_pretrained(checkpoint).eval()
        if baseline_flops is None:
            baseline_flops = vanilla_flops_of(model, batches)
        measured += [{"checkpoint": checkpoint.name, **point}
                     for point in measure_eta_scales(model, batches, gold, baseline_flops, eta_scales)]
    best = best_within_budget(measured, reference_accuracy, accuracy_budget)
    checkpoint_named = {checkpoint.name: checkpoint for checkpoint in checkpoints}
    return checkpoint_named[measured[best]["checkpoint"]], measured[best]["eta_scale"], measured


# -- Depth-Adaptive Transformer: the confidence thresholds T_n -------------------------------------------------------


@dataclass
class ThresholdTrial:
    """One evaluated setting of the confidence thresholds."""

    thresholds: list[float]
    """T_1 .. T_{N-1}."""
    score: float
    """The validation score (higher is better), e.g. ROUGE-L or BLEU of the generations."""
    average_exit: float
    """The mean exit block of the generated tokens (the paper's AE), the compute the setting costs."""
    within_budget: bool


@dataclass
class ThresholdSearchResult:
    """What `tune_confidence_thresholds` found: the best trial within the budget (`None` if no trial met it) and
    every trial, in the order they were evaluated."""

    best: ThresholdTrial | None
    trials: list[ThresholdTrial] = field(default_factory=list)
    budget: float | None = None

    @property
    def best_thresholds(self) -> list[float] | None:
        return None if self.best is None else list(self.best.thresholds)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def sample_thresholds(generator: torch.Generator, num_exits: int) -> list[float]:
    """T_1 .. T_{N-1} drawn independently and uniformly in [0, 1] (the paper's random search)."""
    return [float(t) for t in torch.rand(num_exits - 1, generator=generator, dtype=torch.float64)]


def _as_score_and_exit(result) -> tuple[float, float]:
    if isinstance(result, Mapping):
        return float(result["score"]), float(result["average_exit"])
    score, average_exit = result
    return float(score), float(average_exit)


def fixed_exit_thresholds(exit_block: int, num_exits: int) -> list[float]:
    """The confidence thresholds T_1 .. T_{N-1} under which every token exits at block `exit_block` (1-based):
    T_m = 1 below it (a probability is never strictly above 1, so nobody exits there and that block's output
    distribution is not even computed) and T_m = 0 from it on (every probability is above 0). These are the
    paper's fixed-exit baselines: the same aligned decoder cut at a fixed depth n."""
    if isinstance(num_exits, bool) or not isinstance(num_exits, int) or num_exits < 2:
        raise ValueError(f"num_exits (N, the number of decoder blocks) must be an integer >= 2; got {num_exits!r}.")
    if isinstance(exit_block, bool) or not isinstance(exit_block, int) or not 1 <= exit_block <= num_exits:
        raise ValueError(f"exit_block must be an integer between 1 and {num_exits}; got {exit_block!r}.")
    return [1.0 if block < exit_block else 0.0 for block in range(1, num_exits)]


def tune_confidence_thresholds(
    evaluate: Callable[[list[float]], Any],
    num_exits: int,
    *,
    budget: float | None = None,
    num_trials: int = 100,
    seed: int = 0,
    candidates: Sequence[Sequence[float]] = (),
) -> ThresholdSearchResult:
    """Random search for the confidence thresholds T_1 .. T_{N-1} that maximise a validation score under a compute
    budget (the paper samples 10K settings uniformly on the validation set and keeps the best BLEU).

    Args:
        evaluate: called with one setting (a list of N-1 floats); returns `(score, average_exit)` or a mapping
            with those keys: e.g. ROUGE of the model's generations with those thresholds and their mean exit block
            (see `generation_evaluator`). Higher scores are better.
        num_exits: N, the number of decoder blocks.
        budget: the largest average exit allowed (in blocks, 1 .. N); `None`: no constraint.
        num_trials: how many random settings to evaluate (on top of `candidates`).
        seed: seeds the sampling, so a search is reproducible.
        candidates: settings to evaluate first (e.g. `[[1.0] * (N - 1)]`, full depth, as a reference).

    Returns the best trial within the budget (ties: the cheaper one, then the earlier one) and every trial.
    """
    if isinstance(num_exits, bool) or not isinstance(num_exits, int) or num_exits < 2:
        raise ValueError(f"num_exits (N, the number of decoder blocks) must be an integer >= 2; got {num_exits!r}.")
    if budget is not None and not 1 <= budget:
        raise ValueError(f"budget (the largest average exit allowed) must be >= 1 block; got {budget}.")
    if num_trials < 0:
        raise ValueError(f"num_trials must be >= 0; got {num_trials}.")
    settings = [[float(t) for t in c] for c in candidates]
    for setting in settings:
        if len(setting) != num_exits - 1 or not all(0 <= t <= 1 for t in setting):
            raise ValueError(f"each candidate needs {num_exits - 1} thresholds in [0, 1]; got {setting}.")
    generator = torch.Generator().manual_seed(seed)
    settings += [sample_thresholds(generator, num_exits) for _ in range(num_trials)]
    if not settings:
        raise ValueError("Nothing to evaluate: pass num_trials > 0 or some candidates.")

    trials, best = [], None
    for thresholds in settings:
        score, average_exit = _as_score_and_exit(evaluate(list(thresholds)))
        within = budget is None or average_exit <= budget
        trial = ThresholdTrial(thresholds=thresholds, score=score, average_exit=average_exit, within_budget=within)
        trials.append(trial)
        if within and not math.isnan(score) and (
            best is None or (score, -average_exit) > (best.score, -best.average_exit)
        ):
            best = trial
    return ThresholdSearchResult(best=best, trials=trials, budget=budget)


def generation_evaluator(
    model: DepthAdaptiveTransformer,
    tokenizer: PreTrainedTokenizerBase,
    sources: Sequence[str],
    references: Sequence[str],
    metric: Callable[[list[str], list[str]], float],
    *,
    batch_size: int = 16,
    max_source_length: int = 256,
    **generate_kwargs,
) -> Callable[[list[float]], dict[str, float]]:
    """An `evaluate` callback for `tune_confidence_thresholds`: with the given thresholds set on the model (and
    restored after), generate for `sources`, score the decoded texts against `references` with
    `metric(predictions, references)` (e.g. `lambda p, r: rouge_scores(p, r)["rougeL"]`), and return
    `{"score": ..., "average_exit": ...}`, AE being the mean exit block over every generated token."""
    check_texts(sources, "threshold tuning sources")
    if len(sources) != len(references):
        raise ValueError(f"Got {len(sources)} sources but {len(references)} references.")
    if model.config.exit_prediction != "confidence":
        raise ValueError(
            "Threshold tuning is for `exit_prediction='confidence'`; this model uses "
            f"{model.config.exit_prediction!r}. Set `model.config.exit_prediction = 'confidence'` first."
        )
    batches = [
        tokenizer(list(sources[i : i + batch_size]), truncation=True, max_length=max_source_length, padding=True,
                  return_tensors="pt", return_token_type_ids=False)
        for i in range(0, len(sources), batch_size)
    ]

    def evaluate(thresholds: list[float]) -> dict[str, float]:
        saved = model.config.confidence_thresholds
        model.config.confidence_thresholds = list(thresholds)
        model.eval()
        predictions, exit_total, exit_count = [], 0, 0
        try:
            for batch in batches:
                batch = {k: v.to(model.device) for k, v in batch.items()}
                out = model.generate_with_exits(**batch, **generate_kwargs)
                predictions += [t.strip() for t in tokenizer.batch_decode(out.sequences, skip_special_tokens=True)]
                exit_total += int(out.exit_layers.sum())
                exit_count += int((out.exit_layers > 0).sum())
        finally:
            model.config.confidence_thresholds = saved
        return {"score": float(metric(predictions, list(references))),
                "average_exit": exit_total / max(exit_count, 1)}

    return evaluate


THRESHOLD_METRICS = ("rouge1", "rouge2", "rougeL", "bleu")


def score_function(metric: str) -> Callable[[list[str], list[str]], float]:
    """`metric(predictions, references)` for a name in `THRESHOLD_METRICS` (0-100, higher is better)."""
    if metric not in THRESHOLD_METRICS:
        raise ValueError(f"metric must be one of {THRESHOLD_METRICS}; got {metric!r}.")
    if metric == "bleu":
        return lambda predictions, references: bleu_score(predictions, references)
    return lambda predictions, references: rouge_scores(predictions, references, rouge_types=[metric])[metric]


def choose_confidence_thresholds(
    model: DepthAdaptiveTransformer,
    tokenizer: PreTrainedTokenizerBase,
    sources: Sequence[str],
    references: Sequence[str],
    *,
    budget_fraction: float,
    num_trials: int = 100,
    seed: int = 0,
    metric: str = "rouge1",
    batch_size: int = 16,
    max_source_length: int = 256,
    **generate_kwargs,
) -> ThresholdSearchResult:
    """The paper's threshold tuning on validation data: random settings of T_1 .. T_{N-1} (plus every fixed exit
    1 .. N: full depth, the reference, and "every token exits at block 1", which always meets the budget, among
    them; so the search never does worse than the best fixed depth within budget), each scored by `metric` on
    the model's generations for `sources`; the best one whose average exit is at most `budget_fraction` * N
    blocks wins. The model's thresholds are left as they were: set `result.best_thresholds` yourself."""
    num_exits = model.config.num_exits
    if not 0 < budget_fraction <= 1:
        raise ValueError(f"budget_fraction must lie in (0, 1]; got {budget_fraction}.")
    budget = budget_fraction * num_exits
    if budget < 1:
        raise ValueError(
            f"A compute budget of {budget_fraction} x {num_exits} blocks = {budget:.3g} is below 1 block, which every "
            f"token runs; use at least {1 / num_exits:.3g}."
        )
    evaluate = generation_evaluator(model, tokenizer, sources, references, score_function(metric),
                                    batch_size=batch_size, max_source_length=max_source_length, **generate_kwargs)
    # full depth first (the reference), then block 1, then the other fixed exits
    order = [num_exits, 1, *range(2, num_exits)]
    candidates = [fixed_exit_thresholds(exit_block, num_exits) for exit_block in order]
    total = len(candidates) + num_trials
    announce(f"threshold search on validation: {total} settings ({len(candidates)} fixed exits + {num_trials} "
             f"random) x {len(sources):,} texts, generation and {metric} each; budget: average exit <= {budget:.2f} of "
             f"{num_exits} blocks")
    line, done = ProgressLine("threshold search", total), 0

    def evaluate_with_progress(thresholds: list[float]) -> dict[str, float]:
        nonlocal done
        result = evaluate(thresholds)
        done += 1
        line.update(done)
        return result

    return tune_confidence_thresholds(evaluate_with_progress, num_exits, budget=budget, num_trials=num_trials,
                                      seed=seed, candidates=candidates)
