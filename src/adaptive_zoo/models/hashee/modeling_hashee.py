"""PyTorch HashEE (Sun, Liu, Guo, Qiu, Huang: "A Simple Hash-Based Early Exiting Approach For Language
Understanding and Generation", 2022).

Token-level early exit without any learned exit decision: a hash table, built before training, gives every
vocabulary id a fixed exit layer, and a token with exit layer e runs encoder layers 1 .. e and keeps the output
of layer e as its final state. At layer l (1-based) the *running* tokens are those with exit layer >= l; per
appendix A.4 (eqs. 1-5):

    q = h^l W_Q                  queries from the running tokens only          (m tokens)
    K, V = H^l W_K, H^l W_V      keys and values from ALL tokens' current states (n tokens)
    h^{l+1} = FFN(Attn(q, K, V) W_O)   with the residuals and layer norms, running tokens only
    H^{l+1} = Copy(H^l, h^{l+1}) exited tokens keep their frozen state and keep serving as keys and values

Batched and batch-invariant, with real savings: after the embeddings each row's tokens are permuted so that
they are sorted by exit layer, descending (stable; padding last). Self-attention with absolute position
embeddings already added is permutation-equivariant, so this is exact, and the running set of every row becomes
a prefix. Layer l then computes queries, attention output, FFN and layer norms on the first
M_l = max over rows of the running count columns only, keys and values on all, and writes back only where a
token really runs. The permutation is undone at the end.

Two models:
- `HashEEBertForSequenceClassification`: weight names equal `BertForSequenceClassification`'s (`bert.*`,
  `classifier.*`) plus the table, `bert.encoder.hash_table`.
- `HashEEBartForConditionalGeneration`: a `BartForConditionalGeneration` whose encoder exits tokens early; the
  decoder is unchanged and cross-attends to every source token's final state. Weight names equal
  `BartForConditionalGeneration`'s plus `model.encoder.hash_table`.

So any BERT / BART checkpoint loads, with only the table reported missing (it then holds zeros: "no table"); a
checkpoint of another family is refused by `from_pretrained` (see `StandardSwitchesMixin`).
With `config.token_early_exit = False`, or the zoo's common off switch `config.adaptive = False`, the stock layers
run and the outputs equal the vanilla model's.

Standard switches: `output_hidden_states` returns every token's states, an exited token's carried forward unchanged
from its exit layer; `output_attentions` needs `token_early_exit=False` and eager attention; gradient checkpointing
recomputes each layer's step in the backward; `torch.compile` gives the eager outputs; `resize_token_embeddings`
grows the table, new ids running every layer (as ids unseen by the table builder do). Exits are fixed by the table,
so an exported graph keeps them: `torch.export` keeps each layer's data-dependent width, so the exported program
routes every input as eager does and saves the same compute (it uses eager attention there); `torch.jit.trace` and
the legacy ONNX exporter cannot, so their graph computes every token at every layer and keeps each token's state
from its exit layer: the eager outputs, without the saving.

This file is Hub code: it imports only torch, transformers and its sibling configuration, so that
`trust_remote_code` can load a saved folder without adaptive-zoo installed.
"""

import math
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from functools import partial

import torch
from torch import nn
from torch.nn import BCEWithLogitsLoss, CrossEntropyLoss, MSELoss
from transformers import PreTrainedConfig
from transformers import initialization as init
from transformers.masking_utils import create_bidirectional_mask
from transformers.modeling_outputs import (
    BaseModelOutput,
    BaseModelOutputWithPooling,
    ModelOutput,
    Seq2SeqLMOutput,
    Seq2SeqModelOutput,
)
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS
from transformers.models.bart.modeling_bart import (
    BartDecoder,
    BartEncoder,
    BartEncoderLayer,
    BartForConditionalGeneration,
    BartModel,
    BartPreTrainedModel,
    BartScaledWordEmbedding,
)
from transformers.models.bart.modeling_bart import eager_attention_forward as bart_eager_attention_forward
from transformers.models.bert.modeling_bert import (
    BertEmbeddings,
    BertEncoder,
    BertLayer,
    BertModel,
    BertPooler,
    BertPreTrainedModel,
)
from transformers.models.bert.modeling_bert import eager_attention_forward as bert_eager_attention_forward
from transformers.models.roberta.modeling_roberta import (
    RobertaClassificationHead,
    RobertaEmbeddings,
    RobertaModel,
    RobertaPooler,
    RobertaPreTrainedModel,
)
from transformers.utils.deprecation import deprecate_kwarg
from transformers.utils.generic import can_return_tuple

from .configuration_hashee import HashEEBartConfig, HashEEBertConfig, HashEERobertaConfig

# `save_pretrained` writes only the saved class's own Auto entry; these let `AutoModel` load the base models.
BERT_BACKBONE_AUTO_MAP = {"AutoModel": "modeling_hashee.HashEEBertModel"}
ROBERTA_BACKBONE_AUTO_MAP = {"AutoModel": "modeling_hashee.HashEERobertaModel"}
BART_BASE_AUTO_MAP = {"AutoModel": "modeling_hashee.HashEEBartModel"}

# Attention implementations whose masks the token-exit path builds for queries shorter than keys; others
# (flex_attention, flash_attention_*, Hub kernels) are refused when the model is built, loaded or switched.
SUPPORTED_ATTENTION_IMPLEMENTATIONS = ("eager", "sdpa")


# -- outputs ------------------------------------------------------------------------------------------------


@dataclass
class HashEEEncoderOutput(BaseModelOutput):
    r"""
    Output of a HashEE encoder (`HashEEBertEncoder`, `HashEEBartEncoder`).

    Args:
        last_hidden_state (`torch.FloatTensor` of shape `(batch_size, sequence_length, hidden_size)`):
            Each token's final state: the output of its exit layer. With early exit, padding positions hold their
            embedding output (they are never computed).
        hidden_states (`tuple(torch.FloatTensor)`, *optional*, returned when `output_hidden_states=True`):
            The embeddings and the states after each layer, `num_layers + 1` tensors of the shape above, in the
            input's token order. A token that has exited keeps the same state in every later entry.
        attentions (`tuple(torch.FloatTensor)`, *optional*, returned when `output_attentions=True`):
            Only with `token_early_exit=False` (the stock layers) and eager attention, as the vanilla encoder returns
            them; the token-exit path refuses `output_attentions=True`.
        token_exit_layers (`torch.LongTensor` of shape `(batch_size, sequence_length)`):
            The 1-based exit layer of each token (the number of layers it ran); 0 at padding. Every real token has
            `num_layers` with `token_early_exit=False`.
    """

    token_exit_layers: torch.LongTensor | None = None


