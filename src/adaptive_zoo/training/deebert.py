"""DeeBERT's two training stages (Xin et al., 2020, section 3):

1. fine-tune the backbone and the final classifier on the task, as plain BERT fine-tuning
   (`FinalClassifierTrainer`: the final classifier's cross-entropy alone);
2. freeze them, and train every intermediate off-ramp with the sum of the off-ramps' cross-entropies
   (`OffRampTrainer`).

Both stages run on the stock `Trainer` and only swap the loss and what is trainable. The model's own training
loss (what a stock `Trainer` without these subclasses optimises) is the joint objective instead, all classifiers
at once; see `DeeBertForSequenceClassification`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from datasets import DatasetDict
from transformers import DataCollatorWithPadding, EvalPrediction, Trainer

from ..backbones import sentence_embedding_pooling
from ..data.text import tokenize_classification
from ..models.deebert import (
    DeeBertConfig,
    DeeBertForSequenceClassification,
    DeeRobertaConfig,
    DeeRobertaForSequenceClassification,
)
from ..progress import announce, attach_progress
from ..settings import RecipeSettings, non_negative_float, one_of, positive_float, setting
from .common import (
    accuracy_metric,
    adaptive_config_from_base,
    family_for,
    from_pretrained_with_new_parts,
    set_trainable,
    trainer_work_dir,
    training_arguments,
)


@dataclass
class DeeBertTrainingArguments(RecipeSettings):
    """What DeeBERT's two stages take; defaults train MiniLM on bbc_news in minutes on 2 CPU cores."""

    num_train_epochs: float = setting(2.0, help="Stage 1 (backbone + final classifier) epochs.", metavar="E",
                                      check=positive_float)
    off_ramp_epochs: float = setting(2.0, help="Stage 2 (off-ramps only, backbone frozen) epochs.", metavar="E",
                                     check=positive_float)
    off_ramp_learning_rate: float = setting(1e-3, help="Stage 2 learning rate: it trains only small heads on frozen "
                                            "features, so it takes a larger step.", metavar="LR",
                                            check=positive_float)
    off_ramp_pooling: str = setting("auto", help="Off-ramp input: [CLS] (the paper) or the token mean; auto = the "
                                    "backbone's own pooling (mean for MiniLM).", check=one_of("auto", "cls", "mean"))
    accuracy_budget: float = setting(1.0, help="Accuracy points the adaptive model may lose on validation against "
                                     "full depth (chooses the entropy threshold S).", check=non_negative_float)


class FinalClassifierTrainer(Trainer):
    """Stage 1: the cross-entropy of the final classifier alone, as when fine-tuning plain BERT (the model's own
    training loss would also train the backbone through the off-ramps)."""

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        labels = inputs.pop("labels")
        outputs = model(**inputs)  # nothing exits in training or with entropy_threshold=None: final logits
        loss = torch.nn.functional.cross_entropy(outputs.logits, labels)
        return (loss, outputs) if return_outputs else loss


class OffRampTrainer(Trainer):
    """Stage 2: the loss is the sum over intermediate off-ramps of their cross-entropy (the paper's
    sum_i L_i); the final classifier, trained in stage 1, is frozen and left out."""

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        labels = inputs.pop("labels")
        outputs = model(**inputs, output_ramp_logits=True)
        intermediate_logits = outputs.ramp_logits[:, :-1]  # (B, L-1, C)
        num_ramps, num_labels = intermediate_logits.shape[1], intermediate_logits.shape[2]
        loss = torch.nn.functional.cross_entropy(
            intermediate_logits.reshape(-1, num_labels), labels.repeat_interleave(num_ramps), reduction="mean"
        ) * num_ramps
        return (loss, outputs) if return_outputs else loss

    def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None):
        # Keep `ramp_logits` in the predictions (the config leaves them out for stock scripts): the per-off-ramp
        # accuracies are computed from them.
        return super().prediction_step(model, inputs, prediction_loss_only, ignore_keys=["exit_layers"])


def off_ramp_accuracies(prediction: EvalPrediction) -> dict[str, float]:
    """Accuracy of each off-ramp on its own (every sample runs every layer during training's evaluation)."""
    ramp_logits = prediction.predictions[-1]  # (N, L, C)
    labels = prediction.label_ids
    per_layer = (np.argmax(ramp_logits, axis=-1) == labels[:, None]).mean(axis=0)
    metrics = {f"accuracy_layer_{i + 1}": float(acc) for i, acc in enumerate(per_layer)}
    metrics["accuracy"] = float(per_layer[-1])
    return metrics


def default_off_ramp_pooling(base_model: str) -> str:
    """The paper's [CLS] off-ramps, unless the backbone was pretrained to pool by mean: then its early-layer
    [CLS] state carries almost nothing (measured on MiniLM: a linear probe on layer-1 [CLS] is at chance, on the
    layer-1 token mean it reaches 95% on bbc_news), and the off-ramps read the token mean instead."""
    return "mean" if sentence_embedding_pooling(base_model) == "mean" else "cls"


#: The DeeBERT family of each base-model type: its config and classifier classes.
DEEBERT_FAMILIES = (
    (DeeBertConfig, DeeBertForSequenceClassification),
    (DeeRobertaConfig, DeeRobertaForSequenceClassification),
)


