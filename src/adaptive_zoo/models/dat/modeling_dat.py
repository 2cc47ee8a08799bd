"""PyTorch Depth-Adaptive Transformer (Elbayad, Gu, Grave, Auli: "Depth-Adaptive Transformer", ICLR 2020).

A BART encoder-decoder whose decoder can emit the output distribution after every block n = 1 .. N ("anytime
prediction"): every exit reads its block's output through the model's one output projection, tied to the
embeddings. BART's blocks are post-LN (each ends in a LayerNorm), so every block's output is already normalised
and no per-exit LayerNorm is added. An exit predictor (sequence-specific, token-specific multinomial or
geometric-like) or a confidence threshold decides how many blocks each token runs.

Decoding saves real compute. When a token exits at block n, blocks n+1 .. N do not run for it; its state in
those blocks is a copy of its block-n state. A later token that reaches block m > n attends, at that position,
to keys and values computed from the copied state; they are computed lazily, once, the first time a later token
of the same row reaches block m, and never if none does. The bookkeeping (which positions wait for keys/values
in which block, and their copied states) lives in `DepthAdaptiveCache`, an `EncoderDecoderCache` that beam
search reorders together with the keys and values. Queries, feed-forward and cross-attention run on the
still-active tokens only, packed per row, so batched decoding with per-row exits gives the outputs of
decoding one row at a time.

With `config.adaptive_depth = False`, or the zoo's common off switch `config.adaptive = False`, the model computes
exactly what `BartForConditionalGeneration` computes with the same weights (weight names are BART's, plus
`exit_predictor.*`); a checkpoint of another family is refused by `from_pretrained` (see `StandardSwitchesMixin`).

Standard switches: adaptive decoding (eval mode, `adaptive_depth=True`) refuses `torch.compile` (inductor changed
its logits and exits) and tracing or exporting (a static graph would freeze the example's exits); both work on the
full-depth model (`adaptive_depth=False`). `output_hidden_states` and `output_attentions` are refused;
`resize_token_embeddings` resizes the output bias with the embeddings.

This file is Hub code: it imports only torch, transformers and its sibling configuration, so that
`trust_remote_code` can load a saved folder without adaptive-zoo installed.
"""

import warnings
from dataclasses import dataclass

import torch
from torch import nn
from transformers import PreTrainedConfig
from transformers import initialization as init
from transformers.cache_utils import Cache, DynamicCache, EncoderDecoderCache
from transformers.generation import GenerationMixin
from transformers.masking_utils import create_bidirectional_mask, create_causal_mask
from transformers.modeling_outputs import BaseModelOutput, ModelOutput, Seq2SeqLMOutput
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS
from transformers.models.bart.modeling_bart import (
    BartAttention,
    BartDecoderLayer,
    BartModel,
    BartPreTrainedModel,
    eager_attention_forward,
    shift_tokens_right,
)
from transformers.utils.deprecation import deprecate_kwarg
from transformers.utils.generic import can_return_tuple

from .configuration_dat import DepthAdaptiveTransformerConfig

IGNORE_INDEX = -100

# The attention implementations adaptive decoding is tested with; others (flex_attention, flash_attention_*, Hub
# kernels) are refused when the model is built, loaded or switched with `set_attn_implementation`.
SUPPORTED_ATTENTION_IMPLEMENTATIONS = ("eager", "sdpa")


# ---------------------------------------------------------------------------------------------------------------
# Outputs
# ---------------------------------------------------------------------------------------------------------------


@dataclass
class DepthAdaptiveSeq2SeqLMOutput(Seq2SeqLMOutput):
    r"""
    Output of [`DepthAdaptiveTransformer`]: `Seq2SeqLMOutput`'s fields plus the exit information. S is the number
    of decoder positions of this call (1 per step in incremental decoding), N the number of decoder blocks.

    Args:
        loss (`torch.FloatTensor` of shape `()`, *optional*, returned when `labels` is given):
            In training mode L = L_dec + alpha L_exit (`decoder_loss`, `exit_loss`); in eval mode the
            cross-entropy of `logits`, i.e. of the exits the tokens actually took.
        logits (`torch.FloatTensor` of shape `(batch_size, S, vocab_size)`):
            At each position, the logits of the exit that position took (`exit_layers`). Full depth in the aligned
            training pass and with `output_exit_logits=True`.
        exit_layers (`torch.LongTensor` of shape `(batch_size, S)`):
            The 1-based block whose output gave `logits` at each position, i.e. the number of decoder blocks run
            for that token. N everywhere at full depth; in the mixed training regime, the first sampled exits.
        exit_probabilities (`torch.FloatTensor` of shape `(batch_size, S, N)`, *optional*):
            The exit predictor's distribution q_t(n) over the N exits (the same for every position of a row with
            `exit_prediction="sequence"`). For `"geometric"` it is only complete when every block ran (training,
            `output_exit_logits=True`); adaptive decoding returns `halting_probabilities` instead. `None` for
            `"confidence"` and at full depth.
        halting_probabilities (`torch.FloatTensor` of shape `(batch_size, S, N - 1)`, *optional*):
            `exit_prediction="geometric"`: the halting scores chi_t^n after blocks 1 .. N-1; NaN for blocks a token
            never reached (it had exited): they were not computed.
        exit_logits (`torch.FloatTensor` of shape `(batch_size, S, N, vocab_size)`, *optional*):
            Every exit's logits at every position, from a pass that runs every block on every position: returned by
            the aligned training pass and with `output_exit_logits=True`.
        oracle_exit_layers (`torch.LongTensor` of shape `(batch_size, S)`, *optional*):
            Training with a learned exit predictor: the oracle exit n* each position was trained towards (the
            sequence's oracle at every position for `"sequence"`); 0 where the label is ignored (-100).
        decoder_loss (`torch.FloatTensor` of shape `()`, *optional*):
            Training: L_dec, the aligned or mixed negative log-likelihood, averaged over target tokens.
        exit_loss (`torch.FloatTensor` of shape `()`, *optional*):
            Training with a learned exit predictor: L_exit, the cross-entropy of q against the oracle q*.
    """

    exit_layers: torch.LongTensor | None = None
    exit_probabilities: torch.FloatTensor | None = None
    halting_probabilities: torch.FloatTensor | None = None
    exit_logits: torch.FloatTensor | None = None
    oracle_exit_layers: torch.LongTensor | None = None
    decoder_loss: torch.FloatTensor | None = None
    exit_loss: torch.FloatTensor | None = None


@dataclass
class DepthAdaptiveGenerateOutput(ModelOutput):
    r"""
    Output of [`DepthAdaptiveTransformer.generate_with_exits`].

    Args:
        sequences (`torch.LongTensor` of shape `(batch_size * num_return_sequences, T)`):
            What `generate` returned, the decoder start token first.
        exit_layers (`torch.LongTensor` of shape `(batch_size * num_return_sequences, T - 1)`):
            The block each generated token (`sequences[:, 1:]`) exited at; 0 after the end of a sequence (the
            tokens after its first EOS, which are padding).
        average_exit (`torch.FloatTensor` of shape `()`):
            The mean of `exit_layers` over generated tokens (the paper's AE).
    """

    sequences: torch.LongTensor | None = None
    exit_layers: torch.LongTensor | None = None
    average_exit: torch.FloatTensor | None = None


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


def has_confidence_thresholds(config) -> bool:
    """Whether the model has an operating point to go stale: confidence exits with tuned thresholds T_n."""
    return config.exit_prediction == "confidence" and config.confidence_thresholds is not None


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


