"""Model cards: a family's template from `adaptive_zoo/model_cards/` rendered with measured figures and the
`model-index` metadata (what the Hub shows as evaluation results) a report gives (`EvaluationReport.eval_results`)."""

from __future__ import annotations

import platform
from importlib.resources import files
from typing import Any

import torch
from huggingface_hub import EvalResult, ModelCard, ModelCardData


def template_path(family: str) -> str:
    path = files("adaptive_zoo") / "model_cards" / f"{family}.md"
    if not path.is_file():
        raise FileNotFoundError(f"No model card template for {family!r} at {path}.")
    return str(path)


def hardware_description() -> str:
    if torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    return f"CPU ({platform.machine()}, {torch.get_num_threads()} threads)"


def render_model_card(
    family: str,
    *,
    model_name: str,
    base_model: str | None,
    dataset_name: str,
    eval_results: list[EvalResult],
    tags: list[str],
    **template_values: Any,
) -> ModelCard:
    """Render `model_cards/<family>.md`; every card is tagged `custom_code` and `adaptive-zoo`."""
    card_data = ModelCardData(
        language="en",
        license="apache-2.0",
        library_name="transformers",
        pipeline_tag=template_values.pop("pipeline_tag", "text-classification"),
        tags=sorted({"custom_code", "adaptive-zoo", *tags}),
        base_model=base_model,
        datasets=[dataset_name],
        model_name=model_name,
        eval_results=eval_results,
    )
    template_values.setdefault("hardware", hardware_description())
    return ModelCard.from_template(
        card_data, template_path=template_path(family), model_name=model_name, dataset_name=dataset_name,
        **template_values,
    )
