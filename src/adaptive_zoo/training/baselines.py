"""The static shortcuts a user would deploy instead of an adaptive model, fine-tuned with the adaptive model's
own phase-1 budget (`FinetuningBudget`; `GenerationBudget` for a seq2seq model):

* depth: the backbone cut to its first k layers, its classifier reading the tokens the way the adaptive model's
  exits do ([CLS] through BERT's pooler, or the token mean through the same dense + tanh, as DeeBERT's mean
  off-ramps);
* length: the whole backbone with inputs truncated to a shorter max length;
* seq2seq depth (`GenerationBaseline`): the BART the adaptive model's recipe started from, with only its lowest k
  decoder layers (against an adaptive decoder, the Depth-Adaptive Transformer) or encoder layers (against token
  exits in the encoder, HashEE-BART).

Each is a plain transformers classifier of the backbone's own family (BERT, RoBERTa) or a
`BartForConditionalGeneration`, fine-tuned on a stock `Trainer` (`Seq2SeqTrainer`), and cached on disk under a key of
everything that made it (`StaticBaseline.cache_key`, `GenerationBaseline.cache_key`), so a second benchmark on the
same data and budget reuses it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from datasets import DatasetDict
from torch import nn
from transformers import (
    AutoConfig,
    AutoModelForSequenceClassification,
    BartForConditionalGeneration,
    BertForSequenceClassification,
    DataCollatorForSeq2Seq,
    DataCollatorWithPadding,
    PreTrainedModel,
    Seq2SeqTrainer,
    Seq2SeqTrainingArguments,
    Trainer,
)
from transformers.modeling_outputs import SequenceClassifierOutput

from ..data.text import tokenize_classification, tokenize_seq2seq
from ..progress import announce, attach_progress
from .common import from_pretrained_with_new_parts, training_arguments

POOLING_FIELD = "zoo_baseline_pooling"
"""The config field a saved depth baseline records its pooling in ("cls" or "mean")."""


@dataclass(frozen=True)
class FinetuningBudget:
    """What the adaptive model's own phase 1 (plain fine-tuning) was given, read from its training record."""

    base_model: str
    dataset: str
    num_train_epochs: float
    learning_rate: float
    batch_size: int
    max_length: int
    max_train_samples: int | None
    seed: int
    warmup_ratio: float
    weight_decay: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class GenerationBudget(FinetuningBudget):
    """A seq2seq model's training budget: `max_length` is the source length; besides it, the summary length and
    how the recipe built the BART it started from (`warm_start`: the recipe's warm-start settings, e.g.
    `cross_attention_init`, `encoder_layers`, `from_scratch`), which the depth baselines start from too."""

    max_target_length: int = 32
    warm_start: dict[str, Any] = field(default_factory=dict)


def identity_digest(budget: Any, baseline: Any, base_path: str) -> str:
    """16 hex digits of everything that made a baseline: the budget, the baseline's shape and the base model's
    weights file (its size; the path when it is not a local file)."""
    weights = Path(base_path) / "model.safetensors"
    identity = {"budget": budget.to_dict(), "baseline": asdict(baseline),
                "base_weights": weights.stat().st_size if weights.is_file() else base_path}
    return hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class StaticBaseline:
    """One static alternative: `num_layers` of the backbone at `max_length` input tokens, pooled by `pooling`."""

    kind: str
    """"depth" (fewer layers), "length" (shorter inputs) or "full" (every layer at the full length: the vanilla
    fine-tune the benchmark takes as its reference where the adaptive weights are not one)."""
    num_layers: int
    max_length: int
    pooling: str = "cls"

    @property
    def name(self) -> str:
        if self.kind == "full":
            return "vanilla, fine-tuned with the same budget"
        if self.kind == "depth":
            return f"first {self.num_layers} layer{'s' if self.num_layers > 1 else ''} ({self.pooling} pooling)"
        return f"max length {self.max_length}"

    def cache_key(self, budget: FinetuningBudget, base_path: str) -> str:
        """A stable key of the budget, the base model's weights file and this baseline's shape."""
        digest = identity_digest(budget, self, base_path)
        return f"{Path(budget.dataset).stem}-{self.kind}-{self.num_layers}l-{self.max_length}t-{digest}"


class MeanPooledBertForSequenceClassification(BertForSequenceClassification):
    """BERT's classification head over the masked mean of the last layer's token states, passed through the pooler's
    dense + tanh: the computation of DeeBERT's mean-pooled off-ramp, for a depth baseline pooled the same way.
    (BertModel still pools [CLS] as well: one H x H product per input, counted in its FLOPs.)"""

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, labels=None, **kwargs):
        states = self.bert(input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids,
                           **kwargs).last_hidden_state  # (B, T, H)
        if attention_mask is None:
            attention_mask = torch.ones(states.shape[:2], dtype=states.dtype, device=states.device)
        weights = attention_mask.to(states.dtype).unsqueeze(-1)  # (B, T, 1)
        mean = (states * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1)  # (B, H)
        logits = self.classifier(self.dropout(self.bert.pooler.activation(self.bert.pooler.dense(mean))))  # (B, C)
        loss = None if labels is None else torch.nn.functional.cross_entropy(logits, labels.view(-1))
        return SequenceClassifierOutput(loss=loss, logits=logits)