@dataclass
class HashEEBertModelOutput(BaseModelOutputWithPooling):
    r"""
    Output of [`HashEEBertModel`]: `BertModel`'s, plus the routing.

    Args:
        last_hidden_state (`torch.FloatTensor` of shape `(batch_size, sequence_length, hidden_size)`):
            Each token's final state, the output of its exit layer.
        pooler_output (`torch.FloatTensor` of shape `(batch_size, hidden_size)`):
            BERT's pooler (dense + tanh) over the [CLS] token's final state.
        hidden_states (`tuple(torch.FloatTensor)`, *optional*, returned when `output_hidden_states=True`):
            The embeddings and the states after each layer (see [`HashEEEncoderOutput`]).
        token_exit_layers (`torch.LongTensor` of shape `(batch_size, sequence_length)`):
            The exit layer of each token; 0 at padding.
    """

    token_exit_layers: torch.LongTensor | None = None


@dataclass
class HashEESequenceClassifierOutput(ModelOutput):
    r"""
    Output of [`HashEEBertForSequenceClassification`].

    Args:
        loss (`torch.FloatTensor` of shape `()`, *optional*, returned when `labels` is given):
            Classification (or regression) loss, as `BertForSequenceClassification` computes it.
        logits (`torch.FloatTensor` of shape `(batch_size, num_labels)`):
            Classification scores, from the [CLS] token's final state.
        token_exit_layers (`torch.LongTensor` of shape `(batch_size, sequence_length)`):
            The 1-based exit layer of each token (the number of layers it ran); 0 at padding.
        mean_exit_layer (`torch.FloatTensor` of shape `(batch_size,)`):
            Mean exit layer over each row's real tokens: the layers computed per token, on average.
        hidden_states (`tuple(torch.FloatTensor)`, *optional*, returned when `output_hidden_states=True`):
            The embeddings and the states after each layer (see [`HashEEEncoderOutput`]).
        attentions (`tuple(torch.FloatTensor)`, *optional*, returned when `output_attentions=True`):
            Every layer's attention weights, with `token_early_exit=False` and eager attention only.
    """

    loss: torch.FloatTensor | None = None
    logits: torch.FloatTensor | None = None
    token_exit_layers: torch.LongTensor | None = None
    mean_exit_layer: torch.FloatTensor | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None
    attentions: tuple[torch.FloatTensor, ...] | None = None


@dataclass
class HashEESeq2SeqModelOutput(Seq2SeqModelOutput):
    r"""
    Output of [`HashEEBartModel`]: `BartModel`'s, plus `encoder_token_exit_layers` (`torch.LongTensor` of shape
    `(batch_size, source_length)`), the exit layer of each source token (0 at padding).
    """

    encoder_token_exit_layers: torch.LongTensor | None = None


@dataclass
class HashEESeq2SeqLMOutput(Seq2SeqLMOutput):
    r"""
    Output of [`HashEEBartForConditionalGeneration`]: `BartForConditionalGeneration`'s, plus
    `encoder_token_exit_layers` (`torch.LongTensor` of shape `(batch_size, source_length)`), the exit layer of
    each source token (0 at padding).
    """

    encoder_token_exit_layers: torch.LongTensor | None = None


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


# -- token-level early exit -----------------------------------------------------------------------------------


def run_layers_with_token_exits(
    layers: nn.ModuleList,
    hidden_states: torch.Tensor,
    exit_layers: torch.Tensor,
    make_mask: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor | None],
    output_hidden_states: bool = False,
    skip_layer: Callable[[], bool] | None = None,
) -> tuple[torch.Tensor, tuple[torch.Tensor, ...] | None]:
    """Run `layers` over `hidden_states` (B, T, H) where the token at (b, t) runs layers 1 .. exit_layers[b, t]
    (0: padding, runs none) and keeps its last state afterwards, still serving as key and value.

    `layer(query_states (B, M, H), mask, states (B, T', H))` computes one layer for the first M tokens of each
    (sorted) row, with keys and values from all T' tokens (`HashEEBertLayer`, `HashEEBartEncoderLayer`): the layer is
    called as a module, so its forward hooks fire (seeing the M running tokens) and gradient checkpointing wraps
    it as it wraps a stock layer. `make_mask(query_states, present, states)` gives its key-padding attention mask. Returns the final states (B, T, H) in the input order and,
    with `output_hidden_states`, the embeddings and the states after every layer.

    The widths T' and M depend on the input's ids. `torch.export` (and the ONNX exporter built on it) keeps them as
    data-dependent sizes, so the exported graph routes every input as eager does, saving included. `torch.jit.trace`
    (and the legacy ONNX exporter) would freeze them into the example's constants and route other inputs wrongly:
    there every layer computes every column (M = T' = T) and the running mask alone decides which states change,
    so the exits survive, the saving does not. With gradient checkpointing enabled on a layer, its step is
    recomputed in the backward pass.
    """
    hidden_size = hidden_states.shape[-1]
    traced = graph_capture() == "export" and not torch.compiler.is_exporting()
    # Sort each row by exit layer, descending and stable: the running tokens of any layer are then a prefix.
    order = torch.sort(exit_layers, dim=1, descending=True, stable=True).indices  # (B, T)
    sorted_exits = exit_layers.gather(1, order)  # (B, T), non-increasing along each row
    # T': columns past it are padding in every row
    width = column_count((sorted_exits > 0).sum(dim=1).max(), exit_layers.shape[1], traced)
    order, sorted_exits = order[:, :width], sorted_exits[:, :width]  # (B, T')
    gather_index = order.unsqueeze(-1).expand(-1, -1, hidden_size)  # (B, T', H)
    states = hidden_states.gather(1, gather_index)  # (B, T', H)
    present = sorted_exits > 0  # (B, T')
    exported_mask = None
    if torch.compiler.is_exporting():  # transformers' mask builders branch on the (data-dependent) query count
        exported_mask = torch.zeros(present.shape, dtype=states.dtype, device=states.device).masked_fill(
            ~present, torch.finfo(states.dtype).min
        )[:, None, None, :]  # (B, 1, 1, T'), the same for every query

    def in_input_order(sorted_states: torch.Tensor) -> torch.Tensor:
        # (B, T', H) -> (B, T, H); padding positions keep their embedding output
        return hidden_states.scatter(1, gather_index, sorted_states)

    all_states = (hidden_states,) if output_hidden_states else None
    for layer_number, layer in enumerate(layers, start=1):
        running = sorted_exits >= layer_number  # (B, T'), a prefix of each row
        num_queries = column_count(running.sum(dim=1).max(), width, traced)  # M_l
        # (an exported graph cannot branch on M_l; with M_l = 0 the step computes nothing)
        if (exported_mask is not None or num_queries > 0) and not (skip_layer is not None and skip_layer()):
            query_states = states[:, :num_queries]  # (B, M, H)
            mask = exported_mask if exported_mask is not None else make_mask(query_states, present, states)
            updated = layer(query_states, mask, states)  # (B, M, H); positional, for reentrant checkpointing
            # Rows with fewer running tokens computed some exited ones too: those keep their frozen state.
            updated = torch.where(running[:, :num_queries, None], updated, query_states)  # (B, M, H)
            states = torch.cat([updated, states[:, num_queries:]], dim=1)  # (B, T', H)
        if all_states is not None:
            all_states += (in_input_order(states),)
    return in_input_order(states), all_states


