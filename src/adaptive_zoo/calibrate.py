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

from transformers import AutoConfig, AutoModelForSeq2SeqLM, AutoModelForSequenceClassification, AutoTokenizer

from .hub.folder import atomic_output_dir, check_hub_folder
from .methods import method_for_model_type
from .recipes import RESULTS_FILE

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
    try:
        method = method_for_model_type(config.model_type)
    except ValueError:
        raise ValueError(f"Nothing to calibrate in {folder}: it is not an adaptive-zoo model with an operating "
                         "point.") from None
    if method.nothing_to_calibrate is not None:
        raise ValueError(f"Nothing to calibrate in {folder}: {method.nothing_to_calibrate}.")
    auto_class = AutoModelForSeq2SeqLM if config.is_encoder_decoder else AutoModelForSequenceClassification
    model = auto_class.from_pretrained(folder).eval()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    max_length = settings.max_length or min(tokenizer.model_max_length, model.config.max_position_embeddings)
    was_stale = bool(model.config.operating_point_stale)
    model.config.operating_point_stale = False  # the points measured below are chosen for these weights

    report = method.calibrate(model, tokenizer, settings, max_length)
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
