"""What the methods of one task share: how a classifier or a summarizer loads its tokenizer, is measured on test
and by `adaptive-zoo evaluate`, and where a calibration split comes from."""

from __future__ import annotations

import logging
import re
from typing import Any

from transformers import (
    AutoModelForSequenceClassification,
    AutoTokenizer,
    BartForConditionalGeneration,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from ..data import check_label_count, load_task_data, select_first
from ..evaluation.classification import evaluate_classifier, mean_token_exit
from ..evaluation.reports import ClassificationReport, EvaluationOptions, EvaluationReport
from ..training.baselines import GenerationBudget
from ..training.warm_start import WarmStartReport, bart_from_bert
from .base import Method, ModelFamily, RecipeRun

BERT_BASE = {"bert": "BERT: a BertModel checkpoint such as 'minilm', or a fine-tuned BertForSequenceClassification, "
             "whose head and labels are kept"}
ROBERTA_BASE = {"roberta": "RoBERTa: a RobertaModel checkpoint, or a fine-tuned RobertaForSequenceClassification, "
                "whose head and labels are kept"}
BART_BASE = {"bart": "BART: a BartModel or BartForConditionalGeneration checkpoint, used as it is with its own "
             "tokenizer"}
BERT_TO_BART = {"bert": "BERT: a BertModel checkpoint such as 'minilm', warm-started into a BART (bert2bert)"}
logger = logging.getLogger(__name__)
GENERIC_LABEL = re.compile(r"^LABEL_\d+$")


def check_tokenizer_fits(tokenizer: PreTrainedTokenizerBase, config: Any, base_model: str) -> None:
    """Refuse a tokenizer that is not the base model's: ids beyond the embedding matrix, or a padding/EOS token
    other than the one the model was trained with (a silent mismatch would feed the model the wrong tokens)."""
    where = f"the tokenizer of {base_model!r}"
    if len(tokenizer) > config.vocab_size:
        raise ValueError(f"{where} has {len(tokenizer)} tokens but the model's vocab_size is {config.vocab_size}: "
                         "it is not this model's tokenizer.")
    pairs = [("pad", tokenizer.pad_token_id, getattr(config, "pad_token_id", None))]
    if getattr(config, "is_encoder_decoder", False):
        pairs.append(("eos", tokenizer.eos_token_id, getattr(config, "eos_token_id", None)))
    for name, token_id, model_id in pairs:
        if token_id is not None and model_id is not None and token_id != model_id:
            raise ValueError(f"{where} has {name} token id {token_id}, the model's config {model_id}: it is not this "
                             "model's tokenizer.")


def check_classifier_labels(run: RecipeRun) -> None:
    """A fine-tuned classifier base must predict the dataset's classes, in the dataset's order: its head is kept, so
    another count or another order would make every prediction wrong. Generic names (LABEL_0, ...) cannot be
    checked beyond their count: that is said, and the dataset's names are used."""
    config, names = run.base_config, list(run.task.label_names)
    head = [str(config.id2label[i]) for i in sorted(int(k) for k in config.id2label)]
    if len(head) != len(names):
        raise ValueError(
            f"The base model {run.settings.base_model!r} is a fine-tuned classifier with {len(head)} labels "
            f"({head}); dataset {run.dataset!r} has {len(names)} classes ({names}). Its head cannot be kept: pass a "
            "classifier fine-tuned on this dataset's classes, or the plain encoder it started from.")
    if all(GENERIC_LABEL.match(name) for name in head):
        logger.warning("The base model's classifier names its labels %s: only their count could be checked; they are "
                       "taken to be the dataset's %s, in this order.", head, names)
        return
    if head != names:
        order = " (the same names in another order)" if sorted(head) == sorted(names) else ""
        raise ValueError(
            f"The base model {run.settings.base_model!r} is a fine-tuned classifier whose labels are {head}; dataset "
            f"{run.dataset!r} has {names}{order}. Its head would predict the wrong classes: pass a classifier "
            "fine-tuned on this dataset, or the plain encoder it started from.")


def calibration_split(settings: Any, task: str) -> Any:
    """The split `adaptive-zoo calibrate` tunes on, refused if the dataset is of another kind than the model."""
    data = load_task_data(settings.dataset, seed=settings.seed, text_column=settings.text_column,
                          label_column=settings.label_column)
    if data.task != task:
        kind = "a classifier" if task == "classification" else "a seq2seq model"
        raise ValueError(f"{settings.dataset!r} is a {data.task} dataset; this model is {kind}.")
    return data


def classifier_families(*classes: tuple[type, type, type]) -> tuple[ModelFamily, ...]:
    """One family per backbone of a classifier method, from its (config, classifier, base model) classes."""
    return tuple(ModelFamily.of(config_class, AutoModelForSequenceClassification, classifier_class, base_class)
                 for config_class, classifier_class, base_class in classes)


class ClassifierMethod(Method):
    """A method whose models are sequence classifiers (BERT-shaped encoders with a classification head)."""

    tasks = ("classification",)
    reports_token_exits = False
    """Also report the mean exit layer per token (token-level exits)."""
    base_families = {**BERT_BASE, **ROBERTA_BASE}

    def check(self, run: RecipeRun) -> None:
        super().check(run)
        if run.base_is_classifier:
            check_classifier_labels(run)

    def load_tokenizer(self, run: RecipeRun) -> PreTrainedTokenizerBase:
        tokenizer = AutoTokenizer.from_pretrained(run.base_path)
        check_tokenizer_fits(tokenizer, run.base_config, run.settings.base_model)
        return tokenizer

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
    tokenizer = AutoTokenizer.from_pretrained(run.base_path, model_input_names=["input_ids", "attention_mask"])
    check_tokenizer_fits(tokenizer, run.base_config, run.settings.base_model)
    return tokenizer


def base_is_bart(run: RecipeRun) -> bool:
    return run.base_config.model_type == "bart"


def check_seq2seq_base(run: RecipeRun) -> None:
    """What a seq2seq run refuses about its base model before training: a warm-start option given for a pretrained
    BART (there is no warm start), and summaries longer than the base model's positions."""
    if base_is_bart(run) and run.settings.cross_attention_init is not None:
        raise ValueError(f"--cross-attention-init sets up a BART warm-started from BERT; {run.settings.base_model!r} "
                         "is a pretrained BART, whose cross-attention is already trained: leave it out.")
    check_target_length(run)


def seq2seq_base(run: RecipeRun, **warm_start: Any) -> tuple[BartForConditionalGeneration, WarmStartReport | None]:
    """The BART a seq2seq run starts from: a pretrained BART base as it is (every weight, its generation config; the
    report is None), or one warm-started from a BERT base by `bart_from_bert(**warm_start)` with its report. The run's
    record and card say where the weights came from."""
    if not base_is_bart(run):
        bart, report = bart_from_bert(run.base_path, return_report=True, **warm_start)
        run.record["warm_start"] = report.parameter_counts(bart)
        run.card["warm_start_text"] = report.to_markdown(bart)
        return bart, report
    bart = BartForConditionalGeneration.from_pretrained(run.base_path)
    decoder_layers, total = warm_start.get("decoder_layers"), bart.config.decoder_layers
    if decoder_layers is not None and decoder_layers != total:  # the lowest blocks, as from BERT
        if not 1 <= decoder_layers <= total:
            raise ValueError(f"decoder_layers must be between 1 and the BART's {total} decoder layers; got "
                             f"{decoder_layers}.")
        bart.model.decoder.layers = bart.model.decoder.layers[:decoder_layers]
        bart.config.decoder_layers = decoder_layers
    count = sum(parameter.numel() for parameter in bart.parameters())
    run.record["warm_start"] = {"pretrained": count, "fresh": 0, "base_bart": run.settings.base_model}
    run.card["warm_start_text"] = (
        f"Every weight comes from the pretrained BART checkpoint `{run.settings.base_model}` (embeddings, "
        f"{bart.config.encoder_layers} encoder layers, the lowest {bart.config.decoder_layers} of its {total} decoder "
        f"layers with their cross-attention, the tied LM head): {count:,} parameters; its own tokenizer and generation config are kept.")
    return bart, None


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


WARM_START_FIELDS = ("cross_attention_init", "decoder_layers", "encoder_layers", "from_scratch")
"""The training settings that shape a seq2seq recipe's starting BART (those a method has)."""


def generation_budget(method: Method, record: dict[str, Any]) -> GenerationBudget:
    """A seq2seq model's training budget for the benchmark's static alternatives: the method's phase-1 budget plus
    the summary length and the settings its starting BART was built with (`WARM_START_FIELDS`)."""
    budget, training = method.phase1_budget(record), record["training"]
    if "max_target_length" not in training:
        raise ValueError("The folder's adaptive_zoo_results.json \"training\" record has no max_target_length: it is "
                         "not a seq2seq training record.")
    return GenerationBudget(**budget.to_dict(), max_target_length=int(training["max_target_length"]),
                            warm_start={key: training[key] for key in WARM_START_FIELDS if key in training})


class GenerationMethod(Method):
    """A method whose models are BART-shaped seq2seq models, trained on summarization data."""

    tasks = ("seq2seq",)
    base_families = {**BART_BASE, **BERT_TO_BART}

    def load_tokenizer(self, run: RecipeRun) -> PreTrainedTokenizerBase:
        return seq2seq_tokenizer(run)

    def check(self, run: RecipeRun) -> None:
        super().check(run)
        check_seq2seq_base(run)
