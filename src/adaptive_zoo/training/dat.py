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

from ..models.dat import DepthAdaptiveTransformer, DepthAdaptiveTransformerConfig
from .common import check_texts, training_arguments

__all__ = [
    "ThresholdSearchResult",
    "ThresholdTrial",
    "build_dat",
    "dat_config_from_bart",
    "finetune_dat",
    "generation_evaluator",
    "sample_thresholds",
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
    return DepthAdaptiveTransformer.from_pretrained(bart, config=config)


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
    trainer.train()
    return trainer


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
