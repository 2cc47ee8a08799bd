"""What every trainer of the zoo shares: Trainer arguments that work on CPU and under torchrun, the accuracy
metric, parameter freezing, loading checkpoints that lack the adaptive parts, and checkpoint clean-up.
(Tokenization and its input checks live in `adaptive_zoo.data.text`.)"""

from __future__ import annotations

import copy
import logging
import os
import shutil
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from transformers import AutoConfig, EvalPrediction, TrainingArguments
from transformers.utils import logging as transformers_logging

from ..progress import announce, bars_enabled
from ..settings import RecipeSettings, one_of, positive_int, setting
from .warm_start import CROSS_ATTENTION_INITS

logger = logging.getLogger(__name__)


def accuracy_metric(prediction: EvalPrediction) -> dict[str, float]:
    logits = prediction.predictions
    if isinstance(logits, tuple):  # extra ModelOutput fields come after the logits
        logits = logits[0]
    return {"accuracy": float((np.argmax(logits, axis=-1) == prediction.label_ids).mean())}


def training_arguments(
    output_dir: str | os.PathLike, *, arguments_class: type[TrainingArguments] = TrainingArguments, **overrides
) -> TrainingArguments:
    """Trainer arguments with the zoo's defaults: CPU unless a GPU is there, no reporting services,
    safetensors checkpoints, one best checkpoint kept, evaluation each epoch. `arguments_class` may be a
    subclass (e.g. `Seq2SeqTrainingArguments`) taking further overrides."""
    defaults = dict(
        output_dir=str(output_dir),
        report_to="none",
        use_cpu=not torch.cuda.is_available(),
        eval_strategy="epoch",
        save_strategy="epoch",
        save_total_limit=1,
        logging_strategy="epoch",
        per_device_train_batch_size=16,
        per_device_eval_batch_size=32,
        dataloader_num_workers=0,
        # tqdm bars where they render (a terminal); elsewhere `progress.attach_progress` prints compact lines.
        disable_tqdm=not bars_enabled(),
    )
    defaults.update(overrides)
    return arguments_class(**defaults)


def set_trainable(module: torch.nn.Module, trainable: bool) -> None:
    for parameter in module.parameters():
        parameter.requires_grad_(trainable)


def trainer_work_dir(output_dir: str | os.PathLike) -> Path:
    """Where Trainer checkpoints of a run go: beside the Hub folder, never inside it, so the Hub folder holds
    exactly what ships."""
    output_dir = Path(output_dir)
    return output_dir.with_name(output_dir.name + "-training")


