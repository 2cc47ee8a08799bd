"""What the zoo knows about a method, in one place, and the registry of methods.

A method module (`methods/deebert.py`, ...) subclasses `Method`, fills in its class attributes (model families,
settings class, default dataset, card template, tags) and overrides the hooks the recipe pipeline
(`adaptive_zoo.recipes.run_recipe`) calls, then registers itself with `@register_method`, which also registers
its configs and models with the transformers Auto classes. The command line, the evaluator, the calibrator and
the summary all look a method up here: nothing else lists the methods.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from transformers import AutoConfig, AutoModel, PretrainedConfig, PreTrainedModel, PreTrainedTokenizerBase

from ..data import TaskData
from ..evaluation.reports import EvaluationOptions, EvaluationReport
from ..settings import RecipeSettings
from ..training.baselines import FinetuningBudget


@dataclass(frozen=True)
class ModelFamily:
    """One config class and the model class behind each Auto class. The first model class listed is the one
    whose `save_pretrained` writes the folder; every entry goes into the saved config's `auto_map`."""

    config_class: type[PretrainedConfig]
    auto_models: Mapping[type, type[PreTrainedModel]]

    @classmethod
    def of(cls, config_class: type[PretrainedConfig], head_auto_class: type, head_class: type[PreTrainedModel],
           base_class: type[PreTrainedModel] | None = None) -> ModelFamily:
        """A family with one head (and its base model, which `AutoModel` loads)."""
        auto_models = {head_auto_class: head_class, **({AutoModel: base_class} if base_class is not None else {})}
        return cls(config_class, auto_models)

    @property
    def model_type(self) -> str:
        return self.config_class.model_type

    def register(self) -> None:
        """Natively (no trust_remote_code needed with the package installed) and for `save_pretrained`'s code copy
        (so saved folders load anywhere with trust_remote_code)."""
        AutoConfig.register(self.model_type, self.config_class, exist_ok=True)
        self.config_class.register_for_auto_class()
        for auto_class, model_class in self.auto_models.items():
            auto_class.register(self.config_class, model_class, exist_ok=True)
            model_class.register_for_auto_class(auto_class.__name__)


@dataclass(frozen=True)
class OperatingPoint:
    """One setting of a saved model's adaptivity that `adaptive-zoo benchmark` measures (e.g. one entropy threshold)."""

    label: str
    """How tables and plots name it, e.g. "S=0.12"."""
    values: dict[str, Any]
    """What `Method.set_operating_point` sets; also recorded with the measurement."""
    chosen: bool = False
    """The point the saved model ships with."""


@dataclass
class RecipeRun:
    """The state one recipe run passes from hook to hook."""

    settings: RecipeSettings
    dataset: str
    task: TaskData
    base_path: str
    base_config: PretrainedConfig
    tokenizer: PreTrainedTokenizerBase | None = None
    record: dict[str, Any] = field(default_factory=dict)
    """Written to adaptive_zoo_results.json beside the test report."""
    card: dict[str, Any] = field(default_factory=dict)
    """Values the method's model card template reads."""
    tags: list[str] = field(default_factory=list)
    task_tag: str = "text-classification"
    artifacts: dict[str, Any] = field(default_factory=dict)
    """What a hook leaves for a later one (a sweep to plot, a hash table to save)."""

    @property
    def output_dir(self) -> str:
        return self.settings.output_dir

    @property
    def base_is_classifier(self) -> bool:
        """The base model is a fine-tuned sequence classifier: its head and labels are kept, and the training
        stages it already did are skipped (classification datasets only)."""
        architectures = getattr(self.base_config, "architectures", None) or []
        return self.task.task == "classification" and any(
            name.endswith("ForSequenceClassification") for name in architectures)


