"""AdapLeR's three training phases (Modarressi et al., ACL 2022, section 3.3 and appendix D):

1. fine-tune the backbone on the task (plain `BertForSequenceClassification` on the stock `Trainer`), keeping
   every epoch's checkpoint so that the three best on validation can be found (`best_checkpoints`);
2. saliency extraction: gradient x input at the embedding output for the gold label, L2 norm over the hidden
   size, per token, averaged over those three checkpoints (`extract_saliency`), stored once with the training
   set (`save_saliency` / `load_saliency`, which refuses a saliency file that does not match the data);
3. adaptive length-reduction training (`AdapLeRTrainer`): the model's loss is CE + gamma * L_CP + phi * L_LENGTH
   with gradients routed so the weights see CE + gamma * L_CP and eta/theta see CE + phi * L_LENGTH; eta/theta get
   their own parameter group (own learning rate, no weight decay), lambda grows every epoch
   (`SoftRemovalScheduleCallback`) and eta stays in (0, 1] (`ClampAdaptiveParametersCallback`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import torch
from datasets import Dataset, load_from_disk
from transformers import (
    AutoModelForSequenceClassification,
    DataCollatorWithPadding,
    PreTrainedTokenizerBase,
    Trainer,
    TrainerCallback,
    TrainerState,
)

SALIENCY_COLUMN = "saliency"


# -- phase 1 -------------------------------------------------------------------------------------------------


def best_checkpoints(state: TrainerState, output_dir: str | os.PathLike, k: int = 3, metric: str = "eval_accuracy"):
    """The `k` checkpoints of a finished run with the best `metric` (ties: the later one), best first.

    Needs `save_strategy` == `eval_strategy` and no `save_total_limit`, so every evaluated step has a checkpoint.
    """
    scored = [(entry[metric], entry["step"]) for entry in state.log_history if metric in entry]
    ranked = sorted(scored, key=lambda item: (item[0], item[1]), reverse=True)[:k]
    checkpoints = [Path(output_dir) / f"checkpoint-{step}" for _, step in ranked]
    missing = [str(path) for path in checkpoints if not path.is_dir()]
    if missing:
        raise FileNotFoundError(f"Checkpoints chosen for saliency extraction are missing: {missing}")
    return checkpoints


# -- phase 2 -------------------------------------------------------------------------------------------------


def token_saliency(model: torch.nn.Module, batch: dict[str, torch.Tensor], labels: torch.Tensor) -> torch.Tensor:
    """Gradient x input saliency of every token for the gold label: (B, T), zero on padding.

    The "input" is the embedding layer's output (word + position + type embeddings after LayerNorm), where the
    paper takes it; the L2 norm over the hidden size turns each token's vector into one score.
    """
    captured: dict[str, torch.Tensor] = {}

    def keep_embedding_output(module, args, output):
        output.retain_grad()
        captured["embeddings"] = output

    was_training = model.training
    model.eval()
    handle = model.base_model.embeddings.register_forward_hook(keep_embedding_output)
    try:
        with torch.enable_grad():
            logits = model(**batch).logits  # (B, C)
            gold = logits.gather(1, labels.view(-1, 1)).sum()
            gold.backward()
        embeddings = captured["embeddings"]  # (B, T, H)
        saliency = (embeddings.grad * embeddings).norm(dim=-1)  # (B, T)
    finally:
        handle.remove()
        model.zero_grad(set_to_none=True)
        model.train(was_training)
    if "attention_mask" in batch:
        saliency = saliency * batch["attention_mask"]
    return saliency.detach()


def extract_saliency(
    checkpoints: Sequence[str | os.PathLike],
    encoded_train: Dataset,
    tokenizer: PreTrainedTokenizerBase,
    *,
    batch_size: int = 16,
) -> list[list[float]]:
    """Per-token saliency of every training example, averaged over `checkpoints` (the paper uses the three best
    fine-tuning checkpoints to smooth out their inconsistencies). One list per example, aligned with its
    `input_ids`."""
    if not checkpoints:
        raise ValueError("Saliency extraction needs at least one fine-tuned checkpoint.")
    collator = DataCollatorWithPadding(tokenizer)
    features = encoded_train.remove_columns([c for c in encoded_train.column_names
                                             if c not in ("input_ids", "attention_mask", "token_type_ids", "label")])
    totals: list[torch.Tensor] | None = None
    for checkpoint in checkpoints:
        model = AutoModelForSequenceClassification.from_pretrained(checkpoint)
        per_example = []
        for start in range(0, len(features), batch_size):
            batch = collator([features[i] for i in range(start, min(start + batch_size, len(features)))])
            labels = batch.pop("labels")
            saliency = token_saliency(model, batch, labels)  # (B, T)
            lengths = batch["attention_mask"].sum(dim=1)
            per_example.extend(row[: int(length)] for row, length in zip(saliency, lengths))
        totals = per_example if totals is None else [a + b for a, b in zip(totals, per_example)]
    return [(total / len(checkpoints)).tolist() for total in totals]


def save_saliency(encoded_train: Dataset, saliency: list[list[float]], path: str | os.PathLike) -> Dataset:
    """Store the training set with its saliency column (and the input ids it belongs to) on disk."""
    if len(saliency) != len(encoded_train):
        raise ValueError(f"{len(saliency)} saliency rows for {len(encoded_train)} training examples.")
    with_saliency = encoded_train.add_column(SALIENCY_COLUMN, saliency)
    check_saliency_alignment(with_saliency)
    with_saliency.save_to_disk(str(path))
    return with_saliency


def check_saliency_alignment(dataset: Dataset) -> None:
    """Every row's saliency must have one score per input token."""
    if SALIENCY_COLUMN not in dataset.column_names:
        raise ValueError("No saliency column: run phase 2 (saliency extraction) before adaptive length training.")
    for index, (ids, scores) in enumerate(zip(dataset["input_ids"], dataset[SALIENCY_COLUMN])):
        if len(ids) != len(scores):
            raise ValueError(f"Saliency row {index} has {len(scores)} scores for {len(ids)} tokens.")


