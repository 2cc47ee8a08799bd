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
from dataclasses import dataclass
from typing import Any

from torch import nn
from transformers import (
    AutoConfig,
    BartConfig,
    DataCollatorForSeq2Seq,
    PreTrainedConfig,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    Seq2SeqTrainer,
    Seq2SeqTrainingArguments,
)

from ..models.dat import DepthAdaptiveTransformer, DepthAdaptiveTransformerConfig
from ..progress import attach_progress
from ..settings import integer, number, positive_float, positive_int, setting
from .common import (
    NOT_CONFIG_FIELDS,
    Seq2SeqSettings,
    adaptive_model_from,
    from_pretrained_with_new_parts,
    training_arguments,
)

__all__ = [
    "DATTrainingArguments",
    "build_dat",
    "dat_config_from_bart",
    "finetune_dat",
    "keep_lowest_encoder_layers",
]


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


def build_dat(bart: str | os.PathLike | PreTrainedModel, **overrides) -> DepthAdaptiveTransformer:
    """A `DepthAdaptiveTransformer` from a BART: a checkpoint folder or Hub id, or a model in memory (a BART
    warm-started from BERT). Every BART weight (embeddings, encoder, decoder blocks, the tied output projection)
    loads by name; the exit predictor is new. The BART's generation config (decoder start, EOS, ...) comes
    along."""
    config = dat_config_from_bart(bart.config if isinstance(bart, PreTrainedModel) else bart, **overrides)
    explanation = f"new weights, as expected: the {config.exit_prediction} exit predictor, trained with the decoder"
    if isinstance(bart, PreTrainedModel):
        return adaptive_model_from(DepthAdaptiveTransformer, config, bart, ("exit_predictor.",), explanation)
    return from_pretrained_with_new_parts(DepthAdaptiveTransformer, bart, ("exit_predictor.",), explanation,
                                          config=config)


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
class DATTrainingArguments(Seq2SeqSettings):
    """What training a Depth-Adaptive Transformer takes: the paper's model fields (checked by the model's config),
    the shape and initialisation of the BART, and fine-tuning settings."""

    num_train_epochs: float = setting(3.0, help="Fine-tuning epochs.", metavar="E", check=positive_float)
    max_length: int = setting(256, help="Source tokens: longer texts are truncated. Saved as the tokenizer's "
                              "model_max_length, so pipelines truncate to it too.", metavar="L", check=positive_int)
    exit_prediction: str = setting("multinomial", help="sequence, multinomial, geometric, or confidence (thresholds "
                                   "tuned on validation).")
    oracle: str = setting("likelihood", help="What learned exits are trained towards: likelihood or correctness.")
    oracle_sigma: float = setting(1.0, symbol="σ", help="sigma > 0 of the token oracles' smoothing.", check=number)
    oracle_depth_penalty: float = setting(0.0, symbol="λ", help="lambda >= 0: larger values make the oracle (and the "
                                          "predictor) exit earlier.", check=number)
    exit_loss_weight: float = setting(1.0, symbol="α", help="alpha in L = L_dec + alpha L_exit.", check=number)
    training_regime: str = setting("aligned", help="aligned or mixed.")
    num_mixed_samples: int = setting(6, symbol="M", help="M, sampled exit sequences in the mixed regime.",
                                     check=integer)
    decoder_layers: int | None = setting(None, symbol="N", help="N decoder blocks, >= 2 and at most the base model's "
                                         "layers.", check=integer, default_text="all of them")
    encoder_layers: int | None = setting(None, help="Keep only the base model's lowest K layers in the encoder, for "
                                         "a decoder-heavy model.", check=integer, default_text="all of them")
    from_scratch: bool = setting(False, help="A randomly initialised BART of the same shape instead of the warm "
                                 "start from BERT.")

    def __post_init__(self):
        super().__post_init__()
        if self.max_target_length < 2:
            raise ValueError(f"max_target_length must be >= 2 (a token and the EOS); got {self.max_target_length}.")

    def model_overrides(self) -> dict[str, Any]:
        """The paper's config fields, for `dat_config_from_bart` / `build_dat`."""
        return dict(exit_prediction=self.exit_prediction, oracle=self.oracle, oracle_sigma=self.oracle_sigma,
                    oracle_depth_penalty=self.oracle_depth_penalty, exit_loss_weight=self.exit_loss_weight,
                    training_regime=self.training_regime, num_mixed_samples=self.num_mixed_samples)
