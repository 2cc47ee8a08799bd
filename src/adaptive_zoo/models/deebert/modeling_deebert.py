"""PyTorch DeeBERT (Xin, Tang, Lee, Yu, Lin: "DeeBERT: Dynamic Early Exiting for Accelerating BERT Inference",
ACL 2020).

A BERT classifier with an off-ramp (pooler, dropout, classifier) after every layer. At inference a sample
leaves at the first layer whose off-ramp is confident enough (entropy below the threshold S). Unlike the
paper's reference code, which raises an exception to exit and so only runs at batch size 1, exited rows here
leave the batch: every deeper layer runs on the rows still in flight only, so the saving is real in batches.

Weight names equal `BertForSequenceClassification`'s (`bert.*`, `classifier.*`), plus `off_ramps.*`, so any
BERT classifier checkpoint loads, and the last off-ramp is the model's own pooler and classifier. A checkpoint of
another family (RoBERTa, DistilBERT, ...) is refused by `from_pretrained`: see `StandardSwitchesMixin`.

Standard switches: `output_hidden_states` returns every row's states, an exited row's carried forward unchanged
from its exit layer; `output_attentions` needs full depth and eager attention; `torch.compile` gives the eager
outputs; tracing or exporting (`torch.export`, `torch.onnx.export`, `torch.jit.trace`) is refused while early exit
is on, since a static graph would freeze the example's exits: export with `entropy_threshold=None` (or with the
zoo's common off switch, `adaptive=False`).

This file is Hub code: it imports only torch, transformers and its sibling configuration, so that
`trust_remote_code` can load a saved folder without adaptive-zoo installed.
"""

import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import CrossEntropyLoss
from transformers import PreTrainedConfig
from transformers.masking_utils import create_bidirectional_mask
from transformers.modeling_outputs import ModelOutput
from transformers.models.bert.modeling_bert import BertModel, BertPreTrainedModel
from transformers.models.roberta.modeling_roberta import (
    RobertaClassificationHead,
    RobertaModel,
    RobertaPreTrainedModel,
)
from transformers.utils.generic import can_return_tuple

from .configuration_deebert import DeeBertConfig, DeeRobertaConfig

# `save_pretrained` writes only the saved class's own Auto entry; this one lets `AutoModel` load the backbone.
BACKBONE_AUTO_MAP = {"AutoModel": "modeling_deebert.DeeBertModel"}
ROBERTA_BACKBONE_AUTO_MAP = {"AutoModel": "modeling_deebert.DeeRobertaModel"}

# The attention implementations DeeBERT is tested with; others (flex_attention, flash_attention_*, Hub kernels)
# are refused when the model is built, loaded or switched with `set_attn_implementation`.
SUPPORTED_ATTENTION_IMPLEMENTATIONS = ("eager", "sdpa")


@dataclass
class DeeBertSequenceClassifierOutput(ModelOutput):
    r"""
    Output of [`DeeBertForSequenceClassification`].

    Args:
        loss (`torch.FloatTensor` of shape `()`, *optional*, returned when `labels` is given):
            In training mode, the joint objective: the mean over all `num_hidden_layers` classifiers (off-ramps
            and the final one) of their cross-entropy, so that a plain `Trainer` fine-tune trains the off-ramps
            with the backbone. In eval mode, the cross-entropy of `logits`, i.e. of the classifier each sample
            exited at.
        logits (`torch.FloatTensor` of shape `(batch_size, num_labels)`):
            Logits of the off-ramp each sample exited at.
        exit_layers (`torch.LongTensor` of shape `(batch_size,)`):
            1-based index of the layer each sample exited after; `num_hidden_layers` for a sample that ran the
            whole network. Also the number of layers computed for that sample.
        ramp_logits (`torch.FloatTensor` of shape `(batch_size, num_hidden_layers, num_labels)`, *optional*):
            Every off-ramp's logits, returned in training and when `output_ramp_logits=True`. Layers a sample
            never reached (it exited earlier) hold NaN: they were not computed.
        hidden_states (`tuple(torch.FloatTensor)`, *optional*, returned when `output_hidden_states=True`):
            The embeddings and the output of every layer, `num_hidden_layers + 1` tensors of shape
            `(batch_size, sequence_length, hidden_size)`, as `BertForSequenceClassification` returns them. A row
            that exited keeps its exit layer's state in every later entry (carried forward, not computed), and so
            do the padding columns that no row still running needed.
        attentions (`tuple(torch.FloatTensor)`, *optional*, returned when `output_attentions=True`):
            Every layer's attention weights, `(batch_size, num_heads, sequence_length, sequence_length)`. Only at
            full depth (`entropy_threshold=None` or training) and with `attn_implementation="eager"`.
    """

    loss: torch.FloatTensor | None = None
    logits: torch.FloatTensor | None = None
    exit_layers: torch.LongTensor | None = None
    ramp_logits: torch.FloatTensor | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None
    attentions: tuple[torch.FloatTensor, ...] | None = None


