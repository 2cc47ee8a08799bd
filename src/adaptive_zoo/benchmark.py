"""`adaptive-zoo benchmark FOLDER --dataset D`: a saved adaptive model against the static shortcuts a user would
deploy instead, measured in one run on one split.

    load the folder -> its data (the split it was trained and measured on) -> the model's training budget (from its
    adaptive_zoo_results.json "training" record) -> the candidates: the full vanilla model (the reference: the
    adaptive weights in the plain class where they are a plain fine-tune, as DeeBERT's are, else the whole backbone
    fine-tuned with the same budget), the
    adaptive model at each of its operating points (`Method.operating_points`), the static alternatives
    fine-tuned with that budget (cached on disk), int8 dynamic quantization of the vanilla and of the adaptive
    model, and where the reference is another fine-tune the adaptive weights with the adaptivity off (plain and
    int8: the training held fixed) -> quality, executed FLOPs, throughput and latency of every candidate
    (`evaluation.benchmark.measure_candidates`) -> fixed-schema rows appended to the results file.

What differs between a classifier and a seq2seq model is one object per task (`ClassifierBenchmark`,
`GenerationBenchmark`): how the folder loads, how its vanilla reference is built, which static alternatives apply
and how they are built, and how a pass is scored (accuracy; greedy generation scored by ROUGE-1). For a seq2seq
model the depth alternatives keep the lowest k layers of the stack the method adapts (`Method.depth_baseline_side`:
the decoder for the Depth-Adaptive Transformer, the encoder for HashEE-BART), starting from the BART its recipe
starts from (`Method.starting_bart`); shorter inputs are not measured for seq2seq (each would be another full-size
seq2seq fine-tune).

Fine-tuning lives in `training.baselines`, measurement in `evaluation.benchmark`, the results file, the targets,
the summary table and the Pareto plots in `evaluation.benchmark_results`; this module only puts them together.
"""

from __future__ import annotations

import copy
import dataclasses
import datetime
import functools
import json
import os
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch
from transformers import (
    AutoConfig,
    AutoModelForSeq2SeqLM,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    PreTrainedModel,
)

from .backbones import resolve_base_model
from .data import TaskData, check_label_count, load_task_data, select_first
from .evaluation.benchmark import (
    BenchmarkPoint,
    Candidate,
    ClassificationScorer,
    GenerationScorer,
    Scorer,
    measure_candidates,
    quantize_int8,
)
from .evaluation.benchmark_results import SCHEMA_VERSION, append_rows
from .evaluation.classification import vanilla_counterpart
from .evaluation.seq2seq import seq2seq_vanilla
from .hub.cards import machine
from .hub.folder import check_hub_folder
from .methods import Method, method_for_model_type
from .methods.base import RecipeRun
from .methods.tasks import generation_budget
from .progress import announce
from .recipes import RESULTS_FILE
from .settings import Settings, one_of, positive_int, setting, text
from .training.baselines import (
    FinetuningBudget,
    GenerationBaseline,
    StaticBaseline,
    cached_generation_baseline,
    cached_static_baseline,
)

BASELINE_KINDS = ("depth", "length", "int8")
DEFAULT_CACHE_DIR = os.path.join(os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "adaptive-zoo",
                                 "baselines")
VANILLA = "vanilla (full model)"
OWN_WEIGHTS = "own weights, adaptivity off"


