"""Depth-Adaptive Transformer configuration (Elbayad, Gu, Grave, Auli: "Depth-Adaptive Transformer", ICLR 2020).

This file is Hub code: it is copied next to the weights by `save_pretrained` and imported by
`trust_remote_code`, so it imports nothing but transformers and huggingface_hub.
"""

from huggingface_hub.dataclasses import strict, validated_field
from transformers import BartConfig

TRAINING_REGIMES = ("aligned", "mixed")
EXIT_PREDICTIONS = ("sequence", "multinomial", "geometric", "confidence")
ORACLES = ("likelihood", "correctness")


def check_training_regime(value: str) -> None:
    """A field validator: runs at construction and on every assignment."""
    if value not in TRAINING_REGIMES:
        raise ValueError(f"`training_regime` must be one of {TRAINING_REGIMES}; got {value!r}.")


def check_exit_prediction(value: str) -> None:
    """A field validator: runs at construction and on every assignment."""
    if value not in EXIT_PREDICTIONS:
        raise ValueError(f"`exit_prediction` must be one of {EXIT_PREDICTIONS}; got {value!r}.")


def check_oracle(value: str) -> None:
    """A field validator: runs at construction and on every assignment."""
    if value not in ORACLES:
        raise ValueError(f"`oracle` must be one of {ORACLES}; got {value!r}.")


def check_exit_loss_weights(value: list[float | int] | None) -> None:
    """A field validator (the length, one weight per decoder block, is checked by the class validator)."""
    if value is None:
        return
    bad = [v for v in value if isinstance(v, bool) or not v >= 0]
    if bad:
        raise ValueError(f"every `exit_loss_weights` (the paper's omega_n) must be >= 0; got {bad} in {value}.")
    if not sum(value) > 0:
        raise ValueError(f"`exit_loss_weights` (the paper's omega_n) must not all be 0; got {value}.")


def check_confidence_thresholds(value: list[float | int] | None) -> None:
    """A field validator, so that thresholds set after training (the tuned T_n) are checked on assignment too."""
    if value is None:
        return
    bad = [v for v in value if isinstance(v, bool) or not 0 <= v <= 1]
    if bad:
        raise ValueError(
            f"every `confidence_thresholds` value (the paper's T_n, a probability) must lie in [0, 1]; got {bad} in "
            f"{value}."
        )


def check_probability(name: str):
    def check(value: float | int) -> None:
        if isinstance(value, bool) or not 0 <= value <= 1:
            raise ValueError(f"`{name}` must lie in [0, 1]; got {value!r}.")

    return check


def check_positive(name: str, symbol: str):
    def check(value: float | int) -> None:
        if isinstance(value, bool) or not value > 0:
            raise ValueError(f"`{name}` (the paper's {symbol}) must be > 0; got {value!r}.")

    return check


def check_non_negative(name: str, symbol: str):
    def check(value: float | int) -> None:
        if isinstance(value, bool) or not value >= 0:
            raise ValueError(f"`{name}` (the paper's {symbol}) must be >= 0; got {value!r}.")

    return check


def check_num_mixed_samples(value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"`num_mixed_samples` (the paper's M) must be an integer >= 1; got {value!r}.")


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