def column_count(count: torch.Tensor, limit, traced: bool):
    """How many columns to compute, `count` (a 0-d tensor) at most `limit`: a Python int in eager mode and under
    torch.compile; under torch.export a data-dependent size the exported graph keeps; under torch.jit.trace, which
    would freeze an int into the graph, `limit` (every column)."""
    if traced:
        return limit
    if torch.compiler.is_exporting():
        size = count.item()
        torch._check(size >= 0)
        torch._check(size <= limit)
        return size
    return int(count)


def attention_interface(config, eager_attention_forward: Callable) -> Callable:
    """The model's attention implementation, or eager attention under torch.export: transformers' sdpa wrapper
    branches on the query count, which a layer of the token-exit path only knows from the data."""
    implementation = "eager" if torch.compiler.is_exporting() else config._attn_implementation
    return ALL_ATTENTION_FUNCTIONS.get_interface(implementation, eager_attention_forward)


def key_padding_mask(config, query_states: torch.Tensor, present: torch.Tensor, states: torch.Tensor):
    """Attention mask letting every query attend to every present token: (B, 1, M, T'), or None (sdpa, no
    padding)."""
    return create_bidirectional_mask(
        config=config, inputs_embeds=query_states, attention_mask=present, encoder_hidden_states=states
    )


def token_subset_attention(
    attention: nn.Module,
    projections: tuple[nn.Linear, nn.Linear, nn.Linear],
    head_shape: tuple[int, int],
    eager_attention_forward: Callable,
    dropout: float,
    query_states: torch.Tensor,
    states: torch.Tensor,
    attention_mask: torch.Tensor | None,
) -> torch.Tensor:
    """Self-attention of the M query tokens over all T' tokens (eqs. 1-2), through the model's attention
    implementation, before the output projection: (B, M, H), (B, T', H) -> (B, M, nh * hd). `attention` is the
    layer's attention module, `projections` its query, key and value projections, `head_shape` (nh, hd)."""
    query_projection, key_projection, value_projection = projections
    batch_size, num_queries, _ = query_states.shape
    shape = (batch_size, -1, *head_shape)
    query = query_projection(query_states).view(shape).transpose(1, 2)  # (B, nh, M, hd)
    key = key_projection(states).view(shape).transpose(1, 2)  # (B, nh, T', hd)
    value = value_projection(states).view(shape).transpose(1, 2)  # (B, nh, T', hd)
    attention_function = attention_interface(attention.config, eager_attention_forward)
    context, _ = attention_function(
        attention, query, key, value, attention_mask, dropout=dropout, scaling=attention.scaling
    )  # (B, M, nh, hd)
    return context.reshape(batch_size, num_queries, -1)  # (B, M, nh * hd)


def bert_layer_step(
    layer: BertLayer, query_states: torch.Tensor, states: torch.Tensor, attention_mask: torch.Tensor | None
) -> torch.Tensor:
    """One `BertLayer` (eqs. 1-4) with its own submodules: queries, attention output, FFN and layer norms for the
    M query tokens only; keys and values from all T' tokens. (B, M, H), (B, T', H) -> (B, M, H)."""
    attention = layer.attention.self
    dropout = attention.dropout.p if attention.training else 0.0
    context = token_subset_attention(
        attention, (attention.query, attention.key, attention.value),
        (attention.num_attention_heads, attention.attention_head_size), bert_eager_attention_forward, dropout,
        query_states, states, attention_mask,
    )  # (B, M, H)
    attention_output = layer.attention.output(context, query_states)  # (B, M, H): dense, dropout, LN(+ residual)
    return layer.feed_forward_chunk(attention_output)  # (B, M, H): intermediate, output, LN(+ residual)