@dataclass
class BenchmarkSettings(Settings):
    """What `adaptive-zoo benchmark` takes besides the folder."""

    dataset: str = setting(help="The dataset the model was trained on (bundled name or local file): the static "
                           "alternatives are fine-tuned on its training split.", metavar="NAME_OR_FILE", check=text)
    split: str = setting("test", help="The split measured.", check=one_of("train", "validation", "test"))
    baselines: tuple[str, ...] | None = setting(
        None, help="Static alternatives: depth (the backbone cut to k layers; seq2seq: the lowest k decoder layers "
        "for the Depth-Adaptive Transformer, encoder layers for HashEE-BART, where its tokens exit), length (shorter "
        "inputs; classifiers only), int8 (dynamic quantization of the full and of the adaptive model).", many=True,
        check=one_of(*BASELINE_KINDS), default_text="every kind that applies: depth length int8 (seq2seq: depth int8)")
    depths: tuple[int, ...] | None = setting(None, help="Layer counts k of the depth baselines.", many=True,
                                             check=positive_int, metavar="K", default_text="1 .. L-1")
    lengths: tuple[int, ...] | None = setting(None, help="Max lengths of the length baselines (classifiers).",
                                              many=True, check=positive_int, metavar="T",
                                              default_text="1/4 and 1/2 of the model's max length")
    output: str = setting("benchmarks/results.jsonl", help="The results file the rows are appended to.",
                          metavar="FILE", check=text)
    cache_dir: str = setting(DEFAULT_CACHE_DIR, help="Where fine-tuned static baselines are kept, keyed by dataset, "
                             "base model, budget and shape, for the next benchmark to reuse.", metavar="DIR",
                             check=text, default_text="$XDG_CACHE_HOME or ~/.cache, then adaptive-zoo/baselines")
    batch_size: int = setting(32, help="Batch size of the scored pass (accuracy or generation), FLOPs and "
                              "throughput.", check=positive_int)
    latency_samples: int = setting(64, help="Texts timed one at a time for the latency at batch 1.",
                                   check=positive_int)
    repeats: int = setting(5, help="Interleaved timing repetitions.", check=positive_int)
    max_eval_samples: int | None = setting(None, help="Measure only the first N examples of the split.", metavar="N",
                                           check=positive_int, default_text="all")


@dataclass
class BenchmarkedModel:
    """A saved folder loaded for the benchmark."""

    folder: str
    method: Method
    task: TaskBenchmark
    model: PreTrainedModel
    tokenizer: Any
    record: dict[str, Any]
    budget: FinetuningBudget


class TaskBenchmark:
    """What the benchmark does differently for one kind of model (classifier or seq2seq)."""

    task: ClassVar[str]
    """The dataset kind (`TaskData.task`) it measures."""
    what: ClassVar[str]
    """How refusals name the model, e.g. "a classifier"."""
    auto_class: ClassVar[type]
    baseline_kinds: ClassVar[tuple[str, ...]]
    """The static alternatives that apply, in the order they are built."""

    def budget(self, method: Method, record: dict[str, Any]) -> FinetuningBudget:
        return method.phase1_budget(record)

    def check(self, settings: BenchmarkSettings) -> tuple[str, ...]:
        """The baseline kinds to build; a kind or flag that does not apply is a ValueError."""
        return settings.baselines or self.baseline_kinds

    def check_data(self, loaded: BenchmarkedModel, data: TaskData) -> None:
        """Refuse data the model cannot be measured on (beyond its kind)."""

    def vanilla(self, model: PreTrainedModel) -> PreTrainedModel:
        """The plain transformers model with the same weights."""
        return vanilla_counterpart(model)

    def reference(self, loaded: BenchmarkedModel, data: TaskData, settings: BenchmarkSettings) -> Candidate:
        """The full vanilla model every ratio and the targets are taken against: the adaptive weights themselves in
        the plain transformers class where they are a plain fine-tune (`Method.full_depth_is_a_plain_fine_tune`),
        else the whole backbone fine-tuned with the same budget (the model a user would have instead; the adaptive
        weights with their adaptivity off were trained for it and are no fair reference)."""
        if loaded.method.full_depth_is_a_plain_fine_tune:
            model, weights = self.vanilla(loaded.model), "the adaptive model's"
        else:
            model, weights = self.fine_tuned_full_model(loaded, data, settings), "fine-tuned with the same budget"
        return Candidate(VANILLA, "vanilla", model, loaded.budget.max_length, {"weights": weights}, chosen=True)

    def fine_tuned_full_model(self, loaded: BenchmarkedModel, data: TaskData,
                              settings: BenchmarkSettings) -> PreTrainedModel:
        raise NotImplementedError

    def static_candidates(self, loaded: BenchmarkedModel, data: TaskData, settings: BenchmarkSettings,
                          kinds: tuple[str, ...]) -> list[Candidate]:
        raise NotImplementedError

    def scorer(self, loaded: BenchmarkedModel, split: Any, settings: BenchmarkSettings) -> Scorer:
        raise NotImplementedError


