"""Depth-Adaptive Transformer training: build the model from a BART checkpoint, fine-tune it with the stock
`Seq2SeqTrainer` (the model computes the aligned or mixed loss and the exit loss itself when given labels), and
tune the confidence thresholds T_n on validation data by random search under a compute budget (as in the paper:
thresholds sampled uniformly, the best validation score kept).

No pretrained BART ships here: start from a BART warm-started from a BERT checkpoint
(`training.warm_start.bart_from_bert`), save it, and `build_dat(folder, ...)`: every BART weight loads by name and
the exit predictor starts fresh.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from transformers import (
    AutoConfig,
    BartConfig,
    DataCollatorForSeq2Seq,
    PreTrainedConfig,
    PreTrainedTokenizerBase,
    Seq2SeqTrainer,
    Seq2SeqTrainingArguments,
)

from ..data.text import check_texts
from ..models.dat import DepthAdaptiveTransformer, DepthAdaptiveTransformerConfig
from ..progress import ProgressLine, announce, attach_progress
from .common import from_pretrained_with_new_parts, training_arguments

__all__ = [
    "DATTrainingArguments",
    "THRESHOLD_METRICS",
    "ThresholdSearchResult",
    "ThresholdTrial",
    "build_dat",
    "choose_confidence_thresholds",
    "dat_config_from_bart",
    "finetune_dat",
    "fixed_exit_thresholds",
    "generation_evaluator",
    "keep_lowest_encoder_layers",
    "sample_thresholds",
    "score_function",
    "tune_confidence_thresholds",
]

# Bookkeeping keys of a saved config that are not model fields (and must not override the new model type).
NOT_CONFIG_FIELDS = {"model_type", "architectures", "transformers_version", "_name_or_path", "auto_map", "dtype"}


# -- building ---------------------------------------------------------------------------------------------------


def dat_config_from_bart(bart: str | os.PathLike | PreTrainedConfig, **overrides) -> DepthAdaptiveTransformerConfig:
    """A `DepthAdaptiveTransformerConfig` with every BART field of `bart` (a folder, Hub id or config) and the
    paper's fields from `overrides` (e.g. `exit_prediction="geometric", oracle="correctness"`).

    Built explicitly, so `model_type` is the DAT's. DAT fields saved in `bart` (when it is already a DAT) are kept
    unless overridden."""
    config = bart if isinstance(bart, PreTrainedConfig) else AutoConfig.from_pretrained(bart)
    if config.model_type not in ("bart", DepthAdaptiveTransformerConfig.model_type):
        raise ValueError(
            f"The Depth-Adaptive Transformer is built on BART; got a {config.model_type!r} config. Warm-start a BART "
            "from BERT first (adaptive_zoo.training.warm_start.bart_from_bert)."
        )
    known = set(DepthAdaptiveTransformerConfig().to_dict()) | set(BartConfig().to_dict())
    fields = {k: v for k, v in config.to_dict().items() if k in known and k not in NOT_CONFIG_FIELDS}
    return DepthAdaptiveTransformerConfig(**{**fields, **overrides})


def build_dat(bart: str | os.PathLike, **overrides) -> DepthAdaptiveTransformer:
    """A `DepthAdaptiveTransformer` loaded from a BART checkpoint folder or Hub id: every BART weight (embeddings,
    encoder, decoder blocks, the tied output projection) loads by name; the exit predictor is new. The checkpoint's
    generation config (decoder start, EOS, ...) comes along."""
    config = dat_config_from_bart(bart, **overrides)
    return from_pretrained_with_new_parts(
        DepthAdaptiveTransformer, bart, ("exit_predictor.",),
        f"new weights, as expected: the {config.exit_prediction} exit predictor, trained with the decoder",
        config=config,
    )


def keep_lowest_encoder_layers(bart, report=None, num_layers: int | None = None):
    """Keep only the lowest `num_layers` encoder layers of a BART (e.g. one warm-started from BERT by
    `bart_from_bert`, whose encoder always gets every BERT layer), for a decoder-heavy model: more decoder blocks
    to choose between than encoder layers. `report` (the `WarmStartReport`) is updated to match: the removed
    layers' weights are no longer listed as pretrained or fresh, and a note says what was kept. In place;
    returns `bart`."""
    from torch import nn

    total = bart.config.encoder_layers
    if num_layers is None or num_layers == total:
        return bart
    if isinstance(num_layers, bool) or not isinstance(num_layers, int) or not 1 <= num_layers <= total:
        raise ValueError(f"encoder_layers must be between 1 and the {total} layers the encoder has; got {num_layers!r}.")
    encoder = bart.model.encoder
    encoder.layers = nn.ModuleList(list(encoder.layers)[:num_layers])
    bart.config.encoder_layers = num_layers
    if report is not None:
        def removed(name: str) -> bool:
            prefix = "model.encoder.layers."
            return name.startswith(prefix) and int(name[len(prefix):].split(".", 1)[0]) >= num_layers

        report.pretrained = {k: v for k, v in report.pretrained.items() if not removed(k)}
        report.fresh = [name for name in report.fresh if not removed(name)]
        report.notes.append(
            f"Decoder-heavy configuration: the encoder keeps only BERT's lowest {num_layers} of {total} layers "
            f"(the decoder has {bart.config.decoder_layers} blocks)."
        )
    return bart


# -- fine-tuning -------------------------------------------------------------------------------------------------


def finetune_dat(
    model: DepthAdaptiveTransformer,
    tokenizer: PreTrainedTokenizerBase,
    train_dataset,
    eval_dataset,
    output_dir: str | os.PathLike,
    **trainer_overrides,
) -> Seq2SeqTrainer:
    """Fine-tune with teacher forcing on tokenized datasets (`input_ids`, `attention_mask`, `labels`): the model's
    own loss (L_dec + alpha L_exit) in training; in evaluation, the cross-entropy of the exits the tokens actually
    take (eval mode decodes adaptively), which also picks the best checkpoint. `trainer_overrides` go to
    `Seq2SeqTrainingArguments` (epochs, learning rate, batch sizes, ...)."""
    arguments = dict(
        num_train_epochs=3.0, learning_rate=5e-5, warmup_steps=0.06, weight_decay=0.01,
        load_best_model_at_end=eval_dataset is not None, metric_for_best_model="loss", greater_is_better=False,
        predict_with_generate=False, prediction_loss_only=True,
    )
    if eval_dataset is None:
        arguments.update(eval_strategy="no")
    arguments.update(trainer_overrides)
    trainer = Seq2SeqTrainer(
        model=model,
        args=training_arguments(output_dir, arguments_class=Seq2SeqTrainingArguments, **arguments),
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        data_collator=DataCollatorForSeq2Seq(tokenizer, model=model),
        processing_class=tokenizer,
    )
    attach_progress(trainer, "fine-tuning (Depth-Adaptive Transformer)").train()
    return trainer


@dataclass
class DATTrainingArguments:
    """Everything a Depth-Adaptive Transformer run takes (`adaptive_zoo.recipes.train_dat_recipe`): the paper's
    model fields, the shape and initialisation of the BART, the threshold search and fine-tuning settings."""

    output_dir: str
    exit_prediction: str = "multinomial"
    oracle: str = "likelihood"
    oracle_sigma: float = 1.0
    oracle_depth_penalty: float = 0.0
    exit_loss_weight: float = 1.0
    """alpha in L = L_dec + alpha L_exit."""
    training_regime: str = "aligned"
    num_mixed_samples: int = 6
    decoder_layers: int | None = None
    """N, the decoder blocks (each an exit); None: as many as the BERT base model has layers (at most that)."""
    encoder_layers: int | None = None
    """Keep only the lowest k BERT layers in the encoder (decoder-heavy models); None: all of them."""
    from_scratch: bool = False
    """A randomly initialised BART of the same shape instead of the warm start from BERT."""
    cross_attention_init: str = "self_attention"
    """How the warm start's cross-attention starts (`bart_from_bert`): "self_attention" (a copy of the same BERT
    layer's self-attention) or "fresh" (random, as bert2bert)."""
    compute_budget: float | None = None
    """`exit_prediction="confidence"`: the largest average exit allowed when tuning the thresholds on validation,
    as a fraction of N (None: `DEFAULT_COMPUTE_BUDGET`)."""
    threshold_trials: int | None = None
    """Random threshold settings evaluated on validation (None: `DEFAULT_THRESHOLD_TRIALS`), on top of full depth
    and "always exit at block 1"."""
    threshold_metric: str = "rouge1"
    """What the threshold search maximises: rouge1, rouge2, rougeL or bleu."""
    num_train_epochs: float = 3.0
    learning_rate: float = 5e-5
    batch_size: int = 16
    max_length: int = 256
    """Source tokens."""
    max_target_length: int = 32
    """Target tokens in training (EOS included), and new tokens when generating."""
    num_beams: int = 1
    seed: int = 42
    trainer_overrides: dict = field(default_factory=dict)

    DEFAULT_COMPUTE_BUDGET = 0.5
    DEFAULT_THRESHOLD_TRIALS = 100

    def __post_init__(self):
        confidence = self.exit_prediction == "confidence"
        if not confidence and (self.compute_budget is not None or self.threshold_trials is not None):
            raise ValueError(
                "--compute-budget and --threshold-trials tune the thresholds of --exit-prediction confidence; "
                f"this run uses {self.exit_prediction!r}, whose exits are learned."
            )
        if self.compute_budget is not None and not 0 < self.compute_budget <= 1:
            raise ValueError(
                "compute_budget (the largest average exit, as a fraction of the decoder's N blocks) must lie in "
                f"(0, 1]; got {self.compute_budget}."
            )
        if self.threshold_trials is not None and (isinstance(self.threshold_trials, bool) or self.threshold_trials < 0):
            raise ValueError(f"threshold_trials must be >= 0; got {self.threshold_trials}.")
        if self.threshold_metric not in THRESHOLD_METRICS:
            raise ValueError(f"threshold_metric must be one of {sorted(THRESHOLD_METRICS)}; got {self.threshold_metric!r}.")
        if self.max_target_length < 2:
            raise ValueError(f"max_target_length must be >= 2 (a token and the EOS); got {self.max_target_length}.")

    @property
    def resolved_compute_budget(self) -> float:
        return self.DEFAULT_COMPUTE_BUDGET if self.compute_budget is None else float(self.compute_budget)

    @property
    def resolved_threshold_trials(self) -> int:
        return self.DEFAULT_THRESHOLD_TRIALS if self.threshold_trials is None else int(self.threshold_trials)

    def model_overrides(self) -> dict[str, Any]:
        """The paper's config fields, for `dat_config_from_bart` / `build_dat`."""
        return dict(exit_prediction=self.exit_prediction, oracle=self.oracle, oracle_sigma=self.oracle_sigma,
                    oracle_depth_penalty=self.oracle_depth_penalty, exit_loss_weight=self.exit_loss_weight,
                    training_regime=self.training_regime, num_mixed_samples=self.num_mixed_samples)


# -- confidence thresholds ---------------------------------------------------------------------------------------


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
    from ..evaluation.text_metrics import bleu_score, rouge_scores

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