def bart_layer_step(
    layer: BartEncoderLayer, query_states: torch.Tensor, states: torch.Tensor, attention_mask: torch.Tensor | None
) -> torch.Tensor:
    """One `BartEncoderLayer` (eqs. 1-4, post-LN as in BART) with its own submodules, for the M query tokens; keys
    and values from all T' tokens. (B, M, H), (B, T', H) -> (B, M, H)."""
    attention = layer.self_attn
    dropout = attention.dropout if attention.training else 0.0
    context = token_subset_attention(
        attention, (attention.q_proj, attention.k_proj, attention.v_proj), (attention.num_heads, attention.head_dim),
        bart_eager_attention_forward, dropout, query_states, states, attention_mask,
    )  # (B, M, H)
    attended = attention.out_proj(context)  # (B, M, H)
    attended = nn.functional.dropout(attended, p=layer.dropout, training=layer.training)
    hidden_states = layer.self_attn_layer_norm(query_states + attended)  # (B, M, H)

    feed_forward = layer.activation_fn(layer.fc1(hidden_states))  # (B, M, F)
    feed_forward = nn.functional.dropout(feed_forward, p=layer.activation_dropout, training=layer.training)
    feed_forward = layer.fc2(feed_forward)  # (B, M, H)
    feed_forward = nn.functional.dropout(feed_forward, p=layer.dropout, training=layer.training)
    hidden_states = layer.final_layer_norm(hidden_states + feed_forward)  # (B, M, H)

    if hidden_states.dtype == torch.float16 and not torch.isfinite(hidden_states).all():
        clamp_value = torch.finfo(hidden_states.dtype).max - 1000  # as BartEncoderLayer does
        hidden_states = torch.clamp(hidden_states, min=-clamp_value, max=clamp_value)
    return hidden_states


class HashEEBertLayer(BertLayer):
    """`BertLayer` that also takes the token-exit step: called with `key_value_states` (B, T', H), it computes only
    its `hidden_states`, the M tokens still running (B, M, H), with keys and values from all T' tokens
    (`bert_layer_step`); without, it is the stock layer. Either way it is called as a module, so forward hooks on
    `encoder.layer[i]` fire (on a token-exit step they see the M running tokens: the exited ones are not computed)."""

    def forward(self, hidden_states, attention_mask=None, key_value_states=None, **kwargs):
        if key_value_states is None:
            return super().forward(hidden_states, attention_mask, **kwargs)
        return bert_layer_step(self, hidden_states, key_value_states, attention_mask)


class HashEEBartEncoderLayer(BartEncoderLayer):
    """`BartEncoderLayer` that also takes the token-exit step (`bart_layer_step`); see `HashEEBertLayer`."""

    def forward(self, hidden_states, attention_mask=None, key_value_states=None, **kwargs):
        if key_value_states is None:
            return super().forward(hidden_states, attention_mask, **kwargs)
        return bart_layer_step(self, hidden_states, key_value_states, attention_mask)


def check_token_exit_inputs(config, attention_mask: torch.Tensor | None) -> None:
    if config._attn_implementation not in SUPPORTED_ATTENTION_IMPLEMENTATIONS:
        raise ValueError(
            f"HashEE's token early exit supports `attn_implementation` in {SUPPORTED_ATTENTION_IMPLEMENTATIONS}; "
            f"got {config._attn_implementation!r}. Load the model with `attn_implementation='sdpa'`."
        )
    if attention_mask is not None and attention_mask.dim() != 2:
        raise ValueError(
            "HashEE's token early exit takes a 2-D padding `attention_mask` of shape (batch_size, sequence_length); "
            f"got shape {tuple(attention_mask.shape)}."
        )



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


def padding_mask(attention_mask: torch.Tensor | None, shape: torch.Size, device: torch.device) -> torch.Tensor:
    """(B, T) bool, True on real tokens."""
    if attention_mask is None:
        return torch.ones(shape, dtype=torch.bool, device=device)
    return attention_mask.to(device=device, dtype=torch.bool)


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


