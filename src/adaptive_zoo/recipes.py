"""The recipe pipeline behind `adaptive-zoo train <method>`, the same for every method:

    seed -> data -> check -> tokenizer -> build -> train -> (main process only) choose the operating point on
    validation -> measure on test -> write the Hub folder atomically -> fresh-process load check (inside the
    folder before it is switched in)

Each step that differs between methods is a hook of the method (`adaptive_zoo.methods.base.Method`); this
module holds only what they share.
"""

from __future__ import annotations

import json
import logging
import os
import shlex
import shutil
import sys
from pathlib import Path
from typing import Any

from transformers import AutoConfig, PreTrainedModel, set_seed
from transformers.models.auto.modeling_auto import (
    MODEL_FOR_SEQ_TO_SEQ_CAUSAL_LM_MAPPING_NAMES,
    MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES,
)

from .backbones import KNOWN_BASE_MODELS, resolve_base_model
from .data import KNOWN_DATASETS, TaskData, load_task_data, select_first
from .evaluation.benchmark_results import pareto_plot_path
from .evaluation.reports import EvaluationReport
from .hub.cards import render_model_card, runtime_description
from .hub.folder import atomic_output_dir, check_hub_folder
from .hub.verify import verify_fresh_process_load
from .methods import METHODS, Method, RecipeRun
from .progress import announce
from .settings import RecipeSettings

logger = logging.getLogger(__name__)

RESULTS_FILE = "adaptive_zoo_results.json"
LOAD_CHECK_TEXTS = 2
"""Test texts the fresh-process load check compares outputs on."""
TASK_KINDS = {"classification": "a classification", "seq2seq": "a summarization"}
BENCHMARKS_DIR = Path(__file__).resolve().parents[2] / "benchmarks"
"""The repository's benchmark plots (`benchmarks/pareto_<dataset>.png`), where the package runs from a checkout."""


def copy_pareto_plot(dataset: str, folder: Path, plots_dir: Path = BENCHMARKS_DIR) -> str | None:
    """Copy the zoo's Pareto plot of a bundled dataset into a Hub folder, for its card to show; the file name, or None
    where the dataset is not bundled or no plot exists (an installed package carries none)."""
    source = pareto_plot_path(dataset, plots_dir)
    if dataset not in KNOWN_DATASETS or not source.is_file():
        return None
    shutil.copyfile(source, folder / source.name)
    return source.name


def hub_base_model(base_model: str) -> str | None:
    """The Hub id a card's `base_model` metadata should name (none for a local folder)."""
    if base_model == "minilm":
        return "sentence-transformers/all-MiniLM-L6-v2"
    return None if os.path.exists(base_model) else base_model


def base_checkpoint(base_model: str, base_path: str) -> str:
    """The exact checkpoint a run started from: a local folder's absolute path, or the Hub id."""
    return str(Path(base_path).resolve()) if os.path.isdir(base_path) else base_path


def base_model_description(base_model: str, base_path: str) -> str:
    """What a card says about the base checkpoint: the short name's description with the folder it resolved to, a
    local folder's absolute path, or the Hub id."""
    exact = base_checkpoint(base_model, base_path)
    if base_model in KNOWN_BASE_MODELS:
        return f"{KNOWN_BASE_MODELS[base_model]} Loaded from `{exact}`."
    return f"the local folder `{exact}`" if os.path.isdir(base_path) else f"`{exact}` (Hub)"


def command_line(fallback: str) -> str:
    """The command that produced this run, for the card's "reproduce" section."""
    if sys.argv[1:] and Path(sys.argv[0]).name in ("adaptive-zoo", "cli.py", "__main__.py"):
        return "adaptive-zoo " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    return fallback


def load_run_data(method: Method, settings: RecipeSettings) -> tuple[str, TaskData]:
    """The dataset's seeded splits, training cut to `max_train_samples`, validation/test to `max_eval_samples`;
    a dataset of a kind the method does not train on is refused before anything else is loaded."""
    dataset = settings.dataset or method.default_dataset
    task = load_task_data(dataset, seed=settings.seed, text_column=settings.text_column,
                          label_column=settings.label_column)
    if task.task not in method.tasks:
        wanted = " or ".join(TASK_KINDS[kind] for kind in method.tasks)
        raise ValueError(f"Dataset {dataset!r} is a {task.task} dataset; {method.title} needs {wanted} dataset.")
    task.dataset["train"] = select_first(task.dataset["train"], settings.max_train_samples)
    for split in ("validation", "test"):
        task.dataset[split] = select_first(task.dataset[split], settings.max_eval_samples)
    announce(f"dataset {dataset}: " + ", ".join(f"{split} {len(data):,}" for split, data in task.dataset.items())
             + f" {'texts' if task.task == 'classification' else 'text/summary pairs'}")
    return dataset, task