class ClassifierBenchmark(TaskBenchmark):
    """Classifiers: accuracy; depth (pooled as the exits are), length and int8 alternatives."""

    task, what, auto_class = "classification", "a classifier", AutoModelForSequenceClassification
    baseline_kinds = BASELINE_KINDS

    def check_data(self, loaded: BenchmarkedModel, data: TaskData) -> None:
        check_label_count(data.dataset, loaded.model.config.num_labels)

    def static_candidates(self, loaded: BenchmarkedModel, data: TaskData, settings: BenchmarkSettings,
                          kinds: tuple[str, ...]) -> list[Candidate]:
        """Each depth and length alternative fine-tuned with the phase-1 budget (or read from the cache)."""
        base_path = resolve_base_model(loaded.budget.base_model)
        candidates = []
        for baseline in static_baselines(loaded, settings, kinds):
            model = cached_static_baseline(settings.cache_dir, base_path, data.label_names, loaded.tokenizer,
                                           data.dataset, loaded.budget, baseline)
            values = {"num_layers": baseline.num_layers, "max_length": baseline.max_length,
                      "pooling": baseline.pooling}
            candidates.append(Candidate(baseline.name, baseline.kind, model, baseline.max_length, values))
        return candidates

    def fine_tuned_full_model(self, loaded: BenchmarkedModel, data: TaskData,
                              settings: BenchmarkSettings) -> PreTrainedModel:
        """Every layer of the backbone at the full length, the family's stock [CLS] classifier, fine-tuned with the
        phase-1 budget (or read from the cache)."""
        baseline = StaticBaseline("full", loaded.model.config.num_hidden_layers, loaded.budget.max_length)
        return cached_static_baseline(settings.cache_dir, resolve_base_model(loaded.budget.base_model),
                                      data.label_names, loaded.tokenizer, data.dataset, loaded.budget, baseline)

    def scorer(self, loaded: BenchmarkedModel, split: Any, settings: BenchmarkSettings) -> Scorer:
        return ClassificationScorer(loaded.tokenizer, split["text"], split["label"], batch_size=settings.batch_size)


