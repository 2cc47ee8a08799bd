"""AdapLeR configuration (Modarressi, Mohebbi, Pilehvar: "AdapLeR: Speeding up Inference by Adaptive Length
Reduction", ACL 2022).

This file is Hub code: it is copied next to the weights by `save_pretrained` and imported by
`trust_remote_code`, so it imports nothing but transformers and huggingface_hub.
"""

from dataclasses import dataclass

from huggingface_hub.dataclasses import strict, validated_field
from transformers import BertConfig, RobertaConfig

INFERENCE_MODES = ("remove", "mask", "off")


def check_inference_mode(value: str) -> None:
    """A field validator, so it runs on assignment as well as at construction (the mode is switched after
    training, e.g. to "off" for a full-length baseline)."""
    if value not in INFERENCE_MODES:
        raise ValueError(f"`inference_mode` must be one of {INFERENCE_MODES}; got {value!r}.")


def check_eta(value: list[float | int] | None) -> None:
    """A field validator (runs on assignment too: `sync_config_from_parameters` writes trained values back)."""
    if value is None:
        return
    bad = [v for v in value if not 0 < v <= 1]
    if bad:
        raise ValueError(f"every `eta` (the paper's η^ℓ, δ^ℓ = η^ℓ / n) must lie in (0, 1]; got {bad} in {value}.")


def check_theta(value: list[float | int] | None) -> None:
    """A field validator (runs on assignment too: `sync_config_from_parameters` writes trained values back)."""
    if value is None:
        return
    bad = [v for v in value if not v > 0]
    if bad:
        raise ValueError(f"every `theta` (the paper's θ^ℓ, the [CLS] amplification of eq. 7) must be > 0; got {bad}.")


# Copied from adaptive_zoo.models.deebert.configuration_deebert.check_encoder_classifier
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


# Copied from adaptive_zoo.models.deebert.configuration_deebert.ValidatedOnEveryAssignment
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
class AdapLeRConfigMixin(ValidatedOnEveryAssignment):
    """What the BERT and RoBERTa configurations of AdapLeR share: their fields (documented in `AdapLeRConfig`) and
    their validation."""

    # The zoo's common off switch (documented in `AdapLeRConfig`); type-checked at construction and on assignment by `@strict`.
    adaptive: bool = True
    contribution_predictor_hidden_size: int = 64
    eta: list[float | int] | None = validated_field(check_eta, default=None)
    theta: list[float | int] | None = validated_field(check_theta, default=None)
    beta: float | int = 0.05
    lambda_init: float | int = 10.0
    lambda_growth: float | int = 10.0
    gamma: float | int = 5e-3
    phi: float | int = 5e-4
    inference_mode: str = validated_field(check_inference_mode, default="remove")
    operating_point_stale: bool = False

    assignment_validators = ("validate_adaptive_length",)
    # `num_labels` is a property that sets `id2label`.
    fields_validated_on_assignment = (
        "problem_type", "id2label", "is_decoder", "add_cross_attention", "eta", "theta",
        "contribution_predictor_hidden_size", "beta", "lambda_init", "lambda_growth", "gamma", "phi",
    )

    def lambda_at_epoch(self, epoch: float) -> float:
        """The soft-removal λ of epoch `epoch` (0-based): lambda_init * lambda_growth ** epoch."""
        return float(self.lambda_init * self.lambda_growth**epoch)

    def validate_adaptive_length(self):
        """Part of `@strict` validation: runs at construction, and on every assignment (`ValidatedOnEveryAssignment`)."""
        num_layers = self.num_hidden_layers
        for name in ("eta", "theta"):
            value = getattr(self, name)
            if value is not None and len(value) != num_layers:
                raise ValueError(
                    f"`{name}` needs one value per hidden layer ({num_layers}); got {len(value)}: {value}."
                )
        if not self.contribution_predictor_hidden_size > 0:
            raise ValueError(
                f"`contribution_predictor_hidden_size` must be > 0; got {self.contribution_predictor_hidden_size}."
            )
        if not 0 < self.beta < 0.1:
            raise ValueError(f"`beta` (the paper's β, eq. 4) must lie in (0, 0.1), exclusive; got {self.beta}.")
        if not self.lambda_init > 0:
            raise ValueError(f"`lambda_init` (the paper's λ in the first epoch) must be > 0; got {self.lambda_init}.")
        if not self.lambda_growth >= 1:
            raise ValueError(f"`lambda_growth` (λ's per-epoch factor) must be >= 1; got {self.lambda_growth}.")
        if not self.gamma >= 0:
            raise ValueError(f"`gamma` (the paper's γ, weight of L_CP) must be >= 0; got {self.gamma}.")
        if not self.phi >= 0:
            raise ValueError(f"`phi` (the paper's φ, weight of L_LENGTH) must be >= 0; got {self.phi}.")
        check_encoder_classifier(self, "AdapLeR", "trains with the cross-entropy of a softmax over classes")


