"""PyTorch AdapLeR (Modarressi, Mohebbi, Pilehvar: "AdapLeR: Speeding up Inference by Adaptive Length
Reduction", ACL 2022).

A BERT classifier with a Contribution Predictor (CP) before every layer. CP_ℓ reads h^ℓ, the input of layer
ℓ + 1 (CP_0 reads the embeddings), and estimates each token's contribution S̃^ℓ (a softmax over the tokens
present in the row). A token is kept iff S̃^ℓ >= δ^ℓ = η^ℓ / n, with n the number of tokens present in the
row; [CLS] (position 0) is always kept.

- Inference (`inference_mode="remove"`): tokens below δ are removed for real. Each row's kept tokens are
  packed to the left in their original order and the batch is cut to the longest row, so deeper layers run on
  (B, T', H) with T' <= T: real savings at any batch size. Everything is per row (softmax, n, δ over the row's
  present tokens only), so a row's result does not depend on what it is batched with. Unlike the paper's
  reference code, which needs batch size 1, batching works. A single unpadded row (the latency setting) takes a
  leaner path: a boolean index drops its tokens, with the same scores and thresholds.
- Training (and `inference_mode="mask"`): soft removal (eq. 4). Every token stays; a non-positive additive
  attention mask M accumulates m^-(S̃^ℓ) layer after layer, sharpening as λ grows each epoch.
- `inference_mode="off"`, or the zoo's common off switch `adaptive=False` (whatever the mode): nothing is removed;
  the logits equal `BertForSequenceClassification`'s.

Standard switches: `output_hidden_states` returns every token's states in the input's positions, a removed
token's carried forward unchanged from the last layer it entered; `output_attentions` needs `inference_mode` "off"
or "mask" (or training) and eager attention; `torch.compile` gives the eager outputs; tracing or exporting is
refused with `inference_mode="remove"`, whose kept tokens depend on the input: export with `inference_mode="off"`.
Which tokens are kept is decided on the model's dtype: in bfloat16 a score near its cutoff δ can fall on the other
side than in float32, so the kept tokens (and the logits) can differ from float32's, the reference.

Weight names equal `BertForSequenceClassification`'s (`bert.*`, `classifier.*`), plus
`contribution_predictors.*`, `eta` and `theta`, so any BERT classifier checkpoint loads; a checkpoint of another
family is refused by `from_pretrained` (see `StandardSwitchesMixin`).

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
from transformers import initialization as init
from transformers.masking_utils import create_bidirectional_mask
from transformers.modeling_outputs import ModelOutput
from transformers.models.bert.modeling_bert import BertModel, BertPreTrainedModel
from transformers.models.roberta.modeling_roberta import (
    RobertaClassificationHead,
    RobertaModel,
    RobertaPreTrainedModel,
)
from transformers.utils.generic import can_return_tuple

from .configuration_adapler import AdapLeRConfig, AdapLeRRobertaConfig

# `save_pretrained` writes only the saved class's own Auto entry; this one lets `AutoModel` load the backbone.
BACKBONE_AUTO_MAP = {"AutoModel": "modeling_adapler.AdapLeRModel"}
ROBERTA_BACKBONE_AUTO_MAP = {"AutoModel": "modeling_adapler.AdapLeRRobertaModel"}

# The attention implementations AdapLeR is tested with (soft removal adds a float mask to the scores); others
# (flex_attention, flash_attention_*, Hub kernels) are refused when the model is built, loaded or switched.
SUPPORTED_ATTENTION_IMPLEMENTATIONS = ("eager", "sdpa")

# Bounds that `clamp_adaptive_parameters_` keeps η and θ in after each optimiser step.
ETA_MIN = 1e-3
THETA_MIN = 1e-3
# How to change η and θ, which live in the weights (for `check_config_unchanged`'s refusal).
ETA_THETA_HINTS = {
    name: f"change the weights instead: `with torch.no_grad(): model.{name}.copy_(torch.tensor(values))`, then "
    "`model.sync_config_from_parameters()` keeps the config in step"
    for name in ("eta", "theta")
}


@dataclass
class AdapLeRSequenceClassifierOutput(ModelOutput):
    r"""
    Output of [`AdapLeRBertForSequenceClassification`].

    Args:
        loss (`torch.FloatTensor` of shape `()`, *optional*, returned when `labels` is given):
            In training: `ce_loss + gamma * cp_loss + phi * length_loss` (the terms that were computed). In eval
            mode: `ce_loss`.
        logits (`torch.FloatTensor` of shape `(batch_size, num_labels)`):
            Classification logits.
        kept_tokens (`torch.LongTensor` of shape `(batch_size, num_hidden_layers)`):
            Number of tokens of each row entering each layer ([CLS] and [SEP] included, padding not). With
            `inference_mode="remove"` in eval mode it is non-increasing over layers; otherwise (soft removal or
            "off") nothing is removed and every layer holds the row's present-token count.
        kept_masks (`tuple` of `num_hidden_layers` `torch.BoolTensor` of shape `(batch_size, sequence_length)`, *optional*):
            Returned when `output_kept_masks=True`: which original positions entered each layer (the paper's
            Figure 4 rationales). Without real removal these are the attention mask.
        hidden_states (`tuple(torch.FloatTensor)`, *optional*, returned when `output_hidden_states=True`):
            The embeddings and the output of every layer, `num_hidden_layers + 1` tensors of shape
            `(batch_size, sequence_length, hidden_size)`, each token at its original position. A token removed
            before layer ℓ keeps the state of the last layer it entered in every later entry (carried forward, not
            computed).
        attentions (`tuple(torch.FloatTensor)`, *optional*, returned when `output_attentions=True`):
            Every layer's attention weights, `(batch_size, num_heads, sequence_length, sequence_length)`. Only
            without real removal (`inference_mode` "off" or "mask", or training) and with eager attention.
        ce_loss (`torch.FloatTensor` of shape `()`, *optional*):
            Cross-entropy of `logits`, when `labels` is given.
        cp_loss (`torch.FloatTensor` of shape `()`, *optional*):
            L_CP (eq. 6), in training with `labels` and `saliency`: sum over layers ℓ of (L - ℓ) times the batch
            mean of the inclusive KL(Ŝ^ℓ || S̃^ℓ).
        length_loss (`torch.FloatTensor` of shape `()`, *optional*):
            L_LENGTH (eq. 8), in training with `labels` and soft removal: sum of exp(M) over layers and present
            tokens, divided by (number of present tokens in the batch x L), so it is the expected retained
            fraction, in [0, 1].
    """

    loss: torch.FloatTensor | None = None
    logits: torch.FloatTensor | None = None
    kept_tokens: torch.LongTensor | None = None
    kept_masks: tuple[torch.BoolTensor, ...] | None = None
    ce_loss: torch.FloatTensor | None = None
    cp_loss: torch.FloatTensor | None = None
    length_loss: torch.FloatTensor | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None
    attentions: tuple[torch.FloatTensor, ...] | None = None


# Copied from adaptive_zoo.models.deebert.modeling_deebert.warn_stale_operating_point
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


def soft_removal(
    scores: torch.Tensor, delta: torch.Tensor | float, lam: float, beta: float
) -> torch.Tensor:
    """The soft-removal function m^-(S̃) of eq. 4, element-wise (a non-positive mask increment).

    Below the cutoff (S̃ < δ) it is λ_adj (S̃ - δ) - β / λ with λ_adj = λ / δ (the removal zone, steeper as λ
    grows); at or above it, (S̃ - 1) β / ((1 - δ) λ) (the leaky zone, from -β / λ at S̃ = δ up to 0 at S̃ = 1).
    Both zones give -β / λ at S̃ = δ, so the function is continuous. `delta` broadcasts against `scores`.
    """
    delta = torch.as_tensor(delta, dtype=scores.dtype, device=scores.device)
    removal_zone = (lam / delta) * (scores - delta) - beta / lam
    # (1 - δ) is 0 only for a row holding just [CLS] with η = 1, whose value is discarded: keep it finite so
    # no NaN reaches the gradient through the unselected branch of `where`.
    leaky_zone = (scores - 1) * beta / ((1 - delta).clamp_min(torch.finfo(scores.dtype).eps) * lam)
    return torch.where(scores < delta, removal_zone, leaky_zone)


def amplify_cls(scores: torch.Tensor, factor: torch.Tensor | float) -> torch.Tensor:
    """Multiply each row's first ([CLS]) score by `factor` and renormalise the row to sum to 1.

    With saliencies S and factor θ^ℓ this is eq. 7 (the CP targets Ŝ^ℓ); with the CP's S̃^ℓ and the dummy
    variable θ_d^ℓ it is eq. 9. Zeros (padding, removed tokens) stay zero. scores: (B, T) -> (B, T).
    """
    amplified = torch.cat([scores[:, :1] * factor, scores[:, 1:]], dim=1)  # (B, T)
    return amplified / amplified.sum(dim=-1, keepdim=True).clamp_min(torch.finfo(amplified.dtype).tiny)


def dummy_variable(theta: torch.Tensor) -> torch.Tensor:
    """θ_d = θ / θ.detach() (appendix B): exactly 1 in value, with dθ_d/dθ = 1 / θ. Used in place of θ in the
    soft-removal path, autograd then gives grad θ = grad θ_d / θ, which is eq. 14."""
    return theta / theta.detach()


def inclusive_kl(target: torch.Tensor, log_predicted: torch.Tensor) -> torch.Tensor:
    """Inclusive KL(target || predicted) = Σ_i target_i log(target_i / predicted_i) per row (eq. 6, appendix A).

    target: (B, T) probabilities, zero on absent tokens; log_predicted: (B, T) log-probabilities (may be -inf
    where target is 0). Returns (B,). Terms with target_i = 0 are 0.
    """
    log_predicted = torch.where(target > 0, log_predicted, torch.zeros_like(log_predicted))
    return (torch.xlogy(target, target) - target * log_predicted).sum(dim=-1)


class AdapLeRContributionPredictor(nn.Module):
    """CP_ℓ (section 3.1): an MLP scoring each token, then a softmax over the tokens present in the row."""

    def __init__(self, config: AdapLeRConfig):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.contribution_predictor_hidden_size)
        self.activation = nn.GELU()
        self.output = nn.Linear(config.contribution_predictor_hidden_size, 1)

    def masked_logits(self, hidden_states: torch.Tensor, present: torch.Tensor | None) -> torch.Tensor:
        """The MLP's score per token: hidden_states (B, T, H), present (B, T) bool -> (B, T) float32, -inf where
        not present (so a softmax over the row covers only its present tokens). `present=None`: all present."""
        logits = self.output(self.activation(self.dense(hidden_states))).squeeze(-1).float()  # (B, T)
        return logits if present is None else logits.masked_fill(~present, float("-inf"))  # (B, T)

    def log_scores(self, hidden_states: torch.Tensor, present: torch.Tensor | None) -> torch.Tensor:
        """log S̃: hidden_states (B, T, H), present (B, T) bool -> (B, T) float32, -inf where not present."""
        return torch.log_softmax(self.masked_logits(hidden_states, present), dim=-1)  # (B, T)

    def forward(self, hidden_states: torch.Tensor, present: torch.Tensor | None) -> torch.Tensor:
        """S̃: (B, T, H), (B, T) bool -> (B, T) float32, summing to 1 over each row's present tokens."""
        return torch.softmax(self.masked_logits(hidden_states, present), dim=-1)  # (B, T)