def deebert_family(base_model: str):
    """(config class, model class) of the DeeBERT family that starts from `base_model`."""
    return family_for(base_model, DEEBERT_FAMILIES, "DeeBERT starts")


def build_deebert(base_model: str, label_names: list[str], *, fine_tuned: bool = False,
                  **config_overrides) -> DeeBertForSequenceClassification | DeeRobertaForSequenceClassification:
    """A DeeBERT classifier warm-started from a BERT or RoBERTa checkpoint; off-ramp poolers copy the pretrained
    pooler (RoBERTa: its classifier head's dense layer). `off_ramp_pooling` defaults to
    `default_off_ramp_pooling(base_model)`. With `fine_tuned` the checkpoint is a classifier fine-tuned on these
    labels: its final classifier is kept (stage 1 is then skipped), and a checkpoint without one is an error."""
    config_class, model_class = deebert_family(base_model)
    config_overrides.setdefault("off_ramp_pooling", default_off_ramp_pooling(base_model))
    config = adaptive_config_from_base(base_model, config_class, label_names, **config_overrides)
    last_ramp = config.num_hidden_layers - 1
    new_parts = ("off_ramps.",) if fine_tuned else ("classifier.", "off_ramps.")
    pooler = "the pretrained pooler" if config_class is DeeBertConfig else "the classifier head's dense layer"
    model = from_pretrained_with_new_parts(
        model_class, base_model, new_parts,
        ("new weights, as expected: " if fine_tuned else
         f"new weights, as expected: the final classifier ({config.num_labels} labels), trained in stage 1, and ")
        + f"off-ramps 1..{last_ramp} (poolers copied from {pooler}), trained in stage 2",
        config=config, strict_new_parts=fine_tuned,
    )
    model.init_off_ramps_from_pooler()
    return model


def final_evaluation(trainer: Trainer) -> dict:
    """The validation metrics of the trained model: those of the Trainer's end-of-epoch evaluation when it ran at
    the last step (the same weights, so the same numbers as evaluating again, without another pass over the
    validation split), else a fresh `trainer.evaluate()`."""
    evaluations = [entry for entry in trainer.state.log_history if "eval_loss" in entry]
    if evaluations and evaluations[-1].get("step") == trainer.state.global_step:
        return {key: value for key, value in evaluations[-1].items() if key != "step"}
    return trainer.evaluate()


def train_deebert(
    model: DeeBertForSequenceClassification,
    tokenizer,
    dataset: DatasetDict,
    args: DeeBertTrainingArguments,
    *,
    fine_tuned: bool = False,
) -> tuple[DeeBertForSequenceClassification, dict]:
    """Run both stages; returns the trained model and each stage's final evaluation metrics. With `fine_tuned` (the
    model was built from a classifier fine-tuned on this task) stage 1 is what that checkpoint already did: only
    stage 2 runs."""
    # Training runs every layer anyway; evaluation between epochs must too (S is chosen after training).
    model.config.entropy_threshold = None
    encoded = tokenize_classification(dataset, tokenizer, args.max_length)
    work_dir = trainer_work_dir(args.output_dir)

    def stage_trainer(trainer_class, name: str, phase: str, compute_metrics, **stage_arguments) -> Trainer:
        return attach_progress(trainer_class(
            model=model,
            args=training_arguments(
                work_dir / name, per_device_train_batch_size=args.batch_size, seed=args.seed, data_seed=args.seed,
                **stage_arguments, **args.trainer_overrides,
            ),
            train_dataset=encoded["train"],
            eval_dataset=encoded["validation"],
            data_collator=DataCollatorWithPadding(tokenizer),
            processing_class=tokenizer,
            compute_metrics=compute_metrics,
        ), phase)

    # Stage 1: ordinary fine-tuning of backbone + final classifier; off-ramps not trained yet.
    if fine_tuned:
        stage1_metrics = {"skipped": "the base model is a classifier fine-tuned on this task: its backbone and "
                          "final classifier are stage 1's result"}
        announce("stage 1/2 skipped: the base model is already a fine-tuned classifier (backbone and final "
                 "classifier kept)")
    else:
        set_trainable(model, True)
        set_trainable(model.off_ramps, False)
        stage1 = stage_trainer(
            FinalClassifierTrainer, "stage1", "stage 1/2 (fine-tuning backbone + final classifier)", accuracy_metric,
            num_train_epochs=args.num_train_epochs, learning_rate=args.learning_rate,
            warmup_steps=0.1,  # a float in [0, 1) is a ratio of the total steps
        )
        stage1.train()
        stage1_metrics = final_evaluation(stage1)

    # Stage 2: freeze what stage 1 trained; only the intermediate off-ramps learn.
    set_trainable(model, False)
    set_trainable(model.off_ramps, True)
    stage2 = stage_trainer(
        OffRampTrainer, "stage2", f"stage 2/2 (off-ramps 1..{model.config.num_hidden_layers - 1}, backbone frozen)",
        off_ramp_accuracies,
        num_train_epochs=args.off_ramp_epochs, learning_rate=args.off_ramp_learning_rate,
    )
    stage2.train()
    stage2_metrics = final_evaluation(stage2)
    set_trainable(model, True)
    model.eval()
    return model, {
        "stage1": stage1_metrics,
        "stage2": stage2_metrics,
        "world_size": stage2.args.world_size,
        "is_main_process": stage2.is_world_process_zero(),
    }