# ---------------------------------------------------------------------------------------------------------------
# Training targets and losses: small pure functions
# ---------------------------------------------------------------------------------------------------------------


def exit_log_likelihoods(exit_logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """LL_t^n = log p(y_t | h^n_t) of every exit: logits (B, S, N, V), labels (B, S) -> (B, S, N), 0 where the
    label is ignored (-100)."""
    log_probs = torch.log_softmax(exit_logits.float(), dim=-1)  # (B, S, N, V)
    present = labels != IGNORE_INDEX  # (B, S)
    index = labels.clamp(min=0)[:, :, None, None].expand(*log_probs.shape[:3], 1)  # (B, S, N, 1)
    return log_probs.gather(-1, index).squeeze(-1) * present[..., None]  # (B, S, N)


def exit_correctness(exit_logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """C_t^n = 1[y_t = argmax_y p(y | h^n_t)] of every exit: (B, S, N, V), (B, S) -> (B, S, N) floats, 0 where the
    label is ignored."""
    present = labels != IGNORE_INDEX  # (B, S)
    return (exit_logits.argmax(-1) == labels[..., None]).float() * present[..., None]  # (B, S, N)


def smooth_over_positions(scores: torch.Tensor, mask: torch.Tensor | None, sigma: float) -> torch.Tensor:
    """The token oracles' smoothing: out_t^n = sum_{t'} kappa(t, t') scores_{t'}^n over present positions t', with
    kappa(t, t') = exp(-|t - t'|^2 / sigma). scores (B, S, N), mask (B, S) -> (B, S, N)."""
    if not sigma > 0:
        raise ValueError(f"sigma must be > 0; got {sigma}.")
    positions = torch.arange(scores.shape[1], device=scores.device, dtype=scores.dtype)
    kernel = torch.exp(-((positions[:, None] - positions[None, :]) ** 2) / sigma)  # (S, S)
    if mask is not None:
        scores = scores * mask[..., None].to(scores.dtype)
    return torch.einsum("ts,bsn->btn", kernel, scores)


def oracle_exits(scores: torch.Tensor, depth_penalty: float) -> torch.Tensor:
    """n* = argmax_n (scores^n - lambda n) over the last dimension (n = 1 .. N), 1-based. Ties go to the smallest
    n (the cheapest exit)."""
    depths = torch.arange(1, scores.shape[-1] + 1, device=scores.device, dtype=scores.dtype)
    return (scores - depth_penalty * depths).argmax(-1) + 1


def sequence_oracle_exits(scores: torch.Tensor, mask: torch.Tensor | None, depth_penalty: float) -> torch.Tensor:
    """Sequence-level oracle: the scores (LL_t^n or C_t^n, (B, S, N)) summed over present positions, then
    delta(argmax_n score^n - lambda n). -> (B,) 1-based exits."""
    if mask is not None:
        scores = scores * mask[..., None].to(scores.dtype)
    return oracle_exits(scores.sum(1), depth_penalty)


def token_oracle_exits(
    scores: torch.Tensor, mask: torch.Tensor | None, sigma: float, depth_penalty: float
) -> torch.Tensor:
    """Token-level oracle: the kernel-smoothed scores, then delta(argmax_n smoothed_t^n - lambda n) at every position.
    scores (B, S, N) -> (B, S) 1-based exits (also at ignored positions; mask them out of the loss)."""
    return oracle_exits(smooth_over_positions(scores, mask, sigma), depth_penalty)


def geometric_exit_log_probs(halting_logits: torch.Tensor) -> torch.Tensor:
    """log q(n) of the geometric-like distribution from the halting logits z^1 .. z^{N-1} (chi^n = sigmoid(z^n)):
    q(n) = chi^n prod_{n'<n} (1 - chi^{n'}) for n < N and q(N) = prod_{n'<N} (1 - chi^{n'}). (..., N-1) -> (..., N);
    the probabilities sum to 1. Computed in log space (log sigmoid), so no product underflows."""
    log_halt = nn.functional.logsigmoid(halting_logits)  # log chi^n
    log_continue = nn.functional.logsigmoid(-halting_logits)  # log (1 - chi^n)
    continued = torch.cumsum(log_continue, dim=-1)  # log prod_{n' <= n} (1 - chi^{n'})
    before = torch.cat([torch.zeros_like(continued[..., :1]), continued[..., :-1]], dim=-1)
    return torch.cat([log_halt + before, continued[..., -1:]], dim=-1)


def exit_cross_entropy(log_q: torch.Tensor, oracle: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """H(q*, q) with a Dirac oracle q* = delta(n*): -log q(n*), averaged over the present items. log_q (..., N),
    oracle (...) 1-based, mask (...) or None."""
    nll = -log_q.gather(-1, (oracle - 1).unsqueeze(-1)).squeeze(-1)
    if mask is None:
        return nll.mean()
    mask = mask.to(nll.dtype)
    return (nll * mask).sum() / mask.sum().clamp(min=1)


def aligned_decoder_loss(log_likelihoods: torch.Tensor, mask: torch.Tensor, weights) -> torch.Tensor:
    """L_dec of the aligned regime: -(1 / sum_n omega_n) sum_n omega_n LL^n, each LL^n averaged over the present
    target tokens. log_likelihoods (B, S, N), mask (B, S), weights N values."""
    weights = torch.as_tensor(weights, dtype=log_likelihoods.dtype, device=log_likelihoods.device)  # (N,)
    mask = mask.to(log_likelihoods.dtype)
    per_exit = (log_likelihoods * mask[..., None]).sum((0, 1)) / mask.sum().clamp(min=1)  # (N,)
    return -(weights * per_exit).sum() / weights.sum()


def mixed_decoder_loss(sample_log_likelihoods: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """L_dec of the mixed regime: -(1 / M) sum_m LL(n_1^(m), .., n_|y|^(m)), each averaged over the present target
    tokens. sample_log_likelihoods (M, B, S) (log p(y_t | h^{n_t}) under sample m), mask (B, S)."""
    mask = mask.to(sample_log_likelihoods.dtype)
    per_sample = (sample_log_likelihoods * mask).sum((1, 2)) / mask.sum().clamp(min=1)  # (M,)
    return -per_sample.mean()


def generated_token_mask(generated: torch.Tensor, eos_token_id) -> torch.Tensor:
    """Which generated tokens (B, T) belong to their sequence: those up to and including the first EOS."""
    if eos_token_id is None:
        return torch.ones_like(generated, dtype=torch.bool)
    eos_ids = torch.as_tensor(eos_token_id, device=generated.device).reshape(-1)
    is_eos = torch.isin(generated, eos_ids).long()  # (B, T)
    eos_before = torch.cumsum(is_eos, dim=-1) - is_eos  # EOS tokens strictly before t
    return eos_before == 0


# ---------------------------------------------------------------------------------------------------------------
# Cache
# ---------------------------------------------------------------------------------------------------------------


class DepthAdaptiveCache(EncoderDecoderCache):
    """An `EncoderDecoderCache` that also remembers, per decoder position, where the token exited and which blocks
    still owe it keys and values.

    The self-attention keys/values of every block cover every position, but a slot whose token exited below that
    block holds zeros until a later token of the same row needs it; it is then computed from the token's copied
    state. Attributes (B rows, T positions so far):

    - `exit_layers` (B, T): the block each position exited at (1-based);
    - `exit_states` (B, T, d_model): each position's state at its exit, i.e. its copied state in every block above;
    - `pending[i]` (B, T) bool: block i+1 (0-based layer i) has no keys/values for that position yet.

    Reordering (beam search), selecting or repeating rows and cropping apply to these as to the keys and values.
    """

    def __init__(self, self_attention_cache: Cache | None = None, cross_attention_cache: Cache | None = None):
        super().__init__(
            self_attention_cache if self_attention_cache is not None else DynamicCache(),
            cross_attention_cache if cross_attention_cache is not None else DynamicCache(),
        )
        self.exit_layers: torch.Tensor | None = None
        self.exit_states: torch.Tensor | None = None
        self.pending: dict[int, torch.Tensor] = {}

    def _bookkeeping(self) -> dict[str, torch.Tensor]:
        tensors = {f"pending.{i}": t for i, t in self.pending.items()}
        if self.exit_layers is not None:
            tensors["exit_layers"], tensors["exit_states"] = self.exit_layers, self.exit_states
        return tensors

    def _set_bookkeeping(self, tensors: dict[str, torch.Tensor]) -> None:
        self.pending = {int(name.split(".")[1]): t for name, t in tensors.items() if name.startswith("pending.")}
        self.exit_layers = tensors.get("exit_layers")
        self.exit_states = tensors.get("exit_states")

    def _map_bookkeeping(self, fn) -> None:
        self._set_bookkeeping({name: fn(t) for name, t in self._bookkeeping().items()})

    def reorder_cache(self, beam_idx: torch.LongTensor):
        super().reorder_cache(beam_idx)
        self._map_bookkeeping(lambda t: t.index_select(0, beam_idx.to(t.device)))

    def batch_select_indices(self, indices: torch.Tensor):
        super().batch_select_indices(indices)
        self._map_bookkeeping(lambda t: t[indices])

    def batch_repeat_interleave(self, repeats: int):
        super().batch_repeat_interleave(repeats)
        self._map_bookkeeping(lambda t: t.repeat_interleave(repeats, dim=0))

    def crop(self, tokens_to_remove: int) -> None:
        super().crop(tokens_to_remove)
        if tokens_to_remove < 0:
            self._map_bookkeeping(lambda t: t[:, :tokens_to_remove])

    def reset(self):
        super().reset()
        self._set_bookkeeping({})

    # -- used by the model ------------------------------------------------------------------------------------
    def self_keys_values(self, layer_idx: int) -> tuple[torch.Tensor, torch.Tensor]:
        layer = self.self_attention_cache.layers[layer_idx]
        return layer.keys, layer.values  # (B, H, T, Dh) each

    def append_placeholders(self, layer_idx: int, shape: tuple[int, int, int, int], dtype, device) -> None:
        """Grow block `layer_idx`'s keys/values by S zero slots (shape (B, H, S, Dh)), all pending."""
        zeros = torch.zeros(shape, dtype=dtype, device=device)
        self.self_attention_cache.update(zeros, zeros.clone(), layer_idx)
        new = torch.ones(shape[0], shape[2], dtype=torch.bool, device=device)
        previous = self.pending.get(layer_idx)
        self.pending[layer_idx] = new if previous is None else torch.cat([previous, new], dim=1)

    def mark_computed(self, num_layers: int, batch_size: int, length: int, device) -> None:
        """A full-depth chunk of `length` positions: every block computed its keys/values."""
        done = torch.zeros(batch_size, length, dtype=torch.bool, device=device)
        for layer_idx in range(num_layers):
            previous = self.pending.get(layer_idx)
            self.pending[layer_idx] = done if previous is None else torch.cat([previous, done], dim=1)

    def record_exits(self, exit_layers: torch.Tensor, exit_states: torch.Tensor) -> None:
        """Append the chunk's exit blocks (B, S) and exit states (B, S, d)."""
        if self.exit_layers is None:
            self.exit_layers, self.exit_states = exit_layers, exit_states
        else:
            self.exit_layers = torch.cat([self.exit_layers, exit_layers], dim=1)
            self.exit_states = torch.cat([self.exit_states, exit_states], dim=1)


# ---------------------------------------------------------------------------------------------------------------
# Model
# ---------------------------------------------------------------------------------------------------------------


class DepthAdaptiveExitPredictor(nn.Module):
    """The learned exit predictor: a linear layer W_h, b_h over d_model. Sequence-specific and multinomial: N
    outputs (softmax over exits); geometric-like: one output, the halting logit shared by blocks 1 .. N-1."""

    def __init__(self, config: DepthAdaptiveTransformerConfig):
        super().__init__()
        self.kind = config.exit_prediction
        self.classifier = nn.Linear(config.d_model, 1 if self.kind == "geometric" else config.num_exits)

    def forward(self, states: torch.Tensor) -> torch.Tensor:
        return self.classifier(states)  # (..., N) or (..., 1)


def additive_mask(allowed: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """A boolean "may attend" mask -> the additive float mask both eager and sdpa attention take."""
    return torch.zeros(allowed.shape, dtype=dtype, device=allowed.device).masked_fill(~allowed, torch.finfo(dtype).min)


def pack_active(active: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Pack the active positions of each row to the left. active (B, S) -> rows (R,) having any, positions (R, Q)
    (active positions first, in order), valid (R, Q) (False on filler slots), Q the largest count."""
    if active.all():  # nothing to pack: rows arange(B), positions arange(S) in every row
        batch_size, length = active.shape
        positions = torch.arange(length, device=active.device).expand(batch_size, length)  # (B, S)
        return torch.arange(batch_size, device=active.device), positions, active
    rows = active.any(-1).nonzero().squeeze(-1)  # (R,)
    row_active = active[rows]  # (R, S)
    counts = row_active.sum(-1)  # (R,)
    width = int(counts.max())
    positions = torch.argsort((~row_active).to(torch.int8), dim=-1, stable=True)[:, :width]  # (R, Q)
    valid = torch.arange(width, device=active.device)[None, :] < counts[:, None]  # (R, Q)
    return rows, positions, valid


def project_into_cache(attention: BartAttention, keys, values, pending, row_index, position_index, states) -> None:
    """Write the keys/values of `states` (P, d), the input states of one block at (row, position) pairs, into that
    block's cache tensors (B, H, T, Dh), and mark those slots as computed."""
    shape = (states.shape[0], attention.num_heads, attention.head_dim)
    keys[row_index, :, position_index] = attention.k_proj(states).view(shape)
    values[row_index, :, position_index] = attention.v_proj(states).view(shape)
    pending[row_index, position_index] = False


# ---------------------------------------------------------------------------------------------------------------
# Standard switches (the same checks in every model of the zoo)
# ---------------------------------------------------------------------------------------------------------------


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


class DepthAdaptiveTransformerPreTrainedModel(StandardSwitchesMixin, BartPreTrainedModel):
    config_class = DepthAdaptiveTransformerConfig
    config: DepthAdaptiveTransformerConfig

    def _init_weights(self, module):
        super()._init_weights(module)
        if isinstance(module, DepthAdaptiveTransformer):
            init.zeros_(module.final_logits_bias)


class DepthAdaptiveTransformer(DepthAdaptiveTransformerPreTrainedModel, GenerationMixin):
    r"""
    The Depth-Adaptive Transformer: BART with an exit after every decoder block, an exit predictor, and decoding
    that skips the blocks above each token's exit (see the module docstring).

    - Training mode (`model.train()`) with `labels`: the aligned or mixed regime (`config.training_regime`) plus
      the exit predictor's loss against the oracle; `loss = decoder_loss + exit_loss_weight * exit_loss`.
    - Eval mode: each token runs the blocks up to its exit; `generate()` (greedy, sampling, beam search) does
      the same incrementally with a `DepthAdaptiveCache`. `config.adaptive_depth = False` runs every block (BART).
    """

    base_model_prefix = "model"
    _tied_weights_keys = {"lm_head.weight": "model.shared.weight"}
    _keys_to_ignore_on_load_missing = ["final_logits_bias"]
    # `forward(**kwargs)` takes no loss kwargs: the Trainer then divides the loss by gradient-accumulation steps.
    accepts_loss_kwargs = False

    def __init__(self, config: DepthAdaptiveTransformerConfig):
        super().__init__(config)
        self.model = BartModel(config)
        self.final_logits_bias = nn.Buffer(torch.zeros((1, self.model.shared.num_embeddings)))
        self.lm_head = nn.Linear(config.d_model, self.model.shared.num_embeddings, bias=False)
        self.exit_predictor = None if config.exit_prediction == "confidence" else DepthAdaptiveExitPredictor(config)
        # The decoder's blocks were built for this: a later change is refused. (A change of `exit_prediction` is checked
        # where it is used: to "confidence" it takes effect, to a predictor the model was not built with it is refused.)
        self.fixed_config_fields = {"decoder_layers": config.decoder_layers}
        # T_n live in the config: other weights loaded into the model were not the ones they were tuned for.
        flag_operating_point_on_load(self, lambda model, keys: has_confidence_thresholds(model.config))
        self.post_init()

    def save_pretrained(self, save_directory, *args, **kwargs):
        """`PreTrainedModel.save_pretrained`, after flagging the thresholds stale if an optimiser step changed the
        weights since they were tuned (Trainer checkpoints and `push_to_hub` save through here too)."""
        check_config_unchanged(self, self.fixed_config_fields, {})
        flag_operating_point_if_weights_changed(self)
        return super().save_pretrained(save_directory, *args, **kwargs)

    # -- small pieces -----------------------------------------------------------------------------------------
    def prepare_decoder_input_ids_from_labels(self, labels: torch.Tensor):
        return shift_tokens_right(labels, self.config.pad_token_id, self.config.decoder_start_token_id)

    def resize_token_embeddings(self, new_num_tokens=None, pad_to_multiple_of=None, mean_resizing=True) -> nn.Embedding:
        """`PreTrainedModel.resize_token_embeddings`, and the output bias with them, as BART does (new ids: 0)."""
        embeddings = super().resize_token_embeddings(new_num_tokens, pad_to_multiple_of, mean_resizing)
        bias = self.final_logits_bias
        new_size = embeddings.num_embeddings
        extra = bias.new_zeros((1, max(new_size - bias.shape[-1], 0)))
        self.final_logits_bias = nn.Buffer(torch.cat([bias[:, :new_size], extra], dim=1))
        return embeddings

    def exit_logits_of(self, states: torch.Tensor) -> torch.Tensor:
        """The shared output classifier of every exit: states (..., d) -> logits (..., V)."""
        return self.lm_head(states) + self.final_logits_bias.to(states.device)

    def _predictor(self) -> DepthAdaptiveExitPredictor:
        kind = self.config.exit_prediction
        if self.exit_predictor is None or self.exit_predictor.kind != kind:
            built = "none" if self.exit_predictor is None else repr(self.exit_predictor.kind)
            raise ValueError(
                f"`config.exit_prediction` is {kind!r} but this model was built with a {built} exit predictor; "
                "build the model with the predictor you use (`'confidence'` works with any model)."
            )
        return self.exit_predictor

    def _predictor_input(self, states: torch.Tensor) -> torch.Tensor:
        return states.detach() if self.config.detach_exit_predictor_input else states

    def sequence_exit_log_probs(self, encoder_hidden: torch.Tensor, attention_mask: torch.Tensor | None):
        """log q(n | x) of the sequence-specific predictor from the mean of the encoder output over source tokens:
        (B, T_src, d) -> (B, N)."""
        if attention_mask is None:
            pooled = encoder_hidden.mean(1)
        else:
            weights = attention_mask.to(encoder_hidden.dtype)[..., None]  # (B, T, 1)
            pooled = (encoder_hidden * weights).sum(1) / weights.sum(1).clamp(min=1)  # (B, d)
        return torch.log_softmax(self._predictor()(self._predictor_input(pooled)).float(), dim=-1)

    def token_exit_log_probs(self, block_states: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor | None]:
        """log q_t(n) of a token-specific predictor from every block's output ((B, S, d) each): multinomial from
        block 1, geometric-like from blocks 1 .. N-1. -> (log q (B, S, N), halting logits (B, S, N-1) or None)."""
        predictor = self._predictor()
        if predictor.kind == "multinomial":
            return torch.log_softmax(predictor(self._predictor_input(block_states[0])).float(), dim=-1), None
        stacked = torch.stack(block_states[:-1], dim=2)  # (B, S, N-1, d)
        halting_logits = predictor(self._predictor_input(stacked)).squeeze(-1).float()  # (B, S, N-1)
        return geometric_exit_log_probs(halting_logits), halting_logits

    # -- forward ----------------------------------------------------------------------------------------------
    @can_return_tuple
    @deprecate_kwarg("past_key_values", "5.40.0", new_name="cache")
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        decoder_input_ids: torch.LongTensor | None = None,
        decoder_attention_mask: torch.LongTensor | None = None,
        encoder_outputs: BaseModelOutput | tuple | None = None,
        cache: Cache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        decoder_inputs_embeds: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        use_cache: bool | None = None,
        output_exit_logits: bool | None = None,
        token_type_ids: torch.Tensor | None = None,
        **kwargs,
    ) -> DepthAdaptiveSeq2SeqLMOutput:
        r"""
        Inputs are BART's (`decoder_input_ids` default to `labels`, else `input_ids`, shifted right).

        cache (`DepthAdaptiveCache`, *optional*):
            The cache a previous call returned (`outputs.cache`), as transformers >= 5.24 names it (`past_key_values`
            is the deprecated spelling). `generate()` passes an empty `EncoderDecoderCache` first, replaced here.
        labels (`torch.LongTensor` of shape `(batch_size, target_length)`, *optional*):
            Target token ids, -100 where ignored. Training mode: the aligned/mixed loss plus the exit loss; eval
            mode: the cross-entropy of the returned logits. Turns the cache off.
        output_exit_logits (`bool`, *optional*):
            Eval mode: run every block on every position (no early exit) and return every exit's logits
            (`exit_logits`), with the full-depth logits as `logits` and the predictor's `exit_probabilities`.
        token_type_ids:
            Accepted and ignored (BART has none), so that BERT WordPiece tokenizer outputs can be passed as they are.
        """
        for flag, wanted in zip(("output_hidden_states", "output_attentions"),
                                output_flags(self.config, kwargs.pop("output_hidden_states", None),
                                             kwargs.pop("output_attentions", None))):
            if wanted:
                raise ValueError(
                    f"`{flag}=True` (argument or config field) is not supported by DepthAdaptiveTransformer. For the "
                    "full-depth model's, load the same weights into BartForConditionalGeneration."
                )
        kwargs.pop("return_dict", None)
        if kwargs:
            raise TypeError(f"DepthAdaptiveTransformer.forward got unexpected arguments: {sorted(kwargs)}.")
        depth_adaptive = self.config.adaptive and self.config.adaptive_depth  # either off switch: BART's depth
        adaptive = depth_adaptive and not output_exit_logits and not self.training
        capture = graph_capture() if adaptive else None
        if capture == "export":
            refuse_in_graph_capture(
                "The Depth-Adaptive Transformer's exits depend on each token's states, which a traced or exported "
                "graph cannot keep: it would freeze the example's exits. Export the full-depth model, which is "
                "exactly BartForConditionalGeneration: set `model.config.adaptive_depth = False` (or "
                "`model.config.adaptive = False`) first."
            )
        if capture == "compile":
            refuse_in_graph_capture(
                "torch.compile does not give the eager results on the Depth-Adaptive Transformer's adaptive decoding "
                "(inductor changed logits and exits on a tiny model), so it is refused. Decode adaptively without "
                "torch.compile, or compile the full-depth model: set `model.config.adaptive_depth = False` (or "
                "`model.config.adaptive = False`)."
            )

        check_config_unchanged(self, self.fixed_config_fields, {})
        flag_operating_point_if_weights_changed(self)
        source = input_ids if input_ids is not None else inputs_embeds
        if labels is not None:
            if source is not None and labels.shape[0] != source.shape[0]:
                raise ValueError(f"Got labels for {labels.shape[0]} sequences and a batch of {source.shape[0]} inputs.")
            use_cache = False
            if decoder_input_ids is None and decoder_inputs_embeds is None:
                decoder_input_ids = self.prepare_decoder_input_ids_from_labels(labels)
        if decoder_input_ids is None and decoder_inputs_embeds is None:
            if input_ids is None:
                raise ValueError("Pass `decoder_input_ids`, `labels` or `input_ids` (shifted right as in BART).")
            decoder_input_ids = shift_tokens_right(input_ids, self.config.pad_token_id, self.config.decoder_start_token_id)
        use_cache = self.config.use_cache if use_cache is None else use_cache

        if encoder_outputs is None:
            if source is not None and source.shape[1] > self.config.max_position_embeddings:
                raise ValueError(
                    f"The input has {source.shape[1]} tokens but the model has only "
                    f"{self.config.max_position_embeddings} positions: tokenize with `truncation=True` (for a "
                    "pipeline: `pipe(texts, truncation=True)`), which cuts to the saved tokenizer's `model_max_length`."
                )
            encoder_outputs = self.model.encoder(input_ids=input_ids, attention_mask=attention_mask,
                                                 inputs_embeds=inputs_embeds)
        elif not isinstance(encoder_outputs, BaseModelOutput):
            encoder_outputs = BaseModelOutput(last_hidden_state=encoder_outputs[0])
        encoder_hidden = encoder_outputs.last_hidden_state  # (B, T_src, d)
        if labels is not None and labels.shape[0] != encoder_hidden.shape[0]:
            raise ValueError(f"Got labels for {labels.shape[0]} sequences and {encoder_hidden.shape[0]} encoded inputs.")
        decoder_inputs = dict(input_ids=decoder_input_ids, inputs_embeds=decoder_inputs_embeds,
                              attention_mask=decoder_attention_mask)

        thresholded = has_confidence_thresholds(self.config)
        if self.training and torch.is_grad_enabled() and thresholded:
            remember_weights_before_training(self)  # T_n were tuned for these weights: an optimiser step flags them
        if (not self.training and thresholded and depth_adaptive and not output_exit_logits
                and self.config.operating_point_stale):
            warn_stale_operating_point(self, "confidence thresholds T_n", "adaptive_depth=False")
        if self.training:
            outputs = self._training_forward(decoder_inputs, encoder_hidden, attention_mask, labels)
            outputs.encoder_last_hidden_state = encoder_hidden
            return outputs

        cache = self._prepare_cache(cache)
        if not adaptive:
            outputs = self._full_depth_forward(decoder_inputs, encoder_hidden, attention_mask, cache,
                                               bool(output_exit_logits))
        else:
            outputs = self._adaptive_forward(decoder_inputs, encoder_hidden, attention_mask, cache)
        if labels is not None:
            outputs.loss = nn.functional.cross_entropy(
                outputs.logits.float().reshape(-1, outputs.logits.shape[-1]), labels.reshape(-1),
                ignore_index=IGNORE_INDEX,
            )
        outputs.cache = cache if use_cache else None
        outputs.encoder_last_hidden_state = encoder_hidden
        return outputs

    def _prepare_cache(self, cache: Cache | None) -> DepthAdaptiveCache:
        """The cache this call reads and extends (a fresh one when none is given; with `use_cache=False` it is
        discarded after the call). An empty plain `EncoderDecoderCache` (what `generate` creates) is replaced by
        a `DepthAdaptiveCache`; a filled cache that is not one cannot say which slots are pending."""
        if isinstance(cache, DepthAdaptiveCache):
            return cache
        if cache is None or cache.get_seq_length() == 0:
            return DepthAdaptiveCache()
        raise ValueError(
            "DepthAdaptiveTransformer needs the `DepthAdaptiveCache` it returned (it records which tokens exited "
            f"where); got a filled {type(cache).__name__}."
        )

    # -- full-depth passes: BART's decoder, block by block ----------------------------------------------------
    def _embed_decoder_inputs(self, decoder_inputs: dict, past_length: int) -> tuple[torch.Tensor, torch.Tensor]:
        """BART's decoder input: token embeddings + learned positions -> LayerNorm -> dropout. Returns (the token
        embeddings, the hidden states), both (B, S, d)."""
        decoder = self.model.decoder
        embeds = decoder_inputs["inputs_embeds"]
        if embeds is None:
            embeds = decoder.embed_tokens(decoder_inputs["input_ids"])
        length = embeds.shape[1]
        if past_length + length > self.config.max_position_embeddings:
            raise ValueError(
                f"The target has {past_length + length} tokens but the decoder has only "
                f"{self.config.max_position_embeddings} positions: truncate the targets (`max_target_length`) or "
                f"generate at most {self.config.max_position_embeddings} tokens (`max_length`)."
            )
        position_ids = torch.arange(length, device=embeds.device) + past_length
        positions = decoder.embed_positions(embeds, past_length, position_ids=position_ids).to(embeds.device)
        hidden = decoder.layernorm_embedding(embeds + positions)
        return embeds, nn.functional.dropout(hidden, p=decoder.dropout, training=self.training)

    def _run_decoder(
        self,
        decoder_inputs: dict,
        encoder_hidden: torch.Tensor,
        encoder_attention_mask: torch.Tensor | None,
        cache: DepthAdaptiveCache | None,
        copy_above: torch.Tensor | None = None,
    ) -> list[torch.Tensor]:
        """BART's decoder, the same operations in the same order, returning every block's output (B, S, d).

        `copy_above` (B, S) (the mixed regime): a position whose exit is below block n keeps its state there
        (the copy of its exit state), so the keys and values later positions read at block n come from it."""
        past_length = cache.get_seq_length() if cache is not None else 0
        embeds, hidden = self._embed_decoder_inputs(decoder_inputs, past_length)
        batch_size, length = embeds.shape[:2]
        attention_mask = decoder_inputs["attention_mask"]
        if attention_mask is None:
            attention_mask = torch.ones(batch_size, past_length + length, device=embeds.device)
        causal_mask = create_causal_mask(
            config=self.config, inputs_embeds=embeds, attention_mask=attention_mask,
            cache=cache.self_attention_cache if cache is not None else None,
        )
        cross_mask = create_bidirectional_mask(
            config=self.config, inputs_embeds=embeds, attention_mask=encoder_attention_mask,
            encoder_hidden_states=encoder_hidden,
        )
        block_states = []
        for block, layer in enumerate(self.model.decoder.layers, start=1):
            new_hidden = layer(
                hidden, causal_mask, encoder_hidden, encoder_attention_mask=cross_mask,
                cache=cache, use_cache=cache is not None,
            )
            if copy_above is None or block == 1:
                hidden = new_hidden
            else:
                hidden = torch.where((copy_above >= block)[..., None], new_hidden, hidden)
            block_states.append(hidden)
        return block_states

    def _full_depth_forward(self, decoder_inputs, encoder_hidden, attention_mask, cache, output_exit_logits):
        self._fill_all_pending(cache)
        block_states = self._run_decoder(decoder_inputs, encoder_hidden, attention_mask, cache)
        batch_size, length = block_states[-1].shape[:2]
        num_exits = self.config.num_exits
        exit_layers = torch.full((batch_size, length), num_exits, dtype=torch.long, device=encoder_hidden.device)
        cache.mark_computed(num_exits, batch_size, length, encoder_hidden.device)
        cache.record_exits(exit_layers, block_states[-1])
        outputs = DepthAdaptiveSeq2SeqLMOutput(logits=self.exit_logits_of(block_states[-1]), exit_layers=exit_layers)
        if output_exit_logits:
            outputs.exit_logits = self.exit_logits_of(torch.stack(block_states, dim=2))  # (B, S, N, V)
            self._attach_exit_probabilities(outputs, block_states, encoder_hidden, attention_mask)
        return outputs

    def _attach_exit_probabilities(self, outputs, block_states, encoder_hidden, attention_mask) -> None:
        kind = self.config.exit_prediction
        if kind == "confidence":
            return
        batch_size, length = block_states[0].shape[:2]
        if kind == "sequence":
            log_q = self.sequence_exit_log_probs(encoder_hidden, attention_mask)[:, None].expand(batch_size, length, -1)
        else:
            log_q, halting_logits = self.token_exit_log_probs(block_states)
            if halting_logits is not None:
                outputs.halting_probabilities = torch.sigmoid(halting_logits)
        outputs.exit_probabilities = log_q.exp()

    # -- training ---------------------------------------------------------------------------------------------
    def _training_forward(self, decoder_inputs, encoder_hidden, attention_mask, labels):
        config = self.config
        num_exits = config.num_exits
        learned = config.exit_prediction != "confidence"
        if labels is None:  # a teacher-forced pass without targets: the full-depth logits
            block_states = self._run_decoder(decoder_inputs, encoder_hidden, attention_mask, None)
            return DepthAdaptiveSeq2SeqLMOutput(
                logits=self.exit_logits_of(block_states[-1]),
                exit_layers=torch.full(block_states[-1].shape[:2], num_exits, dtype=torch.long,
                                       device=encoder_hidden.device),
            )
        present = labels != IGNORE_INDEX  # (B, S)
        outputs = DepthAdaptiveSeq2SeqLMOutput()

        block_states = None
        if config.training_regime == "aligned" or learned:
            block_states = self._run_decoder(decoder_inputs, encoder_hidden, attention_mask, None)
        if config.training_regime == "aligned":
            exit_logits = self.exit_logits_of(torch.stack(block_states, dim=2))  # (B, S, N, V)
            log_likelihoods = exit_log_likelihoods(exit_logits, labels)  # (B, S, N)
            outputs.decoder_loss = aligned_decoder_loss(log_likelihoods, present, config.resolved_exit_loss_weights())
            outputs.logits, outputs.exit_logits = exit_logits[:, :, -1], exit_logits
            outputs.exit_layers = torch.full_like(labels, num_exits)
            log_likelihoods, exit_logits = log_likelihoods.detach(), exit_logits.detach()
        else:
            sample_log_likelihoods = []
            for sample in range(config.num_mixed_samples):
                exits = torch.randint(1, num_exits + 1, labels.shape, device=labels.device)  # (B, S)
                final_states = self._run_decoder(decoder_inputs, encoder_hidden, attention_mask, None, exits)[-1]
                logits = self.exit_logits_of(final_states)  # (B, S, V): each token at its sampled exit
                sample_log_likelihoods.append(exit_log_likelihoods(logits[:, :, None], labels)[..., 0])
                if sample == 0:
                    outputs.logits, outputs.exit_layers = logits, exits
            outputs.decoder_loss = mixed_decoder_loss(torch.stack(sample_log_likelihoods), present)
            exit_logits = log_likelihoods = None
            if learned:  # the oracle needs every exit at every position: the aligned pass, only as a target
                with torch.no_grad():
                    exit_logits = self.exit_logits_of(torch.stack(block_states, dim=2).detach())
                    log_likelihoods = exit_log_likelihoods(exit_logits, labels)
        outputs.loss = outputs.decoder_loss

        if learned:
            scores = log_likelihoods if config.oracle == "likelihood" else exit_correctness(exit_logits, labels)
            if config.exit_prediction == "sequence":
                log_q = self.sequence_exit_log_probs(encoder_hidden, attention_mask)  # (B, N)
                oracle = sequence_oracle_exits(scores, present, config.oracle_depth_penalty)  # (B,)
                outputs.exit_loss = exit_cross_entropy(log_q, oracle)
                log_q, oracle = log_q[:, None].expand(-1, labels.shape[1], -1), oracle[:, None].expand_as(labels)
            else:
                log_q, halting_logits = self.token_exit_log_probs(block_states)  # (B, S, N)
                oracle = token_oracle_exits(scores, present, config.oracle_sigma, config.oracle_depth_penalty)
                outputs.exit_loss = exit_cross_entropy(log_q, oracle, present)
                if halting_logits is not None:
                    outputs.halting_probabilities = torch.sigmoid(halting_logits)
            outputs.exit_probabilities = log_q.exp()
            outputs.oracle_exit_layers = oracle.masked_fill(~present, 0)
            outputs.loss = outputs.decoder_loss + config.exit_loss_weight * outputs.exit_loss
        return outputs

    # -- adaptive decoding ------------------------------------------------------------------------------------
    def _adaptive_forward(self, decoder_inputs, encoder_hidden, attention_mask, cache: DepthAdaptiveCache):
        """Run each of the S new positions through the blocks up to its exit, with the keys/values of exited
        positions computed lazily from their copied states (see the module docstring)."""
        config = self.config
        num_exits, kind = config.num_exits, config.exit_prediction
        layers = self.model.decoder.layers
        past_length = cache.get_seq_length()
        _, hidden = self._embed_decoder_inputs(decoder_inputs, past_length)  # (B, S, d)
        hidden = hidden.clone()
        batch_size, length, d_model = hidden.shape
        device, dtype = hidden.device, hidden.dtype
        total = past_length + length

        key_allowed = decoder_inputs["attention_mask"]  # (B, total) or None
        key_allowed = (torch.ones(batch_size, total, dtype=torch.bool, device=device) if key_allowed is None
                       else key_allowed.to(device).bool())
        if key_allowed.shape != (batch_size, total):
            raise ValueError(f"`decoder_attention_mask` must be (batch, past + new) = {(batch_size, total)}; got "
                             f"{tuple(key_allowed.shape)}.")
        source_allowed = None if attention_mask is None else attention_mask.to(device).bool()  # (B, T_src)

        active = torch.ones(batch_size, length, dtype=torch.bool, device=device)
        exit_layers = torch.full((batch_size, length), num_exits, dtype=torch.long, device=device)
        # confidence: the logits a token's exit decision already computed (B, S, V), allocated at the first such
        # exit; `scored` (B, S) marks them. Tokens that exit without a decision (the last block, T_n = 0) are
        # projected once after the loop, like every token of the learned predictors.
        logits, scored = None, torch.zeros_like(active)
        outputs = DepthAdaptiveSeq2SeqLMOutput()
        planned = None  # (B, S) exits known in advance (sequence, multinomial)
        if kind == "sequence":
            log_q = self.sequence_exit_log_probs(encoder_hidden, attention_mask)  # (B, N)
            planned = (log_q.argmax(-1) + 1)[:, None].expand(batch_size, length)
            outputs.exit_probabilities = log_q.exp()[:, None].expand(batch_size, length, num_exits)
        elif kind == "geometric":
            self._predictor()
            outputs.halting_probabilities = hidden.new_full((batch_size, length, num_exits - 1), float("nan"))
        thresholds = config.resolved_confidence_thresholds() if kind == "confidence" else None
        cross_mask = None
        if source_allowed is not None:
            cross_mask = additive_mask(source_allowed[:, None, None, :], dtype)  # (B, 1, 1, T_src)
        # Every token runs block 1, so the all-active mask is always needed; it serves every block until some
        # token exits, then each block builds its own for the packed queries.
        all_positions = torch.arange(length, device=device).expand(batch_size, length)  # (B, S)
        all_active_mask = self._self_attention_mask(torch.arange(batch_size, device=device), all_positions,
                                                    key_allowed, past_length, dtype)

        for layer_idx, layer in enumerate(layers):
            block = layer_idx + 1
            attention = layer.self_attn
            head_dim = attention.head_dim
            cache.append_placeholders(layer_idx, (batch_size, attention.num_heads, length, head_dim), dtype, device)
            if not active.any():
                continue  # every new token has exited: this block only records pending slots
            self._fill_keys_values(layer_idx, attention, hidden, active, cache, past_length)
            everyone_active = bool(active.all())
            rows, positions, valid = pack_active(active)
            # The projections and the feed-forward run on the R packed rows only. Attention reads the cached
            # keys/values of all B rows in place, with the packed queries scattered back into their rows:
            # gathering R rows of the (B, H, T_src, Dh) source keys/values at every block and step cost more time
            # than the attention products of the idle rows it avoided (see `_attend`).
            scatter_rows = None if rows.numel() == batch_size else rows  # None: rows is arange(B)
            queries = hidden if everyone_active else hidden[rows[:, None], positions]  # (R, Q, d)
            keys, values = cache.self_keys_values(layer_idx)  # (B, H, total, Dh)
            self_mask = (all_active_mask if everyone_active
                         else self._self_attention_mask(rows, positions, key_allowed, past_length, dtype))
            cross_keys, cross_values = self._cross_keys_values(layer_idx, layer, encoder_hidden, cache)
            new_states = self._block_step(
                layer, queries, scatter_rows, keys, values, self_mask, cross_keys, cross_values, cross_mask,
            )  # (R, Q, d)
            if everyone_active:
                hidden = new_states
            else:
                row_index = rows[:, None].expand_as(positions)[valid]
                hidden[row_index, positions[valid]] = new_states[valid]

            # exit decisions after block n
            if block == num_exits:
                exiting = active
            elif kind == "multinomial":
                if block == 1:
                    log_q, _ = self.token_exit_log_probs([hidden])  # every position is active at block 1
                    planned = log_q.argmax(-1) + 1
                    outputs.exit_probabilities = log_q.exp()
                exiting = active & (planned == block)
            elif kind == "sequence":
                exiting = active & (planned == block)
            elif kind == "geometric":
                halting = torch.sigmoid(self._predictor()(hidden[active]).squeeze(-1).float())  # (A,)
                outputs.halting_probabilities[..., layer_idx][active] = halting.to(dtype)
                exiting = torch.zeros_like(active)
                exiting[active] = halting > config.halting_threshold
            elif thresholds[layer_idx] >= 1:  # confidence with T_n = 1: nobody can exit here, skip the head
                exiting = torch.zeros_like(active)
            elif thresholds[layer_idx] <= 0:  # T_n = 0: the largest probability (>= 1/V) passes, skip the head
                exiting = active
            else:  # confidence: the exit's own output distribution decides
                block_logits = self.exit_logits_of(hidden[active])  # (A, V)
                confident = torch.softmax(block_logits.float(), dim=-1).amax(-1) > thresholds[layer_idx]
                exiting = torch.zeros_like(active)
                exiting[active] = confident
                if confident.any():
                    if logits is None:
                        logits = block_logits.new_zeros(batch_size, length, config.vocab_size)
                    logits[exiting] = block_logits[confident]
                    scored |= exiting
            exit_layers[exiting] = block
            active = active & ~exiting

        # `hidden` now holds every position's state at its exit. A token whose exit needed no output distribution
        # (the learned predictors, the last block, T_n = 0) gets its logits from one projection of those states:
        # one pass over the (V, d) output matrix per step, not one per block where some token exits.
        if logits is None:
            logits = self.exit_logits_of(hidden)  # (B, S, V)
        elif not scored.all():
            logits[~scored] = self.exit_logits_of(hidden[~scored])
        cache.record_exits(exit_layers, hidden)  # a token's state at its exit is its copy in every block above
        outputs.logits, outputs.exit_layers = logits, exit_layers
        return outputs

    @staticmethod
    def _self_attention_mask(rows, positions, key_allowed, past_length, dtype) -> torch.Tensor | None:
        """The additive self-attention mask (B, 1, Q, total) of packed queries at `positions` (R, Q) of `rows` (R,):
        causal, and only keys `key_allowed` (B, total). Idle rows query position 0 (their output is dropped).
        None where every query may read every key: one new position per row, no masked key."""
        batch_size, total = key_allowed.shape
        if total == past_length + 1 and rows.numel() == batch_size and bool(key_allowed.all()):
            return None  # the one new position is the last one, so causality masks nothing either
        key_positions = torch.arange(total, device=key_allowed.device)
        query_positions = torch.zeros(batch_size, positions.shape[1], dtype=torch.long, device=key_allowed.device)
        query_positions[rows] = past_length + positions  # (B, Q)
        allowed = (key_positions[None, None, :] <= query_positions[..., None]) & key_allowed[:, None, :]
        allowed |= key_positions[None, None, :] == query_positions[..., None]  # never an empty row
        return additive_mask(allowed[:, None], dtype)

    def _fill_keys_values(self, layer_idx, attention: BartAttention, hidden, active, cache, past_length) -> None:
        """Compute, once, the block's keys/values that an active token is about to read and that are still pending:
        positions up to each row's last active one, from the new tokens' current states or, for earlier tokens that
        exited below this block, from their copied states."""
        keys, values = cache.self_keys_values(layer_idx)  # (B, H, total, Dh)
        pending = cache.pending[layer_idx]  # (B, total)
        batch_size, length = active.shape
        device = hidden.device
        positions = torch.arange(length, device=device)
        last_active = torch.where(active, positions, -1).amax(-1)  # (B,), -1: no active token in the row
        last_needed = torch.where(last_active >= 0, past_length + last_active, -1)  # (B,)
        need = pending & (torch.arange(pending.shape[1], device=device)[None, :] <= last_needed[:, None])
        if bool(need[:, past_length:].all()) and not bool(need[:, :past_length].any()):
            # the common case (every token of the chunk active, nothing owed from earlier steps): one slice write
            shape = (batch_size, length, attention.num_heads, attention.head_dim)
            keys[:, :, past_length:] = attention.k_proj(hidden).view(shape).transpose(1, 2)  # (B, H, S, Dh)
            values[:, :, past_length:] = attention.v_proj(hidden).view(shape).transpose(1, 2)
            pending[:, past_length:] = False
            return
        row_index, position_index = need.nonzero(as_tuple=True)  # (P,), (P,)
        if row_index.numel() == 0:
            return
        from_past = position_index < past_length
        states = hidden.new_empty(row_index.shape[0], hidden.shape[-1])  # (P, d)
        if from_past.any():
            states[from_past] = cache.exit_states[row_index[from_past], position_index[from_past]]
        if not from_past.all():
            states[~from_past] = hidden[row_index[~from_past], position_index[~from_past] - past_length]
        project_into_cache(attention, keys, values, pending, row_index, position_index, states)

    def _fill_all_pending(self, cache: DepthAdaptiveCache) -> None:
        """Before a full-depth pass over a cache that adaptive steps filled (e.g. `adaptive_depth` switched off
        mid-generation): every pending slot gets its keys/values from its copied state."""
        for layer_idx, pending in cache.pending.items():
            if pending.any():
                row_index, position_index = pending.nonzero(as_tuple=True)
                keys, values = cache.self_keys_values(layer_idx)
                project_into_cache(self.model.decoder.layers[layer_idx].self_attn, keys, values, pending, row_index,
                                   position_index, cache.exit_states[row_index, position_index])

    def _cross_keys_values(self, layer_idx, layer: BartDecoderLayer, encoder_hidden, cache: DepthAdaptiveCache):
        """The block's cross-attention keys/values of the source, computed the first time any token reaches it."""
        if not cache.is_updated.get(layer_idx):
            attention = layer.encoder_attn
            shape = (*encoder_hidden.shape[:2], attention.num_heads, attention.head_dim)
            keys = attention.k_proj(encoder_hidden).view(shape).transpose(1, 2)  # (B, H, T_src, Dh)
            values = attention.v_proj(encoder_hidden).view(shape).transpose(1, 2)
            cache.cross_attention_cache.update(keys, values, layer_idx)
            cache.is_updated[layer_idx] = True
        cross = cache.cross_attention_cache.layers[layer_idx]
        return cross.keys, cross.values

    def _attend(self, attention: BartAttention, queries, rows, keys, values, mask) -> torch.Tensor:
        """Multi-head attention of packed queries (R, Q, d) over keys/values of all B rows (B, H, K, Dh), through the
        model's attention implementation (eager or sdpa), as BartAttention does. `rows` (R,) says which row each
        packed query belongs to (None: R = B, in order); the queries are scattered into a zero (B, H, Q, Dh) tensor,
        so idle rows cost one attention product each and the keys/values are never copied."""
        num_rows, width, d_model = queries.shape
        query_states = attention.q_proj(queries).view(num_rows, width, -1, attention.head_dim).transpose(1, 2)
        if rows is not None:
            scattered = query_states.new_zeros(keys.shape[0], *query_states.shape[1:])  # (B, H, Q, Dh)
            scattered[rows] = query_states
            query_states = scattered
        interface = ALL_ATTENTION_FUNCTIONS.get_interface(self.config._attn_implementation, eager_attention_forward)
        output, _ = interface(attention, query_states, keys, values, mask, dropout=0.0, scaling=attention.scaling)
        if rows is not None:
            output = output[rows]  # (R, Q, H, Dh)
        return attention.out_proj(output.reshape(num_rows, width, d_model))

    def _block_step(self, layer: BartDecoderLayer, hidden, rows, keys, values, self_mask, cross_keys, cross_values,
                    cross_mask) -> torch.Tensor:
        """One BartDecoderLayer (post-LN; eval mode, so no dropout) for packed active tokens (R, Q, d) of `rows`."""
        hidden = layer.self_attn_layer_norm(
            hidden + self._attend(layer.self_attn, hidden, rows, keys, values, self_mask)
        )
        hidden = layer.encoder_attn_layer_norm(
            hidden + self._attend(layer.encoder_attn, hidden, rows, cross_keys, cross_values, cross_mask)
        )
        feed_forward = layer.fc2(layer.activation_fn(layer.fc1(hidden)))
        return layer.final_layer_norm(hidden + feed_forward)

    # -- generation helpers -----------------------------------------------------------------------------------
    @torch.no_grad()
    def generated_exit_layers(
        self, input_ids: torch.Tensor, sequences: torch.Tensor, attention_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """The block each generated token (`sequences[:, 1:]`) exited at, 0 after a sequence's first EOS.

        Replays `sequences` teacher-forced in eval mode: decisions depend only on the tokens before, so this gives
        the exits the incremental decoding took, for greedy, sampled and beam-searched sequences alike (costs one
        decoder pass). Rows of `sequences` beyond the batch (`num_return_sequences`) map to their source row."""
        if sequences.shape[0] != input_ids.shape[0]:
            repeats = sequences.shape[0] // input_ids.shape[0]
            input_ids = input_ids.repeat_interleave(repeats, dim=0)
            attention_mask = None if attention_mask is None else attention_mask.repeat_interleave(repeats, dim=0)
        was_training = self.training
        self.eval()
        try:
            outputs = self(input_ids=input_ids, attention_mask=attention_mask, decoder_input_ids=sequences[:, :-1],
                           use_cache=False)
        finally:
            self.train(was_training)
        present = generated_token_mask(sequences[:, 1:], self.generation_config.eos_token_id)
        return outputs.exit_layers.masked_fill(~present, 0)

    @torch.no_grad()
    def generate_with_exits(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                            **generate_kwargs) -> DepthAdaptiveGenerateOutput:
        """`generate` plus the exit block of every generated token and their mean (AE): see
        `generated_exit_layers`."""
        generate_kwargs.pop("return_dict_in_generate", None)
        sequences = self.generate(input_ids=input_ids, attention_mask=attention_mask, **generate_kwargs)
        exits = self.generated_exit_layers(input_ids, sequences, attention_mask)
        counted = exits > 0
        average = exits[counted].float().mean() if counted.any() else exits.new_zeros((), dtype=torch.float)
        return DepthAdaptiveGenerateOutput(sequences=sequences, exit_layers=exits, average_exit=average)


__all__ = [
    "DepthAdaptiveCache",
    "DepthAdaptiveExitPredictor",
    "DepthAdaptiveGenerateOutput",
    "DepthAdaptiveSeq2SeqLMOutput",
    "DepthAdaptiveTransformer",
    "DepthAdaptiveTransformerPreTrainedModel",
    "aligned_decoder_loss",
    "exit_correctness",
    "exit_cross_entropy",
    "exit_log_likelihoods",
    "generated_token_mask",
    "geometric_exit_log_probs",
    "mixed_decoder_loss",
    "oracle_exits",
    "sequence_oracle_exits",
    "smooth_over_positions",
    "token_oracle_exits",
]