class HashTableMixin:
    """The token -> exit-layer table of a HashEE encoder (a persistent buffer `hash_table` of vocabulary size,
    saved in `model.safetensors`), the exit layers it gives a batch, and the encoder's layers run with them."""

    def init_hash_table(self, config) -> None:
        # 0 = "no exit layer": the value a checkpoint without a table leaves (see `_init_weights`).
        self.register_buffer("hash_table", torch.zeros(config.vocab_size, dtype=torch.long), persistent=True)
        # The table holds exit layers of these buckets: a later change of B (or L) is refused at the next forward
        # and at saving, since the table would not follow it.
        self.fixed_config_fields = {"num_buckets": config.num_buckets, "num_hidden_layers": config.num_hidden_layers}

    def check_table_matches_config(self) -> None:
        """Refuse a config whose buckets changed after the table was attached (see `init_hash_table`)."""
        how = (
            "build a table for the new buckets (`adaptive-zoo hash build`), then rebuild the model with them: "
            "`from_pretrained(folder, num_buckets=B)` followed by `model.set_hash_table(table)`"
        )
        check_config_unchanged(self, self.fixed_config_fields, {"num_buckets": how, "num_hidden_layers": how})

    @torch.no_grad()
    def set_hash_table(self, table, special_token_ids=None) -> None:
        """Attach a table: a 1-D integer sequence or tensor with one exit layer per vocabulary id, each among
        `config.exit_layers`. `special_token_ids` (optional) is stored in `config.special_token_ids`: the ids
        that keep their table exit layer under `hash_function="random_inconsistent"`."""
        table = torch.as_tensor(table)
        if table.dim() != 1:
            raise ValueError(f"The hash table must be 1-D (one exit layer per token id); got shape {tuple(table.shape)}.")
        if table.is_floating_point() or table.is_complex() or table.dtype == torch.bool:
            raise ValueError(f"The hash table must hold integer exit layers; got dtype {table.dtype}.")
        vocab_size = self.config.vocab_size
        if table.numel() != vocab_size:
            raise ValueError(
                f"The hash table has {table.numel()} entries but the model's vocabulary (config.vocab_size) has "
                f"{vocab_size} token ids: build the table with the model's tokenizer."
            )
        # the buckets' layers, plus full depth (where special and never-seen tokens go when B < L)
        allowed = sorted({*self.config.exit_layers, self.config.num_hidden_layers})
        bad = table[~torch.isin(table, torch.tensor(allowed, dtype=table.dtype))].unique()
        if bad.numel():
            raise ValueError(
                f"The hash table holds exit layers {bad[:10].tolist()} that are neither bucket exit layers nor the "
                f"last layer; with {self.config.num_hidden_layers} layers and num_buckets={self.config.num_buckets} "
                f"they must be among {allowed}."
            )
        self.hash_table.copy_(table.to(device=self.hash_table.device, dtype=torch.long))
        if special_token_ids is not None:
            self.config.special_token_ids = sorted({int(i) for i in special_token_ids})

    def token_exit_layers(
        self, input_ids: torch.Tensor | None, present: torch.Tensor, attention_mask: torch.Tensor | None
    ) -> torch.Tensor:
        """The exit layer of every token, (B, T) long, 0 at padding, once the token-exit path's inputs are checked
        (`check_token_exit_inputs`)."""
        self.check_table_matches_config()
        check_token_exit_inputs(self.config, attention_mask)
        if input_ids is None:
            raise ValueError(
                "HashEE looks up each token's exit layer by its id: pass `input_ids` (not `inputs_embeds`), or set "
                "`config.token_early_exit = False` to run every layer."
            )
        exit_layers = self.hash_table[input_ids]  # (B, T)
        unset = (exit_layers == 0) & present  # (B, T)
        if graph_capture() == "export":
            if self.config.hash_function == "random_inconsistent":
                refuse_in_graph_capture(
                    "hash_function='random_inconsistent' draws a random exit layer per token occurrence (the paper's "
                    "ablation), which an exported graph would freeze: export a model with a table-based hash, or "
                    "with `config.token_early_exit = False`."
                )
            # the check below, kept in the graph: a static graph cannot branch on the ids it will be given
            torch._assert_async(~unset.any(), "HashEE: a token id has no exit layer (0) in the hash table.")
        elif bool(unset.any()):
            if int(self.hash_table.max()) == 0:
                raise ValueError(
                    "This HashEE model has no hash table attached (`hash_table` is all zeros, e.g. after loading a "
                    "plain BERT/BART checkpoint): call `model.set_hash_table(exit_layers)` with one exit layer per "
                    "vocabulary id (build one with `adaptive-zoo hash build`), or set "
                    "`model.config.token_early_exit = False` to run every layer."
                )
            raise ValueError(
                f"The hash table has no exit layer (0) for token ids {input_ids[unset].unique()[:10].tolist()}: "
                "attach a complete table with `model.set_hash_table(exit_layers)`."
            )
        if self.config.hash_function == "random_inconsistent":
            exit_layers = self.random_exit_layers(input_ids, exit_layers)
        return exit_layers.masked_fill(~present, 0)

    def run_encoder_layers(
        self, layers: nn.ModuleList, hidden_states: torch.Tensor, exit_layers: torch.Tensor,
        output_hidden_states: bool, skip_layer: Callable[[], bool] | None = None,
    ) -> HashEEEncoderOutput:
        """The encoder's layers on its embeddings `hidden_states` with the tokens' `exit_layers` (see the function
        `run_layers_with_token_exits`), each layer called as a module on its running tokens."""
        hidden_states, all_states = run_layers_with_token_exits(
            layers, hidden_states, exit_layers, partial(key_padding_mask, self.config),
            output_hidden_states=output_hidden_states, skip_layer=skip_layer,
        )
        return HashEEEncoderOutput(
            last_hidden_state=hidden_states, hidden_states=all_states, token_exit_layers=exit_layers
        )

    @torch.no_grad()
    def resize_hash_table(self, vocab_size: int) -> None:
        """Follow `resize_token_embeddings`: new ids run every layer (the exit the table builder gives ids it never
        saw, and special tokens), removed ids leave the table. A model without a table (all zeros) keeps none."""
        table = self.hash_table
        if vocab_size <= table.numel():
            self.hash_table = table[:vocab_size].clone()
            return
        new_exit = self.config.num_hidden_layers if int(table.max()) > 0 else 0
        self.hash_table = torch.cat([table, table.new_full((vocab_size - table.numel(),), new_exit)])

    def random_exit_layers(self, input_ids: torch.Tensor, table_exit_layers: torch.Tensor) -> torch.Tensor:
        """Rand-incons: a fresh random bucket exit layer for every token occurrence (special tokens keep the
        table's). Seeded in eval mode (reproducible, but not batch-invariant); the global RNG in training."""
        device = input_ids.device
        choices = torch.tensor(self.config.exit_layers, dtype=torch.long, device=device)
        generator = None
        if not self.training:
            generator = torch.Generator(device=device).manual_seed(self.config.inconsistent_seed)
        draws = choices[torch.randint(len(choices), input_ids.shape, generator=generator, device=device)]  # (B, T)
        if self.config.special_token_ids:
            special = torch.isin(input_ids, torch.tensor(self.config.special_token_ids, device=device))  # (B, T)
            draws = torch.where(special, table_exit_layers, draws)
        return draws


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


class HashEEPreTrainedMixin(StandardSwitchesMixin):
    """What the BERT and BART pre-trained classes of HashEE share: the standard switches they check or extend, and
    the hash table's initialisation."""

    @torch.no_grad()
    def _init_weights(self, module):
        super()._init_weights(module)
        if isinstance(module, HashTableMixin):
            init.zeros_(module.hash_table)  # skipped when the checkpoint has a table

    def save_pretrained(self, save_directory, *args, **kwargs):
        """`PreTrainedModel.save_pretrained`, refusing (before anything is written) a config whose buckets no longer
        match the hash table: the saved folder's own table would be rejected when it is loaded."""
        for module in self.modules():
            if isinstance(module, HashTableMixin):
                module.check_table_matches_config()
        return super().save_pretrained(save_directory, *args, **kwargs)

    def resize_token_embeddings(self, new_num_tokens=None, pad_to_multiple_of=None, mean_resizing=True):
        """`PreTrainedModel.resize_token_embeddings`, and the hash table with them (see `resize_hash_table`)."""
        embeddings = super().resize_token_embeddings(new_num_tokens, pad_to_multiple_of, mean_resizing)
        for module in self.modules():
            if isinstance(module, HashTableMixin):
                module.resize_hash_table(embeddings.num_embeddings)
        return embeddings


class HashTableHolderMixin:
    """The models around a HashEE encoder (the base models and their heads): the encoder's hash table, reached
    through them."""

    def hash_encoder(self) -> HashTableMixin:
        """The encoder that holds the table."""
        return next(module for module in self.modules() if isinstance(module, HashTableMixin))

    @property
    def hash_table(self) -> torch.Tensor:
        """The token -> exit-layer table (vocab_size,), all zeros when none is attached."""
        return self.hash_encoder().hash_table

    def set_hash_table(self, table, special_token_ids=None) -> None:
        """See [`HashTableMixin.set_hash_table`]."""
        self.hash_encoder().set_hash_table(table, special_token_ids)


