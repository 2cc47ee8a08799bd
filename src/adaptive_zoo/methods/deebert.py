"""DeeBERT (Xin et al., 2020): stage 1 fine-tunes the backbone and final classifier (skipped when --base-model is a
classifier already fine-tuned on the dataset's labels), stage 2 trains an off-ramp after every layer; the entropy
threshold is chosen on validation within --accuracy-budget, then accuracy and speed-ups against vanilla BERT are
measured on test."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..evaluation.operating_points import plot_threshold_sweep, sweep_entropy_thresholds
from ..models.deebert import (
    DeeBertConfig,
    DeeBertForSequenceClassification,
    DeeBertModel,
    DeeRobertaConfig,
    DeeRobertaForSequenceClassification,
    DeeRobertaModel,
)
from ..training.deebert import DeeBertTrainingArguments, build_deebert, train_deebert
from .base import OperatingPoint, RecipeRun, register_method
from .tasks import ClassifierMethod, classifier_families

SWEEP_IMAGE = "threshold_sweep.png"
BENCHMARK_THRESHOLDS = 8
"""Entropy thresholds of the validation sweep that `adaptive-zoo benchmark` measures (besides the chosen one)."""
OFF_RAMP_POOLING_TEXT = {
    "cls": "the [CLS] state, as in the paper.",
    "mean": "the mean of the token states (`off_ramp_pooling=\"mean\"`): the backbone was pretrained with mean "
    "pooling, and its early-layer [CLS] state is nearly the same for every input. The final classifier is "
    "the vanilla classifier's own head over the first token.",
}


@register_method
class DeeBert(ClassifierMethod):
    name = "deebert"
    families = classifier_families((DeeBertConfig, DeeBertForSequenceClassification, DeeBertModel),
                                   (DeeRobertaConfig, DeeRobertaForSequenceClassification, DeeRobertaModel))
    settings_class = DeeBertTrainingArguments
    phase1_warmup_ratio, phase1_weight_decay = 0.1, 0.0  # stage 1 of `train_deebert`
    full_depth_is_a_plain_fine_tune = True  # stage 2 freezes what stage 1 trained

    def build(self, run: RecipeRun):
        pooling = run.settings.off_ramp_pooling
        return build_deebert(run.base_path, run.task.label_names, fine_tuned=run.base_is_classifier,
                             **({} if pooling == "auto" else {"off_ramp_pooling": pooling}))

    def train(self, run: RecipeRun, model):
        model, stage_metrics = train_deebert(model, run.tokenizer, run.task.dataset, run.settings,
                                             fine_tuned=run.base_is_classifier)
        run.record["training"] = {**run.settings.to_dict(), **stage_metrics}
        return model if stage_metrics.pop("is_main_process") else None

    def choose_operating_point(self, run: RecipeRun, model):
        settings, validation = run.settings, run.task.dataset["validation"]
        sweep = sweep_entropy_thresholds(
            model, run.tokenizer, validation["text"], validation["label"], accuracy_budget=settings.accuracy_budget,
            batch_size=settings.eval_batch_size, max_length=settings.max_length,
        )
        model.config.entropy_threshold = sweep.chosen_threshold
        run.record["validation_sweep"] = sweep.to_dict()
        run.artifacts["sweep"] = sweep
        run.card.update(
            sweep_image=SWEEP_IMAGE, accuracy_budget=settings.accuracy_budget,
            full_depth_accuracy=sweep.full_depth_accuracy,
            threshold_text=("off (never exit)" if sweep.chosen_threshold is None
                            else f"{sweep.chosen_threshold:.4g} nats"),
            off_ramp_pooling_text=OFF_RAMP_POOLING_TEXT[model.config.off_ramp_pooling],
            pretrained_note=(f"the embeddings, encoder layers, pooler and final classifier come from the fine-tuned "
                             f"classifier `{run.settings.base_model}` (stage 1 was not run again)"
                             if run.base_is_classifier else
                             "the embeddings, encoder layers and pooler come from the pretrained base model"),
            stage1_from=run.settings.base_model if run.base_is_classifier else None,
            off_ramp_init_text=("the pretrained pooler" if model.config.vanilla_model_type == "bert" else
                                "the classifier head's dense layer: RoBERTa's classifier has no pooler"),
        )
        run.tags.append("early-exit")
        return model

    def add_files(self, run: RecipeRun, model, folder: Path) -> None:
        plot_threshold_sweep(run.artifacts["sweep"], folder / SWEEP_IMAGE)

    def calibrate(self, model, tokenizer, settings, max_length: int) -> dict[str, Any]:
        split = self.calibration_split(model, settings)
        sweep = sweep_entropy_thresholds(model, tokenizer, split["text"], split["label"],
                                         accuracy_budget=settings.accuracy_budget, batch_size=settings.batch_size,
                                         max_length=max_length)
        model.config.entropy_threshold = sweep.chosen_threshold
        chosen = sweep.points[sweep.chosen_index] if sweep.chosen_index is not None else None
        return {"operating_point": {"entropy_threshold": sweep.chosen_threshold},
                "full_depth_accuracy": sweep.full_depth_accuracy, "chosen": chosen, "sweep": sweep.to_dict()}

    def operating_points(self, model, record: dict[str, Any]) -> list[OperatingPoint]:
        """Every few thresholds of the validation sweep the folder records (all of them up to BENCHMARK_THRESHOLDS),
        from 0 (nothing exits) up, and the saved threshold."""
        sweep = (record.get("calibrations") or [{}])[-1].get("sweep") or record.get("validation_sweep") or {}
        thresholds = [point["threshold"] for point in sweep.get("points", [])]
        step = max(1, -(-len(thresholds) // BENCHMARK_THRESHOLDS))
        saved = model.config.entropy_threshold
        picked = sorted({*thresholds[::step], *([] if saved is None else [saved])})
        points: dict[str, OperatingPoint] = {}  # by label: thresholds that print alike are one point
        for value in picked:
            label = f"S={value:.4g}"
            if value == saved or label not in points:
                points[label] = OperatingPoint(label, {"entropy_threshold": value}, chosen=value == saved)
        return list(points.values()) or [OperatingPoint("never exit", {"entropy_threshold": None}, chosen=True)]

    def set_operating_point(self, model, point: OperatingPoint) -> None:
        model.config.entropy_threshold = point.values["entropy_threshold"]

    def exit_pooling(self, config) -> str:
        return config.off_ramp_pooling