def model_class_for(pooling: str, model_type: str) -> type[PreTrainedModel]:
    """The classifier class of a baseline: the family's own stock classifier for [CLS] (`<s>`) pooling, or the
    mean-pooled BERT classifier (BERT only: DeeBERT pools by mean on mean-pooled BERT backbones such as MiniLM)."""
    if pooling not in ("cls", "mean"):
        raise ValueError(f"A depth baseline pools by 'cls' or 'mean', got {pooling!r}.")
    if pooling == "cls":
        return AutoModelForSequenceClassification
    if model_type != "bert":
        raise ValueError(f"A mean-pooled depth baseline is built on BERT only; this backbone is a {model_type!r}.")
    return MeanPooledBertForSequenceClassification


def build_static_baseline(base_path: str, label_names: list[str], baseline: StaticBaseline):
    """The pretrained backbone cut to `baseline.num_layers` layers, with a new classifier; every other weight must
    come from the checkpoint (a backbone of a family whose weights do not fit would be a random baseline)."""
    config = AutoConfig.from_pretrained(
        base_path, num_hidden_layers=baseline.num_layers, num_labels=len(label_names),
        id2label=dict(enumerate(label_names)), label2id={name: i for i, name in enumerate(label_names)},
    )
    if config.model_type not in ("bert", "roberta"):
        raise ValueError(f"Static baselines are built on BERT or RoBERTa backbones; {base_path} is a "
                         f"{config.model_type!r} model.")
    setattr(config, POOLING_FIELD, baseline.pooling)
    return from_pretrained_with_new_parts(
        model_class_for(baseline.pooling, config.model_type), base_path, ("classifier.",),
        f"a static baseline ({baseline.name}): the first {baseline.num_layers} pretrained layers and a new classifier",
        strict_new_parts=True, config=config,
    )


def finetune_static_baseline(model, tokenizer, dataset: DatasetDict, budget: FinetuningBudget,
                             baseline: StaticBaseline, work_dir: str | os.PathLike):
    """Fine-tune on the train split with the budget (no evaluation or checkpoints in between: the last epoch's
    weights are the baseline)."""
    encoded = tokenize_classification(DatasetDict(train=dataset["train"]), tokenizer, baseline.max_length)
    trainer = Trainer(
        model=model,
        args=training_arguments(
            work_dir, num_train_epochs=budget.num_train_epochs, learning_rate=budget.learning_rate,
            per_device_train_batch_size=budget.batch_size, warmup_steps=budget.warmup_ratio,
            weight_decay=budget.weight_decay, seed=budget.seed, data_seed=budget.seed,
            eval_strategy="no", save_strategy="no",
        ),
        train_dataset=encoded["train"],
        data_collator=DataCollatorWithPadding(tokenizer),
        processing_class=tokenizer,
    )
    attach_progress(trainer, f"fine-tuning the static baseline {baseline.name}").train()
    return trainer.model.eval()


def load_cached_baseline(folder: Path):
    config = json.loads((folder / "config.json").read_text())
    if config.get("is_encoder_decoder"):
        return BartForConditionalGeneration.from_pretrained(folder).eval()
    return model_class_for(config.get(POOLING_FIELD, "cls"), config["model_type"]).from_pretrained(folder).eval()


