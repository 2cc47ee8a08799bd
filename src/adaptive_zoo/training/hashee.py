"""HashEE training: build the hash table from the training data, then fine-tune with the token exits on.

The paper has no extra loss or phase: each token exits at the layer its hash gives, in training exactly as in
inference (that consistency is the point of the method), and the model is fine-tuned with the task loss.
Classification runs on the stock `Trainer`, summarization on `Seq2SeqTrainer`. For the comparisons the
paper makes, the same backbone can be fine-tuned the same way without exits (`train_vanilla`).

No pretrained BART ships here, so summarization starts from a BART warm-started from a BERT checkpoint
(`training.warm_start.bart_from_bert`: encoder and decoder self-attention/FFN from BERT, cross-attention new).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from datasets import DatasetDict
from transformers import (
    AutoModel,
    AutoModelForSequenceClassification,
    BartForConditionalGeneration,
    DataCollatorForSeq2Seq,
    DataCollatorWithPadding,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    Seq2SeqTrainer,
    Seq2SeqTrainingArguments,
    Trainer,
)

from ..hashing import HASH_FUNCTIONS, HashTable, build_hash_table, load_hash_table
from ..models.hashee import (
    HashEEBartConfig,
    HashEEBartForConditionalGeneration,
    HashEEBertConfig,
    HashEEBertForSequenceClassification,
    HashEERobertaConfig,
    HashEERobertaForSequenceClassification,
)
from ..progress import attach_progress
from ..settings import positive_float, positive_int, setting
from .common import (
    NOT_CONFIG_FIELDS,
    Seq2SeqSettings,
    accuracy_metric,
    adaptive_config_from_base,
    adaptive_model_from,
    family_for,
    from_pretrained_with_new_parts,
    trainer_work_dir,
    training_arguments,
)


def known_hash_function(name: str) -> str:
    if name not in HASH_FUNCTIONS:
        raise ValueError(f"Unknown hash function {name!r}; known: {', '.join(HASH_FUNCTIONS)}.")
    return name


@dataclass
class HashEETrainingArguments(Seq2SeqSettings):
    """Everything a HashEE fine-tuning run takes (classification or summarization)."""

    num_train_epochs: float = setting(3.0, help="Fine-tuning epochs, token exits on.", metavar="E",
                                      check=positive_float)
    max_length: int = setting(128, help="Input tokens (summarization: source tokens): longer texts are truncated. "
                              "Saved as the tokenizer's model_max_length, so pipelines truncate to it too.",
                              metavar="L", check=positive_int)
    hash_function: str = setting("frequency", help="Which hash builds the token -> exit layer table (the paper's "
                                 "main choice is the frequency hash).", check=known_hash_function)
    num_buckets: int | None = setting(None, symbol="B", help="The number of distinct exit layers.",
                                      check=positive_int, default_text="one per encoder layer")
    hash_table: str | None = setting(None, help="A table file from `adaptive-zoo hash build`.",
                                     default_text="built from the training split")
    train_vanilla: bool = setting(False, help="Also fine-tune the backbone the same way without exits (the paper's "
                                  "baseline).")


def table_for(
    args: HashEETrainingArguments,
    tokenizer: PreTrainedTokenizerBase,
    train: Any,
    *,
    num_layers: int,
    vocab_size: int,
    embeddings: torch.Tensor | None,
) -> HashTable:
    """The prebuilt table named in `args` (checked against the model), or one built from the training split."""
    if args.hash_table is not None:
        table = load_hash_table(args.hash_table, vocab_size=vocab_size, num_layers=num_layers)
        if args.num_buckets is not None and table.num_buckets != args.num_buckets:
            raise ValueError(f"The table at {args.hash_table} has {table.num_buckets} buckets, not {args.num_buckets}.")
        return table
    labels = train["label"] if "label" in train.column_names else None
    return build_hash_table(
        args.hash_function, tokenizer=tokenizer, num_layers=num_layers, num_buckets=args.num_buckets or num_layers,
        texts=train["text"], labels=labels, embeddings=embeddings, seed=args.seed, max_length=args.max_length,
    )


def input_embeddings_for(hash_function: str, base_model: str) -> torch.Tensor | None:
    """The base model's input embedding matrix where the hash needs it (the clustered hash), else None."""
    if hash_function != "clustered":
        return None
    return AutoModel.from_pretrained(base_model).get_input_embeddings().weight.detach()


# -- classification ---------------------------------------------------------------------------------------------


#: The HashEE classifier family of each base-model type: its config and classifier classes.
HASHEE_CLASSIFIER_FAMILIES = (
    (HashEEBertConfig, HashEEBertForSequenceClassification),
    (HashEERobertaConfig, HashEERobertaForSequenceClassification),
)


def hashee_classifier_family(base_model: str):
    """(config class, model class) of the HashEE classifier that starts from `base_model`."""
    return family_for(base_model, HASHEE_CLASSIFIER_FAMILIES, "HashEE classifiers start")