# -- BERT -----------------------------------------------------------------------------------------------------


class HashEEBertEncoder(HashTableMixin, BertEncoder):
    """`BertEncoder` with token-level early exit; holds the hash table (`bert.encoder.hash_table`)."""

    def __init__(self, config: HashEEBertConfig):
        super().__init__(config)
        self.layer = nn.ModuleList(HashEEBertLayer(config, layer_idx=i) for i in range(config.num_hidden_layers))
        self.init_hash_table(config)

    def forward(
        self,
        hidden_states: torch.Tensor,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        output_hidden_states: bool = False,
        output_attentions: bool = False,
        **kwargs,
    ) -> HashEEEncoderOutput:
        """hidden_states: the embeddings (B, T, H); attention_mask: the 2-D padding mask (B, T)."""
        present = padding_mask(attention_mask, hidden_states.shape[:2], hidden_states.device)  # (B, T)
        if output_attentions:
            check_attentions_available(
                type(self), self.config, self.config.token_exits, "config.token_early_exit = False"
            )
        if not self.config.token_exits:  # the stock layers: exactly `BertModel`
            layer_mask = create_bidirectional_mask(
                config=self.config, inputs_embeds=hidden_states, attention_mask=attention_mask
            )
            all_states = (hidden_states,) if output_hidden_states else None
            with recording_attentions(
                [layer.attention.self for layer in self.layer] if output_attentions else []
            ) as attentions:
                for layer in self.layer:
                    hidden_states = layer(hidden_states, attention_mask=layer_mask, **kwargs)  # (B, T, H)
                    if all_states is not None:
                        all_states += (hidden_states,)
            exit_layers = present.long() * self.config.num_hidden_layers  # (B, T)
            return HashEEEncoderOutput(
                last_hidden_state=hidden_states,
                hidden_states=all_states,
                attentions=tuple(attentions) if output_attentions else None,
                token_exit_layers=exit_layers,
            )

        exit_layers = self.token_exit_layers(input_ids, present, attention_mask)  # (B, T)
        return self.run_encoder_layers(
            self.layer, hidden_states, exit_layers, output_hidden_states
        )


class HashEEBertPreTrainedModel(HashEEPreTrainedMixin, BertPreTrainedModel):
    config_class = HashEEBertConfig
    config: HashEEBertConfig


class HashEEBertModel(HashTableHolderMixin, HashEEBertPreTrainedModel, BertModel):
    """The BERT backbone of HashEE (what `AutoModel` loads): embeddings, a token-exit encoder, the pooler."""

    def __init__(self, config: HashEEBertConfig, add_pooling_layer: bool = True):
        # Not `BertModel.__init__`, which would first build a plain `BertEncoder`.
        super(BertModel, self).__init__(config)
        self.config = config
        self.gradient_checkpointing = False
        self.embeddings = BertEmbeddings(config)
        self.encoder = HashEEBertEncoder(config)
        self.pooler = BertPooler(config) if add_pooling_layer else None
        self.post_init()

    @can_return_tuple
    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        output_attentions: bool | None = None,
        **kwargs,
    ) -> HashEEBertModelOutput:
        checked_input_shape(self.config, input_ids, inputs_embeds)
        output_hidden_states, output_attentions = output_flags(self.config, output_hidden_states, output_attentions)
        embedding_output = self.embeddings(
            input_ids=input_ids, position_ids=position_ids, token_type_ids=token_type_ids, inputs_embeds=inputs_embeds
        )  # (B, T, H)
        encoder_outputs = self.encoder(
            embedding_output,
            input_ids=input_ids,
            attention_mask=attention_mask,
            output_hidden_states=output_hidden_states,
            output_attentions=output_attentions,
            **kwargs,
        )
        sequence_output = encoder_outputs.last_hidden_state  # (B, T, H)
        return HashEEBertModelOutput(
            last_hidden_state=sequence_output,
            pooler_output=self.pooler(sequence_output) if self.pooler is not None else None,
            hidden_states=encoder_outputs.hidden_states,
            attentions=encoder_outputs.attentions,
            token_exit_layers=encoder_outputs.token_exit_layers,
        )


def sequence_classification_loss(config, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """The loss `BertForSequenceClassification` computes (problem type inferred the same way)."""
    num_labels = config.num_labels
    if config.problem_type is None:
        if num_labels == 1:
            config.problem_type = "regression"
        elif labels.dtype in (torch.long, torch.int):
            config.problem_type = "single_label_classification"
        else:
            config.problem_type = "multi_label_classification"
    if config.problem_type == "regression":
        return MSELoss()(logits.squeeze(), labels.squeeze()) if num_labels == 1 else MSELoss()(logits, labels)
    if config.problem_type == "single_label_classification":
        return CrossEntropyLoss()(logits.view(-1, num_labels), labels.view(-1))
    return BCEWithLogitsLoss()(logits, labels)


class HashEEClassifierMixin(HashTableHolderMixin):
    """HashEE's sequence-classifier forward over a token-exit backbone (`self.base_model`), whatever the family;
    the family's head is `head_logits`."""

    # `forward(**kwargs)` takes attention kwargs, not loss kwargs: without this the Trainer would skip dividing
    # the loss by the gradient-accumulation steps.
    accepts_loss_kwargs = False

    def head_logits(self, outputs) -> torch.Tensor:
        raise NotImplementedError

    @can_return_tuple
    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        output_attentions: bool | None = None,
        **kwargs,
    ) -> HashEESequenceClassifierOutput:
        r"""
        labels (`torch.LongTensor` of shape `(batch_size,)`, *optional*):
            Class indices in `[0, num_labels)` (or float targets for regression / multi-label), as for
            `BertForSequenceClassification`.

        Tokens exit at their hash-table layer in training as in inference (the paper trains with the same hash),
        unless `config.token_early_exit` or `config.adaptive` is False.
        """
        # the head was built with `self.num_labels` outputs: a later change of `config.num_labels` cannot follow
        check_config_unchanged(self, {"num_labels": self.num_labels}, {})
        check_classifier_inputs(self.config, input_ids, inputs_embeds, attention_mask, labels)

        outputs = self.base_model(
            input_ids,
            attention_mask=attention_mask,
            token_type_ids=token_type_ids,
            position_ids=position_ids,
            inputs_embeds=inputs_embeds,
            output_hidden_states=output_hidden_states,
            output_attentions=output_attentions,
            return_dict=True,
            **kwargs,
        )
        logits = self.head_logits(outputs)  # (B, C)
        loss = sequence_classification_loss(self.config, logits, labels) if labels is not None else None

        exit_layers = outputs.token_exit_layers  # (B, T)
        tokens = (exit_layers > 0).sum(dim=1).clamp(min=1)  # (B,)
        return HashEESequenceClassifierOutput(
            loss=loss,
            logits=logits,
            token_exit_layers=exit_layers,
            mean_exit_layer=exit_layers.sum(dim=1).float() / tokens,
            hidden_states=outputs.hidden_states,
            attentions=outputs.attentions,
        )