def prediction_entropy(logits: torch.Tensor) -> torch.Tensor:
    """Natural-log entropy of softmax(logits) over the last dimension: logsumexp(z) - sum(p * z)."""
    log_probs = torch.log_softmax(logits.float(), dim=-1)  # (B, C)
    return -(log_probs.exp() * log_probs).sum(dim=-1)  # (B,)


def check_inputs_have_content(input_ids: torch.Tensor | None, attention_mask: torch.Tensor | None,
                              special_token_ids: list[int] | None) -> None:
    """Refuse input rows made only of special tokens ([CLS], [SEP], [PAD], [UNK], ...): an empty, whitespace-only
    or unreadable (e.g. emoji-only) text. A prediction for it would be the model's prior passed off as an answer
    about the text, so the model forward, `pipeline(...)` and the adaptive-zoo CLI all refuse it. The ids are
    `config.special_token_ids` (the tokenizer's `all_special_ids`, saved with the model); without them, or with
    `inputs_embeds`, nothing is checked."""
    if input_ids is None or not special_token_ids:
        return
    special = torch.isin(input_ids, torch.tensor(special_token_ids, device=input_ids.device))  # (B, T)
    if attention_mask is not None:
        special = special | (attention_mask == 0)
    empty = special.all(dim=-1)  # (B,)
    if empty.any():
        rows = empty.nonzero().flatten().tolist()
        raise ValueError(
            f"Input row(s) {rows} hold only special tokens (ids {input_ids[rows[0]].tolist()}): an empty, "
            "whitespace-only or unreadable (e.g. emoji-only) text, which the model cannot classify. Remove such texts "
            "or replace them with text the tokenizer knows."
        )


def checked_input_shape(config, input_ids: torch.Tensor | None, inputs_embeds: torch.Tensor | None) -> tuple[int, int]:
    """(batch_size, sequence_length) of inputs given as exactly one of `input_ids` and `inputs_embeds`, refusing
    more tokens than the model has positions (RoBERTa's hold `max_position_embeddings - pad_token_id - 1`)."""
    if (input_ids is None) == (inputs_embeds is None):
        raise ValueError("Pass exactly one of `input_ids` or `inputs_embeds`.")
    batch_size, sequence_length = (input_ids if input_ids is not None else inputs_embeds).shape[:2]
    positions = config.max_position_embeddings
    if getattr(config, "vanilla_model_type", None) == "roberta":
        positions -= (config.pad_token_id or 0) + 1  # RoBERTa's position ids start after the padding index
    if sequence_length > positions:
        raise ValueError(
            f"The input has {sequence_length} tokens but the model has only {positions} positions: tokenize with "
            "`truncation=True` (for a pipeline: `pipe(texts, truncation=True)`), which cuts to the saved tokenizer's "
            "`model_max_length`, the length the model was trained at."
        )
    return batch_size, sequence_length


def check_classifier_inputs(
    config, input_ids: torch.Tensor | None, inputs_embeds: torch.Tensor | None, attention_mask: torch.Tensor | None,
    labels: torch.Tensor | None,
) -> tuple[int, int]:
    """A sequence classifier's input checks: `checked_input_shape`, `check_inputs_have_content` (with the config's
    `special_token_ids`, if any) and one label per row. Returns (batch_size, sequence_length)."""
    batch_size, sequence_length = checked_input_shape(config, input_ids, inputs_embeds)
    check_inputs_have_content(input_ids, attention_mask, getattr(config, "special_token_ids", None))
    if labels is not None and labels.shape[0] != batch_size:
        raise ValueError(f"Got {labels.shape[0]} labels for a batch of {batch_size} inputs.")
    return batch_size, sequence_length


