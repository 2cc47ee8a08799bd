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

The operating point (the phase-3 checkpoint and the scale of its learned eta) is chosen on validation afterwards,
by `adaptive_zoo.evaluation.operating_points.choose_eta_scale`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from datasets import Dataset, DatasetDict, load_from_disk
from transformers import (
    AutoModelForSequenceClassification,
    DataCollatorWithPadding,
    PreTrainedTokenizerBase,
    Trainer,
    TrainerCallback,
    TrainerState,
)

from ..data import tokenize_classification
from ..models.adapler import (
    AdapLeRBertForSequenceClassification,
    AdapLeRConfig,
    AdapLeRRobertaConfig,
    AdapLeRRobertaForSequenceClassification,
)
from ..progress import announce, attach_progress, steps
from ..settings import (
    RecipeSettings,
    non_negative_float,
    number,
    one_of,
    positive_float,
    positive_int,
    setting,
)
from .common import (
    accuracy_metric,
    adaptive_config_from_base,
    family_for,
    from_pretrained_with_new_parts,
    trainer_work_dir,
    training_arguments,
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


def finished_run_state(output_dir: str | os.PathLike) -> TrainerState:
    """The trainer state of a finished run in `output_dir`, read from its last checkpoint."""
    checkpoints = sorted(Path(output_dir).glob("checkpoint-*"), key=lambda path: int(path.name.split("-")[-1]))
    if not checkpoints or not (checkpoints[-1] / "trainer_state.json").is_file():
        raise FileNotFoundError(f"No finished run with checkpoints in {output_dir}.")
    return TrainerState.load_from_json(str(checkpoints[-1] / "trainer_state.json"))


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
    announce(f"phase 2/3 (saliency, gradient x input): {len(checkpoints)} checkpoints x {len(features):,} training "
             f"examples = {len(checkpoints) * len(features):,} forward+backward passes")
    for index, checkpoint in enumerate(checkpoints, start=1):
        model = AutoModelForSequenceClassification.from_pretrained(checkpoint)
        per_example = []
        for start in steps(range(0, len(features), batch_size),
                           f"phase 2/3 (saliency), checkpoint {index}/{len(checkpoints)}, batches of {batch_size}"):
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
        model.soft_removal_lambda = model.config.lambda_at_epoch(epoch)


class ClampAdaptiveParametersCallback(TrainerCallback):
    """Keep eta in (0, 1] and theta positive after every optimizer step."""

    def on_step_end(self, args, state, control, model=None, **kwargs):
        model.clamp_adaptive_parameters_()


class AdapLeRTrainer(Trainer):
    """Phase 3 on the stock Trainer: eta and theta get their own parameter group (own learning rate, no weight
    decay): the speed-up tuning objective of eq. 8, kept apart from the weights' objective (eq. 5).

    The contribution predictors start from random weights while the backbone is already fine-tuned, so they may
    get their own learning rate too (`contribution_predictor_learning_rate`; None: the backbone's).
    """

    def __init__(self, *args, adaptive_learning_rate: float = 1e-2,
                 contribution_predictor_learning_rate: float | None = None, **kwargs):
        self.adaptive_learning_rate = adaptive_learning_rate
        self.contribution_predictor_learning_rate = contribution_predictor_learning_rate
        callbacks = list(kwargs.pop("callbacks", None) or [])
        callbacks += [SoftRemovalScheduleCallback(), ClampAdaptiveParametersCallback()]
        super().__init__(*args, callbacks=callbacks, **kwargs)

    def create_optimizer(self, model=None):
        if self.optimizer is None:
            model = model or self.model
            adaptive = {id(p) for p in model.adaptive_parameters()}
            predictor_lr = self.contribution_predictor_learning_rate
            predictors = set() if predictor_lr is None else {id(p) for p in model.contribution_predictors.parameters()}
            decay_names = set(self.get_decay_parameter_names(model))
            trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad and id(p) not in adaptive]
            groups = []
            for members, learning_rate in ((lambda p: id(p) not in predictors, self.args.learning_rate),
                                           (lambda p: id(p) in predictors, predictor_lr)):
                for decays in (True, False):
                    params = [p for n, p in trainable if members(p) and (n in decay_names) == decays]
                    if params:
                        groups.append({"params": params, "lr": learning_rate,
                                       "weight_decay": self.args.weight_decay if decays else 0.0})
            groups.append(
                {"params": list(model.adaptive_parameters()), "weight_decay": 0.0, "lr": self.adaptive_learning_rate}
            )
            optimizer_class, optimizer_kwargs = self.get_optimizer_cls_and_kwargs(self.args, model)
            optimizer_kwargs.pop("lr", None)
            self.optimizer = optimizer_class(groups, lr=self.args.learning_rate, **optimizer_kwargs)
        return self.optimizer