# -- standard switches (the same checks in every model of the zoo) ----------------------------------------------


# Copied from adaptive_zoo.models.deebert.modeling_deebert.check_checkpoint_model_type
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


# Copied from adaptive_zoo.models.deebert.modeling_deebert.check_attention_implementation
def check_attention_implementation(model_class: type, requested: str | None, supported: tuple[str, ...]) -> None:
    """Refuse an `attn_implementation` the model's adaptive paths are not written for (None is the default)."""
    if requested is not None and requested not in supported:
        raise ValueError(
            f"{model_class.__name__} supports attn_implementation in {supported}; got {requested!r}. Load the model "
            "with one of those (e.g. `attn_implementation='sdpa'`)."
        )


# Copied from adaptive_zoo.models.deebert.modeling_deebert.graph_capture
def graph_capture() -> str | None:
    """Which static-graph capture runs this forward: "export" (`torch.export`, `torch.onnx.export`,
    `torch.jit.trace`), "compile" (`torch.compile`) or None (eager)."""
    if torch.compiler.is_compiling():
        return "export" if torch.compiler.is_exporting() else "compile"
    if torch.jit.is_tracing() or torch.onnx.is_in_onnx_export():
        return "export"
    return None


# Copied from adaptive_zoo.models.deebert.modeling_deebert.raise_value_error
def raise_value_error(message: str) -> None:
    raise ValueError(message)