def init_bert_classifier(model: nn.Module, config, bert: nn.Module) -> None:
    """Give `model` the modules of a `BertForSequenceClassification` under its names (`bert`, `dropout`,
    `classifier`), so that BERT classifier checkpoints load by name; `bert` is the backbone to use."""
    model.num_labels = config.num_labels
    model.config = config
    model.bert = bert
    classifier_dropout = (
        config.classifier_dropout if config.classifier_dropout is not None else config.hidden_dropout_prob
    )
    model.dropout = nn.Dropout(classifier_dropout)
    model.classifier = nn.Linear(config.hidden_size, config.num_labels)


def add_auto_map(config, entries: dict[str, str]) -> None:
    """Add `entries` to `config.auto_map`, keeping those it has: `save_pretrained` writes only the saved class's own
    Auto entry, and these let the other Auto classes load the saved folder too."""
    config.auto_map = {**entries, **(getattr(config, "auto_map", None) or {})}


class DeeBertOffRampPooler(nn.Module):
    """Dense + tanh over one vector per row, named like `BertPooler` so it can start from BERT's pooler."""

    def __init__(self, config: DeeBertConfig):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.activation = nn.Tanh()

    def forward(self, pooled_tokens: torch.Tensor) -> torch.Tensor:
        return self.activation(self.dense(pooled_tokens))  # (B, H)


