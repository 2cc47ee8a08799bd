"""Model cards: a family's template from `adaptive_zoo/model_cards/` rendered with measured figures and the
`model-index` metadata (what the Hub shows as evaluation results) a report gives (`EvaluationReport.eval_results`)."""

from __future__ import annotations

import os
import platform
from importlib.resources import files
from pathlib import Path
from typing import Any

import torch
from huggingface_hub import EvalResult, ModelCard, ModelCardData


def template_path(family: str) -> str:
    path = files("adaptive_zoo") / "model_cards" / f"{family}.md"
    if not path.is_file():
        raise FileNotFoundError(f"No model card template for {family!r} at {path}.")
    return str(path)


def machine() -> str:
    """The platform, the CPU model, the vector instructions torch's CPU kernels use and the number of CPUs the
    process may use, e.g. "Linux x86_64, AMD EPYC (family 25 model 1), AVX2, 2 CPUs".

    The instruction set is recorded because int8's speed-up hangs on it: dynamic quantization's kernels gain far
    more from AVX-512 (VNNI) than from AVX2, so two hosts that both report "AMD EPYC" can time int8 very
    differently."""
    cpu = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        fields: dict[str, str] = {}
        for line in cpuinfo.read_text().splitlines():
            key, _, value = line.partition(":")
            fields.setdefault(key.strip(), value.strip())
            if not line.strip():  # the first processor's block is enough
                break
        if "model name" in fields:
            cpu = fields["model name"]
            if "cpu family" in fields and "model" in fields:
                cpu += f" (family {fields['cpu family']} model {fields['model']})"
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return f"{platform.system()} {platform.machine()}, {cpu}, {torch.backends.cpu.get_cpu_capability()}, {usable} CPUs"


def hardware_description() -> str:
    """The device a card's figures were measured on: the GPU's name, or the CPU (`machine`) and torch's threads."""
    if torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    return f"CPU: {machine()}, {torch.get_num_threads()} threads"


def runtime_description(dtype: torch.dtype = torch.float32) -> str:
    """The runtime a card's figures come from, e.g. "PyTorch 2.13.0+cpu eager, float32"."""
    return f"PyTorch {torch.__version__} eager, {str(dtype).removeprefix('torch.')}"


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
    template_values.setdefault("runtime", runtime_description())
    template_values.setdefault("pareto_image", None)
    return ModelCard.from_template(
        card_data, template_path=template_path(family), model_name=model_name, dataset_name=dataset_name,
        **template_values,
    )