class HashEEBertForSequenceClassification(HashEEClassifierMixin, HashEEBertPreTrainedModel):
    """HashEE-BERT: `BertForSequenceClassification`'s weights and head over a token-exit encoder."""

    def __init__(self, config: HashEEBertConfig):
        super().__init__(config)
        init_bert_classifier(self, config, HashEEBertModel(config))
        add_auto_map(config, BERT_BACKBONE_AUTO_MAP)

        self.post_init()

    def head_logits(self, outputs) -> torch.Tensor:
        return self.classifier(self.dropout(outputs.pooler_output))


# -- RoBERTa --------------------------------------------------------------------------------------------------


class HashEERobertaPreTrainedModel(HashEEPreTrainedMixin, RobertaPreTrainedModel):
    config_class = HashEERobertaConfig
    config: HashEERobertaConfig


class HashEERobertaModel(HashTableHolderMixin, HashEERobertaPreTrainedModel, RobertaModel):
    """The RoBERTa backbone of HashEE (what `AutoModel` loads): RoBERTa's embeddings (positions after the padding
    index) and pooler, and HashEE-BERT's token-exit encoder: transformers builds RoBERTa's layers from BERT's
    (same computation, same weight names), so the encoder and its token-exit path are shared, not copied."""

    def __init__(self, config: HashEERobertaConfig, add_pooling_layer: bool = True):
        # Not `RobertaModel.__init__`, which would first build a plain `RobertaEncoder`.
        super(RobertaModel, self).__init__(config)
        self.config = config
        self.gradient_checkpointing = False
        self.embeddings = RobertaEmbeddings(config)
        self.encoder = HashEEBertEncoder(config)
        self.pooler = RobertaPooler(config) if add_pooling_layer else None
        self.post_init()

    forward = HashEEBertModel.forward


class HashEERobertaForSequenceClassification(HashEEClassifierMixin, HashEERobertaPreTrainedModel):
    """HashEE-RoBERTa: `RobertaForSequenceClassification`'s weights and head (over the `<s>` state) over a
    token-exit encoder."""

    def __init__(self, config: HashEERobertaConfig):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.roberta = HashEERobertaModel(config, add_pooling_layer=False)
        self.classifier = RobertaClassificationHead(config)
        add_auto_map(config, ROBERTA_BACKBONE_AUTO_MAP)

        self.post_init()

    def head_logits(self, outputs) -> torch.Tensor:
        return self.classifier(outputs.last_hidden_state)


# -- BART -----------------------------------------------------------------------------------------------------


class HashEEBartPreTrainedModel(HashEEPreTrainedMixin, BartPreTrainedModel):
    config_class = HashEEBartConfig
    config: HashEEBartConfig


class HashEEBartEncoder(HashTableMixin, BartEncoder, HashEEBartPreTrainedModel):
    """`BartEncoder` with token-level early exit; holds the hash table (`model.encoder.hash_table`)."""

    def __init__(self, config: HashEEBartConfig):
        super().__init__(config)
        self.layers = nn.ModuleList(HashEEBartEncoderLayer(config, layer_idx=i) for i in range(config.encoder_layers))
        self.init_hash_table(config)

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        output_attentions: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> HashEEEncoderOutput:
        checked_input_shape(self.config, input_ids, inputs_embeds)
        reference = input_ids if input_ids is not None else inputs_embeds
        present = padding_mask(attention_mask, reference.shape[:2], reference.device)  # (B, T)
        output_hidden_states, output_attentions = output_flags(self.config, output_hidden_states, output_attentions)
        if output_attentions:
            check_attentions_available(
                type(self), self.config, self.config.token_exits, "config.token_early_exit = False"
            )

        if not self.config.token_exits:  # the stock encoder: exactly `BartEncoder`
            outputs = super().forward(
                input_ids=input_ids, attention_mask=attention_mask, inputs_embeds=inputs_embeds, return_dict=True,
                output_hidden_states=output_hidden_states, output_attentions=output_attentions, **kwargs,
            )
            result = HashEEEncoderOutput(
                last_hidden_state=outputs.last_hidden_state,
                hidden_states=outputs.hidden_states,
                attentions=outputs.attentions,
                token_exit_layers=present.long() * self.config.num_hidden_layers,  # (B, T)
            )
        else:
            exit_layers = self.token_exit_layers(input_ids, present, attention_mask)  # (B, T)
            if inputs_embeds is None:
                inputs_embeds = self.embed_tokens(input_ids)  # (B, T, H)
            hidden_states = inputs_embeds + self.embed_positions(inputs_embeds[:, :, -1]).to(inputs_embeds.device)
            hidden_states = self.layernorm_embedding(hidden_states)  # (B, T, H)
            hidden_states = nn.functional.dropout(hidden_states, p=self.dropout, training=self.training)
            result = self.run_encoder_layers(
                self.layers, hidden_states, exit_layers, output_hidden_states, self.layer_dropped
            )
        return result if return_dict is not False else result.to_tuple()

    def layer_dropped(self) -> bool:
        """LayerDrop (training only), drawn as `BartEncoder` draws it."""
        return self.training and self.layerdrop > 0.0 and bool(torch.rand([]) < self.layerdrop)