# Copied from adaptive_zoo.models.deebert.modeling_deebert.refuse_in_graph_capture
def refuse_in_graph_capture(message: str) -> None:
    """Raise `ValueError(message)` from a forward that is being compiled, exported or traced.

    Under `torch.compile` a plain `raise` would not reach the caller: dynamo gives up on the frame and runs it again
    uncompiled, where no capture is seen any more. A function dynamo may not trace runs, and raises, eagerly."""
    if graph_capture() == "compile":
        torch.compiler.disable(raise_value_error, reason=message)(message)
    raise ValueError(message)


# Copied from adaptive_zoo.models.deebert.modeling_deebert.output_flags
def output_flags(config, output_hidden_states, output_attentions) -> tuple[bool, bool]:
    """The call's `output_hidden_states` and `output_attentions`, each falling back to the config's field."""
    flags = []
    for name, value in (("output_hidden_states", output_hidden_states), ("output_attentions", output_attentions)):
        value = getattr(config, name) if value is None else value
        if not isinstance(value, bool):
            raise TypeError(f"`{name}` must be True or False (this model does not select layers); got {value!r}.")
        flags.append(value)
    return flags[0], flags[1]


# Copied from adaptive_zoo.models.deebert.modeling_deebert.check_attentions_available
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


# Copied from adaptive_zoo.models.deebert.modeling_deebert.ATTENTIONS_BEING_RECORDED
ATTENTIONS_BEING_RECORDED: ContextVar[tuple[frozenset[int], list[torch.Tensor]] | None] = ContextVar(
    "attentions_being_recorded", default=None
)


# Copied from adaptive_zoo.models.deebert.modeling_deebert.ATTENTION_HOOKS_LOCK
ATTENTION_HOOKS_LOCK = threading.Lock()


# Copied from adaptive_zoo.models.deebert.modeling_deebert.record_attention_weights
def record_attention_weights(module: nn.Module, args, output) -> None:
    """Forward hook of every attention module: append its weights (the second output) to this context's recording,
    if one is running and asked for this module."""
    recording = ATTENTIONS_BEING_RECORDED.get()
    if recording is not None and id(module) in recording[0]:
        recording[1].append(output[1])


# Copied from adaptive_zoo.models.deebert.modeling_deebert.recording_attentions
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


# Copied from adaptive_zoo.models.deebert.modeling_deebert.check_config_unchanged
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


# Copied from adaptive_zoo.models.deebert.modeling_deebert.weights_checksum
def weights_checksum(model: nn.Module) -> list[float]:
    """One number per parameter (its sum, in float64): cheap next to a training step, and changed by any step."""
    with torch.no_grad():
        return [float(parameter.detach().sum(dtype=torch.float64)) for parameter in model.parameters()]


# Copied from adaptive_zoo.models.deebert.modeling_deebert.remember_weights_before_training
def remember_weights_before_training(model: nn.Module) -> None:
    """Called by a training-mode forward with gradients on, while the model has an operating point: keep a checksum
    of the weights (once), so that a later check can tell whether an optimiser step followed. A forward alone,
    with no step after it, leaves the operating point as it was."""
    if model.config.operating_point_stale or getattr(model, "weights_before_training", None) is not None:
        return
    model.weights_before_training = weights_checksum(model)


# Copied from adaptive_zoo.models.deebert.modeling_deebert.flag_operating_point_if_weights_changed
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


# Copied from adaptive_zoo.models.deebert.modeling_deebert.flag_operating_point_on_load
def flag_operating_point_on_load(model: nn.Module, stale_after_load) -> None:
    """Flag the operating point stale when other weights are loaded into the built model (`load_state_dict`, e.g.
    a Trainer restoring its best checkpoint), if `stale_after_load(model, incompatible_keys)` says the point was
    chosen for the weights the model had."""

    def hook(module, incompatible_keys) -> None:
        if stale_after_load(module, incompatible_keys):
            module.config.operating_point_stale = True

    model.register_load_state_dict_post_hook(hook)


# Copied from adaptive_zoo.models.deebert.modeling_deebert.StandardSwitchesMixin
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


class AdapLeRPreTrainedMixin(StandardSwitchesMixin):
    """What AdapLeR's pre-trained classes of every backbone share: the standard switches, and η/θ's initialisation."""

    @torch.no_grad()
    def _init_weights(self, module):
        super()._init_weights(module)
        if isinstance(module, AdapLeRClassifierMixin):
            # Also runs in `from_pretrained` for a checkpoint without them (e.g. a fine-tuned BERT).
            eta, theta = initial_eta_theta(module.config)
            init.copy_(module.eta, eta)
            init.copy_(module.theta, theta)
            init.constant_(module.soft_removal_lambda_value, float(module.config.lambda_init))


