"""`adaptive-zoo calibrate`: choose a saved model's operating point anew on validation data and write it back.

An operating point (DeeBERT's entropy threshold S, AdapLeR's scale of the learned η, the Depth-Adaptive
Transformer's confidence thresholds T_n) is tuned for one set of weights. After the weights change (a stock
`Trainer` fine-tune, say) the model flags it stale (`config.operating_point_stale`) and warns; this module re-runs
the method's own selection on the given data, writes the chosen point and the flag back into the folder
atomically, and records what it measured in `adaptive_zoo_results.json` and the model card.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import AutoConfig, AutoModelForSeq2SeqLM, AutoModelForSequenceClassification, AutoTokenizer

from .data import check_label_count, load_task_data, select_first
from .evaluation.classification import full_depth
from .evaluation.operating_points import (
    best_within_budget,
    choose_confidence_thresholds,
    encoded_batches,
    measure_eta_scales,
    measure_on_batches,
    scale_eta_,
    sweep_entropy_thresholds,
    vanilla_flops_of,
)
from .hub.folder import atomic_output_dir, check_hub_folder
from .recipes import RESULTS_FILE
from .training.dat import DATTrainingArguments

DEFAULT_ETA_SCALES = (1.0, 0.95, 0.9, 0.85, 0.8, 0.75, 0.7, 0.6, 0.5)


@dataclass
class CalibrationSettings:
    """What `adaptive-zoo calibrate` takes besides the folder."""

    dataset: str
    split: str = "validation"
    accuracy_budget: float = 1.0
    """Classifiers: accuracy points the adaptive model may lose against the same weights at full depth."""
    compute_budget: float | None = None
    """Depth-Adaptive Transformer: the largest average exit, as a fraction of the decoder's depth (default 0.5)."""
    threshold_trials: int | None = None
    """Depth-Adaptive Transformer: random threshold settings to try (default 100)."""
    eta_scales: tuple[float, ...] = DEFAULT_ETA_SCALES
    """AdapLeR: factors in (0, 1] of the current η to choose from."""
    max_eval_samples: int | None = None
    batch_size: int = 32
    max_length: int | None = None
    max_new_tokens: int = 32
    seed: int = 42
    text_column: str | None = None
    label_column: str | None = None


def _classifier_split(model, settings: CalibrationSettings):
    task = load_task_data(settings.dataset, seed=settings.seed, text_column=settings.text_column,
                          label_column=settings.label_column)
    if task.task != "classification":
        raise ValueError(f"{settings.dataset!r} is a {task.task} dataset; this model is a classifier.")
    check_label_count(task.dataset, model.config.num_labels)
    return select_first(task.dataset[settings.split], settings.max_eval_samples)


def calibrate_deebert(model, tokenizer, settings: CalibrationSettings, max_length: int) -> dict[str, Any]:
    split = _classifier_split(model, settings)
    sweep = sweep_entropy_thresholds(model, tokenizer, split["text"], split["label"],
                                     accuracy_budget=settings.accuracy_budget, batch_size=settings.batch_size,
                                     max_length=max_length)
    model.config.entropy_threshold = sweep.chosen_threshold
    chosen = sweep.points[sweep.chosen_index] if sweep.chosen_index is not None else None
    return {"operating_point": {"entropy_threshold": sweep.chosen_threshold},
            "full_depth_accuracy": sweep.full_depth_accuracy, "chosen": chosen, "sweep": sweep.to_dict()}


def calibrate_adapler(model, tokenizer, settings: CalibrationSettings, max_length: int) -> dict[str, Any]:
    split = _classifier_split(model, settings)
    _, batches = encoded_batches(tokenizer, split["text"], max_length, settings.batch_size)
    gold = torch.as_tensor(split["label"])
    vanilla_flops = vanilla_flops_of(model, batches)
    with full_depth(model):  # the same batches at full length: the accuracy the budget is counted from
        reference = measure_on_batches(model, batches, gold, vanilla_flops)[1]["accuracy"]
    measured = measure_eta_scales(model, batches, gold, vanilla_flops, settings.eta_scales)
    best = best_within_budget(measured, reference, settings.accuracy_budget)
    scale_eta_(model, measured[best]["eta_scale"])
    model.sync_config_from_parameters()
    return {"operating_point": {"eta_scale": measured[best]["eta_scale"], "eta": model.config.eta},
            "full_depth_accuracy": reference, "chosen": measured[best], "points": measured}