@strict
class DepthAdaptiveTransformerConfig(ValidatedOnEveryAssignment, BartConfig):
    r"""
    Configuration of a [`DepthAdaptiveTransformer`]: a BART encoder-decoder whose decoder can emit the output
    distribution after any of its N blocks (N = `decoder_layers`), and which decides, per sequence or per
    token, how many blocks to run. Every field of [`BartConfig`] applies unchanged, so a BART checkpoint (for
    instance one warm-started from BERT) loads into it with matching weight names; the fields below are the
    paper's own. Blocks and exits are numbered n = 1 .. N; exit n reads the output of block n through the
    model's one output projection (tied to the embeddings, as BART's).

    The class attribute `vanilla_model_type` (`"bart"`) names the vanilla transformers model this one adapts: its
    checkpoints load here by name, and at full depth the logits and `generate()` outputs are those of its
    `BartForConditionalGeneration` with the same weights (built by `AutoConfig.for_model(vanilla_model_type, ...)`).

    Args:
        adaptive (`bool`, *optional*, defaults to `True`):
            The off switch every model of the zoo has. `False` decodes at full depth whatever `adaptive_depth`,
            `exit_prediction` or `confidence_thresholds` say, as `adaptive_depth=False` does (which keeps working):
            the logits and `generate()` outputs equal those of a `BartForConditionalGeneration` with the same
            weights (the model of `vanilla_model_type`). Training is unchanged: every regime trains every exit.
            Must be a bool; anything else is refused when the config is built or the field is set.
        adaptive_depth (`bool`, *optional*, defaults to `True`):
            `False` means "never exit early": every token runs all N blocks, the model computes exactly what a
            `BartForConditionalGeneration` with the same weights computes (logits and `generate`), and the exit
            predictor is not run. Training ignores it (every regime trains every exit).
        exit_prediction (`str`, *optional*, defaults to `"multinomial"`):
            How the exit of a token is chosen at inference:
            `"sequence"`: one exit for the whole output sequence, q(n|x) = softmax(W_h s + b_h) over the N exits,
            s being the mean of the encoder output over source tokens; the sequence exits at argmax_n q.
            `"multinomial"`: token-specific, q_t(n) = softmax(W_h h_t^1 + b_h) from the output of the first
            block; the token exits at argmax_n q_t.
            `"geometric"`: token-specific, a halting score chi_t^n = sigmoid(w_h h_t^n + b_h) after each block
            n < N; q_t(n) = chi_t^n prod_{n'<n} (1 - chi_t^{n'}) and q_t(N) = prod_{n'<N} (1 - chi_t^{n'})
            (a distribution over the N exits); the token exits at the first block with chi_t^n >
            `halting_threshold`.
            `"confidence"`: no learned predictor; the token exits at the first block n < N whose output
            distribution has a maximum probability above T_n (`confidence_thresholds`).
            A token that has not exited before block N exits there.
        oracle (`str`, *optional*, defaults to `"likelihood"`):
            The target q* the learned exit predictors are trained against: `"likelihood"`
            (LL_t^n = log p(y_t | h^n), the log-probability of the reference token at exit n) or `"correctness"`
            (C_t^n = 1 if exit n's argmax is the reference token). For `"sequence"` the scores are summed over
            the sequence and q* = delta(argmax_n score^n - lambda n); for the token-specific predictors they are
            smoothed over neighbouring positions with the kernel exp(-|t - t'|^2 / sigma) first, and
            q*_t = delta(argmax_n smoothed_t^n - lambda n). Ties go to the smaller (cheaper) exit. Unused by
            `"confidence"`.
        oracle_sigma (`float`, *optional*, defaults to 1.0):
            sigma > 0, the width of the Gaussian smoothing kernel kappa(t, t') = exp(-|t - t'|^2 / sigma) of the
            token-level oracles. Small sigma: each token's own score; large sigma: the sequence's.
        oracle_depth_penalty (`float`, *optional*, defaults to 0.0):
            lambda >= 0, the per-block penalty of the oracles: larger values make the oracle (hence the trained
            predictor) choose earlier exits. It is subtracted from summed (sequence oracle) or kernel-smoothed
            (token oracles) scores, so its scale follows theirs.
        exit_loss_weight (`float`, *optional*, defaults to 1.0):
            alpha >= 0 in L = L_dec + alpha L_exit, L_exit being the cross-entropy of the predictor's q against
            the oracle q*, averaged over target tokens (over sequences for `"sequence"`).
        training_regime (`str`, *optional*, defaults to `"aligned"`):
            How the decoder is trained: `"aligned"` runs every block on every position and
            minimises L_dec = -(1 / sum_n omega_n) sum_n omega_n LL^n, the weighted log-likelihood of all exits;
            `"mixed"` samples `num_mixed_samples` exit sequences (each target token gets a uniformly random exit,
            and the states above its exit are copied from it, as at inference) and minimises their mean negative
            log-likelihood; with a learned exit predictor it also runs one aligned pass, whose per-exit scores are
            the oracle's input. Log-likelihoods are averaged over target tokens (the paper sums them), so the loss
            is on the scale of BART's cross-entropy.
        exit_loss_weights (`list[float]`, *optional*, defaults to `None`):
            omega_n >= 0, one per decoder block (length N), not all 0: the weights of the exits in the aligned
            loss. `None` means uniform (omega_n = 1). Unused by the mixed regime.
        num_mixed_samples (`int`, *optional*, defaults to 6):
            M >= 1, the number of exit sequences sampled per target in the mixed regime (the paper's best mixed
            setting is M = 6); each costs one decoder pass.
        confidence_thresholds (`list[float]`, *optional*, defaults to `None`):
            T_1 .. T_{N-1} (or N values, the last being unused: block N always exits), each in [0, 1], for
            `exit_prediction="confidence"`: a token exits at block n when its maximum output probability is
            strictly above T_n, so 1 never exits there (and skips computing that block's distribution) and 0
            always does. The paper tunes them on validation data by random search (see
            `adaptive_zoo.training.dat.tune_confidence_thresholds`). `None` means "not tuned yet": no early exit.
        operating_point_stale (`bool`, *optional*, defaults to `False`):
            `True` once the weights were trained after `confidence_thresholds` were tuned (the model sets it on a
            training step, e.g. in a stock `Seq2SeqTrainer` fine-tune): the thresholds' quality and average exit
            are unknown. The model then warns on its first thresholded forward; `adaptive-zoo calibrate` tunes the
            thresholds anew on validation data and clears the flag. (The learned exit predictors train with the
            weights, so they have no operating point to go stale.)
        halting_threshold (`float`, *optional*, defaults to 0.5):
            In [0, 1]: with `exit_prediction="geometric"`, a token exits at the first block n < N whose halting
            score chi_t^n is strictly above it.
        detach_exit_predictor_input (`bool`, *optional*, defaults to `False`):
            `True` stops the gradient of L_exit at the predictor's input (encoder output or decoder states), so
            the exit loss trains only the predictor. The paper optimises L_dec + alpha L_exit jointly (`False`).

    Example:

    ```python
    >>> from adaptive_zoo.models.dat import DepthAdaptiveTransformer, DepthAdaptiveTransformerConfig

    >>> config = DepthAdaptiveTransformerConfig(decoder_layers=6, exit_prediction="geometric", oracle="correctness")
    >>> model = DepthAdaptiveTransformer(config)
    ```"""

    model_type = "depth_adaptive_transformer"
    # The transformers model this one adapts: same weight names, and its outputs at full depth.
    vanilla_model_type = "bart"
    # Exit information and loss terms stay out of `Trainer.predict`'s predictions (scripts decode the logits).
    keys_to_ignore_at_inference = ["cache", "encoder_last_hidden_state", "exit_layers", "exit_probabilities",
                                   "halting_probabilities", "exit_logits", "oracle_exit_layers", "decoder_loss",
                                   "exit_loss"]

    # The zoo's common off switch (documented above); type-checked at construction and on assignment by `@strict`.
    adaptive: bool = True
    adaptive_depth: bool = True  # type-checked on assignment by `@strict`
    exit_prediction: str = validated_field(check_exit_prediction, default="multinomial")
    oracle: str = validated_field(check_oracle, default="likelihood")
    oracle_sigma: float | int = validated_field(check_positive("oracle_sigma", "sigma"), default=1.0)
    oracle_depth_penalty: float | int = validated_field(
        check_non_negative("oracle_depth_penalty", "lambda"), default=0.0
    )
    exit_loss_weight: float | int = validated_field(check_non_negative("exit_loss_weight", "alpha"), default=1.0)
    training_regime: str = validated_field(check_training_regime, default="aligned")
    exit_loss_weights: list[float | int] | None = validated_field(check_exit_loss_weights, default=None)
    num_mixed_samples: int = validated_field(check_num_mixed_samples, default=6)
    confidence_thresholds: list[float | int] | None = validated_field(check_confidence_thresholds, default=None)
    halting_threshold: float | int = validated_field(check_probability("halting_threshold"), default=0.5)
    detach_exit_predictor_input: bool = False
    operating_point_stale: bool = False

    @property
    def num_exits(self) -> int:
        """N, the number of decoder blocks, each of which is an exit."""
        return self.decoder_layers

    def resolved_exit_loss_weights(self) -> list[float]:
        """omega_1 .. omega_N: `exit_loss_weights`, or 1 for every exit."""
        if self.exit_loss_weights is None:
            return [1.0] * self.num_exits
        return [float(w) for w in self.exit_loss_weights]

    def resolved_confidence_thresholds(self) -> list[float]:
        """T_1 .. T_{N-1}: `confidence_thresholds` without the unused last value, or 1 (never exit) for each."""
        if self.confidence_thresholds is None:
            return [1.0] * (self.num_exits - 1)
        check_confidence_length(self.confidence_thresholds, self.num_exits)
        return [float(t) for t in self.confidence_thresholds[: self.num_exits - 1]]

    assignment_validators = ("validate_depth_adaptive",)
    fields_validated_on_assignment = ("exit_loss_weights", "confidence_thresholds", "decoder_layerdrop")

    def validate_depth_adaptive(self):
        """Part of `@strict` validation: runs at construction, and on every assignment (`ValidatedOnEveryAssignment`)."""
        if not isinstance(self.decoder_layers, int) or self.decoder_layers < 2:
            raise ValueError(
                f"A depth-adaptive decoder needs `decoder_layers` >= 2 blocks to choose between; got {self.decoder_layers}."
            )
        if self.exit_loss_weights is not None and len(self.exit_loss_weights) != self.decoder_layers:
            raise ValueError(
                f"`exit_loss_weights` (the paper's omega_n) needs one weight per decoder block ({self.decoder_layers}); "
                f"got {len(self.exit_loss_weights)}: {self.exit_loss_weights}."
            )
        if self.confidence_thresholds is not None:
            check_confidence_length(self.confidence_thresholds, self.decoder_layers)
        if self.decoder_layerdrop:
            raise ValueError(
                f"`decoder_layerdrop` must be 0: every exit is trained on the blocks below it; got {self.decoder_layerdrop}."
            )
        if not self.is_encoder_decoder or self.is_decoder:
            raise ValueError("The Depth-Adaptive Transformer is an encoder-decoder: `is_encoder_decoder` must be True "
                             "and `is_decoder` False.")


def check_confidence_length(thresholds: list, num_exits: int) -> None:
    if len(thresholds) not in (num_exits - 1, num_exits):
        raise ValueError(
            f"`confidence_thresholds` (the paper's T_n) needs {num_exits - 1} values (one per block but the last) or "
            f"{num_exits}; got {len(thresholds)}: {thresholds}."
        )


__all__ = ["DepthAdaptiveTransformerConfig"]