class AdapLeRPreTrainedModel(AdapLeRPreTrainedMixin, BertPreTrainedModel):
    config_class = AdapLeRConfig
    config: AdapLeRConfig


# Copied from adaptive_zoo.models.deebert.modeling_deebert.check_inputs_have_content
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


# Copied from adaptive_zoo.models.deebert.modeling_deebert.checked_input_shape
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


# Copied from adaptive_zoo.models.deebert.modeling_deebert.check_classifier_inputs
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


# Copied from adaptive_zoo.models.deebert.modeling_deebert.init_bert_classifier
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


# Copied from adaptive_zoo.models.deebert.modeling_deebert.add_auto_map
def add_auto_map(config, entries: dict[str, str]) -> None:
    """Add `entries` to `config.auto_map`, keeping those it has: `save_pretrained` writes only the saved class's own
    Auto entry, and these let the other Auto classes load the saved folder too."""
    config.auto_map = {**entries, **(getattr(config, "auto_map", None) or {})}


def initial_eta_theta(config: AdapLeRConfig) -> tuple[torch.Tensor, torch.Tensor]:
    num_layers = config.num_hidden_layers
    eta = torch.tensor([float(v) for v in (config.eta or [1.0] * num_layers)])
    theta = torch.tensor([float(v) for v in (config.theta or [1.0] * num_layers)])
    return eta, theta


class AdapLeRModel(AdapLeRPreTrainedModel, BertModel):
    """The plain BERT backbone of an AdapLeR checkpoint (what `AutoModel` loads): all tokens, no CPs."""

    config_class = AdapLeRConfig
    config: AdapLeRConfig