def cached_baseline(folder: Path, name: str, record: dict[str, Any], make: Callable[[Path], nn.Module]):
    """The baseline saved in `folder` if it is complete there, else `make(work_dir)` (build and fine-tune) saved
    there first, atomically (a half-written folder is never reused), with `record` as baseline.json."""
    if (folder / "config.json").is_file() and (folder / "model.safetensors").is_file():
        announce(f"static baseline {name}: reusing {folder}")
        return load_cached_baseline(folder)
    work_dir = folder.with_name(folder.name + ".work")
    model = make(work_dir)
    shutil.rmtree(work_dir, ignore_errors=True)
    partial = folder.with_name(folder.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    shutil.rmtree(folder, ignore_errors=True)  # an incomplete earlier attempt
    model.save_pretrained(partial)
    (partial / "baseline.json").write_text(json.dumps(record, indent=2, default=str))
    partial.replace(folder)  # nothing half-written is ever reused
    return load_cached_baseline(folder)


def cached_static_baseline(cache_dir: str | os.PathLike, base_path: str, label_names: list[str], tokenizer,
                           dataset: DatasetDict, budget: FinetuningBudget, baseline: StaticBaseline):
    """The fine-tuned baseline from `cache_dir` if it is there, else built, fine-tuned and saved there first."""

    def make(work_dir: Path):
        torch.manual_seed(budget.seed)  # the new classifier's initialisation
        model = build_static_baseline(base_path, label_names, baseline)
        return finetune_static_baseline(model, tokenizer, dataset, budget, baseline, work_dir)

    folder = Path(cache_dir) / baseline.cache_key(budget, base_path)
    return cached_baseline(folder, baseline.name, {"budget": budget.to_dict(), "baseline": asdict(baseline)}, make)


# -- seq2seq: fewer encoder or decoder layers -----------------------------------------------------------------------


@dataclass(frozen=True)
class GenerationBaseline:
    """One static seq2seq alternative: the starting BART with only its lowest `num_layers` layers on `side`
    ("decoder" or "encoder"), fine-tuned at `max_length` source tokens."""

    side: str
    num_layers: int
    max_length: int
    kind: str = "depth"
    """"depth" (fewer layers) or "full" (every layer: the benchmark's vanilla reference for a seq2seq model)."""

    @property
    def name(self) -> str:
        if self.kind == "full":
            return "vanilla BART, fine-tuned with the same budget"
        return f"first {self.num_layers} {self.side} layer{'s' if self.num_layers > 1 else ''}"

    def cache_key(self, budget: GenerationBudget, base_path: str) -> str:
        """A stable key of the budget (warm start included), the base model's weights file and this shape."""
        digest = identity_digest(budget, self, base_path)
        shape = "full" if self.kind == "full" else f"{self.side}{self.num_layers}l"
        return f"{Path(budget.dataset).stem}-seq2seq-{shape}-{self.max_length}t-{digest}"


def keep_lowest_layers(bart: BartForConditionalGeneration, side: str, num_layers: int) -> BartForConditionalGeneration:
    """Keep only the lowest `num_layers` layers of the BART's encoder or decoder (`side`), in place; the config
    says so (`encoder_layers` / `decoder_layers`), so the model saves and reloads with that depth."""
    if side not in ("encoder", "decoder"):
        raise ValueError(f"A seq2seq depth baseline cuts the 'encoder' or the 'decoder', got {side!r}.")
    stack = bart.get_encoder() if side == "encoder" else bart.get_decoder()
    total = len(stack.layers)
    if not 1 <= num_layers <= total:
        raise ValueError(f"A {side} of {total} layers cannot be cut to {num_layers}.")
    stack.layers = nn.ModuleList(list(stack.layers)[:num_layers])
    setattr(bart.config, f"{side}_layers", num_layers)
    return bart


def finetune_generation_baseline(model: BartForConditionalGeneration, tokenizer, dataset: DatasetDict,
                                 budget: GenerationBudget, baseline: GenerationBaseline,
                                 work_dir: str | os.PathLike) -> BartForConditionalGeneration:
    """Fine-tune with teacher forcing on the train split with the budget (no evaluation or checkpoints in between:
    the last epoch's weights are the baseline), then turn the key/value cache back on for generation."""
    encoded = tokenize_seq2seq(DatasetDict(train=dataset["train"]), tokenizer, baseline.max_length,
                               budget.max_target_length, decoder_start_token_id=model.config.decoder_start_token_id)
    trainer = Seq2SeqTrainer(
        model=model,
        args=training_arguments(
            work_dir, arguments_class=Seq2SeqTrainingArguments, num_train_epochs=budget.num_train_epochs,
            learning_rate=budget.learning_rate, per_device_train_batch_size=budget.batch_size,
            warmup_steps=budget.warmup_ratio, weight_decay=budget.weight_decay, seed=budget.seed,
            data_seed=budget.seed, eval_strategy="no", save_strategy="no", predict_with_generate=False,
        ),
        train_dataset=encoded["train"],
        data_collator=DataCollatorForSeq2Seq(tokenizer, model=model),
        processing_class=tokenizer,
    )
    attach_progress(trainer, f"fine-tuning the static baseline {baseline.name}").train()
    model = trainer.model.eval()
    model.config.use_cache = True  # the Trainer turns it off; generation wants it
    return model


def cached_generation_baseline(cache_dir: str | os.PathLike, base_path: str,
                               start: Callable[[], BartForConditionalGeneration], tokenizer, dataset: DatasetDict,
                               budget: GenerationBudget, baseline: GenerationBaseline) -> BartForConditionalGeneration:
    """The fine-tuned seq2seq baseline from `cache_dir` if it is there, else `start()` (the recipe's starting
    BART, built afresh) cut to the baseline's depth, fine-tuned and saved there first."""

    def make(work_dir: Path):
        model = keep_lowest_layers(start(), baseline.side, baseline.num_layers)
        return finetune_generation_baseline(model, tokenizer, dataset, budget, baseline, work_dir)

    folder = Path(cache_dir) / baseline.cache_key(budget, base_path)
    return cached_baseline(folder, baseline.name, {"budget": budget.to_dict(), "baseline": asdict(baseline)}, make)
