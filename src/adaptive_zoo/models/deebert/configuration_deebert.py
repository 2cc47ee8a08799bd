"""DeeBERT configuration (Xin, Tang, Lee, Yu, Lin: "DeeBERT: Dynamic Early Exiting for Accelerating BERT
Inference", ACL 2020).

This file is Hub code: it is copied next to the weights by `save_pretrained` and imported by
`trust_remote_code`, so it imports nothing but transformers and huggingface_hub.
"""

from dataclasses import dataclass

from huggingface_hub.dataclasses import strict, validated_field
from transformers import BertConfig, RobertaConfig


def check_entropy_threshold(value: float | int | None) -> None:
    """A field validator, so it runs on assignment as well as at construction (the threshold is the knob
    users turn after training)."""
    if value is not None and not value >= 0:
        raise ValueError(
            f"`entropy_threshold` (the paper's S) must be >= 0 nats, or None to disable early exit; got {value}."
        )


def check_encoder_classifier(config, method: str, reason: str) -> None:
    """Part of a config's validation: `method` (its name, in messages) is a single-label classifier on an encoder,
    with two classes at least; `reason` says why it needs a softmax over classes."""
    if config.problem_type not in (None, "single_label_classification"):
        raise ValueError(
            f"{method} {reason}, so it supports only `problem_type='single_label_classification'`; "
            f"got {config.problem_type!r}."
        )
    if config.num_labels < 2:
        raise ValueError(f"{method} {reason}, so it needs `num_labels >= 2`; got {config.num_labels}.")
    if config.is_decoder or config.add_cross_attention:
        raise ValueError(
            f"{method} is an encoder-only classifier: `is_decoder` and `add_cross_attention` must be False."
        )


class ValidatedOnEveryAssignment:
    """`@strict` runs a field's own validator when the field is assigned, but the class validators (`validate_*`,
    which check fields against each other and against the backbone's, e.g. `problem_type` and `num_labels`) only
    at construction. A config class names its own class validators in `assignment_validators` and the fields they
    read in `fields_validated_on_assignment`; assigning one of those fields on a built config runs the validators
    again and undoes an assignment they refuse, so that the zoo's fields are valid at every moment, not only when
    built. (The backbone's own structural fields are left alone: transformers remaps them on config copies.)"""

    assignment_validators: tuple[str, ...] = ()
    fields_validated_on_assignment: tuple[str, ...] = ()

    def __setattr__(self, name, value):
        if name not in self.fields_validated_on_assignment or not self.__dict__.get("_post_init_done", False):
            super().__setattr__(name, value)  # another field, or the config is being built
            return
        before = dict(self.__dict__)
        super().__setattr__(name, value)
        try:
            for validator in self.assignment_validators:
                getattr(self, validator)()
        except (ValueError, TypeError):
            self.__dict__.clear()
            self.__dict__.update(before)
            raise


# Not a config class itself: a dataclass so that its fields join those of each configuration (after the backbone's),
# with no generated `__eq__` or `__repr__` of its own to hide `PreTrainedConfig`'s.
@dataclass(repr=False, eq=False)
class DeeBertConfigMixin(ValidatedOnEveryAssignment):
    """What DeeBERT's configurations share, whatever the backbone: its fields (documented in `DeeBertConfig`) and
    their validation."""

    # Exit information stays out of `Trainer.predict`'s predictions, so scripts can `argmax` them as logits.
    keys_to_ignore_at_inference = ["exit_layers", "ramp_logits"]
    assignment_validators = ("validate_early_exit",)
    # `num_labels` is a property that sets `id2label`.
    fields_validated_on_assignment = (
        "problem_type", "id2label", "is_decoder", "add_cross_attention", "off_ramp_pooling", "off_ramp_dropout",
    )

    # The zoo's common off switch (documented above); type-checked at construction and on assignment by `@strict`.
    adaptive: bool = True
    entropy_threshold: float | int | None = validated_field(check_entropy_threshold, default=None)
    off_ramp_pooling: str = "cls"
    off_ramp_dropout: float | int | None = None
    operating_point_stale: bool = False

    def validate_early_exit(self):
        """Part of `@strict` validation: runs at construction, and on every assignment (`ValidatedOnEveryAssignment`)."""
        check_deebert_fields(self)


