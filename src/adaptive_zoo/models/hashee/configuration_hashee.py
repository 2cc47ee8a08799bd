"""HashEE configuration (Sun, Liu, Guo, Qiu, Huang: "A Simple Hash-Based Early Exiting Approach For Language
Understanding and Generation", 2022).

This file is Hub code: it is copied next to the weights by `save_pretrained` and imported by
`trust_remote_code`, so it imports nothing but transformers and huggingface_hub.
"""

from dataclasses import dataclass

from huggingface_hub.dataclasses import strict, validated_field
from transformers import BartConfig, BertConfig, RobertaConfig

HASH_FUNCTIONS = (
    "random",
    "random_inconsistent",
    "frequency",
    "frequency_mass",
    "mutual_information",
    "clustered",
)


def bucket_exit_layers(num_layers: int, num_buckets: int) -> list[int]:
    """The exit layer of each of the paper's B buckets (appendix A.3): 1 + floor(L * b / B) for b = 0 .. B-1.

    Layers are 1-based: a token of bucket b runs layers 1 .. exit and keeps the output of layer `exit`. With
    L = 12 and B = 3 this gives [1, 5, 9]; with B = L, every layer [1, .., L].

    ```python
    >>> bucket_exit_layers(12, 3)
    [1, 5, 9]
    ```
    """
    if isinstance(num_layers, bool) or not isinstance(num_layers, int) or num_layers < 1:
        raise ValueError(f"`num_layers` (the paper's L) must be an integer >= 1; got {num_layers!r}.")
    if isinstance(num_buckets, bool) or not isinstance(num_buckets, int) or not 1 <= num_buckets <= num_layers:
        raise ValueError(
            f"`num_buckets` (the paper's B) must be an integer in [1, {num_layers}] (the number of encoder layers); "
            f"got {num_buckets!r}."
        )
    return [1 + (num_layers * bucket) // num_buckets for bucket in range(num_buckets)]


def check_num_buckets(value: int | None) -> None:
    """A field validator (runs on assignment too). The upper bound, the number of encoder layers, is checked by
    the class validator at construction and by `bucket_exit_layers` wherever the buckets are used."""
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise ValueError(f"`num_buckets` (the paper's B) must be an integer >= 1, or None for one per layer; got {value!r}.")


def check_hash_function(value: str) -> None:
    """A field validator (runs on assignment too)."""
    if value not in HASH_FUNCTIONS:
        raise ValueError(f"`hash_function` must be one of {HASH_FUNCTIONS}; got {value!r}.")


def check_special_token_ids(value: list[int] | None) -> None:
    """A field validator (runs on assignment too)."""
    if value is None:
        return
    bad = [v for v in value if isinstance(v, bool) or not isinstance(v, int) or v < 0]
    if bad:
        raise ValueError(f"`special_token_ids` must be non-negative token ids; got {bad} in {value}.")


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
class HashEEConfigMixin(ValidatedOnEveryAssignment):
    """What the BERT and BART configurations of HashEE share: their fields (documented in `HASHEE_ARGS_DOC`), the
    bucket layout and its validation."""

    # The zoo's common off switch (documented above); type-checked at construction and on assignment by `@strict`.
    adaptive: bool = True
    num_buckets: int | None = validated_field(check_num_buckets, default=None)
    hash_function: str = validated_field(check_hash_function, default="frequency")
    token_early_exit: bool = True  # type-checked on assignment by `@strict`
    inconsistent_seed: int = 0
    special_token_ids: list[int] | None = validated_field(check_special_token_ids, default=None)

    def __post_init__(self, **kwargs):
        super().__post_init__(**kwargs)
        if self.num_buckets is None:  # the paper's default: one bucket per layer
            self.num_buckets = self.num_hidden_layers

    @property
    def token_exits(self) -> bool:
        """Whether tokens exit early: `adaptive` and `token_early_exit` both True."""
        return self.adaptive and self.token_early_exit

    @property
    def exit_layers(self) -> list[int]:
        """The exit layer of each bucket, `bucket_exit_layers(L, B)`, L being the number of encoder layers."""
        return bucket_exit_layers(self.num_hidden_layers, self.num_buckets)

    assignment_validators = ("validate_hashee",)
    fields_validated_on_assignment = ("num_buckets", "special_token_ids")

    def validate_hashee(self):
        """Part of `@strict` validation: runs at construction, and on every assignment (`ValidatedOnEveryAssignment`)."""
        # `num_hidden_layers` is BART's `encoder_layers` through its attribute map.
        bucket_exit_layers(self.num_hidden_layers, self.num_buckets)
        if self.special_token_ids is not None:
            too_large = [v for v in self.special_token_ids if v >= self.vocab_size]
            if too_large:
                raise ValueError(
                    f"`special_token_ids` must be ids below `vocab_size` ({self.vocab_size}); got {too_large}."
                )


HASHEE_ARGS_DOC = r"""
        adaptive (`bool`, *optional*, defaults to `True`):
            The off switch every model of the zoo has. `False` makes every token run every encoder layer whatever
            `token_early_exit` says, as `token_early_exit=False` does (which keeps working), in training as in
            inference: the model computes exactly what the vanilla transformers model of `vanilla_model_type`
            computes with the same weights, and needs no hash table. Must be a bool; anything else is refused when
            the config is built or the field is set.
        num_buckets (`int`, *optional*, defaults to `None`):
            The paper's *B*, the number of buckets (exit layers) tokens are hashed into, in `[1, L]` with *L* the
            number of encoder layers. Bucket b exits after layer `1 + floor(L * b / B)` (appendix A.3; see
            `bucket_exit_layers`): with L = 12 and B = 3 the exit layers are 1, 5 and 9. `None` means B = L, one
            bucket per layer, as in the paper's main experiments; it is resolved at construction.
        hash_function (`str`, *optional*, defaults to `"frequency"`):
            Which hash built the token -> exit-layer table (section 3.3): `"random"` (Rand-cons), `"frequency"`
            (frequent tokens exit early, equal-size buckets), `"frequency_mass"` (frequency order, with buckets
            balanced by corpus occurrences rather than by vocabulary size), `"mutual_information"` (MI with the task label), `"clustered"` (k-means on the input
            embeddings, sorted by norm), or `"random_inconsistent"` (Rand-incons). Informational, except for
            `"random_inconsistent"`: then the table is ignored for every token but `special_token_ids`, and each
            token *occurrence* gets a fresh random exit layer among the bucket exit layers, so training and
            inference do not agree (the paper's ablation). In eval mode the draw uses a generator seeded with
            `inconsistent_seed` on every call (reproducible); in training mode, the global RNG. This variant is by
            design not batch-invariant: a row's draws depend on its place in the batch.
        token_early_exit (`bool`, *optional*, defaults to `True`):
            `False` means "never exit": every token runs every encoder layer and the model equals the vanilla
            transformers model with the same weights exactly (the hash table is then not needed). `True` makes each
            token run only the layers up to its exit layer, in training as in inference (section 3.2); a forward
            then needs a hash table (`model.set_hash_table`).
        inconsistent_seed (`int`, *optional*, defaults to 0):
            Seed of the eval-mode random exit layers of `hash_function="random_inconsistent"`; unused otherwise.
        special_token_ids (`list[int]`, *optional*, defaults to `None`):
            Token ids that keep their exit layer from the hash table under `hash_function="random_inconsistent"`
            (e.g. the tokenizer's `all_special_ids`); written by the table builder. Unused by the other hash
            functions, for which every token's exit layer comes from the table.
"""



def hashee_config_doc(summary: str, config_class: str, model_class: str, arguments: str, exit_layers: str) -> str:
    """The docstring of a HashEE configuration: `summary`, the fields (`HASHEE_ARGS_DOC`), and an example that
    builds a `config_class` with `arguments`, a `model_class` from it, and shows its bucket `exit_layers`."""
    return f"""{summary}

    Args:{HASHEE_ARGS_DOC}
    Example:

    ```python
    >>> from adaptive_zoo.models.hashee import {config_class}, {model_class}

    >>> config = {config_class}({arguments})
    >>> model = {model_class}(config)
    >>> config.exit_layers
    {exit_layers}
    ```"""


@dataclass(repr=False, eq=False)
class HashEEClassifierConfigMixin(HashEEConfigMixin):
    """What HashEE's encoder classifiers (BERT, RoBERTa) add: they are encoders, and their per-token exit layers stay
    out of `Trainer.predict`'s predictions, so scripts can `argmax` the logits."""

    keys_to_ignore_at_inference = ["token_exit_layers", "mean_exit_layer", "hidden_states"]
    method_name = "HashEE"
    assignment_validators = ("validate_hashee", "validate_encoder_only")
    fields_validated_on_assignment = ("num_buckets", "special_token_ids", "is_decoder", "add_cross_attention")

    def validate_encoder_only(self):
        """Part of `@strict` validation: runs at construction, and on every assignment (`ValidatedOnEveryAssignment`)."""
        if self.is_decoder or self.add_cross_attention:
            raise ValueError(f"{self.method_name} is an encoder: `is_decoder` and `add_cross_attention` must be False.")


@strict
class HashEEBertConfig(HashEEClassifierConfigMixin, BertConfig):
    model_type = "hashee_bert"
    # The transformers model this one adapts: same weight names, and its outputs without token exits.
    vanilla_model_type = "bert"
    method_name = "HashEE-BERT"


HashEEBertConfig.__doc__ = hashee_config_doc(
    r"""
    Configuration of a [`HashEEBertForSequenceClassification`] (and its backbone [`HashEEBertModel`]): a BERT
    encoder in which every token leaves the network at a fixed layer looked up in a hash table (token id -> exit
    layer) built before training. Every BERT field of [`BertConfig`] applies unchanged, so any BERT checkpoint
    loads into it; the fields below are HashEE's own. The table itself is not a config field but a buffer of the
    model (`bert.encoder.hash_table`), saved with the weights.

    The class attribute `vanilla_model_type` (`"bert"`) names the vanilla transformers model this one adapts: its
    checkpoints load here by name, and without token exits the logits are those of its
    `BertForSequenceClassification` with the same weights (built by `AutoConfig.for_model(vanilla_model_type, ...)`).""",
    "HashEEBertConfig",
    "HashEEBertForSequenceClassification",
    arguments="num_labels=2, num_hidden_layers=6, num_buckets=6",
    exit_layers="[1, 2, 3, 4, 5, 6]",
)


@strict
class HashEERobertaConfig(HashEEClassifierConfigMixin, RobertaConfig):
    model_type = "hashee_roberta"
    # The transformers model this one adapts: same weight names, and its outputs without token exits.
    vanilla_model_type = "roberta"
    method_name = "HashEE-RoBERTa"


HashEERobertaConfig.__doc__ = hashee_config_doc(
    r"""
    Configuration of a [`HashEERobertaForSequenceClassification`] (and its backbone [`HashEERobertaModel`]): HashEE
    on a RoBERTa encoder (one of the paper's backbones). Every RoBERTa field of [`RobertaConfig`] applies unchanged,
    so any RoBERTa checkpoint loads into it; the fields below are HashEE's own. The table is a buffer of the model
    (`roberta.encoder.hash_table`), saved with the weights. Without token exits the logits are those of a
    `RobertaForSequenceClassification` with the same weights (`vanilla_model_type = "roberta"`).""",
    "HashEERobertaConfig",
    "HashEERobertaForSequenceClassification",
    arguments="num_labels=2, num_hidden_layers=6, num_buckets=6",
    exit_layers="[1, 2, 3, 4, 5, 6]",
)


@strict
class HashEEBartConfig(HashEEConfigMixin, BartConfig):
    model_type = "hashee_bart"
    # The transformers model this one adapts: same weight names, and its outputs without token exits.
    vanilla_model_type = "bart"
    # The cache and the encoder's per-token exit layers stay out of `Trainer.predict`'s predictions.
    keys_to_ignore_at_inference = ["cache", "encoder_last_hidden_state", "encoder_token_exit_layers"]


HashEEBartConfig.__doc__ = hashee_config_doc(
    r"""
    Configuration of a [`HashEEBartForConditionalGeneration`] (and its base [`HashEEBartModel`]): a BART whose
    *encoder* lets every token leave at a fixed layer looked up in a hash table (token id -> exit layer); the
    decoder is unchanged and cross-attends to every source token's final state (section 4, "Accelerating Seq2Seq
    Models"). Every field of [`BartConfig`] applies unchanged, so any BART checkpoint loads into it; *L* below is
    `encoder_layers`. The table is a buffer of the model (`model.encoder.hash_table`), saved with the weights.

    The class attribute `vanilla_model_type` (`"bart"`) names the vanilla transformers model this one adapts: its
    checkpoints load here by name, and without token exits the logits and `generate()` outputs are those of its
    `BartForConditionalGeneration` with the same weights (built by `AutoConfig.for_model(vanilla_model_type, ...)`).""",
    "HashEEBartConfig",
    "HashEEBartForConditionalGeneration",
    arguments="encoder_layers=6, decoder_layers=6, num_buckets=3",
    exit_layers="[1, 3, 5]",
)


__all__ = ["HASH_FUNCTIONS", "HashEEBartConfig", "HashEEBertConfig", "HashEERobertaConfig", "bucket_exit_layers"]