def eta_scale(value) -> float:
    """One factor in (0, 1] for the learned η (scaling it up would leave η's range)."""
    scale = number(value)
    if not 0.0 < scale <= 1.0:
        raise ValueError(f"must be factors in (0, 1], got {value}")
    return scale


# -- presets (appendix D, Tables 3 and 4) ----------------------------------------------------------------------


def _preset(epochs, lr, max_length, batch_size, gamma, phi, lambda_init, lambda_growth, adaptive_epochs=None):
    return dict(num_train_epochs=epochs, learning_rate=lr, max_length=max_length, batch_size=batch_size,
                gamma=gamma, phi=phi, lambda_init=lambda_init, lambda_growth=lambda_growth,
                adaptive_epochs=adaptive_epochs or epochs)


# Table 3 (epochs, learning rate, max length, batch size) and Table 4 (gamma, phi, lambda = init * growth^epoch).
# MRPC's length-reduction training runs 10 epochs (appendix D). The phase-3 learning rate is 3e-5 for all.
ADAPLER_PRESETS: dict[str, dict] = {
    "sst2": _preset(5, 2e-5, 64, 32, 5e-3, 5e-4, 10, 10),
    "imdb": _preset(5, 2e-5, 512, 16, 5e-3, 5e-4, 10, 10),
    "hatexplain": _preset(5, 3e-5, 72, 32, 5e-2, 2e-2, 50, 50),
    "mrpc": _preset(5, 2e-5, 128, 32, 3e-2, 5e-2, 10, 3, adaptive_epochs=10),
    "mnli": _preset(3, 2e-5, 128, 32, 5e-3, 5e-4, 50, 50),
    "qnli": _preset(5, 2e-5, 128, 32, 5e-3, 1e-4, 10, 10),
    "ag_news": _preset(5, 2e-5, 128, 32, 1e-1, 1e-1, 10, 10),
    "dbpedia": _preset(3, 2e-5, 128, 32, 1e-1, 1e-1, 50, 50),
}