@strict
class AdapLeRConfig(AdapLeRConfigMixin, BertConfig):
    r"""
    Configuration of an [`AdapLeRBertForSequenceClassification`]: a BERT classifier with a Contribution Predictor
    (CP) before every layer that drops the tokens it deems unimportant, so deeper layers run on fewer tokens.
    Every BERT field of [`BertConfig`] applies unchanged, so any BERT checkpoint loads into it; the fields below
    are AdapLeR's own. Symbols follow the paper (section 3, appendices B and D).

    The class attribute `vanilla_model_type` (`"bert"`) names the vanilla transformers model this one adapts: its
    checkpoints load here by name, and without token removal the logits are those of its
    `BertForSequenceClassification` with the same weights (built by `AutoConfig.for_model(vanilla_model_type, ...)`).

    Args:
        adaptive (`bool`, *optional*, defaults to `True`):
            The off switch every model of the zoo has. `False` removes no token whatever `inference_mode` says, as
            `inference_mode="off"` does (which keeps working), in eval and in training mode: the logits equal those
            of a `BertForSequenceClassification` with the same weights (the model of `vanilla_model_type`), and a
            training step trains a plain BERT classifier (cross-entropy only) and marks the operating point stale.
            Must be a bool; anything else is refused when the config is built or the field is set.
        contribution_predictor_hidden_size (`int`, *optional*, defaults to 64):
            Width of each CP's MLP: `Linear(hidden_size, width) -> GELU -> Linear(width, 1)`, then a softmax over
            the tokens present in the row gives the estimated contributions S̃^ℓ (section 3.1). Must be > 0.
        eta (`list[float]`, *optional*, defaults to `None`):
            Initial per-layer η^ℓ, one per hidden layer, each in (0, 1]. The cutoff before layer ℓ is
            δ^ℓ = η^ℓ / n, with n the number of tokens present in that row: a token is kept iff S̃^ℓ >= δ^ℓ;
            [CLS] is always kept. A larger η drops more tokens. `None` means 1.0 (the uniform level) for every
            layer. η is a trainable parameter of the model (`model.eta`), initialised from this field; the
            trained values live in the weights, which win on loading (the config is then set to them), and
            `model.sync_config_from_parameters()` (run by `save_pretrained`) writes them back here, so the config
            documents what was trained. On a built model, change η through the weights
            (`model.eta.copy_(...)`, then `sync_config_from_parameters()`): assigning this field alone is refused
            by the next forward and by `save_pretrained`.
        theta (`list[float]`, *optional*, defaults to `None`):
            Initial per-layer θ^ℓ > 0, the amplification of the [CLS] saliency in the CP targets (eq. 7): larger θ
            trains the CPs to pool contribution into [CLS], which drops more tokens. `None` means 1.0 for every
            layer. Trainable (`model.theta`) like `eta`, through the dummy variable of appendix B.
        beta (`float`, *optional*, defaults to 0.05):
            β of the soft-removal function (eq. 4), the slope of its leaky zone for tokens above δ; must lie in
            (0, 0.1), exclusive, as in the paper.
        lambda_init (`float`, *optional*, defaults to 10.0):
            λ of the soft-removal function (eq. 4) in the first epoch; > 0. Training multiplies it by
            `lambda_growth` after every epoch: λ = lambda_init * lambda_growth ** epoch (see `lambda_at_epoch`).
            The λ reached is saved with the weights (`soft_removal_lambda_value`), so `inference_mode="mask"`
            after loading uses it, not this initial value.
        lambda_growth (`float`, *optional*, defaults to 10.0):
            Per-epoch growth factor of λ; >= 1. Table 4's schedules: "10^epoch" is (10, 10), "50^epoch" is
            (50, 50), "10 x 3^epoch" is (10, 3).
        gamma (`float`, *optional*, defaults to 5e-3):
            γ, the weight of the CP loss L_CP (eqs. 5, 6) in the main objective; >= 0.
        phi (`float`, *optional*, defaults to 5e-4):
            φ, the weight of the length loss L_LENGTH (eq. 8) in the speed-up objective of η and θ; >= 0.
            This implementation normalises L_LENGTH to a retained fraction in [0, 1] (the paper sums over tokens
            and layers), so φ is independent of sequence length and depth.
        inference_mode (`str`, *optional*, defaults to `"remove"`):
            What the model does in eval mode: `"remove"` really removes the tokens below δ (deeper layers compute
            on fewer tokens: the speed-up); `"mask"` applies the training-time soft removal (eq. 4) with the
            model's current λ, keeping every token (for analysis); `"off"` removes nothing and equals a
            `BertForSequenceClassification` with the same weights. In training mode the model uses soft removal
            unless the mode is `"off"`, which trains a plain BERT classifier (cross-entropy only).
        operating_point_stale (`bool`, *optional*, defaults to `False`):
            `True` once the weights were trained without the adaptive objective (a training step with
            `inference_mode="off"`, e.g. a stock `Trainer` fine-tune of the backbone alone): the contribution
            predictors and η were fitted to other weights, so the accuracy and speed of token removal are unknown.
            The model then warns on its first token-removing forward; `adaptive-zoo calibrate` re-chooses the scale
            of η on validation data and clears the flag.

    Example:

    ```python
    >>> from adaptive_zoo.models.adapler import AdapLeRConfig, AdapLeRBertForSequenceClassification

    >>> config = AdapLeRConfig(num_labels=2, lambda_init=50.0, lambda_growth=50.0)
    >>> model = AdapLeRBertForSequenceClassification(config)
    ```"""

    model_type = "adapler"
    # The transformers model this one adapts: same weight names, and its outputs without token removal.
    vanilla_model_type = "bert"
    # Removal statistics and loss terms stay out of `Trainer.predict`'s predictions (scripts `argmax` them).
    keys_to_ignore_at_inference = ["kept_tokens", "kept_masks", "ce_loss", "cp_loss", "length_loss"]


@strict
class AdapLeRRobertaConfig(AdapLeRConfigMixin, RobertaConfig):
    r"""
    Configuration of an [`AdapLeRRobertaForSequenceClassification`]: AdapLeR on a RoBERTa encoder. Every RoBERTa
    field of [`RobertaConfig`] applies unchanged, so any RoBERTa checkpoint loads into it; AdapLeR's own fields mean
    what they mean in [`AdapLeRConfig`]. With `inference_mode="off"` (or `adaptive=False`) the logits equal those of a
    `RobertaForSequenceClassification` with the same weights (`vanilla_model_type = "roberta"`).
    """

    model_type = "adapler_roberta"
    vanilla_model_type = "roberta"
    keys_to_ignore_at_inference = ["kept_tokens", "kept_masks", "ce_loss", "cp_loss", "length_loss"]


__all__ = ["AdapLeRConfig", "AdapLeRRobertaConfig"]
