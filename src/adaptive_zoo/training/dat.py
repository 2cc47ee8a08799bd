"""Depth-Adaptive Transformer training: build the model from a BART checkpoint and fine-tune it with the stock
`Seq2SeqTrainer` (the model computes the aligned or mixed loss and the exit loss itself when given labels). The
confidence thresholds T_n are tuned on validation afterwards, by the paper's random search under a compute budget
(`adaptive_zoo.evaluation.operating_points.choose_confidence_thresholds`).

No pretrained BART ships here: start from a BART warm-started from a BERT checkpoint
(`training.warm_start.bart_from_bert`), save it, and `build_dat(folder, ...)`: every BART weight loads by name and
the exit predictor starts fresh.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from torch import nn
from transformers import (
    AutoConfig,
    BartConfig,
    DataCollatorForSeq2Seq,
    PreTrainedConfig,
    PreTrainedTokenizerBase,
    Seq2SeqTrainer,
    Seq2SeqTrainingArguments,
)

# layering exception: DATTrainingArguments moves to the recipe layer (methods/dat.py)
from ..evaluation.operating_points import THRESHOLD_METRICS
from ..models.dat import DepthAdaptiveTransformer, DepthAdaptiveTransformerConfig
from ..progress import attach_progress
from .common import from_pretrained_with_new_parts, training_arguments

__all__ = [
    "DATTrainingArguments",
    "build_dat",
    "dat_config_from_bart",
    "finetune_dat",
    "keep_lowest_encoder_layers",
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