class AdapLeRClassifierMixin:
    """AdapLeR over a BERT-shaped encoder (`self.base_model`: `embeddings`, `encoder.layer`), whatever the family:
    η/θ, the training-step checks and the forward with token removal. The family's class builds the modules and its
    vanilla head (`head_logits`)."""

    # The losses are batch means that ignore `num_items_in_batch`: let the Trainer scale for gradient accumulation.
    accepts_loss_kwargs = False

    def head_logits(self, hidden_states: torch.Tensor) -> torch.Tensor:
        """The vanilla classifier's head over the last layer's states (B, T', H) -> (B, C); the first token is kept."""
        raise NotImplementedError

    def init_adaptive_parts(self, config) -> None:
        """The contribution predictors, η, θ and λ, for the family's `__init__`."""
        # CP_ℓ scores the input of layer ℓ (0-based); CP_0 reads the embeddings.
        self.contribution_predictors = nn.ModuleList(
            AdapLeRContributionPredictor(config) for _ in range(config.num_hidden_layers)
        )
        eta, theta = initial_eta_theta(config)
        self.eta = nn.Parameter(eta)  # (L,) η^ℓ
        self.theta = nn.Parameter(theta)  # (L,) θ^ℓ
        # λ of eq. 4; training code sets it each epoch (config.lambda_at_epoch). A persistent buffer, so the λ that
        # `inference_mode="mask"` uses survives save and load.
        self.register_buffer("soft_removal_lambda_value", torch.tensor(float(config.lambda_init)))
        # The config fields the modules were built for, and η/θ as the config was last kept in step with the
        # weights: a later assignment to any of them is refused at the next forward (it could not take effect).
        self.fixed_config_fields = {
            name: getattr(config, name)
            for name in ("num_labels", "num_hidden_layers", "contribution_predictor_hidden_size", "eta", "theta")
        }
        # A full AdapLeR state dict brings its own η and predictors; weights without them leave the point stale.
        flag_operating_point_on_load(self, lambda model, keys: "eta" in keys.missing_keys)
        self.frozen_unused_parameters: set[str] = set()
        self.freeze_unused_adaptive_parts()

    def adaptive_part_names(self) -> list[str]:
        """The parameters only token removal uses: η, θ and the contribution predictors'."""
        predictors = [f"contribution_predictors.{name}" for name, _ in self.contribution_predictors.named_parameters()]
        return ["eta", "theta", *predictors]

    def freeze_unused_adaptive_parts(self) -> None:
        """With `inference_mode="off"` or `adaptive=False` η, θ and the contribution predictors are unused: freeze them
        (`requires_grad=False`), and unfreeze what this froze once the setting is back. A parameter that trains but
        gets no gradient breaks DDP with `find_unused_parameters=False` (the Trainer's choice with gradient
        checkpointing), and an optimiser with weight decay would still shrink it. Runs at construction and on every
        `train()` / `eval()` (the Trainer calls `train()` before its steps)."""
        parameters = dict(self.named_parameters())
        if self.config.adaptive and self.config.inference_mode != "off":
            for name in self.frozen_unused_parameters:
                parameters[name].requires_grad_(True)
            self.frozen_unused_parameters.clear()
            return
        for name in self.adaptive_part_names():
            if parameters[name].requires_grad:
                parameters[name].requires_grad_(False)
                self.frozen_unused_parameters.add(name)

    def train(self, mode: bool = True):
        """`nn.Module.train`, then the unused adaptive parts frozen or unfrozen (`freeze_unused_adaptive_parts`)."""
        super().train(mode)
        self.freeze_unused_adaptive_parts()
        return self

    @property
    def soft_removal_lambda(self) -> float:
        """λ of the soft-removal function (eq. 4), stored in the weights (`soft_removal_lambda_value`)."""
        return float(self.soft_removal_lambda_value)

    @soft_removal_lambda.setter
    def soft_removal_lambda(self, value: float) -> None:
        with torch.no_grad():
            self.soft_removal_lambda_value.fill_(float(value))

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *model_args, **kwargs):
        """`from_pretrained`, then the config kept in step with the loaded η and θ (the weights win: a checkpoint
        saved by the zoo has them equal already; a differing config value is replaced, with a warning)."""
        model = super().from_pretrained(pretrained_model_name_or_path, *model_args, **kwargs)
        if isinstance(model, tuple):  # output_loading_info=True
            return model
        if model.config.eta is not None or model.config.theta is not None:
            eta, theta = initial_eta_theta(model.config)
            if not (torch.allclose(eta, model.eta.detach().float().cpu())
                    and torch.allclose(theta, model.theta.detach().float().cpu())):
                warnings.warn(
                    "`config.eta` / `config.theta` differ from the η and θ stored in the checkpoint's weights, which "
                    "win: the config now holds the weights' values. To change η, assign `model.eta` (see "
                    "`sync_config_from_parameters`).",
                    UserWarning,
                    stacklevel=2,
                )
            model.sync_config_from_parameters()
        return model

    # -- the η, θ objective ------------------------------------------------------------------------------------
    def adaptive_parameters(self) -> list[nn.Parameter]:
        """[eta, theta]: the parameters of the speed-up objective, for their own optimiser param group."""
        return [self.eta, self.theta]

    @torch.no_grad()
    def clamp_adaptive_parameters_(self) -> None:
        """Keep η in [1e-3, 1] and θ >= 1e-3; call after each optimiser step."""
        self.eta.clamp_(ETA_MIN, 1.0)
        self.theta.clamp_(min=THETA_MIN)

    def sync_config_from_parameters(self) -> None:
        """Write the trained η and θ into `config.eta` / `config.theta` (`save_pretrained` does it too). η and θ
        live in the weights: to change them, assign the parameters (`with torch.no_grad(): model.eta.copy_(...)`)
        and call this; an assignment to `config.eta` alone is refused at the next forward."""
        check_config_unchanged(self, self.fixed_config_fields, ETA_THETA_HINTS)
        self.config.eta = [float(v) for v in self.eta.detach().float().cpu().tolist()]
        self.config.theta = [float(v) for v in self.theta.detach().float().cpu().tolist()]
        self.fixed_config_fields.update(eta=self.config.eta, theta=self.config.theta)

    def save_pretrained(self, save_directory, *args, **kwargs):
        """`PreTrainedModel.save_pretrained`, with η and θ inside their bounds and written into the config, so the
        saved `config.json` documents the trained values, and the operating point flagged stale if the backbone was
        trained without it (Trainer checkpoints and `push_to_hub` save through here)."""
        check_config_unchanged(self, self.fixed_config_fields, ETA_THETA_HINTS)
        flag_operating_point_if_weights_changed(self)
        self.clamp_adaptive_parameters_()
        self.sync_config_from_parameters()
        return super().save_pretrained(save_directory, *args, **kwargs)

    def _check_training_step(self, labels, saliency) -> None:
        """Before a training-mode forward with gradients on: refuse what would silently train a stale adaptive
        model, and remember the weights when the backbone trains without the adaptive objective, so that an
        optimiser step flags the operating point stale (a forward alone changes nothing; η and θ are clamped after
        each step by the zoo's training loop and before saving, not here)."""
        if self.config.inference_mode == "off" or not self.config.adaptive:
            remember_weights_before_training(self)
        elif labels is not None and saliency is None:
            raise ValueError(
                "AdapLeR's contribution predictors train against per-token saliencies (the paper's phase 2), which "
                "this training loop did not pass (`saliency`), so it would silently leave them and η unfitted. Run "
                "the zoo's three phases instead: `adaptive-zoo train adapler --base-model CHECKPOINT --dataset DATA`. "
                "To fine-tune only the backbone as a plain BERT classifier, set `config.inference_mode = 'off'` "
                "first (the operating point is then flagged stale)."
            )

    # -- forward -----------------------------------------------------------------------------------------------
    @can_return_tuple
    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        saliency: torch.Tensor | None = None,
        output_kept_masks: bool | None = None,
        output_hidden_states: bool | None = None,
        output_attentions: bool | None = None,
        **kwargs,
    ) -> AdapLeRSequenceClassifierOutput:
        r"""
        attention_mask (`torch.LongTensor` of shape `(batch_size, sequence_length)`, *optional*):
            1 on real tokens, 0 on padding. Padding must be on the right: position 0 holds [CLS].
        labels (`torch.LongTensor` of shape `(batch_size,)`, *optional*):
            Class indices in `[0, num_labels)`. In training the loss adds the AdapLeR terms (see `loss`).
        saliency (`torch.FloatTensor` of shape `(batch_size, sequence_length)`, *optional*):
            Per-token saliency S from the fine-tuned model (phase 2), aligned with `input_ids`, non-negative,
            zeros on padding. In training with `labels` it gives the CP targets and `cp_loss`; ignored otherwise.
        output_kept_masks (`bool`, *optional*):
            Also return `kept_masks`, which original positions entered each layer.
        output_hidden_states (`bool`, *optional*, defaults to `config.output_hidden_states`):
            Also return every layer's states at the original positions; a removed token's are carried forward.
        output_attentions (`bool`, *optional*, defaults to `config.output_attentions`):
            Also return every layer's attention weights: without real removal and with eager attention only.

        Gradient routing: one backward of `loss` trains both of the paper's objectives. `length_loss` is built
        from S̃ detached, so it reaches only η and θ (θ through θ_d, eq. 14); the CP targets use θ detached,
        so `cp_loss` does not train θ directly. Put `adaptive_parameters()` in their own param group.
        """
        batch_size, sequence_length = check_classifier_inputs(
            self.config, input_ids, inputs_embeds, attention_mask, labels
        )
        if saliency is not None and tuple(saliency.shape) != (batch_size, sequence_length):
            raise ValueError(
                f"`saliency` must have the shape of `input_ids`, {(batch_size, sequence_length)} (one score per "
                f"token, zeros on padding); got {tuple(saliency.shape)}."
            )
        if attention_mask is not None and tuple(attention_mask.shape) != (batch_size, sequence_length):
            raise ValueError(
                f"AdapLeR takes a 2-D `attention_mask` of shape {(batch_size, sequence_length)}; "
                f"got {tuple(attention_mask.shape)}."
            )
        check_config_unchanged(self, self.fixed_config_fields, ETA_THETA_HINTS)
        flag_operating_point_if_weights_changed(self)
        if self.training and torch.is_grad_enabled():
            self._check_training_step(labels, saliency)
        mode = self.config.inference_mode if self.config.adaptive else "off"  # `adaptive=False`: "off", whatever mode
        soft = mode != "off" and (self.training or mode == "mask")
        hard = mode == "remove" and not self.training
        if hard and self.config.operating_point_stale:
            warn_stale_operating_point(self, "token-removal operating point (η, contribution predictors)",
                                       "inference_mode='off'")
        output_hidden_states, output_attentions = output_flags(self.config, output_hidden_states, output_attentions)
        if output_attentions:
            check_attentions_available(type(self), self.config, hard, "config.inference_mode = 'off'")
        if hard and graph_capture() == "export":
            refuse_in_graph_capture(
                "AdapLeR's token removal keeps the tokens each input's contribution scores select, which a traced or "
                "exported graph cannot keep: it would freeze the example batch's kept tokens. Export the full-depth "
                f"model, without removal and exactly the vanilla {self.config.vanilla_model_type} classifier: set "
                "`model.config.inference_mode = 'off'` (or `model.config.adaptive = False`) first. Real removal runs "
                "in eager mode and under torch.compile."
            )

        hidden_states = self.base_model.embeddings(
            input_ids=input_ids, token_type_ids=token_type_ids, position_ids=position_ids, inputs_embeds=inputs_embeds
        )  # (B, T, H)
        device = hidden_states.device
        if attention_mask is None:
            present = torch.ones(batch_size, sequence_length, dtype=torch.bool, device=device)  # (B, T)
        else:
            present = attention_mask.to(device=device, dtype=torch.bool)  # (B, T)
        if (soft or hard) and not bool(present[:, 0].all()):
            raise ValueError(
                "AdapLeR always keeps the first token ([CLS]), so padding must be on the right "
                "(tokenizer.padding_side = 'right'); a row has padding at position 0."
            )

        run = self._forward_hard if hard else self._forward_soft if soft else self._forward_off
        with recording_attentions(
            [layer.attention.self for layer in self.base_model.encoder.layer] if output_attentions else []
        ) as attentions:
            hidden_states, kept_tokens, kept_masks, aux, all_hidden_states = run(
                hidden_states, present, attention_mask, labels, saliency, bool(output_kept_masks),
                output_hidden_states, **kwargs,
            )

        logits = self.head_logits(hidden_states)  # (B, C)

        loss = ce_loss = cp_loss = length_loss = None
        if labels is not None:
            ce_loss = CrossEntropyLoss()(logits.view(-1, self.num_labels), labels.view(-1))
            loss = ce_loss
            cp_loss, length_loss = aux
            if cp_loss is not None:
                loss = loss + self.config.gamma * cp_loss
            if length_loss is not None:
                loss = loss + self.config.phi * length_loss

        return AdapLeRSequenceClassifierOutput(
            loss=loss,
            logits=logits,
            kept_tokens=kept_tokens,
            kept_masks=kept_masks,
            ce_loss=ce_loss,
            cp_loss=cp_loss,
            length_loss=length_loss,
            hidden_states=all_hidden_states,
            attentions=tuple(attentions) if output_attentions else None,
        )

    def _forward_off(
        self, hidden_states, present, attention_mask, labels, saliency, output_kept_masks, output_hidden_states,
        **kwargs,
    ):
        """No removal: exactly `BertModel`'s encoder loop."""
        layer_mask = create_bidirectional_mask(
            config=self.config, inputs_embeds=hidden_states, attention_mask=attention_mask
        )
        all_hidden_states = (hidden_states,) if output_hidden_states else None
        for layer in self.base_model.encoder.layer:
            hidden_states = layer(hidden_states, attention_mask=layer_mask, **kwargs)  # (B, T, H)
            if all_hidden_states is not None:
                all_hidden_states += (hidden_states,)
        num_layers = self.config.num_hidden_layers
        kept_tokens = present.sum(dim=-1, keepdim=True).expand(-1, num_layers).clone()  # (B, L)
        kept_masks = (present,) * num_layers if output_kept_masks else None
        return hidden_states, kept_tokens, kept_masks, (None, None), all_hidden_states

    def _forward_hard(
        self, hidden_states, present, attention_mask, labels, saliency, output_kept_masks, output_hidden_states,
        **kwargs,
    ):
        """Real removal: before each layer drop the tokens below δ and pack each row's survivors to the left."""
        batch_size, sequence_length, hidden_size = hidden_states.shape
        if batch_size == 1 and bool(present.all()):
            return self._forward_hard_single_row(hidden_states, output_kept_masks, output_hidden_states, **kwargs)
        # Every token's latest state at its original position (B, T, H): removed tokens keep theirs.
        carried = hidden_states
        all_hidden_states = (carried,) if output_hidden_states else None
        device = hidden_states.device
        kept_tokens = torch.zeros(batch_size, self.config.num_hidden_layers, dtype=torch.long, device=device)  # (B, L)
        kept_masks = [] if output_kept_masks else None
        # Original position of the token in each slot of each row; slots past a row's count are stale.
        positions = torch.arange(sequence_length, device=device).expand(batch_size, -1)  # (B, T)
        layer_mask = self._padding_mask(hidden_states, present)
        eta = self.eta.detach().float().clamp(ETA_MIN, 1.0)  # (L,) within its bounds whatever the optimiser did

        for layer_index, (layer, predictor) in enumerate(zip(self.base_model.encoder.layer, self.contribution_predictors)):
            scores = predictor(hidden_states, present)  # (B, T) S̃, zeros where absent
            delta = eta[layer_index] / present.sum(dim=-1)  # (B,) δ = η / n, per row
            keep = (scores >= delta[:, None]) & present  # (B, T)
            keep[:, 0] = True  # [CLS] stays
            if not torch.equal(keep, present):
                counts = keep.sum(dim=-1)  # (B,)
                new_length = int(counts.max())
                # Stable sort of "dropped" flags: kept slots first, in their original order.
                order = torch.sort((~keep).to(torch.uint8), dim=1, stable=True).indices[:, :new_length]  # (B, T')
                hidden_states = hidden_states.gather(
                    1, order.unsqueeze(-1).expand(-1, -1, hidden_size)
                )  # (B, T', H)
                positions = positions.gather(1, order)  # (B, T')
                present = torch.arange(new_length, device=device) < counts[:, None]  # (B, T')
                layer_mask = self._padding_mask(hidden_states, present)
            kept_tokens[:, layer_index] = present.sum(dim=-1)
            if kept_masks is not None:
                kept_masks.append(
                    torch.zeros(batch_size, sequence_length, dtype=torch.bool, device=device).scatter_(
                        1, positions, present
                    )
                )  # (B, T_original)
            hidden_states = layer(hidden_states, attention_mask=layer_mask, **kwargs)  # (B, T', H)
            if all_hidden_states is not None:
                rows, slots = present.nonzero(as_tuple=True)  # the tokens this layer computed
                carried = carried.index_put((rows, positions[rows, slots]), hidden_states[rows, slots])
                all_hidden_states += (carried,)
        kept_masks = tuple(kept_masks) if kept_masks is not None else None
        return hidden_states, kept_tokens, kept_masks, (None, None), all_hidden_states

    def _forward_hard_single_row(self, hidden_states, output_kept_masks, output_hidden_states, **kwargs):
        """Real removal for one row without padding (batch size 1, the latency setting). Nothing needs packing,
        so a boolean index drops the tokens below δ, with no sort, gather or padding mask: at a few dozen tokens
        those small ops cost as much as a layer's matmuls. Scores and thresholds are computed as in
        `_forward_hard`, so the same tokens are kept."""
        sequence_length = hidden_states.shape[1]
        device = hidden_states.device
        positions = torch.arange(sequence_length, device=device)  # (T',) original position of each kept token
        eta = self.eta.detach().float().clamp(ETA_MIN, 1.0)  # (L,) within its bounds whatever the optimiser did
        kept_counts, kept_masks = [], [] if output_kept_masks else None
        carried = hidden_states  # (1, T, H), every token's latest state at its original position
        all_hidden_states = (carried,) if output_hidden_states else None

        for layer_index, (layer, predictor) in enumerate(zip(self.base_model.encoder.layer, self.contribution_predictors)):
            length = hidden_states.shape[1]
            scores = predictor(hidden_states, None)  # (1, T') S̃
            keep = scores >= eta[layer_index] / length  # (1, T') δ = η / n
            keep[:, 0] = True  # [CLS] stays
            kept = int(keep.sum())
            if kept < length:
                hidden_states = hidden_states[keep].unsqueeze(0)  # (1, T'', H)
                positions = positions[keep[0]]  # (T'',)
            kept_counts.append(kept)
            if kept_masks is not None:
                kept_masks.append(
                    torch.zeros(1, sequence_length, dtype=torch.bool, device=device).index_fill_(1, positions, True)
                )  # (1, T_original)
            hidden_states = layer(hidden_states, attention_mask=None, **kwargs)  # (1, T'', H)
            if all_hidden_states is not None:
                carried = carried.index_copy(1, positions, hidden_states)
                all_hidden_states += (carried,)
        kept_tokens = torch.tensor([kept_counts], dtype=torch.long, device=device)  # (1, L)
        kept_masks = tuple(kept_masks) if kept_masks is not None else None
        return hidden_states, kept_tokens, kept_masks, (None, None), all_hidden_states

    def _padding_mask(self, hidden_states: torch.Tensor, present: torch.Tensor) -> torch.Tensor | None:
        """The attention mask of the packed batch, or None when no row has padding (then building it would cost more
        per layer than the last layers' matmuls on a few tokens)."""
        if bool(present.all()):
            return None
        return create_bidirectional_mask(config=self.config, inputs_embeds=hidden_states, attention_mask=present)

    def _forward_soft(
        self, hidden_states, present, attention_mask, labels, saliency, output_kept_masks, output_hidden_states,
        **kwargs,
    ):
        """Soft removal (eq. 4): every token stays; an additive mask M accumulates before each layer."""
        if self.config._attn_implementation not in ("eager", "sdpa"):
            raise ValueError(
                "Soft removal adds a float mask to the attention scores, which needs "
                f"`attn_implementation='sdpa'` or 'eager'; got {self.config._attn_implementation!r}."
            )
        num_layers = self.config.num_hidden_layers
        lam, beta = float(self.soft_removal_lambda), float(self.config.beta)
        compute_losses = self.training and labels is not None
        with_cp_loss = compute_losses and saliency is not None

        removable = present.clone()  # (B, T)
        removable[:, 0] = False  # [CLS] gets no mask
        tokens_present = present.sum(dim=-1)  # (B,) n
        mask_floor = torch.finfo(hidden_states.dtype).min
        zeros = torch.zeros(present.shape, dtype=torch.float32, device=present.device)  # (B, T)
        accumulated_mask = zeros  # (B, T) M, feeds the attention: trained by CE
        length_mask = zeros  # (B, T) the same values, but from S̃ detached: L_LENGTH reaches only η, θ
        retained, cp_loss = [], None
        all_hidden_states = (hidden_states,) if output_hidden_states else None
        if with_cp_loss:
            if bool((saliency < 0).any()):
                raise ValueError("`saliency` must be non-negative (norms of gradient x input).")
            salient = saliency.float() * present  # (B, T) S, zeros on padding
            cp_loss = zeros.new_zeros(())

        for layer_index, (layer, predictor) in enumerate(zip(self.base_model.encoder.layer, self.contribution_predictors)):
            log_scores = predictor.log_scores(hidden_states, present)  # (B, T) log S̃
            scores = log_scores.exp()  # (B, T) S̃
            # η and θ within their bounds whatever an optimiser did, without writing to them (the zoo's training loop
            # projects the parameters after each step, `save_pretrained` before saving)
            eta = self.eta[layer_index].float().clamp(ETA_MIN, 1.0)  # ()
            delta = (eta / tokens_present).unsqueeze(-1)  # (B, 1) δ = η / n
            theta_d = dummy_variable(self.theta[layer_index].float())  # () θ_d == 1
            step = soft_removal(amplify_cls(scores, theta_d), delta, lam, beta)  # (B, T) m^-
            accumulated_mask = accumulated_mask + torch.where(removable, step, zeros)  # (B, T)
            if compute_losses:
                length_step = soft_removal(amplify_cls(scores.detach(), theta_d), delta, lam, beta)  # (B, T)
                length_mask = length_mask + torch.where(removable, length_step, zeros)  # (B, T)
                retained.append(torch.where(present, length_mask.exp(), zeros).sum())
            if with_cp_loss:
                theta = self.theta[layer_index].detach().float().clamp(min=THETA_MIN)  # ()
                target = amplify_cls(salient, theta)  # (B, T) Ŝ^ℓ, eq. 7
                cp_loss = cp_loss + (num_layers - layer_index) * inclusive_kl(target, log_scores).mean()
            additive = torch.where(present, accumulated_mask, mask_floor).clamp_min(mask_floor)  # (B, T)
            additive = additive.to(hidden_states.dtype)[:, None, None, :]  # (B, 1, 1, T)
            hidden_states = layer(hidden_states, attention_mask=additive, **kwargs)  # (B, T, H)
            if all_hidden_states is not None:
                all_hidden_states += (hidden_states,)

        length_loss = None
        if compute_losses:
            length_loss = torch.stack(retained).sum() / (tokens_present.sum() * num_layers)
        kept_tokens = tokens_present.unsqueeze(-1).expand(-1, num_layers).clone()  # (B, L)
        kept_masks = (present,) * num_layers if output_kept_masks else None
        return hidden_states, kept_tokens, kept_masks, (cp_loss, length_loss), all_hidden_states