def write_hub_folder(method: Method, run: RecipeRun, model: PreTrainedModel, report: EvaluationReport) -> None:
    """Write the trained model's Hub folder atomically: weights, code, tokenizer, the results record, the model card
    rendered from `model_cards/<method>.md`, the method's own files, and (unless turned off) the check that the
    folder loads in a fresh process; checked complete before it is switched in."""
    settings, tokenizer = run.settings, run.tokenizer
    model_name = f"{method.name}-{Path(settings.base_model).name}-{Path(run.dataset).stem}"
    announce(f"writing the Hub folder {run.output_dir} (weights, code, tokenizer, model card, results)")
    if run.task.task == "classification" and getattr(model.config, "special_token_ids", None) is None:
        # Saved classifiers refuse input made of special tokens only (an empty or emoji-only text) in their forward.
        model.config.special_token_ids = sorted(tokenizer.all_special_ids)
    with atomic_output_dir(run.output_dir) as folder:
        folder = Path(folder)
        model.save_pretrained(folder)
        tokenizer.save_pretrained(folder)
        method.add_files(run, model, folder)
        if settings.verify_load:
            texts = list(run.task.dataset["test"]["text"][:LOAD_CHECK_TEXTS])
            auto_class = method.auto_class_name(model.config)
            run.record["fresh_process_load"] = verify_fresh_process_load(model, tokenizer, folder, texts,
                                                                         auto_class=auto_class)
        record = {"method": method.name, "dataset": run.dataset, "base_model": settings.base_model,
                  "base_checkpoint": base_checkpoint(settings.base_model, run.base_path),
                  "base_is_fine_tuned_classifier": run.base_is_classifier, "split": "test",
                  "test": report.to_dict(), **run.record}
        (folder / RESULTS_FILE).write_text(json.dumps(record, indent=2, default=str))
        pareto_image = copy_pareto_plot(run.dataset, folder)
        render_card(method, run, model, report, model_name, pareto_image=pareto_image).save(folder / "README.md")
        check_hub_folder(folder, require_tokenizer=True)  # nothing incomplete is switched in


def vanilla_class_name(config) -> str:
    """The transformers class the adaptive model equals at full depth, e.g. `RobertaForSequenceClassification`."""
    mapping = (MODEL_FOR_SEQ_TO_SEQ_CAUSAL_LM_MAPPING_NAMES if config.is_encoder_decoder
               else MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES)
    return mapping.get(config.vanilla_model_type, config.vanilla_model_type)


def render_card(method: Method, run: RecipeRun, model: PreTrainedModel, report: EvaluationReport, model_name: str,
                pareto_image: str | None = None):
    settings = run.settings
    return render_model_card(
        method.name,
        model_name=model_name,
        base_model=hub_base_model(settings.base_model),
        dataset_name=run.dataset,
        eval_results=report.eval_results(dataset_name=run.dataset, split="test"),
        tags=[method.name, run.task_tag, *run.tags],
        pipeline_tag=run.task_tag,
        base_model_description=base_model_description(settings.base_model, run.base_path) + (
            " A classifier already fine-tuned on these labels: its head and label names are kept."
            if run.base_is_classifier else ""),
        dataset_description=f"`{run.dataset}` (adaptive-zoo bundled/local data), splits "
        + ", ".join(f"{k} {len(v)}" for k, v in run.task.dataset.items()),
        label_names=run.task.label_names,
        num_layers=model.config.num_hidden_layers,
        eval_split="test",
        results=report.to_dict(),  # the template's `is defined` tests see only what was measured
        repo_id="OWNER/" + model_name,
        train_command=command_line(f"adaptive-zoo train {method.name} --dataset {run.dataset} --output-dir "
                                   "OUTPUT_DIR"),
        training=settings.to_dict(),
        fresh_load=run.record.get("fresh_process_load", {}),
        vanilla_class=vanilla_class_name(model.config),
        runtime=runtime_description(model.dtype),
        pareto_image=pareto_image,
        backbone_name={"bert": "BERT", "roberta": "RoBERTa", "bart": "BART"}.get(model.config.vanilla_model_type,
                                                                                 model.config.vanilla_model_type),
        **run.card,
    )


def run_recipe(method: Method | str, settings: RecipeSettings | None = None, **given: Any) -> EvaluationReport | None:
    """Train `method` end to end and write its Hub folder. `settings` (or the values `given`, for the method's
    settings class) say how. Returns the test report; None on the non-main processes of a distributed run, which
    only take part in training."""
    method = METHODS[method] if isinstance(method, str) else method
    settings = settings if settings is not None else method.make_settings(**given)
    set_seed(settings.seed)  # new heads are initialised before the Trainer seeds anything
    dataset, task = load_run_data(method, settings)
    base_path = resolve_base_model(settings.base_model)
    run = RecipeRun(settings=settings, dataset=dataset, task=task, base_path=base_path,
                    base_config=AutoConfig.from_pretrained(base_path))
    method.check(run)
    run.tokenizer = method.load_tokenizer(run)
    run.tokenizer.model_max_length = settings.max_length  # what pipelines truncate to, saved with the tokenizer
    model = method.train(run, method.build(run))
    if model is None:
        return None
    model = method.choose_operating_point(run, model.eval())
    report = method.measure(run, model)
    logger.info("Test results: %s", report)
    write_hub_folder(method, run, model, report)
    return report
