"""Text columns made model input: the checks every split passes before tokenization (no empty texts, no texts
that are special tokens only, labels that fit the model) and the tokenization of classification and
sequence-to-sequence datasets. Shared by training, evaluation and calibration."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from datasets import DatasetDict
from transformers import PreTrainedTokenizerBase

__all__ = [
    "check_label_count",
    "check_texts",
    "check_token_content",
    "label_names_of",
    "target_special_tokens",
    "tokenize_classification",
    "tokenize_seq2seq",
]

def check_texts(texts: Iterable[str], where: str) -> None:
    """Refuse empty texts early: a model cannot say anything about them, and silently scoring [CLS][SEP]
    hides a data problem."""
    for index, text in enumerate(texts):
        if not isinstance(text, str) or not text.strip():
            raise ValueError(f"{where}: text #{index} is empty ({text!r}); remove or fill empty rows first.")


def check_token_content(texts: Iterable[str], input_ids: Iterable[Iterable[int]], tokenizer, where: str) -> None:
    """Refuse texts that tokenize to special tokens only ([CLS] [UNK] [SEP] for an emoji-only text): the same rule
    the saved classifiers apply in their forward (`check_inputs_have_content`), so the CLI, the Python API and
    `pipeline(...)` treat such input alike, here with the row's index in the data."""
    special = set(tokenizer.all_special_ids)
    for index, (text, ids) in enumerate(zip(texts, input_ids)):
        ids = [int(i) for i in ids]
        if set(ids) <= special:
            raise ValueError(
                f"{where}: text #{index} ({text!r}) holds only special tokens "
                f"({' '.join(tokenizer.convert_ids_to_tokens(ids))}): an empty, whitespace-only or unreadable (e.g. "
                "emoji-only) text, which the model cannot classify; remove such texts or replace them with text the "
                "tokenizer knows."
            )


def label_names_of(dataset: DatasetDict) -> list[str]:
    feature = dataset["train"].features["label"]
    if not hasattr(feature, "names"):
        raise ValueError("The dataset's `label` column must be a ClassLabel (class names known).")
    return list(feature.names)


def check_label_count(dataset: DatasetDict, num_labels: int) -> None:
    """A model with k outputs must see a dataset with k classes, and every label must be one of them."""
    names = label_names_of(dataset)
    if len(names) != num_labels:
        raise ValueError(
            f"The model has {num_labels} labels but the dataset has {len(names)} classes ({names}). "
            "Train a model for this dataset, or pass the dataset it was trained on."
        )
    for split, data in dataset.items():
        labels = np.asarray(data["label"])
        if labels.size and (labels.min() < 0 or labels.max() >= num_labels):
            raise ValueError(f"Split {split!r} has labels outside [0, {num_labels}).")


def tokenize_classification(
    dataset: DatasetDict, tokenizer: PreTrainedTokenizerBase, max_length: int
) -> DatasetDict:
    """Tokenize `text` with truncation to `max_length` (over-long texts are cut, not an error); padding is
    left to the collator so that batches pad to their own longest row."""
    model_max = getattr(tokenizer, "model_max_length", None)
    if model_max is not None and model_max < 10**6 and max_length > model_max:
        raise ValueError(f"max_length={max_length} exceeds the tokenizer's model_max_length={model_max}.")
    for split, data in dataset.items():
        check_texts(data["text"], f"split {split!r}")

    def encode(batch):
        return tokenizer(batch["text"], truncation=True, max_length=max_length)

    keep = {"label"}
    remove = [c for c in dataset["train"].column_names if c not in keep]
    encoded = dataset.map(encode, batched=True, remove_columns=remove, desc="Tokenizing")
    for split, data in encoded.items():
        check_token_content(dataset[split]["text"], data["input_ids"], tokenizer, f"split {split!r}")
    return encoded


def target_special_tokens(tokenizer: PreTrainedTokenizerBase, decoder_start_token_id: int | None = None
                          ) -> tuple[list[int], int]:
    """The token ids a target starts with (the tokenizer's BOS, unless that is the decoder start token the model
    prepends itself) and the EOS it ends with: the tokenizer's own EOS (`</s>` for BART's BPE), or [SEP] for a BERT
    WordPiece tokenizer, which has no EOS (the warm-started BART's convention)."""
    eos = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else tokenizer.sep_token_id
    if eos is None:
        raise ValueError(f"The tokenizer ({type(tokenizer).__name__}) has neither an EOS nor a [SEP] token: a "
                         "summary cannot be ended; use the base model's own tokenizer.")
    bos = tokenizer.bos_token_id
    prefix = [bos] if bos is not None and bos != decoder_start_token_id else []
    return prefix, eos


def tokenize_seq2seq(dataset: DatasetDict, tokenizer: PreTrainedTokenizerBase, max_source_length: int,
                     max_target_length: int, decoder_start_token_id: int | None = None) -> DatasetDict:
    """Sources as encoder inputs (the tokenizer's own special tokens, no token types: BART has none); targets as
    labels `[BOS] summary EOS` (see `target_special_tokens`: no BOS for a BERT tokenizer, `<s> ... </s>` for BART's),
    never starting with `decoder_start_token_id`, which the model prepends itself. Labels hold at most
    `max_target_length` tokens, EOS included."""
    for split, data in dataset.items():
        check_texts(data["text"], f"split {split!r} (source)")
        check_texts(data["summary"], f"split {split!r} (summary)")
    prefix, eos = target_special_tokens(tokenizer, decoder_start_token_id)
    body_length = max_target_length - 1 - len(prefix)
    if body_length < 1:
        raise ValueError(f"max_target_length={max_target_length} leaves no room for the summary between "
                         f"{len(prefix) + 1} special token(s); use at least {len(prefix) + 2}.")

    def encode(batch):
        features = tokenizer(batch["text"], truncation=True, max_length=max_source_length,
                             return_token_type_ids=False)
        targets = tokenizer(batch["summary"], add_special_tokens=False, truncation=True, max_length=body_length)
        features["labels"] = [prefix + ids + [eos] for ids in targets["input_ids"]]
        return features

    return dataset.map(encode, batched=True, remove_columns=dataset["train"].column_names)