class DeeBertOffRamp(nn.Module):
    """The classifier after one intermediate layer: token pooling ([CLS] or mean), pooler, dropout, linear.

    Pooling and dropout are read from the config on every call, so a change of `off_ramp_pooling` or
    `off_ramp_dropout` takes effect on the next forward (they hold no weights)."""

    def __init__(self, config: DeeBertConfig):
        super().__init__()
        self.config = config
        self.pooler = DeeBertOffRampPooler(config)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)

    def forward(self, hidden_states: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        # hidden_states: (B, T, H), attention_mask: (B, T) with 1 on real tokens -> logits (B, C)
        if self.config.off_ramp_pooling == "cls":
            pooled_tokens = hidden_states[:, 0]  # (B, H)
        elif attention_mask is None:
            pooled_tokens = hidden_states.mean(dim=1)  # (B, H)
        else:
            weights = attention_mask.to(hidden_states.dtype).unsqueeze(-1)  # (B, T, 1)
            pooled_tokens = (hidden_states * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1)  # (B, H)
        pooled = nn.functional.dropout(self.pooler(pooled_tokens), off_ramp_dropout(self.config), self.training)
        return self.classifier(pooled)


def warn_stale_operating_point(model: nn.Module, operating_point: str, full_depth_setting: str) -> None:
    """Warn once per model that its operating point was tuned on weights that have been trained since."""
    if getattr(model, "_warned_stale_operating_point", False):
        return
    model._warned_stale_operating_point = True
    warnings.warn(
        f"This {type(model).__name__} was trained after its operating point ({operating_point}) was chosen "
        "(`config.operating_point_stale=True`): its accuracy and speed-up are unknown. Re-tune it on validation "
        f"data with `adaptive-zoo calibrate FOLDER --dataset DATA`, or set `config.{full_depth_setting}` (or "
        "`config.adaptive = False`) to run at full depth.",
        UserWarning,
        stacklevel=3,
    )


def off_ramp_dropout(config: DeeBertConfig) -> float:
    if config.off_ramp_dropout is not None:
        return config.off_ramp_dropout
    return config.classifier_dropout if config.classifier_dropout is not None else config.hidden_dropout_prob


# -- standard switches: checks shared, as copies, by every model of the zoo ------------------------------------


def check_checkpoint_model_type(model_class: type, checkpoint, supported: tuple[str, ...], kwargs: dict) -> None:
    """Refuse to load `checkpoint` into `model_class` unless its config.json's `model_type` is in `supported`.

    transformers only warns when a checkpoint of another family is loaded, and the weights then land in the wrong
    places or nowhere: a silently random model. `kwargs` are `from_pretrained`'s, for finding the file."""
    if checkpoint is None:  # weights given as a state dict
        return
    hub_kwargs = ("cache_dir", "force_download", "local_files_only", "token", "revision", "subfolder", "proxies")
    try:
        config_dict, _ = PreTrainedConfig.get_config_dict(
            checkpoint, **{name: kwargs[name] for name in hub_kwargs if name in kwargs}
        )
    except OSError:  # no config.json (bare weights, with the config passed explicitly): no family to check
        return
    model_type = config_dict.get("model_type")
    if model_type not in supported:
        raise ValueError(
            f"{model_class.__name__} loads checkpoints with model_type in {supported}; {str(checkpoint)!r} is a "
            f"{model_type!r} checkpoint, whose weights would load misplaced or not at all. Start from a checkpoint "
            "of a supported family."
        )


def check_attention_implementation(model_class: type, requested: str | None, supported: tuple[str, ...]) -> None:
    """Refuse an `attn_implementation` the model's adaptive paths are not written for (None is the default)."""
    if requested is not None and requested not in supported:
        raise ValueError(
            f"{model_class.__name__} supports attn_implementation in {supported}; got {requested!r}. Load the model "
            "with one of those (e.g. `attn_implementation='sdpa'`)."
        )


def graph_capture() -> str | None:
    """Which static-graph capture runs this forward: "export" (`torch.export`, `torch.onnx.export`,
    `torch.jit.trace`), "compile" (`torch.compile`) or None (eager)."""
    if torch.compiler.is_compiling():
        return "export" if torch.compiler.is_exporting() else "compile"
    if torch.jit.is_tracing() or torch.onnx.is_in_onnx_export():
        return "export"
    return None


def raise_value_error(message: str) -> None:
    raise ValueError(message)


def refuse_in_graph_capture(message: str) -> None:
    """Raise `ValueError(message)` from a forward that is being compiled, exported or traced.

    Under `torch.compile` a plain `raise` would not reach the caller: dynamo gives up on the frame and runs it again
    uncompiled, where no capture is seen any more. A function dynamo may not trace runs, and raises, eagerly."""
    if graph_capture() == "compile":
        torch.compiler.disable(raise_value_error, reason=message)(message)
    raise ValueError(message)


def output_flags(config, output_hidden_states, output_attentions) -> tuple[bool, bool]:
    """The call's `output_hidden_states` and `output_attentions`, each falling back to the config's field."""
    flags = []
    for name, value in (("output_hidden_states", output_hidden_states), ("output_attentions", output_attentions)):
        value = getattr(config, name) if value is None else value
        if not isinstance(value, bool):
            raise TypeError(f"`{name}` must be True or False (this model does not select layers); got {value!r}.")
        flags.append(value)
    return flags[0], flags[1]


def check_attentions_available(model_class: type, config, adaptive: bool, full_depth_setting: str) -> None:
    """`output_attentions=True` needs every row and token at every layer, and attention weights (eager attention)."""
    if adaptive:
        raise ValueError(
            f"{model_class.__name__} returns attention weights only at full depth: with early exit, the rows or "
            f"tokens that left have no attention at later layers. Set `{full_depth_setting}` (or `config.adaptive = "
            "False`) for attentions, or use `output_hidden_states=True`, which the adaptive path supports."
        )
    if config._attn_implementation != "eager":
        raise ValueError(
            f"`output_attentions=True` needs attention weights, which attn_implementation="
            f"{config._attn_implementation!r} does not compute: load the model with `attn_implementation='eager'` "
            "or call `model.set_attn_implementation('eager')`."
        )


# The attention weights that the forward running in this thread (strictly: this context) collects, or None. Each
# attention module gets one forward hook, once, that appends to it: nothing of a call is kept on the shared modules,
# so concurrent forwards of one model (a server's request threads) each get their own attentions.
ATTENTIONS_BEING_RECORDED: ContextVar[tuple[frozenset[int], list[torch.Tensor]] | None] = ContextVar(
    "attentions_being_recorded", default=None
)
ATTENTION_HOOKS_LOCK = threading.Lock()


def record_attention_weights(module: nn.Module, args, output) -> None:
    """Forward hook of every attention module: append its weights (the second output) to this context's recording,
    if one is running and asked for this module."""
    recording = ATTENTIONS_BEING_RECORDED.get()
    if recording is not None and id(module) in recording[0]:
        recording[1].append(output[1])


@contextmanager
def recording_attentions(attention_modules) -> Iterator[list[torch.Tensor]]:
    """Collect the attention weights (the second output) of `attention_modules` during this forward, in call order.

    Thread-safe: what is collected lives in a context variable, and the modules only carry one permanent hook
    (`record_attention_weights`, installed on first use under a lock), which does nothing outside a recording."""
    attention_modules = list(attention_modules)
    if not attention_modules:
        yield []
        return
    with ATTENTION_HOOKS_LOCK:
        for module in attention_modules:
            if not getattr(module, "records_attention_weights", False):
                module.register_forward_hook(record_attention_weights)
                module.records_attention_weights = True
    weights: list[torch.Tensor] = []
    token = ATTENTIONS_BEING_RECORDED.set((frozenset(id(module) for module in attention_modules), weights))
    try:
        yield weights
    finally:
        ATTENTIONS_BEING_RECORDED.reset(token)


def check_config_unchanged(model: nn.Module, fixed_fields: dict[str, object], hints: dict[str, str]) -> None:
    """Refuse to run a model whose config was changed, after the model was built, in a field that cannot take
    effect without rebuilding it: `fixed_fields` maps each such field to the value the model was built with (or,
    for a value held in the weights, the value the config was last kept in step with); `hints` says, per field,
    how to change it properly (default: rebuild from the saved folder)."""
    for name, built_with in fixed_fields.items():
        value = getattr(model.config, name)
        if value != built_with:
            how = hints.get(name) or (
                f"rebuild the model with it: `{type(model).__name__}.from_pretrained(folder, {name}=...)` (with "
                "`ignore_mismatched_sizes=True` where weight shapes change), or build it anew from the config"
            )
            raise ValueError(
                f"`config.{name}` was changed to {value!r} after this {type(model).__name__} was built with "
                f"{built_with!r}, and the change cannot take effect on a built model. Set it back, or {how}."
            )


def weights_checksum(model: nn.Module) -> list[float]:
    """One number per parameter (its sum, in float64): cheap next to a training step, and changed by any step."""
    with torch.no_grad():
        return [float(parameter.detach().sum(dtype=torch.float64)) for parameter in model.parameters()]


def remember_weights_before_training(model: nn.Module) -> None:
    """Called by a training-mode forward with gradients on, while the model has an operating point: keep a checksum
    of the weights (once), so that a later check can tell whether an optimiser step followed. A forward alone,
    with no step after it, leaves the operating point as it was."""
    if model.config.operating_point_stale or getattr(model, "weights_before_training", None) is not None:
        return
    model.weights_before_training = weights_checksum(model)


def flag_operating_point_if_weights_changed(model: nn.Module) -> None:
    """Set `config.operating_point_stale` if the weights changed (an optimiser step) since a training-mode forward
    remembered them; called before every forward and before saving. Costs nothing unless a training-mode forward
    came first."""
    remembered = getattr(model, "weights_before_training", None)
    if remembered is None:
        return
    model.weights_before_training = None
    if weights_checksum(model) != remembered:
        model.config.operating_point_stale = True


def flag_operating_point_on_load(model: nn.Module, stale_after_load) -> None:
    """Flag the operating point stale when other weights are loaded into the built model (`load_state_dict`, e.g.
    a Trainer restoring its best checkpoint), if `stale_after_load(model, incompatible_keys)` says the point was
    chosen for the weights the model had."""

    def hook(module, incompatible_keys) -> None:
        if stale_after_load(module, incompatible_keys):
            module.config.operating_point_stale = True

    model.register_load_state_dict_post_hook(hook)


class StandardSwitchesMixin:
    """The loading switches every model of the zoo checks, for a `PreTrainedModel` subclass whose `config_class`
    declares `vanilla_model_type`: `from_pretrained` refuses a checkpoint of another family, and an attention
    implementation outside `SUPPORTED_ATTENTION_IMPLEMENTATIONS` is refused when the model is built, loaded or
    switched with `set_attn_implementation`."""

    # transformers' own refusal of these implementations; `_check_and_adjust_attn_implementation` refuses the rest
    _supports_flash_attn = False
    _supports_flex_attn = False

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *model_args, **kwargs):
        """`PreTrainedModel.from_pretrained`, refusing a checkpoint whose `model_type` is neither the config's
        `vanilla_model_type` nor its `model_type`: another family's weights would load misplaced or not at all."""
        supported = (cls.config_class.vanilla_model_type, cls.config_class.model_type)
        check_checkpoint_model_type(cls, pretrained_model_name_or_path, supported, kwargs)
        return super().from_pretrained(pretrained_model_name_or_path, *model_args, **kwargs)

    def _check_and_adjust_attn_implementation(self, attn_implementation, is_init_check=False, allow_all_kernels=False):
        check_attention_implementation(type(self), attn_implementation, SUPPORTED_ATTENTION_IMPLEMENTATIONS)
        return super()._check_and_adjust_attn_implementation(attn_implementation, is_init_check, allow_all_kernels)