def build_hashee_bert(base_model: str, label_names: list[str], table: HashTable, special_token_ids: list[int], *,
                      fine_tuned: bool = False):
    """A HashEE classifier (HashEE-BERT, or HashEE-RoBERTa from a RoBERTa checkpoint) from a pretrained or
    fine-tuned checkpoint, with `table` attached (`special_token_ids` keep the table's layer under the
    per-occurrence random hash). With `fine_tuned` the checkpoint is a classifier fine-tuned on these labels, whose
    head is kept (its absence is an error)."""
    config_class, model_class = hashee_classifier_family(base_model)
    config = adaptive_config_from_base(base_model, config_class, label_names, num_buckets=table.num_buckets,
                                       hash_function=table.hash_function)
    head = ("the fine-tuned classifier's head is kept" if fine_tuned else
            f"the classifier ({len(label_names)} labels), trained with the token exits on")
    table_prefix = f"{model_class.base_model_prefix}.encoder.hash_table"
    model = from_pretrained_with_new_parts(
        model_class, base_model, (table_prefix,) if fine_tuned else ("classifier.", table_prefix),
        f"new weights, as expected: the hash table (filled from the table built for this run); {head}",
        config=config, strict_new_parts=fine_tuned,
    )
    model.set_hash_table(table.exit_layers, special_token_ids=special_token_ids)
    return model


def vanilla_bert(base_model: str, label_names: list[str]) -> PreTrainedModel:
    return from_pretrained_with_new_parts(
        AutoModelForSequenceClassification, base_model, ("classifier.",),
        f"new weights, as expected: the vanilla model's classifier ({len(label_names)} labels), trained next",
        num_labels=len(label_names), id2label=dict(enumerate(label_names)),
        label2id={name: i for i, name in enumerate(label_names)},
    )


def finetune_classifier(model: PreTrainedModel, tokenizer, encoded: DatasetDict, args: HashEETrainingArguments,
                        name: str) -> Trainer:
    """Fine-tune with the task loss, evaluating every epoch; the best epoch on validation is loaded at the end."""
    trainer = Trainer(
        model=model,
        args=training_arguments(
            trainer_work_dir(args.output_dir) / name, num_train_epochs=args.num_train_epochs,
            learning_rate=args.learning_rate, warmup_steps=0.06, weight_decay=0.01,
            per_device_train_batch_size=args.batch_size, load_best_model_at_end=True,
            metric_for_best_model="accuracy", seed=args.seed, data_seed=args.seed, **args.trainer_overrides,
        ),
        train_dataset=encoded["train"], eval_dataset=encoded["validation"],
        data_collator=DataCollatorWithPadding(tokenizer), processing_class=tokenizer, compute_metrics=accuracy_metric,
    )
    attach_progress(trainer, f"fine-tuning ({name})").train()
    return trainer


# -- summarization ----------------------------------------------------------------------------------------------


def build_hashee_bart(bart: BartForConditionalGeneration, table: HashTable, special_token_ids: list[int]):
    """HashEE-BART from a BART in memory (every weight name matches), with `table` attached."""
    base = {k: v for k, v in bart.config.to_dict().items() if k not in NOT_CONFIG_FIELDS}
    config = HashEEBartConfig(**base, num_buckets=table.num_buckets, hash_function=table.hash_function)
    model = adaptive_model_from(
        HashEEBartForConditionalGeneration, config, bart, ("model.encoder.hash_table",),
        "new weights, as expected: the hash table (filled from the table built for this run)",
    )
    model.set_hash_table(table.exit_layers, special_token_ids=special_token_ids)
    return model


def finetune_seq2seq(model: PreTrainedModel, tokenizer, encoded: DatasetDict, args: HashEETrainingArguments,
                     name: str) -> Seq2SeqTrainer:
    """Fine-tune with teacher forcing; each epoch is evaluated by validation loss (generation-based scores are
    measured once on the final model, since generating every epoch on CPU costs more than the epoch)."""
    seq2seq_args = training_arguments(
        trainer_work_dir(args.output_dir) / name, arguments_class=Seq2SeqTrainingArguments,
        num_train_epochs=args.num_train_epochs, learning_rate=args.learning_rate, warmup_steps=0.06,
        weight_decay=0.01, per_device_train_batch_size=args.batch_size, per_device_eval_batch_size=args.batch_size,
        load_best_model_at_end=True, metric_for_best_model="loss", greater_is_better=False,
        predict_with_generate=False, seed=args.seed, data_seed=args.seed, **args.trainer_overrides,
    )
    trainer = Seq2SeqTrainer(
        model=model, args=seq2seq_args, train_dataset=encoded["train"], eval_dataset=encoded["validation"],
        data_collator=DataCollatorForSeq2Seq(tokenizer, model=model), processing_class=tokenizer,
    )
    attach_progress(trainer, f"fine-tuning ({name})").train()
    return trainer