class Method:
    """One input-adaptive method. Class attributes describe it; the hooks run in the order of
    `adaptive_zoo.recipes.run_recipe`: settings -> check -> tokenizer -> build -> train -> choose the operating
    point -> measure -> folder files -> (fresh-process load check)."""

    name: ClassVar[str]
    """`adaptive-zoo train <name>`, the model card template `model_cards/<name>.md`."""
    title: ClassVar[str]
    """The paper, e.g. "DeeBERT (Xin et al., 2020)": the description up to its first colon unless the class sets
    it."""
    description: ClassVar[str]
    """What `train <name>` does, for --help: the method module's docstring unless the class sets it."""
    families: ClassVar[tuple[ModelFamily, ...]]
    settings_class: ClassVar[type[RecipeSettings]]
    default_dataset: ClassVar[str] = "bbc_news"
    tasks: ClassVar[tuple[str, ...]] = ("classification",)
    """The dataset kinds it trains on: "classification", "seq2seq"."""
    nothing_to_calibrate: ClassVar[str | None] = None
    """Why `adaptive-zoo calibrate` has nothing to tune for this method's models, where that is so."""
    keeps_checkpoint_weights: ClassVar[bool] = False
    """After a successful run, keep the checkpoints' weights (only their optimizer states go)."""
    base_families: ClassVar[Mapping[str, str]] = {}
    """The `model_type`s a `--base-model` checkpoint may have, each with the words that name it in a refusal."""
    depth_baseline_side: ClassVar[str | None] = None
    """A seq2seq method's adaptive stack, which `adaptive-zoo benchmark`'s depth baselines cut to k layers: "decoder"
    (the Depth-Adaptive Transformer) or "encoder" (HashEE-BART's token exits)."""
    full_depth_is_a_plain_fine_tune: ClassVar[bool] = False
    """The saved weights, run without the adaptive parts, are exactly a plain fine-tune of the backbone (DeeBERT:
    stage 2 trains only the off-ramps). Otherwise (the backbone was trained with its exits or token removal on),
    `adaptive-zoo benchmark` fine-tunes the full vanilla backbone with the phase-1 budget as its reference: the
    model a user would have instead, not the adaptive weights with the adaptivity switched off."""
    phase1_warmup_ratio: ClassVar[float] = 0.06
    phase1_weight_decay: ClassVar[float] = 0.01
    """The warm-up and weight decay of the method's plain fine-tuning phase; with the recorded epochs, learning rate,
    batch size, length and samples they are the budget `adaptive-zoo benchmark` gives each static alternative."""

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "description" not in cls.__dict__ and sys.modules[cls.__module__].__doc__:
            cls.description = " ".join(sys.modules[cls.__module__].__doc__.split())
        if "title" not in cls.__dict__ and "description" in cls.__dict__:
            cls.title = cls.description.split(":")[0]

    # -- what it is ------------------------------------------------------------------------------------------

    @staticmethod
    def auto_class_name(config: PretrainedConfig) -> str:
        """The Auto class a saved model of this config loads with."""
        return "AutoModelForSeq2SeqLM" if config.is_encoder_decoder else "AutoModelForSequenceClassification"

    @classmethod
    def model_types(cls) -> tuple[str, ...]:
        return tuple(family.model_type for family in cls.families)

    @classmethod
    def summary(cls) -> str:
        return cls.description.split(":")[0] + "."

    # -- the recipe hooks ------------------------------------------------------------------------------------

    def make_settings(self, **given: Any) -> RecipeSettings:
        """The run's settings from the values given (flags a user did not give are absent)."""
        return self.settings_class(**given)

    def accepted_base_families(self, run: RecipeRun) -> Mapping[str, str]:
        """The base-model families this run can start from (a method may narrow them by the dataset's task)."""
        return self.base_families

    def check_base_family(self, run: RecipeRun) -> None:
        """Refuse a base model of a family the method cannot start from, naming the supported ones, before
        anything reads the checkpoint's fields (a T5 config has no `max_position_embeddings`) or trains."""
        accepted = self.accepted_base_families(run)
        model_type = getattr(run.base_config, "model_type", None)
        if model_type in accepted:
            return
        architectures = ", ".join(getattr(run.base_config, "architectures", None) or []) or "no architectures listed"
        why = UNSUPPORTED_FAMILY_REASONS.get(model_type, "")
        supported = "; ".join(f"{name} ({what})" for name, what in accepted.items())
        raise ValueError(
            f"{self.title} cannot start from {run.settings.base_model!r}: it is a {model_type!r} model "
            f"({architectures}).{' ' + why if why else ''} Supported base-model families for this run: {supported}."
        )

    def check(self, run: RecipeRun) -> None:
        """Everything that can be refused before any training: called once the data and base model are known."""
        self.check_base_family(run)
        positions = getattr(run.base_config, "max_position_embeddings", None)
        if positions is not None and run.base_config.model_type == "roberta":
            positions -= (run.base_config.pad_token_id or 0) + 1  # RoBERTa's positions start after the padding index
        if positions is not None and run.settings.max_length > positions:
            raise ValueError(f"max_length={run.settings.max_length} exceeds the base model's {positions} positions.")

    def load_tokenizer(self, run: RecipeRun) -> PreTrainedTokenizerBase:
        raise NotImplementedError

    def build(self, run: RecipeRun) -> PreTrainedModel:
        """The adaptive model, warm-started from the base model, before training."""
        raise NotImplementedError

    def train(self, run: RecipeRun, model: PreTrainedModel) -> PreTrainedModel | None:
        """Train; return the trained model on the main process, None on the others (they stop here)."""
        raise NotImplementedError

    def choose_operating_point(self, run: RecipeRun, model: PreTrainedModel) -> PreTrainedModel:
        """Tune the operating point on validation (main process only); may return another checkpoint."""
        return model

    def measure(self, run: RecipeRun, model: PreTrainedModel) -> EvaluationReport:
        """The test report."""
        raise NotImplementedError

    def add_files(self, run: RecipeRun, model: PreTrainedModel, folder: Path) -> None:
        """Files beside the weights (plots, artifacts) in the folder being written."""

    # -- outside training --------------------------------------------------------------------------------------

    def evaluate(self, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, split: Any, *,
                 max_length: int, options: EvaluationOptions) -> EvaluationReport:
        """`adaptive-zoo evaluate` on a saved model of this method."""
        raise NotImplementedError

    def calibrate(self, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, settings: Any,
                  max_length: int) -> dict[str, Any]:
        """`adaptive-zoo calibrate`: re-tune the operating point on `settings`' data and return what was measured."""
        raise NotImplementedError

    # -- `adaptive-zoo benchmark` --------------------------------------------------------------------------------

    def operating_points(self, model: PreTrainedModel, record: dict[str, Any]) -> list[OperatingPoint]:
        """The operating points the benchmark measures a saved model at (`record`: its adaptive_zoo_results.json).
        By default the one it was saved with."""
        return [OperatingPoint("as saved", {}, chosen=True)]

    def set_operating_point(self, model: PreTrainedModel, point: OperatingPoint) -> None:
        """Put `model` at `point` (cheap: it runs before every timed call of a shared model)."""

    def starting_bart(self, run: RecipeRun) -> PreTrainedModel:
        """A seq2seq method's starting point, built afresh exactly as its recipe builds it before adding the adaptive
        parts (a BART warm-started from BERT, or a pretrained BART): `build` starts from it, and so do the benchmark's
        depth baselines."""
        raise NotImplementedError(f"{self.title} does not train a seq2seq model.")

    def exit_pooling(self, config: PretrainedConfig) -> str:
        """How the model's exits read the tokens ("cls" or "mean"): the depth baselines pool the same way."""
        return "cls"

    def phase1_budget(self, record: dict[str, Any]) -> FinetuningBudget:
        """The budget of the saved model's own plain fine-tuning phase, read from its training record."""
        training = record.get("training")
        if not training:
            raise ValueError("The folder's adaptive_zoo_results.json has no \"training\" record: the benchmark gives "
                             "each static alternative the model's own phase-1 budget and cannot tell what it was.")
        return FinetuningBudget(
            base_model=record.get("base_model") or training["base_model"], dataset=record["dataset"],
            num_train_epochs=float(training["num_train_epochs"]), learning_rate=float(training["learning_rate"]),
            batch_size=int(training["batch_size"]), max_length=int(training["max_length"]),
            max_train_samples=training.get("max_train_samples"), seed=int(training["seed"]),
            warmup_ratio=self.phase1_warmup_ratio, weight_decay=self.phase1_weight_decay,
        )