class HashEEBartForwardMixin(HashTableHolderMixin):
    """What the BART models around a HashEE encoder share: their `forward` runs the encoder first (unless
    `encoder_outputs` are given), then the parent BART class's `forward` on its outputs, so that the source tokens'
    exit layers come back with the parent's outputs."""

    def forward_with_token_exits(
        self, output_class: type[ModelOutput], input_ids, attention_mask, encoder_outputs, inputs_embeds, kwargs,
        **decoder_inputs,
    ) -> ModelOutput:
        """`output_class`: the parent's output fields plus `encoder_token_exit_layers`. `kwargs` go to the encoder and
        to the parent's forward; `decoder_inputs` (the decoder's inputs, the cache, `labels`) to the parent's only."""
        if encoder_outputs is None:
            encoder_outputs = self.hash_encoder()(
                input_ids=input_ids, attention_mask=attention_mask, inputs_embeds=inputs_embeds, **kwargs
            )
        outputs = super().forward(
            input_ids=input_ids, attention_mask=attention_mask, encoder_outputs=encoder_outputs, return_dict=True,
            **decoder_inputs, **kwargs,
        )
        return output_class(**outputs, encoder_token_exit_layers=getattr(encoder_outputs, "token_exit_layers", None))


class HashEEBartModel(HashEEBartForwardMixin, HashEEBartPreTrainedModel, BartModel):
    """A `BartModel` whose encoder exits tokens early (what `AutoModel` loads)."""

    def __init__(self, config: HashEEBartConfig):
        # Not `BartModel.__init__`, which would first build a plain `BartEncoder`.
        super(BartModel, self).__init__(config)
        embed_scale = math.sqrt(config.d_model) if config.scale_embedding else 1.0
        self.shared = BartScaledWordEmbedding(
            config.vocab_size, config.d_model, config.pad_token_id, embed_scale=embed_scale
        )
        self.encoder = HashEEBartEncoder(config)
        self.decoder = BartDecoder(config)
        self.post_init()

    @can_return_tuple
    @deprecate_kwarg("past_key_values", "5.40.0", new_name="cache")
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        decoder_input_ids: torch.LongTensor | None = None,
        decoder_attention_mask: torch.LongTensor | None = None,
        encoder_outputs: BaseModelOutput | tuple | None = None,
        cache=None,
        inputs_embeds: torch.Tensor | None = None,
        decoder_inputs_embeds: torch.Tensor | None = None,
        use_cache: bool | None = None,
        **kwargs,
    ) -> HashEESeq2SeqModelOutput:
        return self.forward_with_token_exits(
            HashEESeq2SeqModelOutput, input_ids, attention_mask, encoder_outputs, inputs_embeds, kwargs,
            decoder_input_ids=decoder_input_ids, decoder_attention_mask=decoder_attention_mask, cache=cache,
            decoder_inputs_embeds=decoder_inputs_embeds, use_cache=use_cache,
        )


class HashEEBartForConditionalGeneration(
    HashEEBartForwardMixin, HashEEBartPreTrainedModel, BartForConditionalGeneration
):
    """`BartForConditionalGeneration` with HashEE's token-exit encoder; `generate()` works as for BART (the
    encoder runs once, so its saving applies to the source side)."""

    # `forward(**kwargs)` takes attention kwargs, not loss kwargs (see HashEEBertForSequenceClassification).
    accepts_loss_kwargs = False

    def __init__(self, config: HashEEBartConfig):
        # Not `BartForConditionalGeneration.__init__`, which would first build a plain `BartModel`.
        super(BartForConditionalGeneration, self).__init__(config)
        self.model = HashEEBartModel(config)
        self.final_logits_bias = nn.Buffer(torch.zeros((1, self.model.shared.num_embeddings)))
        self.lm_head = nn.Linear(config.d_model, self.model.shared.num_embeddings, bias=False)
        add_auto_map(config, BART_BASE_AUTO_MAP)
        self.post_init()

    @can_return_tuple
    @deprecate_kwarg("past_key_values", "5.40.0", new_name="cache")
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        decoder_input_ids: torch.LongTensor | None = None,
        decoder_attention_mask: torch.LongTensor | None = None,
        encoder_outputs: BaseModelOutput | tuple | None = None,
        cache=None,
        inputs_embeds: torch.Tensor | None = None,
        decoder_inputs_embeds: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        use_cache: bool | None = None,
        **kwargs,
    ) -> HashEESeq2SeqLMOutput:
        r"""
        labels (`torch.LongTensor` of shape `(batch_size, target_length)`, *optional*):
            Target token ids (-100 is ignored), as for `BartForConditionalGeneration`; the decoder inputs are the
            labels shifted right when `decoder_input_ids` is not given.
        """
        if labels is not None:
            reference = input_ids if input_ids is not None else inputs_embeds
            if reference is not None and labels.shape[0] != reference.shape[0]:
                raise ValueError(f"Got labels for {labels.shape[0]} targets for a batch of {reference.shape[0]} inputs.")
        return self.forward_with_token_exits(
            HashEESeq2SeqLMOutput, input_ids, attention_mask, encoder_outputs, inputs_embeds, kwargs,
            decoder_input_ids=decoder_input_ids, decoder_attention_mask=decoder_attention_mask, cache=cache,
            decoder_inputs_embeds=decoder_inputs_embeds, labels=labels, use_cache=use_cache,
        )


__all__ = [
    "HashEEBartEncoder",
    "HashEEBartForConditionalGeneration",
    "HashEEBartModel",
    "HashEEBartPreTrainedModel",
    "HashEEBertEncoder",
    "HashEEBertForSequenceClassification",
    "HashEEBertModel",
    "HashEEBertModelOutput",
    "HashEEBertPreTrainedModel",
    "HashEEEncoderOutput",
    "HashEERobertaForSequenceClassification",
    "HashEERobertaModel",
    "HashEERobertaPreTrainedModel",
    "HashEESeq2SeqLMOutput",
    "HashEESeq2SeqModelOutput",
    "HashEESequenceClassifierOutput",
    "run_layers_with_token_exits",
]
