"""Warm-start a BART encoder-decoder from a BERT checkpoint (such as the bundled MiniLM), bert2bert style.

No pretrained seq2seq model is reachable offline, so the zoo's generation models start from the pretrained BERT
encoder instead (Rothe, Narayan, Severyn: "Leveraging Pre-trained Checkpoints for Sequence Generation Tasks",
TACL 2020). A BERT layer and a BART encoder layer are the same computation: post-LayerNorm self-attention then a
GELU feed-forward block, each with a residual connection. So the weights map one to one:

==========================================  =========================================================
BERT (`BertModel`)                          BART (`BartForConditionalGeneration`)
==========================================  =========================================================
embeddings.word_embeddings                  model.shared (= encoder/decoder embed_tokens = lm_head)
embeddings.position_embeddings[p]           + token_type_embeddings[0] -> embed_positions[p + 2] (encoder
                                            and decoder; BART's learned positions are offset by 2 and
                                            BART has no token types, so type 0 is folded in)
embeddings.LayerNorm                        encoder/decoder layernorm_embedding
layer.i.attention.self.{query,key,value}    layers.i.self_attn.{q,k,v}_proj
layer.i.attention.output.dense              layers.i.self_attn.out_proj
layer.i.attention.output.LayerNorm          layers.i.self_attn_layer_norm
layer.i.intermediate.dense                  layers.i.fc1
layer.i.output.dense                        layers.i.fc2
layer.i.output.LayerNorm                    layers.i.final_layer_norm
==========================================  =========================================================

The encoder gets every BERT layer; decoder layer ``i`` gets the self-attention and feed-forward weights of BERT
layer ``i`` too (bert2bert). BERT has no cross-attention. Each decoder layer's cross-attention block
(``encoder_attn`` and ``encoder_attn_layer_norm``) starts either:

- as a copy of BERT layer ``i``'s self-attention (``cross_attention_init="self_attention"``, the default). Its
  queries and keys are then already in the space where BERT matches tokens by content, so from the first step a
  target token attends to the source tokens that resemble it.
- or **fresh** (``cross_attention_init="fresh"``: BART's initialisation, normal with BERT's ``initializer_range``),
  as in Rothe et al.

Measured on ``bbc_headlines`` on a 2-core CPU, where training budgets are a few hundred steps, with
``investigations/compare_cross_attention_init.py``: 2 encoder layers, 6 decoder layers, 200 steps of batch 16, lr 3e-4,
source length 64. The copy reached a validation loss of 5.72 and ROUGE-1 of 10.9. The fresh start reached 6.16
and ROUGE-1 of 3.7; its greedy outputs were near-constant strings. The copied weights were pretrained for
self-attention, not for attending to an encoder; `WarmStartReport` says so.

``final_logits_bias`` is zero, ``scale_embedding`` is False (BERT does not scale embeddings),
and the LM head is tied to the shared word embeddings. BERT's pooler and its token-type rows other than 0 are
dropped. `WarmStartReport` lists all of this by parameter name, for model cards.

Special tokens follow the BERT WordPiece tokenizer, which stays the model's tokenizer: ``pad = [PAD]``,
``bos = decoder_start = [CLS]``, ``eos = forced_eos = [SEP]``. Targets should therefore be tokenized as
``text [SEP]`` (drop the leading ``[CLS]`` the tokenizer adds; the decoder starts from ``[CLS]`` itself), and
inputs with ``return_token_type_ids=False`` (BART's ``generate`` rejects ``token_type_ids``).

**LayerNorm epsilon.** BART hard-codes ``nn.LayerNorm``'s default ``eps=1e-5``; BERT uses ``layer_norm_eps``
(1e-12 for MiniLM), and there is no BART config field for it. With the default ``layer_norm_eps="bart"`` the model
is a plain BART that saves and reloads bit-exactly with ``BartForConditionalGeneration.from_pretrained``; its
encoder then equals the BERT run with ``eps=1e-5`` (measured on MiniLM: a maximum absolute difference of about
0.03 from the original, on hidden states of magnitude ~10). ``layer_norm_eps="bert"`` sets BERT's epsilon on every
LayerNorm so that the encoder equals the original BERT exactly (bit-identical in float64; in float32, rounding differences of a few 1e-6
to 4e-5 on MiniLM's hidden states of magnitude ~10), and records it as
``config.layer_norm_eps``; ``from_pretrained`` does not read that field, so call `apply_layer_norm_eps` after
reloading such a model.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Literal

import torch
from transformers import (
    AutoTokenizer,
    BartConfig,
    BartForConditionalGeneration,
    BertModel,
    GenerationConfig,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from ..backbones import resolve_base_model

__all__ = ["WarmStartReport", "apply_layer_norm_eps", "bart_from_bert", "bert_to_bart_encoder_mapping"]

BART_POSITION_OFFSET = 2  # BartLearnedPositionalEmbedding reads row `position + 2`
CROSS_ATTENTION_INITS = ("self_attention", "fresh")


@dataclass
class WarmStartReport:
    """Where each weight of a warm-started BART came from.

    Attributes:
        base_model: the BERT checkpoint (name or path) it was warm-started from.
        pretrained: BART parameter name -> the BERT parameter(s) it was copied from.
        fresh: BART parameters initialised from scratch (BART's init, normal with std ``init_std``).
        tied: BART parameter name -> the parameter it shares storage with.
        dropped: BERT parameters that have no place in BART.
        notes: facts worth a line in a model card.
    """

    base_model: str
    pretrained: dict[str, str] = field(default_factory=dict)
    fresh: list[str] = field(default_factory=list)
    tied: dict[str, str] = field(default_factory=dict)
    dropped: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def parameter_counts(self, model: PreTrainedModel) -> dict[str, int]:
        """Number of scalar parameters that are pretrained vs fresh (tied parameters counted once)."""
        shapes = dict(model.named_parameters())
        return {
            "pretrained": sum(shapes[name].numel() for name in self.pretrained if name in shapes),
            "fresh": sum(shapes[name].numel() for name in self.fresh if name in shapes),
        }

    def to_markdown(self, model: PreTrainedModel | None = None) -> str:
        """A short paragraph for a model card: what was pretrained and what was not."""
        # model.decoder.layers.3.encoder_attn.k_proj.weight -> model.decoder.layers.*.encoder_attn.k_proj
        fresh_blocks = sorted({re.sub(r"\.layers\.\d+\.", ".layers.*.", name.rsplit(".", 1)[0])
                               for name in self.fresh})
        cross_attention_copied = any(".encoder_attn." in name for name in self.pretrained)
        lines = [
            f"Warm-started from the BERT checkpoint `{self.base_model}` (bert2bert, Rothe et al. 2020).",
            f"- Pretrained (copied from BERT): {len(self.pretrained)} tensors: embeddings, every encoder layer, "
            "and the self-attention and feed-forward blocks of every decoder layer"
            + (" (whose self-attention also initialises its cross-attention)." if cross_attention_copied else "."),
            (f"- Fresh (randomly initialised, trained only on the task): {len(self.fresh)} tensors: "
             + ", ".join(f"`{block}`" for block in fresh_blocks) + ".") if self.fresh else
            "- Fresh (randomly initialised): none.",
        ]
        if model is not None:
            counts = self.parameter_counts(model)
            lines.append(f"- Parameters: {counts['pretrained']:,} pretrained, {counts['fresh']:,} fresh.")
        lines.extend(f"- {note}" for note in self.notes)
        return "\n".join(lines)


def bert_to_bart_encoder_mapping(num_layers: int, prefix: str = "model.encoder") -> dict[str, str]:
    """BART parameter name -> BERT (`BertModel`) parameter name for the layers of a BART stack (see the module
    docstring's table). The same names serve the decoder's self-attention and feed-forward blocks."""
    mapping = {}
    for i in range(num_layers):
        bart, bert = f"{prefix}.layers.{i}", f"encoder.layer.{i}"
        for bart_name, bert_name in (
            ("self_attn.q_proj", "attention.self.query"),
            ("self_attn.k_proj", "attention.self.key"),
            ("self_attn.v_proj", "attention.self.value"),
            ("self_attn.out_proj", "attention.output.dense"),
            ("self_attn_layer_norm", "attention.output.LayerNorm"),
            ("fc1", "intermediate.dense"),
            ("fc2", "output.dense"),
            ("final_layer_norm", "output.LayerNorm"),
        ):
            for kind in ("weight", "bias"):
                mapping[f"{bart}.{bart_name}.{kind}"] = f"{bert}.{bert_name}.{kind}"
    return mapping


def _load_bert(bert_path_or_model) -> tuple[BertModel, str]:
    if isinstance(bert_path_or_model, (str, os.PathLike)):
        path = resolve_base_model(bert_path_or_model)
        return BertModel.from_pretrained(path), str(bert_path_or_model)
    model = bert_path_or_model
    if not isinstance(model, BertModel):
        model = getattr(model, "bert", None)  # BertForSequenceClassification and friends
    if not isinstance(model, BertModel):
        raise TypeError(
            "bart_from_bert needs a BERT checkpoint: a path, a short name such as 'minilm', a BertModel or a model "
            f"with a `.bert` BertModel; got {type(bert_path_or_model).__name__}."
        )
    return model, str(getattr(model.config, "_name_or_path", "") or type(model).__name__)


def _load_tokenizer(bert_path_or_model, tokenizer) -> PreTrainedTokenizerBase:
    if tokenizer is not None:
        return tokenizer
    if isinstance(bert_path_or_model, (str, os.PathLike)):
        return AutoTokenizer.from_pretrained(resolve_base_model(bert_path_or_model))
    raise ValueError(
        "Pass `tokenizer=` (the BERT model's WordPiece tokenizer) when warm-starting from a model object: the "
        "special token ids ([PAD], [CLS], [SEP]) come from it."
    )


def apply_layer_norm_eps(model: BartForConditionalGeneration, eps: float | None = None) -> BartForConditionalGeneration:
    """Set `eps` (default: ``model.config.layer_norm_eps``, if recorded) on every LayerNorm of `model`. Needed
    after ``from_pretrained`` for a model warm-started with ``layer_norm_eps="bert"`` (BART builds its LayerNorms
    with the fixed default 1e-5)."""
    eps = eps if eps is not None else getattr(model.config, "layer_norm_eps", None)
    if eps is not None:
        for module in model.modules():
            if isinstance(module, torch.nn.LayerNorm):
                module.eps = float(eps)
    return model


def bart_from_bert(
    bert_path_or_model: str | os.PathLike | PreTrainedModel,
    *,
    tokenizer: PreTrainedTokenizerBase | None = None,
    decoder_layers: int | None = None,
    max_position_embeddings: int | None = None,
    layer_norm_eps: Literal["bart", "bert"] = "bart",
    generation_max_length: int = 64,
    cross_attention_init: Literal["self_attention", "fresh"] = "self_attention",
    seed: int = 0,
    return_report: bool = False,
) -> BartForConditionalGeneration | tuple[BartForConditionalGeneration, WarmStartReport]:
    """A `BartForConditionalGeneration` warm-started from a BERT checkpoint (see the module docstring).

    Args:
        bert_path_or_model: ``"minilm"``, a local BERT folder or Hub id, a `BertModel`, or a BERT task model with
            a ``.bert`` attribute.
        tokenizer: the BERT WordPiece tokenizer; loaded from the checkpoint when it is a path. It stays the
            tokenizer of the BART model (save it next to the model).
        decoder_layers: number of decoder layers, at most BERT's number of layers; decoder layer ``i`` copies BERT
            layer ``i`` (so fewer layers take the lowest ones). Defaults to all of them.
        max_position_embeddings: longest source/target the model accepts, at most BERT's (its position rows are
            copied; BART cannot extrapolate learned positions). Defaults to BERT's.
        layer_norm_eps: ``"bart"`` (default) keeps BART's fixed LayerNorm epsilon 1e-5, so the model round-trips
            exactly through ``from_pretrained``; ``"bert"`` uses BERT's, so the encoder equals BERT exactly (see
            the module docstring).
        generation_max_length: ``generation_config.max_length``.
        cross_attention_init: ``"self_attention"`` (default) starts each decoder layer's cross-attention as a copy
            of its BERT self-attention; ``"fresh"`` initialises it randomly, as bert2bert does (see the module
            docstring for the measured difference).
        seed: seeds the initialisation of the fresh weights (the global RNG state is restored afterwards).
        return_report: also return a `WarmStartReport` (pretrained, fresh, tied and dropped weights).
    """
    bert, base_name = _load_bert(bert_path_or_model)
    tokenizer = _load_tokenizer(bert_path_or_model, tokenizer)
    bert_config = bert.config
    if getattr(bert_config, "position_embedding_type", "absolute") not in (None, "absolute"):
        raise ValueError(
            f"BART has absolute learned positions; this BERT uses {bert_config.position_embedding_type!r} ones."
        )
    if getattr(bert_config, "is_decoder", False):
        raise ValueError("Warm-start from a BERT encoder (is_decoder=False), not from a BERT decoder.")
    if layer_norm_eps not in ("bart", "bert"):
        raise ValueError(f"layer_norm_eps must be 'bart' or 'bert'; got {layer_norm_eps!r}.")
    if cross_attention_init not in CROSS_ATTENTION_INITS:
        raise ValueError(
            f"cross_attention_init must be one of {', '.join(map(repr, CROSS_ATTENTION_INITS))}; "
            f"got {cross_attention_init!r}."
        )
    num_layers = bert_config.num_hidden_layers
    decoder_layers = num_layers if decoder_layers is None else decoder_layers
    if not 1 <= decoder_layers <= num_layers:
        raise ValueError(f"decoder_layers must be between 1 and BERT's {num_layers} layers; got {decoder_layers}.")
    bert_positions = bert_config.max_position_embeddings
    max_position_embeddings = bert_positions if max_position_embeddings is None else max_position_embeddings
    if not 1 <= max_position_embeddings <= bert_positions:
        raise ValueError(
            f"max_position_embeddings must be between 1 and BERT's {bert_positions} (pretrained position rows); "
            f"got {max_position_embeddings}."
        )
    special = {"pad": tokenizer.pad_token_id, "cls": tokenizer.cls_token_id, "sep": tokenizer.sep_token_id}
    missing = [name for name, token_id in special.items() if token_id is None]
    if missing:
        raise ValueError(f"The tokenizer has no {', '.join(missing)} token; pass the BERT WordPiece tokenizer.")
    if len(tokenizer) > bert_config.vocab_size:
        raise ValueError(f"The tokenizer has {len(tokenizer)} tokens but BERT's vocab_size is {bert_config.vocab_size}.")

    config = BartConfig(
        vocab_size=bert_config.vocab_size,
        max_position_embeddings=max_position_embeddings,
        d_model=bert_config.hidden_size,
        encoder_layers=num_layers,
        decoder_layers=decoder_layers,
        encoder_attention_heads=bert_config.num_attention_heads,
        decoder_attention_heads=bert_config.num_attention_heads,
        encoder_ffn_dim=bert_config.intermediate_size,
        decoder_ffn_dim=bert_config.intermediate_size,
        activation_function=bert_config.hidden_act,
        dropout=bert_config.hidden_dropout_prob,
        attention_dropout=bert_config.attention_probs_dropout_prob,
        activation_dropout=0.0,  # BERT has no dropout after the FFN activation
        init_std=bert_config.initializer_range,
        scale_embedding=False,
        tie_word_embeddings=True,
        pad_token_id=special["pad"],
        bos_token_id=special["cls"],
        eos_token_id=special["sep"],
        decoder_start_token_id=special["cls"],
        forced_eos_token_id=special["sep"],
    )
    if layer_norm_eps == "bert":
        config.layer_norm_eps = bert_config.layer_norm_eps
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = BartForConditionalGeneration(config)
    model.to(bert.dtype)  # a float64 (or bfloat16) BERT gives a BART of the same precision
    model.generation_config = GenerationConfig(
        max_length=generation_max_length,
        num_beams=1,
        pad_token_id=special["pad"],
        bos_token_id=special["cls"],
        eos_token_id=special["sep"],
        decoder_start_token_id=special["cls"],
        forced_eos_token_id=special["sep"],
    )

    source = {name: tensor.detach() for name, tensor in bert.state_dict().items()}
    positions = source["embeddings.position_embeddings.weight"][:max_position_embeddings]
    positions = positions + source["embeddings.token_type_embeddings.weight"][0]
    padded_positions = torch.cat([positions.new_zeros(BART_POSITION_OFFSET, positions.shape[1]), positions])

    new_state: dict[str, torch.Tensor] = {"model.shared.weight": source["embeddings.word_embeddings.weight"]}
    pretrained = {"model.shared.weight": "embeddings.word_embeddings.weight"}
    for stack in ("encoder", "decoder"):
        new_state[f"model.{stack}.embed_positions.weight"] = padded_positions
        pretrained[f"model.{stack}.embed_positions.weight"] = (
            "embeddings.position_embeddings.weight + embeddings.token_type_embeddings.weight[0] (rows offset by 2; "
            "rows 0-1 are never read and are zero)"
        )
        for kind in ("weight", "bias"):
            new_state[f"model.{stack}.layernorm_embedding.{kind}"] = source[f"embeddings.LayerNorm.{kind}"]
            pretrained[f"model.{stack}.layernorm_embedding.{kind}"] = f"embeddings.LayerNorm.{kind}"
    layer_mapping = bert_to_bart_encoder_mapping(num_layers, "model.encoder")
    layer_mapping.update(bert_to_bart_encoder_mapping(decoder_layers, "model.decoder"))
    for bart_name, bert_name in layer_mapping.items():
        new_state[bart_name] = source[bert_name]
        pretrained[bart_name] = bert_name
    if cross_attention_init == "self_attention":
        # decoder layer i's cross-attention starts as BERT layer i's self-attention (its LayerNorm included)
        for bart_name, bert_name in bert_to_bart_encoder_mapping(decoder_layers, "model.decoder").items():
            if ".self_attn" in bart_name:
                cross_name = bart_name.replace(".self_attn_layer_norm.", ".encoder_attn_layer_norm.").replace(
                    ".self_attn.", ".encoder_attn.")
                new_state[cross_name] = source[bert_name]
                pretrained[cross_name] = f"{bert_name} (self-attention weights reused as cross-attention)"

    target = model.state_dict()
    for name, tensor in new_state.items():
        if target[name].shape != tensor.shape:
            raise ValueError(f"Shape mismatch for {name}: BART {tuple(target[name].shape)} vs BERT {tuple(tensor.shape)}.")
    with torch.no_grad():
        for name, tensor in new_state.items():
            target[name].copy_(tensor.to(target[name].dtype))
        model.final_logits_bias.zero_()
    if layer_norm_eps == "bert":
        apply_layer_norm_eps(model)

    tied = {}
    for name in ("lm_head.weight", "model.encoder.embed_tokens.weight", "model.decoder.embed_tokens.weight"):
        module_path, _ = name.rsplit(".", 1)
        if model.get_submodule(module_path).weight is not model.model.shared.weight:
            raise RuntimeError(f"{name} is not tied to model.shared.weight; the warm start would be inconsistent.")
        tied[name] = "model.shared.weight"
    parameter_names = [name for name, _ in model.named_parameters()]  # tied parameters are listed once
    fresh = [name for name in parameter_names if name not in pretrained]
    used = set(pretrained.values())
    dropped = [name for name in source if name not in used and not name.endswith("position_ids")
               and not name.startswith("embeddings.position_embeddings")
               and not name.startswith("embeddings.token_type_embeddings")]
    if source["embeddings.token_type_embeddings.weight"].shape[0] > 1:
        dropped.append("embeddings.token_type_embeddings.weight[1:]")
    if max_position_embeddings < bert_positions:
        dropped.append(f"embeddings.position_embeddings.weight[{max_position_embeddings}:]")
    notes = [
        ("Decoder cross-attention (`encoder_attn`, `encoder_attn_layer_norm`) starts as a copy of the same BERT "
         "layer's self-attention; BERT never trained it to attend to an encoder." if cross_attention_init ==
         "self_attention" else
         "Decoder cross-attention (`encoder_attn`, `encoder_attn_layer_norm`) is freshly initialised, as in bert2bert."),
        "The LM head is tied to the shared word embeddings; `final_logits_bias` is zero.",
        "The tokenizer is BERT's WordPiece tokenizer: decoder_start/bos = [CLS], eos = [SEP], pad = [PAD].",
        (f"LayerNorm epsilon: BERT's {bert_config.layer_norm_eps} (re-apply with `apply_layer_norm_eps` after "
         "from_pretrained)." if layer_norm_eps == "bert" else
         f"LayerNorm epsilon: BART's fixed 1e-5 (BERT used {bert_config.layer_norm_eps})."),
    ]
    report = WarmStartReport(base_model=base_name, pretrained=pretrained, fresh=fresh, tied=tied, dropped=dropped,
                             notes=notes)
    return (model, report) if return_report else model