UNSUPPORTED_FAMILY_REASONS = {
    "mbart": "mBART is not BART's architecture: its layers normalise before each block (pre-LayerNorm) and its "
    "encoder and decoder end with an extra LayerNorm, so its weights do not fit a BART.",
    "marian": "Marian is not BART's architecture: it has fixed sinusoidal positions (no learned ones) and scales "
    "its embeddings, so its weights do not fit a BART.",
    "t5": "T5 is not BART-shaped: relative position buckets, RMS-style LayerNorm before each block, no biases.",
    "electra": "ELECTRA is not BERT's architecture: its embeddings may have another width (projected into the "
    "encoder), it has no pooler, and its classifier head (dense, GELU, dense) is neither BERT's nor RoBERTa's.",
    "xlm-roberta": "XLM-RoBERTa has RoBERTa's layers, but the zoo has no XLM-RoBERTa family yet (its models would "
    "be compared with XLMRobertaForSequenceClassification and need tests with its SentencePiece tokenizer).",
    "distilbert": "DistilBERT is not BERT's architecture: no token type embeddings, no pooler, other weight names.",
}
"""Why a family that looks close is still refused, where that is not obvious."""

METHODS: dict[str, Method] = {}
"""Every registered method, by name, in registration order."""


def register_method(method_class: type[Method]) -> type[Method]:
    """Class decorator: one call per method registers it, and its model families with the Auto classes."""
    if method_class.name in METHODS:
        raise ValueError(f"A method named {method_class.name!r} is already registered.")
    for family in method_class.families:
        family.register()
    METHODS[method_class.name] = method_class()
    return method_class


def method_for_model_type(model_type: str) -> Method:
    """The method whose model families include `model_type` (a saved folder's `config.model_type`)."""
    for method in METHODS.values():
        if model_type in method.model_types():
            return method
    known = ", ".join(t for method in METHODS.values() for t in method.model_types())
    raise ValueError(f"{model_type!r} is not an adaptive-zoo model type (known: {known}).")