class AdapLeRBertForSequenceClassification(AdapLeRClassifierMixin, AdapLeRPreTrainedModel):
    """BERT classifier with AdapLeR's per-layer Contribution Predictors and token removal (see the module
    docstring). `eta` and `theta` (shape (L,)) are trainable; `soft_removal_lambda` is the λ of eq. 4.

    Training outside the zoo (a stock `Trainer`, `run_classification.py`): the contribution predictors learn
    against per-token saliencies that such scripts cannot supply, so a training step with labels and soft removal
    but no `saliency` raises, naming what to run instead. With `inference_mode="off"` the model trains as a plain
    BERT classifier and marks its operating point stale after an optimiser step. Whatever the optimiser, the forward
    computes with η and θ inside their bounds (without writing to them), the zoo's training loop projects them after
    every step, and `save_pretrained` projects them and writes the trained values into `config.eta` / `config.theta`.
    """

    def __init__(self, config: AdapLeRConfig):
        super().__init__(config)
        init_bert_classifier(self, config, BertModel(config))
        self.init_adaptive_parts(config)
        add_auto_map(config, BACKBONE_AUTO_MAP)

        self.post_init()

    def head_logits(self, hidden_states: torch.Tensor) -> torch.Tensor:
        """BertForSequenceClassification's head: pooler over [CLS], dropout, classifier."""
        return self.classifier(self.dropout(self.bert.pooler(hidden_states)))


