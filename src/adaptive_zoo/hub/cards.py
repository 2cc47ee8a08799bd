"""Model cards: a family's template from `adaptive_zoo/model_cards/` rendered with measured figures, and
`model-index` metadata (what the Hub shows as evaluation results)."""

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


def classification_eval_results(
    results: dict[str, Any], *, dataset_name: str, split: str
) -> list[EvalResult]:
    common = dict(task_type="text-classification", dataset_type=dataset_name, dataset_name=dataset_name,
                  dataset_split=split)
    return [
        EvalResult(metric_type="accuracy", metric_value=round(results["accuracy"], 4), **common),
        EvalResult(metric_type="accuracy", metric_name="full-depth accuracy (same weights)",
                   metric_value=round(results["baseline_accuracy"], 4), **common),
        EvalResult(metric_type="speedup", metric_name="executed FLOPs speed-up vs vanilla",
                   metric_value=round(results["flops_speedup"], 3), **common),
        EvalResult(metric_type="speedup", metric_name=f"throughput speed-up vs vanilla (batch {results['batch_size']})",
                   metric_value=round(results["wallclock_speedup"], 3), **common),
        EvalResult(metric_type="speedup", metric_name="latency speed-up vs vanilla (batch 1)",
                   metric_value=round(results["latency_speedup"], 3), **common),
    ]


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


def summarization_eval_results(
    results: dict[str, Any], *, dataset_name: str, split: str
) -> list[EvalResult]:
    """ROUGE of the generated summaries and the measured speed-ups of a seq2seq model with an adaptive part."""
    common = dict(task_type="summarization", dataset_type=dataset_name, dataset_name=dataset_name,
                  dataset_split=split)
    entries = [EvalResult(metric_type=name, metric_value=round(results["rouge"][name], 2), **common)
               for name in ("rouge1", "rouge2", "rougeL")]
    entries += [
        EvalResult(metric_type="rouge1", metric_name="full-depth ROUGE-1 (same weights)",
                   metric_value=round(results["baseline_rouge"]["rouge1"], 2), **common),
        EvalResult(metric_type="speedup", metric_name="encoder executed FLOPs speed-up vs vanilla",
                   metric_value=round(results["encoder_flops_speedup"], 3), **common),
        EvalResult(metric_type="speedup", metric_name="generate executed FLOPs speed-up vs vanilla",
                   metric_value=round(results["generate_flops_speedup"], 3), **common),
    ]
    if "generate_wallclock_speedup" in results:
        entries.append(EvalResult(metric_type="speedup", metric_name="generate wall-clock speed-up vs vanilla",
                                  metric_value=round(results["generate_wallclock_speedup"], 3), **common))
    return entries


def dat_eval_results(results: dict[str, Any], *, dataset_name: str, split: str) -> list[EvalResult]:
    """A Depth-Adaptive Transformer's `model-index`: ROUGE and BLEU of its generations, the same weights at full
    depth, the average exit, and the measured `generate` speed-ups against full depth."""
    common = dict(task_type="summarization", dataset_type=dataset_name, dataset_name=dataset_name,
                  dataset_split=split)
    entries = [EvalResult(metric_type=name, metric_value=round(results["rouge"][name], 2), **common)
               for name in ("rouge1", "rouge2", "rougeL")]
    entries += [
        EvalResult(metric_type="bleu", metric_name="BLEU (sacrebleu)", metric_value=round(results["bleu"], 2),
                   **common),
        EvalResult(metric_type="rouge1", metric_name="full-depth ROUGE-1 (same weights)",
                   metric_value=round(results["baseline_rouge"]["rouge1"], 2), **common),
        EvalResult(metric_type="average_exit", metric_name="average exit / decoder depth",
                   metric_value=round(results["average_exit_fraction"], 4), **common),
        EvalResult(metric_type="speedup", metric_name="generate executed FLOPs speed-up vs full depth",
                   metric_value=round(results["generate_flops_speedup"], 3), **common),
    ]
    if "generate_wallclock_speedup" in results:
        entries.append(EvalResult(metric_type="speedup", metric_name="generate wall-clock speed-up vs full depth",
                                  metric_value=round(results["generate_wallclock_speedup"], 3), **common))
    return entries