@dataclass
class AdapLeRTrainingArguments(RecipeSettings):
    """Everything the three phases take. `ADAPLER_PRESETS` holds the paper's per-dataset values (Tables 3-4)."""

    num_train_epochs: float = setting(3.0, help="Phase 1 (fine-tuning) epochs; every epoch is checkpointed so the 3 "
                                      "best can be averaged in phase 2.", metavar="E", check=positive_float)
    learning_rate: float = setting(2e-5, help="Phase 1 learning rate.", metavar="LR", check=positive_float)
    preset: str | None = setting(None, help="The paper's hyperparameters for a dataset (Tables 3-4): "
                                 + ", ".join(ADAPLER_PRESETS) + "; explicit flags override it.",
                                 check=one_of(*ADAPLER_PRESETS), default_text="none")
    adaptive_epochs: float = setting(3.0, help="Phase 3 epochs; lambda grows once per epoch, so this also sets how "
                                     "hard the final removal is.", metavar="E", check=positive_float)
    adaptive_learning_rate: float = setting(3e-5, help="Phase 3 learning rate of the weights (the paper's 3e-5).",
                                            metavar="LR", check=positive_float)
    eta_theta_learning_rate: float = setting(1e-2, help="Phase 3 learning rate of eta and theta, in their own "
                                             "parameter group (not given in the paper).", metavar="LR",
                                             check=positive_float)
    contribution_predictor_learning_rate: float | None = setting(
        1e-3, help="Phase 3 learning rate of the contribution predictors (None: --adaptive-learning-rate, as in the "
        "paper's code). They start from random weights; at 3e-5 they need the many thousand steps of the paper's "
        "datasets to move from their near-uniform start (docs/notes/investigations.md).", metavar="LR", check=positive_float)
    gamma: float = setting(5e-3, symbol="γ", help="Weight of the contribution-predictor loss, eq. 5.",
                           check=non_negative_float)
    phi: float = setting(5e-4, symbol="ϕ", help="Weight of the length loss, eq. 8.", check=non_negative_float)
    lambda_init: float = setting(10.0, symbol="λ₀", help="Initial lambda of the soft removal.", check=positive_float)
    lambda_growth: float = setting(10.0, help="lambda = init * growth ** epoch.", check=positive_float)
    saliency_checkpoints: int = setting(3, help="Phase 2 averages the saliencies of this many best phase-1 "
                                        "checkpoints.", check=positive_int, flag=False)
    eta_scales: tuple[float, ...] = setting((1.0, 0.95, 0.9, 0.85, 0.8, 0.75, 0.7), symbol="η", many=True,
                                            check=eta_scale, help="Factors in (0, 1] the learned eta may be scaled "
                                            "by when the operating point is chosen on validation; 1.0 alone keeps "
                                            "the paper's learned eta.")
    phase3_init: str = setting("finetuned", help="Phase 3 starts from the best phase-1 checkpoint (finetuned) or from "
                               "the base model (pretrained).", check=one_of("finetuned", "pretrained"), flag=False)
    reuse_phases_from: str | None = setting(None, help="Output folder of an earlier run on the same data: reuse its "
                                            "phase-1 checkpoints and saliencies, run phase 3 only.",
                                            default_text="run all three phases")
    keep_checkpoints: bool = setting(False, help="Keep the Trainer checkpoints in OUTPUT_DIR-training after a "
                                     "successful run; without it, only the checkpoints' optimizer states are "
                                     "removed: their weights and the saliencies stay for --reuse-phases-from.")
    accuracy_budget: float = setting(1.0, help="Accuracy points the adaptive model may lose on validation against "
                                     "phase 1 (chooses the operating point).", check=non_negative_float)

    @classmethod
    def from_preset(cls, preset: str | None = None, **given):
        """The paper's values for `preset` where a field is not `given`."""
        if preset is not None and preset not in ADAPLER_PRESETS:
            raise ValueError(f"Unknown AdapLeR preset {preset!r}; known: {', '.join(sorted(ADAPLER_PRESETS))}.")
        return cls(preset=preset, **{**(ADAPLER_PRESETS[preset] if preset else {}), **given})


#: The AdapLeR family of each base-model type: its config and classifier classes.
ADAPLER_FAMILIES = (
    (AdapLeRConfig, AdapLeRBertForSequenceClassification),
    (AdapLeRRobertaConfig, AdapLeRRobertaForSequenceClassification),
)


def adapler_family(base_model: str):
    """(config class, model class) of the AdapLeR family that starts from `base_model`."""
    return family_for(base_model, ADAPLER_FAMILIES, "AdapLeR starts")


def build_adapler(base_model: str, label_names: list[str], **config_overrides):
    """An AdapLeR classifier warm-started from a BERT or RoBERTa checkpoint (pretrained or fine-tuned); CPs start
    fresh."""
    config_class, model_class = adapler_family(base_model)
    config = adaptive_config_from_base(base_model, config_class, label_names, **config_overrides)
    return from_pretrained_with_new_parts(
        model_class, base_model, ("classifier.", "contribution_predictors.", "eta", "theta"),
        f"new weights, as expected: AdapLeR's contribution predictors (layers 1..{config.num_hidden_layers}) and "
        "eta/theta, trained in phase 3 (and the classifier, where the checkpoint has none)",
        config=config,
    )


# -- the three phases ------------------------------------------------------------------------------------------