@strict
class DeeBertConfig(DeeBertConfigMixin, BertConfig):
    r"""
    Configuration of a [`DeeBertForSequenceClassification`]: a BERT encoder with an off-ramp classifier after
    every layer and entropy-based early exit. Every BERT field of [`BertConfig`] applies unchanged, so any BERT
    checkpoint loads into it; the fields below are DeeBERT's own.

    The class attribute `vanilla_model_type` (`"bert"`) names the vanilla transformers model this one adapts: its
    checkpoints load here by name, and at full depth the logits are those of its `BertForSequenceClassification`
    with the same weights (built from this config by `AutoConfig.for_model(vanilla_model_type, ...)`).

    Args:
        adaptive (`bool`, *optional*, defaults to `True`):
            The off switch every model of the zoo has. `False` turns early exit off whatever `entropy_threshold`
            says, as `entropy_threshold=None` does (which keeps working): every sample runs every layer, and the
            logits equal those of a `BertForSequenceClassification` with the same weights (the model of
            `vanilla_model_type`). Training is unchanged: the joint objective over every classifier. Must be a
            bool; anything else is refused when the config is built or the field is set.
        entropy_threshold (`float`, *optional*, defaults to `None`):
            The paper's exit threshold *S*. At inference a sample leaves the network at the first layer whose
            off-ramp has a prediction entropy (natural log, in nats) strictly below *S*; a sample that never
            gets below it runs all layers and is classified by the final classifier. `None` turns early exit
            off: every sample runs every layer, and the logits equal those of a `BertForSequenceClassification`
            with the same weights. Must be `>= 0`; entropies lie in `[0, ln(num_labels)]`, so a threshold
            above `ln(num_labels)` makes every sample exit at the first layer. Training ignores it.
        off_ramp_pooling (`str`, *optional*, defaults to `"cls"`):
            What each intermediate off-ramp reads from its layer's output before its pooler (dense + tanh) and
            classifier: `"cls"`, the [CLS] state, as in the paper and as BERT's own pooler does; or `"mean"`, the
            mean over non-padding tokens, for backbones pretrained with mean pooling (e.g. sentence-transformers
            MiniLM), whose early-layer [CLS] state is nearly the same for every input. The final classifier
            always uses BERT's [CLS] pooler, so the full-depth model stays a plain BERT classifier.
        off_ramp_dropout (`float`, *optional*, defaults to `None`):
            Dropout probability before each off-ramp's classifier. `None` uses `classifier_dropout`, and if
            that is `None` too, `hidden_dropout_prob`, as the final classifier of BERT does.
        operating_point_stale (`bool`, *optional*, defaults to `False`):
            `True` once the weights were trained after `entropy_threshold` was chosen (the model sets it on a
            training step, e.g. in a stock `Trainer` fine-tune): S was tuned for other weights, so its accuracy
            and speed are unknown. The model then warns on its first early-exit forward; `adaptive-zoo calibrate`
            chooses S anew on validation data and clears the flag.

    Example:

    ```python
    >>> from adaptive_zoo.models.deebert import DeeBertConfig, DeeBertForSequenceClassification

    >>> config = DeeBertConfig(num_labels=5, entropy_threshold=0.3)
    >>> model = DeeBertForSequenceClassification(config)
    ```"""

    model_type = "deebert"
    # The transformers model this one adapts: same weight names, and its outputs at full depth.
    vanilla_model_type = "bert"


def check_deebert_fields(config) -> None:
    """The validation of DeeBERT's own fields, whatever the backbone."""
    if config.off_ramp_pooling not in ("cls", "mean"):
        raise ValueError(f"`off_ramp_pooling` must be 'cls' or 'mean'; got {config.off_ramp_pooling!r}.")
    if config.off_ramp_dropout is not None and not 0 <= config.off_ramp_dropout < 1:
        raise ValueError(f"`off_ramp_dropout` must be in [0, 1); got {config.off_ramp_dropout}.")
    check_encoder_classifier(config, "DeeBERT", "exits on the entropy of a softmax over classes")


@strict
class DeeRobertaConfig(DeeBertConfigMixin, RobertaConfig):
    r"""
    Configuration of a [`DeeRobertaForSequenceClassification`]: DeeBERT on a RoBERTa encoder (the paper's
    DeeBERT-RoBERTa). Every RoBERTa field of [`RobertaConfig`] applies unchanged, so any RoBERTa checkpoint loads into
    it; DeeBERT's own fields (`adaptive`, `entropy_threshold`, `off_ramp_pooling`, `off_ramp_dropout`,
    `operating_point_stale`) mean what they mean in [`DeeBertConfig`]. At full depth the logits are those of a
    `RobertaForSequenceClassification` with the same weights (`vanilla_model_type = "roberta"`): the final classifier
    is RoBERTa's own head over the `<s>` state (RoBERTa has no pooler in its classifier).
    """

    model_type = "deeroberta"
    vanilla_model_type = "roberta"


__all__ = ["DeeBertConfig", "DeeRobertaConfig"]