class _DropLoadReport(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "LOAD REPORT" not in record.getMessage()


def from_pretrained_with_new_parts(model_class, path: str | os.PathLike, new_prefixes: Iterable[str],
                                   explanation: str, *, strict_new_parts: bool = False, **kwargs):
    """`model_class.from_pretrained(path, **kwargs)` for a checkpoint that lacks the parts the adaptive model adds
    (off-ramps, contribution predictors, an exit predictor, a fresh classifier). transformers reports those as a
    table of MISSING rows, alarming for weights that are new by design; here they are explained in one line of
    ours, `explanation`, instead. Weights missing outside `new_prefixes` (parameter-name prefixes) and weights of
    another shape are still reported, one line each; with `strict_new_parts` (a checkpoint whose parts are all
    meant to be kept, such as a fine-tuned classifier's head) they are an error instead. With INFO logging on
    (`adaptive-zoo -v`), transformers' own report is shown as well."""
    new_prefixes = tuple(new_prefixes)
    report_logger = transformers_logging.get_logger("transformers.modeling_utils")
    verbose = report_logger.isEnabledFor(logging.INFO) or logging.getLogger("adaptive_zoo").isEnabledFor(logging.INFO)
    # A filter rather than a higher level: transformers 5.24 logs a "layers were not sharded" warning whenever this
    # logger's level is WARNING or above.
    report_filter = _DropLoadReport()
    if not verbose:
        report_logger.addFilter(report_filter)
    try:
        model, info = model_class.from_pretrained(path, output_loading_info=True, **kwargs)
    finally:
        report_logger.removeFilter(report_filter)
    missing = list(info.get("missing_keys") or [])
    if any(key.startswith(new_prefixes) for key in missing):
        announce(f"{type(model).__name__}: {explanation}")
    unexplained = sorted(key for key in missing if not key.startswith(new_prefixes))
    if strict_new_parts and (unexplained or info.get("mismatched_keys")):
        raise ValueError(f"{path} does not hold every weight {type(model).__name__} keeps from it: missing "
                         f"{unexplained or 'nothing'}, another shape {info.get('mismatched_keys') or 'nothing'}.")
    if unexplained:
        logger.warning("Weights missing from %s, newly initialised: %s", path, ", ".join(unexplained))
    if info.get("mismatched_keys"):
        logger.warning("Weights of %s with another shape, newly initialised: %s", path,
                       ", ".join(str(key) for key in info["mismatched_keys"]))
    return model


def adaptive_model_from(model_class, config, source: torch.nn.Module, new_prefixes: Iterable[str], explanation: str):
    """`model_class(config)` with every weight of the in-memory model `source` (one whose parameter names the
    adaptive model shares, e.g. a BART warm-started from BERT), without a round trip through disk. Weights only the
    adaptive model has must start with `new_prefixes` (they are explained in one line, `explanation`); anything
    else missing or unexpected is an error. The source's generation config comes along."""
    model = model_class(config)
    missing, unexpected = model.load_state_dict(source.state_dict(), strict=False)
    unexplained = [key for key in missing if not key.startswith(tuple(new_prefixes))]
    if unexplained or unexpected:
        raise ValueError(f"{type(source).__name__} does not match {model_class.__name__}: missing "
                         f"{unexplained or 'nothing'}, unexpected {list(unexpected) or 'nothing'}.")
    if missing:
        announce(f"{model_class.__name__}: {explanation}")
    if getattr(source, "generation_config", None) is not None:
        model.generation_config = copy.deepcopy(source.generation_config)
    return model


def family_for(base_model: str, families: Sequence[tuple[type, type]], what: str) -> tuple[type, type]:
    """The (config class, model class) pair of `families` that starts from `base_model`: a checkpoint of the
    config's `vanilla_model_type` (pretrained or fine-tuned) or a folder of that adaptive family itself. Anything
    else is a ValueError naming the families `what` ("DeeBERT starts", ...) accepts."""
    model_type = AutoConfig.from_pretrained(base_model).model_type
    for config_class, model_class in families:
        if model_type in (config_class.vanilla_model_type, config_class.model_type):
            return config_class, model_class
    accepted = " or ".join(config_class.vanilla_model_type for config_class, _ in families)
    raise ValueError(f"{what} from a {accepted} checkpoint; {base_model!r} is a {model_type!r} model.")


#: Files of a Trainer checkpoint needed only to resume training from it (the optimizer state is twice the weights).
RESUME_ONLY_FILES = ("optimizer.pt", "scheduler.pt", "scaler.pt", "rng_state.pth", "rng_state_*.pth")


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(file.stat().st_size for file in path.rglob("*") if file.is_file())


def remove_trainer_checkpoints(output_dir: str | os.PathLike, *, keep_weights: bool = False) -> int:
    """After a successful run, free what `trainer_work_dir(output_dir)` holds: the whole folder (checkpoints with
    optimizer states, warm starts), or with `keep_weights` only the resume-only files of every checkpoint
    (`RESUME_ONLY_FILES`), keeping weights, trainer states and anything else a later run reads (AdapLeR's
    `--reuse-phases-from`). Returns the bytes freed."""
    work_dir = trainer_work_dir(output_dir)
    if not work_dir.is_dir():
        return 0
    if not keep_weights:
        freed = _size(work_dir)
        shutil.rmtree(work_dir)
        return freed
    freed = 0
    for pattern in RESUME_ONLY_FILES:
        for file in work_dir.rglob(pattern):
            if file.is_file() and file.parent.name.startswith("checkpoint-"):
                freed += file.stat().st_size
                file.unlink()
    return freed


# Bookkeeping keys of a saved config that are not model fields (and must not override the new model type).
NOT_CONFIG_FIELDS = {"model_type", "architectures", "transformers_version", "_name_or_path", "auto_map", "dtype",
                     "id2label", "label2id", "num_labels"}


def adaptive_config_from_base(base_model: str, config_class, label_names: list[str], **overrides):
    """A family's config built explicitly from its vanilla family's checkpoint config (`config_class`'s
    `vanilla_model_type`: a BERT for `DeeBertConfig`, a RoBERTa for `DeeRobertaConfig`), so the new `model_type` is
    the family's (loading a `bert` config.json into the subclass would leave `model_type='bert'` on the instance).
    Family fields saved in the base (e.g. a previous threshold) are dropped: `overrides` set them anew."""
    base_config = AutoConfig.from_pretrained(base_model)
    vanilla = config_class.vanilla_model_type
    if base_config.model_type not in (vanilla, config_class.model_type):
        raise ValueError(
            f"{config_class.__name__} is built on {vanilla!r} checkpoints; {base_model!r} is a "
            f"{base_config.model_type!r} model. Pass a {vanilla!r} checkpoint (a local folder or a Hub id)."
        )
    vanilla_fields = set(AutoConfig.for_model(vanilla).to_dict())
    fields = {k: v for k, v in base_config.to_dict().items() if k in vanilla_fields and k not in NOT_CONFIG_FIELDS}
    return config_class(
        **{**fields, **overrides},
        num_labels=len(label_names),
        id2label=dict(enumerate(label_names)),
        label2id={name: i for i, name in enumerate(label_names)},
    )


@dataclass
class Seq2SeqSettings(RecipeSettings):
    """Fields of every run that trains a BART (HashEE-BART, the Depth-Adaptive Transformer)."""

    max_target_length: int = setting(32, help="Summary tokens in training (EOS included), and new tokens when "
                                     "generating (summarization).", check=positive_int)
    num_beams: int = setting(1, help="Beams when generating for measurement (summarization).", check=positive_int)
    cross_attention_init: str | None = setting(
        None, help="Warm start of the BART from BERT (summarization): self_attention (each decoder layer's "
        "cross-attention starts as a copy of its BERT self-attention) or fresh (random, as bert2bert).",
        check=one_of(*CROSS_ATTENTION_INITS), default_text="self_attention")