class GenerationBenchmark(TaskBenchmark):
    """Seq2seq models: greedy generation scored by ROUGE-1 against the references; the reference is vanilla BART
    with the same weights and generation settings; the alternatives are fewer layers of the adapted stack (encoder
    or decoder) and int8."""

    task, what, auto_class = "seq2seq", "a seq2seq model", AutoModelForSeq2SeqLM
    baseline_kinds = ("depth", "int8")

    def budget(self, method: Method, record: dict[str, Any]) -> FinetuningBudget:
        return generation_budget(method, record)

    def check(self, settings: BenchmarkSettings) -> tuple[str, ...]:
        kinds = super().check(settings)
        if "length" in kinds or settings.lengths:
            raise ValueError("The length baselines (shorter inputs) apply to classifiers only: for a seq2seq model "
                             "each would be another full-size seq2seq fine-tune, and this benchmark does not measure "
                             "them. Use --baselines depth int8 (the default for seq2seq) and leave out --lengths.")
        return kinds

    def vanilla(self, model: PreTrainedModel) -> PreTrainedModel:
        return seq2seq_vanilla(model)

    def fine_tuned_full_model(self, loaded: BenchmarkedModel, data: TaskData,
                              settings: BenchmarkSettings) -> PreTrainedModel:
        """The BART the recipe started from, every layer kept, fine-tuned with the model's budget (or read from the
        cache), generating with the model's own generation config."""
        side = loaded.method.depth_baseline_side
        total = getattr(loaded.model.config, f"{side}_layers")
        baseline = GenerationBaseline(side, total, loaded.budget.max_length, kind="full")
        return self._fine_tuned_bart(loaded, recipe_run(loaded, data), data, settings, baseline)

    def _fine_tuned_bart(self, loaded: BenchmarkedModel, run: RecipeRun, data: TaskData, settings: BenchmarkSettings,
                         baseline: GenerationBaseline) -> PreTrainedModel:
        model = cached_generation_baseline(settings.cache_dir, run.base_path,
                                           functools.partial(loaded.method.starting_bart, run), loaded.tokenizer,
                                           data.dataset, loaded.budget, baseline)
        model.generation_config = copy.deepcopy(loaded.model.generation_config)
        return model

    def static_candidates(self, loaded: BenchmarkedModel, data: TaskData, settings: BenchmarkSettings,
                          kinds: tuple[str, ...]) -> list[Candidate]:
        """The starting BART with the lowest k layers of the adapted stack (k = 1 .. L-1 by default), fine-tuned
        with the model's training budget (or read from the cache), generating with the model's own generation
        config."""
        if "depth" not in kinds:
            return []
        budget, side = loaded.budget, loaded.method.depth_baseline_side
        total = getattr(loaded.model.config, f"{side}_layers")
        run = recipe_run(loaded, data)  # the starting BART's settings, read once for every k
        candidates = []
        for k in sorted(set(settings.depths or range(1, total))):
            if k >= total:
                continue
            baseline = GenerationBaseline(side, k, budget.max_length)
            model = self._fine_tuned_bart(loaded, run, data, settings, baseline)
            values = {"side": side, "num_layers": k, "encoder_layers": model.config.encoder_layers,
                      "decoder_layers": model.config.decoder_layers, "max_length": budget.max_length}
            candidates.append(Candidate(baseline.name, "depth", model, budget.max_length, values))
        return candidates

    def scorer(self, loaded: BenchmarkedModel, split: Any, settings: BenchmarkSettings) -> Scorer:
        return GenerationScorer(loaded.tokenizer, split["text"], split["summary"],
                                max_new_tokens=loaded.budget.max_target_length, batch_size=settings.batch_size)


TASK_BENCHMARKS = {task.task: task for task in (ClassifierBenchmark(), GenerationBenchmark())}


def load_benchmarked_model(folder: str) -> BenchmarkedModel:
    """The folder's model, tokenizer, results record and training budget."""
    check_hub_folder(folder)
    config = AutoConfig.from_pretrained(folder)
    method = method_for_model_type(config.model_type)
    task = TASK_BENCHMARKS["seq2seq" if config.is_encoder_decoder else "classification"]
    if task.task not in method.tasks:
        raise ValueError(f"{folder} is {task.what}, which {method.title} does not train.")
    results = Path(folder) / RESULTS_FILE
    if not results.is_file():
        raise ValueError(f"{folder} has no {RESULTS_FILE}: the benchmark reads the model's training budget from it.")
    record = json.loads(results.read_text())
    model = task.auto_class.from_pretrained(folder).eval()
    return BenchmarkedModel(folder=folder, method=method, task=task, model=model,
                            tokenizer=AutoTokenizer.from_pretrained(folder), record=record,
                            budget=task.budget(method, record))


def benchmark_data(loaded: BenchmarkedModel, settings: BenchmarkSettings) -> TaskData:
    """The data the model was trained on, split with its seed: training cut as in its training, the measured split
    to `max_eval_samples`."""
    budget, training = loaded.budget, loaded.record["training"]
    data = load_task_data(settings.dataset, seed=budget.seed, text_column=training.get("text_column"),
                          label_column=training.get("label_column"))
    if data.task != loaded.task.task:
        raise ValueError(f"{settings.dataset!r} is a {data.task} dataset; {loaded.folder} is {loaded.task.what}.")
    if settings.dataset != budget.dataset:
        raise ValueError(f"{loaded.folder} was trained on {budget.dataset!r}, not {settings.dataset!r}: the static "
                         "alternatives are fine-tuned like the model was, so benchmark it on its own dataset.")
    loaded.task.check_data(loaded, data)
    data.dataset["train"] = select_first(data.dataset["train"], budget.max_train_samples)
    data.dataset[settings.split] = select_first(data.dataset[settings.split], settings.max_eval_samples)
    return data


