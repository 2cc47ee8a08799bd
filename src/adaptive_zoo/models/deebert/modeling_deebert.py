"""PyTorch DeeBERT (Xin, Tang, Lee, Yu, Lin: "DeeBERT: Dynamic Early Exiting for Accelerating BERT Inference",
ACL 2020).

A BERT classifier with an off-ramp (pooler, dropout, classifier) after every layer. At inference a sample
leaves at the first layer whose off-ramp is confident enough (entropy below the threshold S). Unlike the
paper's reference code, which raises an exception to exit and so only runs at batch size 1, exited rows here
leave the batch: every deeper layer runs on the rows still in flight only, so the saving is real in batches.

Weight names equal `BertForSequenceClassification`'s (`bert.*`, `classifier.*`), plus `off_ramps.*`, so any
BERT classifier checkpoint loads, and the last off-ramp is the model's own pooler and classifier.

This file is Hub code: it imports only torch, transformers and its sibling configuration, so that
`trust_remote_code` can load a saved folder without adaptive-zoo installed.
"""

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import CrossEntropyLoss
from transformers.masking_utils import create_bidirectional_mask
from transformers.modeling_outputs import ModelOutput
from transformers.models.bert.modeling_bert import BertModel, BertPreTrainedModel
from transformers.utils.generic import can_return_tuple

from .configuration_deebert import DeeBertConfig

# `save_pretrained` writes only the saved class's own Auto entry; this one lets `AutoModel` load the backbone.
BACKBONE_AUTO_MAP = {"AutoModel": "modeling_deebert.DeeBertModel"}


@dataclass
class DeeBertSequenceClassifierOutput(ModelOutput):
    r"""
    Output of [`DeeBertForSequenceClassification`].

    Args:
        loss (`torch.FloatTensor` of shape `()`, *optional*, returned when `labels` is given):
            Cross-entropy of `logits`, i.e. of the classifier each sample exited at (the final classifier when
            nothing exits, as in training).
        logits (`torch.FloatTensor` of shape `(batch_size, num_labels)`):
            Logits of the off-ramp each sample exited at.
        exit_layers (`torch.LongTensor` of shape `(batch_size,)`):
            1-based index of the layer each sample exited after; `num_hidden_layers` for a sample that ran the
            whole network. Also the number of layers computed for that sample.
        ramp_logits (`torch.FloatTensor` of shape `(batch_size, num_hidden_layers, num_labels)`, *optional*):
            Every off-ramp's logits, returned in training and when `output_ramp_logits=True`. Layers a sample
            never reached (it exited earlier) hold NaN: they were not computed.
    """

    loss: torch.FloatTensor | None = None
    logits: torch.FloatTensor | None = None
    exit_layers: torch.LongTensor | None = None
    ramp_logits: torch.FloatTensor | None = None


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


class DeeBertOffRampPooler(nn.Module):
    """Dense + tanh over one vector per row, named like `BertPooler` so it can start from BERT's pooler."""

    def __init__(self, config: DeeBertConfig):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.activation = nn.Tanh()

    def forward(self, pooled_tokens: torch.Tensor) -> torch.Tensor:
        return self.activation(self.dense(pooled_tokens))  # (B, H)