def finetune_backbone(base_model: str, label_names, tokenizer, encoded: DatasetDict, args: AdapLeRTrainingArguments):
    """Phase 1: plain BERT fine-tuning, every epoch checkpointed and evaluated. Returns the trainer and the
    phase-1 output folder (where the checkpoints are)."""
    model = from_pretrained_with_new_parts(
        AutoModelForSequenceClassification, base_model, ("classifier.",),
        f"new weights, as expected: the classifier ({len(label_names)} labels), trained in phase 1",
        num_labels=len(label_names), id2label=dict(enumerate(label_names)),
        label2id={name: i for i, name in enumerate(label_names)},
    )
    output = trainer_work_dir(args.output_dir) / "phase1"
    trainer = Trainer(
        model=model,
        args=training_arguments(
            output, num_train_epochs=args.num_train_epochs, learning_rate=args.learning_rate, warmup_steps=0.06,
            weight_decay=0.1, per_device_train_batch_size=args.batch_size, save_total_limit=None,
            seed=args.seed, data_seed=args.seed, **args.trainer_overrides,
        ),
        train_dataset=encoded["train"], eval_dataset=encoded["validation"],
        data_collator=DataCollatorWithPadding(tokenizer), processing_class=tokenizer, compute_metrics=accuracy_metric,
    )
    attach_progress(trainer, "phase 1/3 (fine-tuning, every epoch checkpointed)").train()
    return trainer, output


def train_length_reduction(model, tokenizer, train_with_saliency: Dataset, validation: Dataset,
                           args: AdapLeRTrainingArguments) -> tuple[AdapLeRTrainer, Path]:
    """Phase 3: adaptive length-reduction training, a checkpoint per epoch (the speed-up grows as lambda does)."""
    output = trainer_work_dir(args.output_dir) / "phase3"
    trainer = AdapLeRTrainer(
        model=model,
        args=training_arguments(
            output, num_train_epochs=args.adaptive_epochs, learning_rate=args.adaptive_learning_rate,
            warmup_steps=0.06, weight_decay=0.1, per_device_train_batch_size=args.batch_size, save_total_limit=None,
            seed=args.seed, data_seed=args.seed, **args.trainer_overrides,
        ),
        train_dataset=train_with_saliency, eval_dataset=validation,
        data_collator=SaliencyCollator(tokenizer), processing_class=tokenizer, compute_metrics=accuracy_metric,
        adaptive_learning_rate=args.eta_theta_learning_rate,
        contribution_predictor_learning_rate=args.contribution_predictor_learning_rate,
    )
    attach_progress(trainer, "phase 3/3 (adaptive length reduction)").train()
    return trainer, output


@dataclass
class AdapLeRPhases:
    """What the three phases leave for choosing the operating point."""

    phase3: AdapLeRTrainer
    phase3_checkpoints: list[Path]
    """Every evaluated phase-3 checkpoint, in training order (the operating point is chosen among them)."""
    saliency_checkpoints: list[Path]
    """The best phase-1 checkpoints, best first: the saliencies' sources; the first is the fine-tuned model."""
    phase1_dir: Path
    phase1_accuracy: float
    """Phase 1's best validation accuracy: what the accuracy budget is counted from."""
    phase1_from_base: bool = False
    """Phase 1 was not run: the base model is a classifier fine-tuned on the task, and stands for it."""

    def record(self) -> dict:
        if self.phase1_from_base:
            return {"phase1_validation_accuracy": self.phase1_accuracy,
                    "saliency_checkpoints": [str(c) for c in self.saliency_checkpoints],
                    "phase1_from_fine_tuned_base": str(self.phase1_dir)}
        return {"phase1_validation_accuracy": self.phase1_accuracy,
                "saliency_checkpoints": [c.name for c in self.saliency_checkpoints],
                "phases_1_2_from": str(self.phase1_dir.parent)}


def fine_tuned_accuracy(model_path: str | os.PathLike, tokenizer, encoded: DatasetDict,
                        args: AdapLeRTrainingArguments) -> float:
    """Validation accuracy of a classifier fine-tuned on the task: what phase 1 would have reported for it."""
    model = AutoModelForSequenceClassification.from_pretrained(model_path)
    trainer = Trainer(
        model=model,
        args=training_arguments(trainer_work_dir(args.output_dir) / "phase1-base", per_device_eval_batch_size=32,
                                seed=args.seed, **args.trainer_overrides),
        eval_dataset=encoded["validation"], data_collator=DataCollatorWithPadding(tokenizer),
        processing_class=tokenizer, compute_metrics=accuracy_metric,
    )
    return float(trainer.evaluate()["eval_accuracy"])