def calibrate_dat(model, tokenizer, settings: CalibrationSettings, max_length: int) -> dict[str, Any]:
    if model.config.exit_prediction != "confidence":
        raise ValueError(
            f"This Depth-Adaptive Transformer's exits come from its learned {model.config.exit_prediction!r} "
            "predictor, which trains with the weights: it has no operating point to calibrate. Only "
            "`exit_prediction='confidence'` models have thresholds (T_n) to tune."
        )
    task = load_task_data(settings.dataset, seed=settings.seed, text_column=settings.text_column,
                          label_column=settings.label_column)
    if task.task != "seq2seq":
        raise ValueError(f"{settings.dataset!r} is a {task.task} dataset; this model is a seq2seq model.")
    split = select_first(task.dataset[settings.split], settings.max_eval_samples)
    # The training settings' defaults and checks for the budget and the number of trials.
    defaults = DATTrainingArguments(output_dir="", exit_prediction="confidence", compute_budget=settings.compute_budget,
                                    threshold_trials=settings.threshold_trials)
    search = choose_confidence_thresholds(
        model, tokenizer, split["text"], split["summary"], budget_fraction=defaults.resolved_compute_budget,
        num_trials=defaults.resolved_threshold_trials, seed=settings.seed, batch_size=settings.batch_size,
        max_source_length=max_length, max_new_tokens=settings.max_new_tokens, num_beams=1,
    )
    model.config.confidence_thresholds = search.best_thresholds
    return {"operating_point": {"confidence_thresholds": search.best_thresholds},
            "full_depth_score": search.trials[0].score,
            "chosen": {"score": search.best.score, "average_exit": search.best.average_exit},
            "search": search.to_dict()}


CALIBRATORS = {
    "deebert": calibrate_deebert,
    "adapler": calibrate_adapler,
    "depth_adaptive_transformer": calibrate_dat,
}
NOTHING_TO_CALIBRATE = {
    "hashee_bert": "HashEE's exits are fixed by its hash table (token id -> layer), not by a tuned threshold",
    "hashee_bart": "HashEE's exits are fixed by its hash table (token id -> layer), not by a tuned threshold",
}


def calibrate_folder(folder: str, settings: CalibrationSettings, output_dir: str | None = None) -> dict[str, Any]:
    """Re-tune the operating point of the model in `folder` (a local folder or Hub repo id) on
    `settings.dataset`, and write the model back to `output_dir` (default: `folder` itself, replaced atomically).
    Returns what was measured."""
    source = Path(folder)
    if output_dir is None:
        if not source.is_dir():
            raise ValueError(f"{folder!r} is not a local folder: pass --output-dir to write the calibrated copy.")
        output_dir = folder
    config = AutoConfig.from_pretrained(folder)
    calibrator = CALIBRATORS.get(config.model_type)
    if calibrator is None:
        reason = NOTHING_TO_CALIBRATE.get(config.model_type, "it is not an adaptive-zoo model with an operating point")
        raise ValueError(f"Nothing to calibrate in {folder}: {reason}.")
    auto_class = AutoModelForSeq2SeqLM if config.is_encoder_decoder else AutoModelForSequenceClassification
    model = auto_class.from_pretrained(folder).eval()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    max_length = settings.max_length or min(tokenizer.model_max_length, model.config.max_position_embeddings)
    was_stale = bool(model.config.operating_point_stale)
    model.config.operating_point_stale = False  # the points measured below are chosen for these weights

    report = calibrator(model, tokenizer, settings, max_length)
    report = {"dataset": settings.dataset, "split": settings.split, "was_stale": was_stale,
              "accuracy_budget": settings.accuracy_budget, **report}

    with atomic_output_dir(output_dir) as tmp:
        if source.is_dir():
            shutil.copytree(source, tmp, dirs_exist_ok=True)
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        results_path = tmp / RESULTS_FILE
        results = json.loads(results_path.read_text()) if results_path.is_file() else {}
        results.setdefault("calibrations", []).append(report)
        results_path.write_text(json.dumps(results, indent=2, default=str))
        _note_in_card(tmp / "README.md", report)
        check_hub_folder(tmp, require_tokenizer=True)
    return report


def _note_in_card(card_path: Path, report: dict[str, Any]) -> None:
    """Append the new operating point to the model card, so the card does not describe a replaced one."""
    if not card_path.is_file():
        return
    point = ", ".join(f"`{name}` = {value}" for name, value in report["operating_point"].items())
    card_path.write_text(
        card_path.read_text().rstrip() + "\n\n## Calibration\n\n"
        f"The operating point was re-tuned with `adaptive-zoo calibrate` on `{report['dataset']}` "
        f"({report['split']} split): {point}. It replaces the one the figures above were measured at; "
        "`adaptive_zoo_results.json` (`calibrations`) has every point measured.\n"
    )