def recipe_run(loaded: BenchmarkedModel, data: TaskData) -> RecipeRun:
    """The model's recipe run rebuilt from its training record (settings, data, base model), for the method's hooks
    that build what the recipe built (`Method.starting_bart`)."""
    method, training = loaded.method, loaded.record["training"]
    known = {field.name for field in dataclasses.fields(method.settings_class)}
    settings = method.make_settings(**{key: value for key, value in training.items() if key in known})
    base_path = resolve_base_model(loaded.budget.base_model)
    return RecipeRun(settings=settings, dataset=loaded.budget.dataset, task=data, base_path=base_path,
                     base_config=AutoConfig.from_pretrained(base_path))


def adaptive_candidates(loaded: BenchmarkedModel, kinds: tuple[str, ...], reference: Candidate) -> list[Candidate]:
    """The full vanilla model (the reference), the adaptive model at each operating point, and with int8 both the
    vanilla model and the adaptive one at its shipped point, quantized. Where the reference is another fine-tune
    (the adaptive weights trained longer, or with their adaptivity on), also the adaptive model's own weights with
    the adaptivity off, as they are and with int8: the shortcut its owner would take instead, with the training held
    fixed (`own_weights_candidates`)."""
    method, model, length = loaded.method, loaded.model, loaded.budget.max_length
    points = method.operating_points(model, loaded.record)
    candidates = [reference]
    candidates += [Candidate(f"{method.name} {point.label}", method.name, model, length, dict(point.values),
                             functools.partial(method.set_operating_point, model, point), point.chosen)
                   for point in points]
    if "int8" in kinds:
        chosen = next(point for point in points if point.chosen)
        quantized = quantize_int8(model)
        candidates += [
            Candidate("vanilla int8", "vanilla+int8", quantize_int8(reference.model), length,
                      {**reference.operating_point, "quantization": "int8"}),
            Candidate(f"{method.name} {chosen.label} int8", f"{method.name}+int8", quantized, length,
                      {**chosen.values, "quantization": "int8"},
                      functools.partial(method.set_operating_point, quantized, chosen), True),
        ]
    if not method.full_depth_is_a_plain_fine_tune:
        candidates += own_weights_candidates(loaded, kinds)
    return candidates


def own_weights_candidates(loaded: BenchmarkedModel, kinds: tuple[str, ...]) -> list[Candidate]:
    """The adaptive model's weights in the plain transformers class (every token through every layer), and with
    "int8" also quantized. Their ratios are still taken against the reference; their accuracy differs from it by
    training alone (AdapLeR's phase 3, the exits' losses), so the adaptive model is read against them too."""
    length = loaded.budget.max_length
    own = loaded.task.vanilla(loaded.model)
    values = {"weights": "the adaptive model's, adaptivity off"}
    candidates = [Candidate(OWN_WEIGHTS, "own weights", own, length, values)]
    if "int8" in kinds:
        candidates.append(Candidate(f"{OWN_WEIGHTS} int8", "own weights+int8", quantize_int8(own), length,
                                    {**values, "quantization": "int8"}))
    return candidates