class DeeBertPreTrainedModel(StandardSwitchesMixin, BertPreTrainedModel):
    config_class = DeeBertConfig
    config: DeeBertConfig


class DeeBertModel(DeeBertPreTrainedModel, BertModel):
    """The plain BERT backbone of a DeeBERT checkpoint (what `AutoModel` loads): full depth, no off-ramps."""

    config_class = DeeBertConfig
    config: DeeBertConfig


class DeeBertClassifierMixin:
    """DeeBERT's early-exit forward over a BERT-shaped encoder: `self.base_model` (the backbone: `embeddings`,
    `encoder.layer`), `self.off_ramps`, and `final_logits` (the vanilla classifier's head) come from the class."""

    # `forward(**kwargs)` takes attention kwargs, not loss kwargs: without this the Trainer would skip dividing
    # the loss by the gradient-accumulation steps.
    accepts_loss_kwargs = False

    def final_logits(self, hidden_states: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def init_operating_point_checks(self, config) -> None:
        """For the family's `__init__`: the config fields the modules were built for (a later change is refused at
        the next forward), and the stale flag on a load of other weights."""
        self.fixed_config_fields = {"num_labels": config.num_labels, "num_hidden_layers": config.num_hidden_layers}
        # S lives in the config: loaded weights were not the ones it was chosen for.
        flag_operating_point_on_load(self, lambda model, keys: model.config.entropy_threshold is not None)

    def save_pretrained(self, save_directory, *args, **kwargs):
        """`PreTrainedModel.save_pretrained`, after flagging the operating point stale if an optimiser step changed
        the weights since S was chosen (Trainer checkpoints and `push_to_hub` save through here too)."""
        check_config_unchanged(self, self.fixed_config_fields, {})
        flag_operating_point_if_weights_changed(self)
        return super().save_pretrained(save_directory, *args, **kwargs)

    def classify_at(
        self, layer_index: int, hidden_states: torch.Tensor, attention_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Logits of the off-ramp after layer `layer_index` (0-based): hidden states (B, T, H) -> (B, C)."""
        if layer_index == self.config.num_hidden_layers - 1:
            return self.final_logits(hidden_states)
        return self.off_ramps[layer_index](hidden_states, attention_mask)

    @can_return_tuple
    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        output_ramp_logits: bool | None = None,
        output_hidden_states: bool | None = None,
        output_attentions: bool | None = None,
        **kwargs,
    ) -> DeeBertSequenceClassifierOutput:
        r"""
        labels (`torch.LongTensor` of shape `(batch_size,)`, *optional*):
            Class indices in `[0, num_labels)`. Training mode: the loss is the joint objective (see `loss` in the
            output); eval mode: the cross-entropy of the returned `logits`.
        output_ramp_logits (`bool`, *optional*):
            Also return every off-ramp's logits (`ramp_logits`). Always on in training mode.
        output_hidden_states (`bool`, *optional*, defaults to `config.output_hidden_states`):
            Also return every layer's states; an exited row's are carried forward from its exit layer.
        output_attentions (`bool`, *optional*, defaults to `config.output_attentions`):
            Also return every layer's attention weights: full depth and eager attention only (else a ValueError).

        Early exit happens only in eval mode with `config.entropy_threshold` set and `config.adaptive` True; in
        training every sample runs every layer so that every off-ramp sees every sample.
        """
        check_config_unchanged(self, self.fixed_config_fields, {})
        check_classifier_inputs(self.config, input_ids, inputs_embeds, attention_mask, labels)
        flag_operating_point_if_weights_changed(self)
        threshold = None if self.training or not self.config.adaptive else self.config.entropy_threshold
        adaptive = threshold is not None
        if self.training and torch.is_grad_enabled() and self.config.entropy_threshold is not None:
            remember_weights_before_training(self)  # S was chosen for these weights: an optimiser step flags it
        if adaptive and self.config.operating_point_stale:
            warn_stale_operating_point(self, f"entropy threshold S = {threshold:.4g}", "entropy_threshold=None")
        keep_ramp_logits = self.training or bool(output_ramp_logits)
        output_hidden_states, output_attentions = output_flags(self.config, output_hidden_states, output_attentions)
        if output_attentions:
            check_attentions_available(type(self), self.config, adaptive, "config.entropy_threshold = None")
        if adaptive and graph_capture() == "export":
            refuse_in_graph_capture(
                "DeeBERT's early exit depends on each input's off-ramp entropies, which a traced or exported graph "
                "cannot keep: it would freeze the example batch's exits. Export the full-depth model, which is exactly "
                f"the vanilla {self.config.vanilla_model_type} classifier: set `model.config.entropy_threshold = None` (or "
                "`model.config.adaptive = False`) first. The adaptive model runs in eager mode and under torch.compile."
            )
        with recording_attentions(
            [layer.attention.self for layer in self.base_model.encoder.layer] if output_attentions else []
        ) as attentions:
            logits, exit_layers, ramp_logits, all_hidden_states = self._run_layers(
                input_ids, attention_mask, token_type_ids, position_ids, inputs_embeds, threshold, keep_ramp_logits,
                output_hidden_states, **kwargs,
            )

        loss = None
        if labels is not None and self.training:
            # Joint objective: every classifier on every sample (nothing exits in training), averaged.
            num_layers = self.config.num_hidden_layers
            loss = CrossEntropyLoss()(
                ramp_logits.reshape(-1, self.num_labels), labels.view(-1).repeat_interleave(num_layers)
            )
        elif labels is not None:
            loss = CrossEntropyLoss()(logits.view(-1, self.num_labels), labels.view(-1))

        return DeeBertSequenceClassifierOutput(
            loss=loss,
            logits=logits,
            exit_layers=exit_layers,
            ramp_logits=ramp_logits,
            hidden_states=all_hidden_states,
            attentions=tuple(attentions) if output_attentions else None,
        )

    def _run_layers(
        self, input_ids, attention_mask, token_type_ids, position_ids, inputs_embeds, threshold, keep_ramp_logits,
        output_hidden_states, **kwargs,
    ):
        """The embeddings and the layers with early exit: (logits, exit_layers, ramp_logits, hidden_states)."""
        batch_size = (input_ids if input_ids is not None else inputs_embeds).shape[0]
        num_layers = self.config.num_hidden_layers

        hidden_states = self.base_model.embeddings(
            input_ids=input_ids, token_type_ids=token_type_ids, position_ids=position_ids, inputs_embeds=inputs_embeds
        )  # (B, T, H)
        device = hidden_states.device

        # Rows still in flight, as indices into the batch; exited rows are written out and dropped.
        running_rows = torch.arange(batch_size, device=device)  # (A,)
        logits = hidden_states.new_zeros(batch_size, self.num_labels)  # (B, C)
        exit_layers = torch.full((batch_size,), num_layers, dtype=torch.long, device=device)  # (B,)
        ramp_logits = (
            hidden_states.new_full((batch_size, num_layers, self.num_labels), float("nan")) if keep_ramp_logits else None
        )  # (B, L, C)

        # Every row's latest state (B, T, H): exited rows and dropped padding columns keep theirs.
        carried = hidden_states
        all_hidden_states = (carried,) if output_hidden_states else None

        layer_mask = create_bidirectional_mask(
            config=self.config, inputs_embeds=hidden_states, attention_mask=attention_mask
        )
        for layer_index, layer in enumerate(self.base_model.encoder.layer):
            hidden_states = layer(hidden_states, attention_mask=layer_mask, **kwargs)  # (A, T, H)
            if all_hidden_states is not None:
                carried = carried.clone()
                carried[running_rows, : hidden_states.shape[1]] = hidden_states
                all_hidden_states += (carried,)
            last_layer = layer_index == num_layers - 1
            if not (last_layer or keep_ramp_logits or threshold is not None):
                continue
            layer_logits = self.classify_at(layer_index, hidden_states, attention_mask)  # (A, C)
            if ramp_logits is not None:
                ramp_logits[running_rows, layer_index] = layer_logits
            if last_layer:
                logits[running_rows] = layer_logits
                break
            if threshold is None:
                continue

            exits = prediction_entropy(layer_logits) < threshold  # (A,)
            if not exits.any():
                continue
            logits[running_rows[exits]] = layer_logits[exits]
            exit_layers[running_rows[exits]] = layer_index + 1
            stays = ~exits
            if not stays.any():
                break
            running_rows = running_rows[stays]  # (A',)
            hidden_states = hidden_states[stays]  # (A', T, H)
            if attention_mask is not None:
                attention_mask = attention_mask[stays]  # (A', T)
                # Padding columns that no remaining row attends to are dropped too.
                last_used_column = int(attention_mask.bool().any(dim=0).nonzero().max()) + 1
                attention_mask = attention_mask[:, :last_used_column]
                hidden_states = hidden_states[:, :last_used_column]  # (A', T', H)
            layer_mask = create_bidirectional_mask(
                config=self.config, inputs_embeds=hidden_states, attention_mask=attention_mask
            )

        if all_hidden_states is not None:  # the rows that exited early: their state, carried to the last layer
            all_hidden_states += (carried,) * (num_layers + 1 - len(all_hidden_states))
        return logits, exit_layers, ramp_logits, all_hidden_states



class DeeBertForSequenceClassification(DeeBertClassifierMixin, DeeBertPreTrainedModel):
    """BERT with an off-ramp after every layer (see the module docstring).

    Training: with `labels` in training mode the loss is the joint objective (every classifier's cross-entropy,
    averaged), which is what a stock `Trainer` or `run_classification.py` optimises. The paper's two stages
    (fine-tune, then off-ramps on the frozen backbone) are training code: `adaptive-zoo train deebert`. A training
    step marks a chosen `entropy_threshold` as stale (`config.operating_point_stale`).
    """

    def __init__(self, config: DeeBertConfig):
        super().__init__(config)
        init_bert_classifier(self, config, BertModel(config))
        # Off-ramps after layers 1 .. L-1; after layer L the model's own pooler and classifier decide.
        self.off_ramps = nn.ModuleList(DeeBertOffRamp(config) for _ in range(config.num_hidden_layers - 1))
        add_auto_map(config, BACKBONE_AUTO_MAP)
        self.init_operating_point_checks(config)

        self.post_init()

    @torch.no_grad()
    def init_off_ramps_from_pooler(self) -> None:
        """Start every off-ramp pooler from the backbone's (pretrained) pooler, as the paper does."""
        for ramp in self.off_ramps:
            ramp.pooler.load_state_dict(self.bert.pooler.state_dict())

    def final_logits(self, hidden_states: torch.Tensor) -> torch.Tensor:
        """BertForSequenceClassification's head: pooler over [CLS], dropout, classifier. (B, T, H) -> (B, C)."""
        return self.classifier(self.dropout(self.bert.pooler(hidden_states)))


class DeeRobertaPreTrainedModel(StandardSwitchesMixin, RobertaPreTrainedModel):
    config_class = DeeRobertaConfig
    config: DeeRobertaConfig


class DeeRobertaModel(DeeRobertaPreTrainedModel, RobertaModel):
    """The plain RoBERTa backbone of a DeeBERT-RoBERTa checkpoint (what `AutoModel` loads): no off-ramps."""

    config_class = DeeRobertaConfig
    config: DeeRobertaConfig


class DeeRobertaForSequenceClassification(DeeBertClassifierMixin, DeeRobertaPreTrainedModel):
    """DeeBERT on RoBERTa (the paper's DeeBERT-RoBERTa): weight names equal `RobertaForSequenceClassification`'s
    (`roberta.*`, `classifier.dense`, `classifier.out_proj`), plus `off_ramps.*`; the last classifier is RoBERTa's
    own head. Everything else is `DeeBertForSequenceClassification`'s."""

    def __init__(self, config: DeeRobertaConfig):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.roberta = RobertaModel(config, add_pooling_layer=False)
        self.classifier = RobertaClassificationHead(config)
        self.off_ramps = nn.ModuleList(DeeBertOffRamp(config) for _ in range(config.num_hidden_layers - 1))
        add_auto_map(config, ROBERTA_BACKBONE_AUTO_MAP)
        self.init_operating_point_checks(config)

        self.post_init()

    @torch.no_grad()
    def init_off_ramps_from_pooler(self) -> None:
        """RoBERTa's classifier has no pooler: every off-ramp pooler starts from the head's dense + tanh
        (`classifier.dense`), the same computation (trained, when the checkpoint is a fine-tuned classifier)."""
        for ramp in self.off_ramps:
            ramp.pooler.dense.load_state_dict(self.classifier.dense.state_dict())

    def final_logits(self, hidden_states: torch.Tensor) -> torch.Tensor:
        """RobertaForSequenceClassification's head over the `<s>` state. (B, T, H) -> (B, C)."""
        return self.classifier(hidden_states)



__all__ = [
    "DeeBertForSequenceClassification",
    "DeeBertModel",
    "DeeBertPreTrainedModel",
    "DeeBertSequenceClassifierOutput",
    "DeeRobertaForSequenceClassification",
    "DeeRobertaModel",
    "DeeRobertaPreTrainedModel",
    "check_inputs_have_content",
    "prediction_entropy",
    "warn_stale_operating_point",
]