class AdapLeRRobertaPreTrainedModel(AdapLeRPreTrainedMixin, RobertaPreTrainedModel):
    config_class = AdapLeRRobertaConfig
    config: AdapLeRRobertaConfig


class AdapLeRRobertaModel(AdapLeRRobertaPreTrainedModel, RobertaModel):
    """The plain RoBERTa backbone of an AdapLeR-RoBERTa checkpoint (what `AutoModel` loads): all tokens, no CPs."""

    config_class = AdapLeRRobertaConfig
    config: AdapLeRRobertaConfig


class AdapLeRRobertaForSequenceClassification(AdapLeRClassifierMixin, AdapLeRRobertaPreTrainedModel):
    """AdapLeR on RoBERTa: weight names equal `RobertaForSequenceClassification`'s (`roberta.*`, `classifier.*`), plus
    the contribution predictors, η and θ; the head is RoBERTa's over the `<s>` state, which AdapLeR always keeps.
    Everything else is `AdapLeRBertForSequenceClassification`'s."""

    def __init__(self, config: AdapLeRRobertaConfig):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.roberta = RobertaModel(config, add_pooling_layer=False)
        self.classifier = RobertaClassificationHead(config)
        self.init_adaptive_parts(config)
        add_auto_map(config, ROBERTA_BACKBONE_AUTO_MAP)

        self.post_init()

    def head_logits(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.classifier(hidden_states)

__all__ = [
    "AdapLeRBertForSequenceClassification",
    "AdapLeRContributionPredictor",
    "AdapLeRModel",
    "AdapLeRPreTrainedModel",
    "AdapLeRRobertaForSequenceClassification",
    "AdapLeRRobertaModel",
    "AdapLeRRobertaPreTrainedModel",
    "AdapLeRSequenceClassifierOutput",
    "amplify_cls",
    "dummy_variable",
    "inclusive_kl",
    "soft_removal",
]
