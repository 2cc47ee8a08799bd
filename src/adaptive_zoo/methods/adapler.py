"""AdapLeR (Modarressi et al., 2022): phase 1 fine-tunes (a --base-model classifier already fine-tuned on the dataset's
labels stands for it), phase 2 extracts saliencies from the 3 best checkpoints, phase 3 trains the contribution
predictors with soft token removal; the operating point is chosen on validation within --accuracy-budget."""

from __future__ import annotations

from typing import Any

import torch
from transformers import AutoModelForSequenceClassification

from ..evaluation.classification import (
    accuracy_of,
    encode_examples,
    full_depth,
    predict_with_flops,
    vanilla_counterpart,
)
from ..evaluation.measure import pad_batch
from ..evaluation.operating_points import best_within_budget, choose_eta_scale, measure_eta_scales, scale_eta_
from ..models.adapler import (
    AdapLeRBertForSequenceClassification,
    AdapLeRConfig,
    AdapLeRModel,
    AdapLeRRobertaConfig,
    AdapLeRRobertaForSequenceClassification,
    AdapLeRRobertaModel,
)
from ..training.adapler import AdapLeRTrainingArguments, finished_run_state, train_adapler
from ..training.common import trainer_work_dir
from .base import OperatingPoint, RecipeRun, register_method
from .tasks import ClassifierMethod, classifier_families


@register_method
class AdapLeR(ClassifierMethod):
    name = "adapler"
    families = classifier_families((AdapLeRConfig, AdapLeRBertForSequenceClassification, AdapLeRModel),
                                   (AdapLeRRobertaConfig, AdapLeRRobertaForSequenceClassification, AdapLeRRobertaModel))
    settings_class = AdapLeRTrainingArguments
    phase1_weight_decay = 0.1  # phase 1 of `train_adapler` (warm-up 6% as the default)
    keeps_checkpoint_weights = True  # --reuse-phases-from reads the phase-1 checkpoints and the saliencies

    def make_settings(self, **given: Any) -> AdapLeRTrainingArguments:
        return AdapLeRTrainingArguments.from_preset(**given)

    def check(self, run: RecipeRun) -> None:
        if run.settings.reuse_phases_from is not None:  # refused before anything else, not after phase 3's setup
            finished_run_state(trainer_work_dir(run.settings.reuse_phases_from) / "phase1")
        super().check(run)
        if run.base_is_classifier and run.settings.reuse_phases_from is not None:
            raise ValueError(f"--base-model {run.settings.base_model!r} is a fine-tuned classifier, which stands for "
                             "phase 1; --reuse-phases-from reads phases 1-2 of an earlier run: give one or the other.")

    def build(self, run: RecipeRun) -> None:
        return None  # the adaptive model is built after phase 1, from its best checkpoint (`train_adapler`)

    def train(self, run: RecipeRun, model: None):
        phases = train_adapler(run.base_path, run.task.label_names, run.tokenizer, run.task.dataset, run.settings,
                               fine_tuned=run.base_is_classifier)
        run.artifacts["phases"] = phases
        run.record.update(preset=run.settings.preset, **phases.record())
        return phases.phase3.model if phases.phase3.is_world_process_zero() else None

    def choose_operating_point(self, run: RecipeRun, model):
        settings, phases = run.settings, run.artifacts["phases"]
        chosen, eta_scale, selection = choose_eta_scale(
            phases.phase3_checkpoints, run.tokenizer, run.task.dataset["validation"],
            reference_accuracy=phases.phase1_accuracy, accuracy_budget=settings.accuracy_budget,
            max_length=settings.max_length, eta_scales=settings.eta_scales, batch_size=settings.eval_batch_size,
        )
        model = AutoModelForSequenceClassification.from_pretrained(chosen).eval()
        learned_eta = [float(v) for v in model.eta.detach().tolist()]
        scale_eta_(model, eta_scale)
        model.sync_config_from_parameters()
        run.record.update(phase3_selection=selection, learned_eta=learned_eta, eta_scale=eta_scale,
                          training={**settings.to_dict(), "world_size": phases.phase3.args.world_size})
        run.card.update(eta_text=", ".join(f"{value:.3f}" for value in model.config.eta),
                        theta_text=", ".join(f"{value:.3f}" for value in model.config.theta),
                        beta=model.config.beta, accuracy_budget=settings.accuracy_budget, eta_scale=eta_scale)
        run.tags.append("token-pruning")
        return model

    def measure(self, run: RecipeRun, model):
        report = super().measure(run, model)
        # The paper's comparison: the adaptive model against the fine-tuned model it started from (phase 1's best).
        settings, test = run.settings, run.task.dataset["test"]
        finetuned_dir = run.artifacts["phases"].saliency_checkpoints[0]
        finetuned = AutoModelForSequenceClassification.from_pretrained(finetuned_dir)
        report.finetuned_accuracy = accuracy_of(finetuned, run.tokenizer, test["text"], test["label"],
                                                batch_size=settings.eval_batch_size, max_length=settings.max_length)
        report.finetuned_checkpoint = (f"the fine-tuned base model {run.settings.base_model}"
                                       if run.artifacts["phases"].phase1_from_base else finetuned_dir.name)
        run.card["kept_text"] = " → ".join(f"{value:.1f}" for value in report.mean_kept_tokens_per_layer)
        return report

    def calibrate(self, model, tokenizer, settings, max_length: int) -> dict[str, Any]:
        split = self.calibration_split(model, settings)
        features = encode_examples(tokenizer, split["text"], max_length)
        batches = [pad_batch(features[i : i + settings.batch_size], tokenizer.pad_token_id or 0)
                   for i in range(0, len(features), settings.batch_size)]
        gold = torch.as_tensor(split["label"])
        with full_depth(model):  # the same batches at full length: the accuracy the budget is counted from
            reference = float((predict_with_flops(model, batches).labels == gold).float().mean())
        vanilla_flops = predict_with_flops(vanilla_counterpart(model), batches).flops
        measured = measure_eta_scales(model, batches, gold, vanilla_flops, settings.eta_scales)
        best = best_within_budget(measured, reference, settings.accuracy_budget)
        scale_eta_(model, measured[best]["eta_scale"])
        model.sync_config_from_parameters()
        return {"operating_point": {"eta_scale": measured[best]["eta_scale"], "eta": model.config.eta},
                "full_depth_accuracy": reference, "chosen": measured[best], "points": measured}

    def operating_points(self, model, record: dict[str, Any]) -> list[OperatingPoint]:
        """The learned η scaled by each of the run's η scales (the validation choice among them is the saved one)."""
        learned = record.get("learned_eta")
        if learned is None:
            return super().operating_points(model, record)
        chosen = record.get("eta_scale")
        scales = sorted({*record.get("training", {}).get("eta_scales", ()), *([] if chosen is None else [chosen])},
                        reverse=True)
        return [OperatingPoint(f"eta x{scale:g}", {"eta": [value * scale for value in learned], "eta_scale": scale},
                               chosen=scale == chosen) for scale in scales]

    def set_operating_point(self, model, point: OperatingPoint) -> None:
        if "eta" in point.values:
            with torch.no_grad():
                model.eta.copy_(torch.as_tensor(point.values["eta"], dtype=model.eta.dtype))