def load_saliency(path: str | os.PathLike, encoded_train: Dataset) -> Dataset:
    """The stored training set with saliencies, after checking it is the same tokenized data as `encoded_train`
    (same examples, same token ids, same labels): a saliency file from other data is a clear error."""
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"No saliency file at {path}: run phase 2 (saliency extraction) first.")
    stored = load_from_disk(str(path))
    check_saliency_alignment(stored)
    if len(stored) != len(encoded_train) or stored["input_ids"] != encoded_train["input_ids"] or (
        stored["label"] != encoded_train["label"]
    ):
        raise ValueError(
            f"The saliency file at {path} does not match the training data (different examples, tokenization, "
            "max length or labels). Re-run phase 2 for this dataset."
        )
    return stored


class SaliencyCollator:
    """`DataCollatorWithPadding` that also right-pads the float `saliency` column with zeros."""

    def __init__(self, tokenizer: PreTrainedTokenizerBase):
        self.pad_tokens = DataCollatorWithPadding(tokenizer)

    def __call__(self, features: list[dict]) -> dict[str, torch.Tensor]:
        scores = [feature.pop(SALIENCY_COLUMN, None) for feature in features]
        batch = self.pad_tokens(features)
        if all(score is not None for score in scores):
            length = batch["input_ids"].shape[1]
            padded = torch.zeros(len(scores), length)  # (B, T)
            for row, score in enumerate(scores):
                padded[row, : len(score)] = torch.as_tensor(score, dtype=torch.float)
            batch[SALIENCY_COLUMN] = padded
        return batch


# -- phase 3 -------------------------------------------------------------------------------------------------


class SoftRemovalScheduleCallback(TrainerCallback):
    """lambda = lambda_init * lambda_growth ** epoch (appendix D: start small, end near-hard removal)."""

    def on_epoch_begin(self, args, state, control, model=None, **kwargs):
        epoch = int(round(state.epoch or 0))
        model.soft_removal_lambda = model.config.lambda_init * model.config.lambda_growth**epoch


class ClampAdaptiveParametersCallback(TrainerCallback):
    """Keep eta in (0, 1] and theta positive after every optimizer step."""

    def on_step_end(self, args, state, control, model=None, **kwargs):
        model.clamp_adaptive_parameters_()


class AdapLeRTrainer(Trainer):
    """Phase 3 on the stock Trainer: eta and theta get their own parameter group (own learning rate, no weight
    decay): the speed-up tuning objective of eq. 8, kept apart from the weights' objective (eq. 5)."""

    def __init__(self, *args, adaptive_learning_rate: float = 1e-2, **kwargs):
        self.adaptive_learning_rate = adaptive_learning_rate
        callbacks = list(kwargs.pop("callbacks", None) or [])
        callbacks += [SoftRemovalScheduleCallback(), ClampAdaptiveParametersCallback()]
        super().__init__(*args, callbacks=callbacks, **kwargs)

    def create_optimizer(self, model=None):
        if self.optimizer is None:
            model = model or self.model
            adaptive = {id(p) for p in model.adaptive_parameters()}
            decay_names = set(self.get_decay_parameter_names(model))
            groups = [
                {"params": [p for n, p in model.named_parameters()
                            if p.requires_grad and id(p) not in adaptive and n in decay_names],
                 "weight_decay": self.args.weight_decay},
                {"params": [p for n, p in model.named_parameters()
                            if p.requires_grad and id(p) not in adaptive and n not in decay_names],
                 "weight_decay": 0.0},
                {"params": list(model.adaptive_parameters()), "weight_decay": 0.0, "lr": self.adaptive_learning_rate},
            ]
            optimizer_class, optimizer_kwargs = self.get_optimizer_cls_and_kwargs(self.args, model)
            optimizer_kwargs.pop("lr", None)
            self.optimizer = optimizer_class(groups, lr=self.args.learning_rate, **optimizer_kwargs)
        return self.optimizer
