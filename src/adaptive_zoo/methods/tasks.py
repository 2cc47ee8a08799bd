"""What the methods of one task share: how a classifier or a summarizer loads its tokenizer, is measured on test
and by `adaptive-zoo evaluate`, and where a calibration split comes from."""

from __future__ import annotations

from typing import Any

from transformers import AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from ..data import check_label_count, load_task_data, select_first
from ..evaluation.classification import evaluate_classifier, mean_token_exit
from ..evaluation.reports import ClassificationReport, EvaluationOptions, EvaluationReport
from ..settings import non_negative_float, setting
from .base import Method, RecipeRun


def accuracy_budget_setting(reference: str) -> Any:
    """The `accuracy_budget` field of a method whose operating point is chosen within an accuracy budget."""
    return setting(1.0, help=f"Accuracy points the adaptive model may lose on validation against {reference}.",
                   check=non_negative_float)


def calibration_split(settings: Any, task: str) -> Any:
    """The split `adaptive-zoo calibrate` tunes on, refused if the dataset is of another kind than the model."""
    data = load_task_data(settings.dataset, seed=settings.seed, text_column=settings.text_column,
                          label_column=settings.label_column)
    if data.task != task:
        kind = "a classifier" if task == "classification" else "a seq2seq model"
        raise ValueError(f"{settings.dataset!r} is a {data.task} dataset; this model is {kind}.")
    return data


class ClassifierMethod(Method):
    """A method whose models are sequence classifiers (BERT-shaped encoders with a classification head)."""

    tasks = ("classification",)
    reports_token_exits = False
    """Also report the mean exit layer per token (token-level exits)."""

    def load_tokenizer(self, run: RecipeRun) -> PreTrainedTokenizerBase:
        return AutoTokenizer.from_pretrained(run.base_path)

    def measure(self, run: RecipeRun, model: PreTrainedModel) -> ClassificationReport:
        settings, test = run.settings, run.task.dataset["test"]
        options = EvaluationOptions(batch_size=settings.eval_batch_size, repeats=settings.wallclock_repeats)
        return self.evaluate(model, run.tokenizer, test, max_length=settings.max_length, options=options)

    def evaluate(self, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, split: Any, *, max_length: int,
                 options: EvaluationOptions) -> EvaluationReport:
        report = evaluate_classifier(model, tokenizer, split["text"], split["label"], max_length=max_length,
                                     options=options)
        if self.reports_token_exits:
            report.mean_exit_layer_per_token = mean_token_exit(model, tokenizer, split["text"], max_length)
        return report

    def calibration_split(self, model: PreTrainedModel, settings: Any) -> Any:
        data = calibration_split(settings, "classification")
        check_label_count(data.dataset, model.config.num_labels)
        return select_first(data.dataset[settings.split], settings.max_eval_samples)


def seq2seq_tokenizer(run: RecipeRun) -> PreTrainedTokenizerBase:
    """The base model's tokenizer for a BART: BART takes no token type ids, and a tokenizer that returns them would
    break generate() and pipelines."""
    return AutoTokenizer.from_pretrained(run.base_path, model_input_names=["input_ids", "attention_mask"])


def check_target_length(run: RecipeRun) -> None:
    """The summaries (plus the decoder start token) must fit the base model's positions."""
    positions, length = run.base_config.max_position_embeddings, run.settings.max_target_length + 1
    if length > positions:
        raise ValueError(f"max_target_length={length} exceeds the base model's {positions} positions.")


def generation_options(run: RecipeRun) -> EvaluationOptions:
    """How a run's summarizer is measured: the run's evaluation batch size, timing repeats, target length, beams."""
    settings = run.settings
    return EvaluationOptions(batch_size=settings.eval_batch_size, repeats=settings.wallclock_repeats,
                             max_new_tokens=settings.max_target_length, num_beams=settings.num_beams)


def generation_arguments(run: RecipeRun) -> dict[str, Any]:
    """The same as keyword arguments of the generation-scoring helpers (`rouge_of`, the threshold search)."""
    settings = run.settings
    return dict(batch_size=settings.eval_batch_size, max_source_length=settings.max_length,
                max_new_tokens=settings.max_target_length, num_beams=settings.num_beams)


class GenerationMethod(Method):
    """A method whose models are BART-shaped seq2seq models, trained on summarization data."""

    tasks = ("seq2seq",)

    def load_tokenizer(self, run: RecipeRun) -> PreTrainedTokenizerBase:
        return seq2seq_tokenizer(run)

    def check(self, run: RecipeRun) -> None:
        super().check(run)
        check_target_length(run)