def train_adapler(base_model: str, label_names: list[str], tokenizer, dataset: DatasetDict,
                  args: AdapLeRTrainingArguments, *, fine_tuned: bool = False) -> AdapLeRPhases:
    """AdapLeR's three phases: fine-tune (every epoch kept), saliency from the best checkpoints, adaptive
    length-reduction training from the best one. With `args.reuse_phases_from` (the output folder of an earlier
    run on the same data) phases 1-2 are read from its checkpoints and stored saliencies; a saliency file that does
    not match this run's training data is an error. With `fine_tuned` (`base_model` is a classifier fine-tuned on
    these labels) that checkpoint is phase 1's result: the saliencies come from it, and phase 3 starts from it."""
    encoded = tokenize_classification(dataset, tokenizer, args.max_length)
    if fine_tuned:
        if args.reuse_phases_from is not None:
            raise ValueError("--reuse-phases-from reads phases 1-2 of an earlier run; a fine-tuned classifier as "
                             "--base-model already stands for phase 1: give one or the other.")
        announce("phase 1/3 skipped: the base model is already a fine-tuned classifier; saliencies come from it")
        base = Path(base_model)
        accuracy = fine_tuned_accuracy(base_model, tokenizer, encoded, args)
        saliency = extract_saliency([base], encoded["train"], tokenizer)
        train_with_saliency = save_saliency(encoded["train"], saliency, trainer_work_dir(args.output_dir) / "saliency")
        model = build_adapler(base_model, label_names, gamma=args.gamma, phi=args.phi, lambda_init=args.lambda_init,
                              lambda_growth=args.lambda_growth)
        phase3, phase3_dir = train_length_reduction(model, tokenizer, train_with_saliency, encoded["validation"], args)
        return AdapLeRPhases(phase3=phase3, phase3_checkpoints=epoch_checkpoints(phase3.state, phase3_dir),
                             saliency_checkpoints=[base], phase1_dir=base, phase1_accuracy=accuracy,
                             phase1_from_base=True)
    if args.reuse_phases_from is None:
        phase1, phase1_dir = finetune_backbone(base_model, label_names, tokenizer, encoded, args)
        phase1_state = phase1.state
    else:
        phase1_dir = trainer_work_dir(args.reuse_phases_from) / "phase1"
        phase1_state = finished_run_state(phase1_dir)
    checkpoints = best_checkpoints(phase1_state, phase1_dir, k=args.saliency_checkpoints)
    phase1_accuracy = max(e["eval_accuracy"] for e in phase1_state.log_history if "eval_accuracy" in e)
    if args.reuse_phases_from is None:
        saliency = extract_saliency(checkpoints, encoded["train"], tokenizer)
        train_with_saliency = save_saliency(encoded["train"], saliency, trainer_work_dir(args.output_dir) / "saliency")
    else:
        train_with_saliency = load_saliency(trainer_work_dir(args.reuse_phases_from) / "saliency", encoded["train"])

    init = str(checkpoints[0]) if args.phase3_init == "finetuned" else base_model
    model = build_adapler(init, label_names, gamma=args.gamma, phi=args.phi, lambda_init=args.lambda_init,
                          lambda_growth=args.lambda_growth)
    phase3, phase3_dir = train_length_reduction(model, tokenizer, train_with_saliency, encoded["validation"], args)
    return AdapLeRPhases(phase3=phase3, phase3_checkpoints=epoch_checkpoints(phase3.state, phase3_dir),
                         saliency_checkpoints=checkpoints, phase1_dir=phase1_dir, phase1_accuracy=phase1_accuracy)


def epoch_checkpoints(state: TrainerState, output_dir: str | os.PathLike) -> list[Path]:
    """Every evaluated checkpoint of a run, in training order."""
    steps = [entry["step"] for entry in state.log_history if "eval_accuracy" in entry]
    return [Path(output_dir) / f"checkpoint-{step}" for step in steps if (Path(output_dir) / f"checkpoint-{step}").is_dir()]