def static_baselines(loaded: BenchmarkedModel, settings: BenchmarkSettings,
                     kinds: tuple[str, ...]) -> list[StaticBaseline]:
    """A classifier's depth and length alternatives asked for (defaults: k = 1 .. L-1; 1/4 and 1/2 of the max
    length)."""
    config, length = loaded.model.config, loaded.budget.max_length
    wanted: list[StaticBaseline] = []
    if "depth" in kinds:
        depths = settings.depths or range(1, config.num_hidden_layers)
        pooling = loaded.method.exit_pooling(config)
        wanted += [StaticBaseline("depth", k, length, pooling) for k in sorted(set(depths))
                   if k < config.num_hidden_layers]
    if "length" in kinds:
        lengths = settings.lengths or [length // 4, length // 2]
        wanted += [StaticBaseline("length", config.num_hidden_layers, t) for t in sorted(set(lengths))
                   if 4 <= t < length]
    return wanted


def git_commit(source: Path | None = None) -> str:
    """The checked-out commit of the package's source tree, or "unknown" outside a git checkout.

    "-dirty" is appended when a file under `source` (this package by default) is modified or new and not ignored:
    the code that produced the figures differs from the commit. Changes elsewhere in the checkout (BENCHMARKS.md,
    the results file the run is appending to) do not change what was measured and do not mark the row."""
    source = source or Path(__file__).resolve().parent
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=source, capture_output=True, text=True,
                                check=True).stdout.strip()
        changes = subprocess.run(["git", "status", "--porcelain", "--untracked-files=all", "--", "."], cwd=source,
                                 capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit + ("-dirty" if changes else "")


def result_rows(points: list[BenchmarkPoint], loaded: BenchmarkedModel, settings: BenchmarkSettings, *,
                num_samples: int, command: str) -> list[dict[str, Any]]:
    """One fixed-schema row per measured point (`evaluation.benchmark_results.ROW_FIELDS`); `metrics` holds the
    scorer's quality metrics under their own names ("accuracy"; "rouge1", "rouge2", ... for seq2seq)."""
    budget = loaded.budget
    generation = ({"generation": {"max_new_tokens": budget.max_target_length, "num_beams": 1, "do_sample": False}}
                  if loaded.task.task == "seq2seq" else {})
    now = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    run_id = f"{now}-{uuid.uuid4().hex[:6]}"
    shared = {"schema_version": SCHEMA_VERSION, "run_id": run_id, "date": now, "method": loaded.method.name,
              "dataset": settings.dataset, "split": settings.split, "num_samples": num_samples,
              "model": loaded.folder, "base_model": loaded.budget.base_model, "budget": loaded.budget.to_dict(),
              "timing": {"batch_size": settings.batch_size, "latency_samples": settings.latency_samples,
                         "repeats": settings.repeats, **generation},
              "command": command, "git_commit": git_commit(), "machine": machine(),
              "threads": torch.get_num_threads(), "torch_version": torch.__version__}
    return [{**shared, "series": point.series, "point": point.name, "operating_point": point.operating_point,
             "chosen": point.chosen,
             "metrics": {**point.scores, "flops": point.flops, "max_length": point.max_length,
                         "mean_exit_layer": point.mean_exit_layer},
             "ratios": {"flops_speedup": point.flops_speedup, "throughput_speedup": point.throughput_speedup,
                        "latency_speedup": point.latency_speedup},
             "absolute": {"throughput_samples_per_s": point.throughput_samples_per_s,
                          "latency_ms_per_sample": point.latency_ms_per_sample}}
            for point in points]


def run_benchmark(folder: str, settings: BenchmarkSettings, *, command: str) -> list[dict[str, Any]]:
    """Measure the saved model in `folder` against its static alternatives; append the rows to `settings.output`
    and return them."""
    loaded = load_benchmarked_model(folder)
    kinds = loaded.task.check(settings)
    data = benchmark_data(loaded, settings)
    announce(f"benchmark of {folder} ({loaded.method.title}) on {settings.dataset} {settings.split}: static "
             f"alternatives ({', '.join(kinds)}) fine-tuned like the model ({loaded.budget.num_train_epochs:g} "
             f"epochs, lr {loaded.budget.learning_rate:g}, batch {loaded.budget.batch_size}, max length "
             f"{loaded.budget.max_length})")
    reference = loaded.task.reference(loaded, data, settings)
    candidates = (adaptive_candidates(loaded, kinds, reference)
                  + loaded.task.static_candidates(loaded, data, settings, kinds))
    split = data.dataset[settings.split]
    points = measure_candidates(candidates, loaded.task.scorer(loaded, split, settings), baseline=VANILLA,
                                latency_samples=settings.latency_samples, repeats=settings.repeats)
    rows = result_rows(points, loaded, settings, num_samples=len(split), command=command)
    append_rows(settings.output, rows)
    return rows