class DeeBertOffRamp(nn.Module):
    """The classifier after one intermediate layer: token pooling ([CLS] or mean), pooler, dropout, linear."""

    def __init__(self, config: DeeBertConfig):
        super().__init__()
        self.pooling = config.off_ramp_pooling
        self.pooler = DeeBertOffRampPooler(config)
        self.dropout = nn.Dropout(off_ramp_dropout(config))
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)

    def forward(self, hidden_states: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        # hidden_states: (B, T, H), attention_mask: (B, T) with 1 on real tokens -> logits (B, C)
        if self.pooling == "cls":
            pooled_tokens = hidden_states[:, 0]  # (B, H)
        elif attention_mask is None:
            pooled_tokens = hidden_states.mean(dim=1)  # (B, H)
        else:
            weights = attention_mask.to(hidden_states.dtype).unsqueeze(-1)  # (B, T, 1)
            pooled_tokens = (hidden_states * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1)  # (B, H)
        return self.classifier(self.dropout(self.pooler(pooled_tokens)))


def off_ramp_dropout(config: DeeBertConfig) -> float:
    if config.off_ramp_dropout is not None:
        return config.off_ramp_dropout
    return config.classifier_dropout if config.classifier_dropout is not None else config.hidden_dropout_prob


class DeeBertPreTrainedModel(BertPreTrainedModel):
    config_class = DeeBertConfig
    config: DeeBertConfig


class DeeBertModel(BertModel):
    """The plain BERT backbone of a DeeBERT checkpoint (what `AutoModel` loads): full depth, no off-ramps."""

    config_class = DeeBertConfig
    config: DeeBertConfig


class DeeBertForSequenceClassification(DeeBertPreTrainedModel):
    # `forward(**kwargs)` takes attention kwargs, not loss kwargs: without this the Trainer would skip dividing
    # the loss by the gradient-accumulation steps.
    accepts_loss_kwargs = False

    def __init__(self, config: DeeBertConfig):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.config = config

        self.bert = BertModel(config)
        classifier_dropout = (
            config.classifier_dropout if config.classifier_dropout is not None else config.hidden_dropout_prob
        )
        self.dropout = nn.Dropout(classifier_dropout)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        # Off-ramps after layers 1 .. L-1; after layer L the model's own pooler and classifier decide.
        self.off_ramps = nn.ModuleList(DeeBertOffRamp(config) for _ in range(config.num_hidden_layers - 1))
        config.auto_map = {**BACKBONE_AUTO_MAP, **(getattr(config, "auto_map", None) or {})}

        self.post_init()

    @torch.no_grad()
    def init_off_ramps_from_pooler(self) -> None:
        """Start every off-ramp pooler from the backbone's (pretrained) pooler, as the paper does."""
        for ramp in self.off_ramps:
            ramp.pooler.load_state_dict(self.bert.pooler.state_dict())

    def classify_at(
        self, layer_index: int, hidden_states: torch.Tensor, attention_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Logits of the off-ramp after layer `layer_index` (0-based): hidden states (B, T, H) -> (B, C)."""
        if layer_index == self.config.num_hidden_layers - 1:
            return self.classifier(self.dropout(self.bert.pooler(hidden_states)))
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
        **kwargs,
    ) -> DeeBertSequenceClassifierOutput:
        r"""
        labels (`torch.LongTensor` of shape `(batch_size,)`, *optional*):
            Class indices in `[0, num_labels)`; the loss is the cross-entropy of the returned `logits`.
        output_ramp_logits (`bool`, *optional*):
            Also return every off-ramp's logits (`ramp_logits`). Always on in training mode.

        Early exit happens only in eval mode with `config.entropy_threshold` set; in training every sample runs
        every layer so that every off-ramp sees every sample.
        """
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("Pass exactly one of `input_ids` or `inputs_embeds`.")
        batch_size, sequence_length = (input_ids if input_ids is not None else inputs_embeds).shape[:2]
        if sequence_length > self.config.max_position_embeddings:
            raise ValueError(
                f"The input has {sequence_length} tokens but the model has only {self.config.max_position_embeddings} "
                "positions: tokenize with `truncation=True` (for a pipeline: `classifier(texts, truncation=True)`), "
                "which cuts to the saved tokenizer's `model_max_length`, the length the model was trained at."
            )
        check_inputs_have_content(input_ids, attention_mask, getattr(self.config, "special_token_ids", None))
        if labels is not None and labels.shape[0] != batch_size:
            raise ValueError(f"Got {labels.shape[0]} labels for a batch of {batch_size} inputs.")
        threshold = None if self.training else self.config.entropy_threshold
        keep_ramp_logits = self.training or bool(output_ramp_logits)
        num_layers = self.config.num_hidden_layers

        hidden_states = self.bert.embeddings(
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

        layer_mask = create_bidirectional_mask(
            config=self.config, inputs_embeds=hidden_states, attention_mask=attention_mask
        )
        for layer_index, layer in enumerate(self.bert.encoder.layer):
            hidden_states = layer(hidden_states, attention_mask=layer_mask, **kwargs)  # (A, T, H)
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

        loss = None
        if labels is not None:
            loss = CrossEntropyLoss()(logits.view(-1, self.num_labels), labels.view(-1))

        return DeeBertSequenceClassifierOutput(
            loss=loss, logits=logits, exit_layers=exit_layers, ramp_logits=ramp_logits
        )


__all__ = [
    "DeeBertForSequenceClassification",
    "DeeBertModel",
    "DeeBertPreTrainedModel",
    "DeeBertSequenceClassifierOutput",
    "check_inputs_have_content",
    "prediction_entropy",
]
