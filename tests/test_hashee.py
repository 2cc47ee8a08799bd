"""HashEE: the shared model checks (through the mixin), for the BERT classifier and the BART seq2seq model, and
what is HashEE's own: the bucket layout, token-level exit semantics (eqs. 1-5 of appendix A.4), the hash table
as a saved buffer, and generation."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import torch
from datasets import Dataset
from huggingface_hub.errors import StrictDataclassError
from mixins import AdaptiveModelTesterMixin
from tiny import TEXTS, tiny_bert_config, tiny_roberta_config
from transformers import (
    AutoModelForSeq2SeqLM,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    BartConfig,
    BartForConditionalGeneration,
    BertConfig,
    BertForSequenceClassification,
    DataCollatorForSeq2Seq,
    RobertaConfig,
    RobertaForSequenceClassification,
)
from transformers.masking_utils import create_bidirectional_mask

from adaptive_zoo.evaluation.measure import count_flops
from adaptive_zoo.hub.push import push_folder
from adaptive_zoo.models.hashee import (
    HashEEBartConfig,
    HashEEBartForConditionalGeneration,
    HashEEBertConfig,
    HashEEBertForSequenceClassification,
    HashEERobertaConfig,
    HashEERobertaForSequenceClassification,
    bucket_exit_layers,
)

SPECIAL_IDS = [0, 1, 2, 3, 4]  # [PAD] [UNK] [CLS] [SEP] [MASK] in tests/tiny.py's vocabulary

# A tiny BART over the same 99-token vocabulary: [CLS] starts the decoder, [SEP] ends. A larger init_std than
# BART's 0.02, so that random weights generate input-dependent sequences rather than one repeated token.
TINY_BART = dict(
    vocab_size=99, d_model=32, encoder_layers=3, decoder_layers=2, encoder_attention_heads=4,
    decoder_attention_heads=4, encoder_ffn_dim=37, decoder_ffn_dim=37, max_position_embeddings=64,
    pad_token_id=0, bos_token_id=2, eos_token_id=3, decoder_start_token_id=2, forced_eos_token_id=3, init_std=0.2,
)


def routing_table(config, seed: int = 0) -> torch.Tensor:
    """A fixed pseudo-random table over the bucket exit layers; special tokens run to the deepest bucket."""
    layers = torch.tensor(config.exit_layers)
    table = layers[torch.randint(len(layers), (config.vocab_size,), generator=torch.Generator().manual_seed(seed))]
    table[SPECIAL_IDS] = max(config.exit_layers)
    return table


@contextlib.contextmanager
def full_depth(model):
    saved = model.config.token_early_exit
    model.config.token_early_exit = False
    try:
        yield model
    finally:
        model.config.token_early_exit = saved


def vanilla_of(model, config_class, model_class):
    """The plain transformers model with the same weights: only the hash table is left out."""
    config = config_class.from_dict(model.config.to_dict())
    config._attn_implementation = model.config._attn_implementation
    vanilla = model_class(config)
    missing, unexpected = vanilla.load_state_dict(model.state_dict(), strict=False)
    assert not missing and [key.rsplit(".", 1)[-1] for key in unexpected] == ["hash_table"], (missing, unexpected)
    return vanilla.eval()


class HashEEBertModelTester:
    model_class = HashEEBertForSequenceClassification
    auto_class = "AutoModelForSequenceClassification"
    hub_code_files = ("configuration_hashee.py", "modeling_hashee.py")
    texts = TEXTS
    invalid_configs = [
        dict(num_buckets=5),  # more buckets than the 4 layers
        dict(num_buckets=0),
        dict(hash_function="md5"),
        dict(special_token_ids=[99]),
        dict(is_decoder=True),
    ]

    def get_config(self, **overrides):
        return HashEEBertConfig(**{**tiny_bert_config(), "num_labels": 3, "initializer_range": 0.2, **overrides})

    def create_model(self, seed: int = 0, **overrides):
        torch.manual_seed(seed)
        model = HashEEBertForSequenceClassification(self.get_config(**overrides))
        model.set_hash_table(routing_table(model.config))
        return model.eval()

    def vanilla_model(self, model):
        return vanilla_of(model, BertConfig, BertForSequenceClassification)

    full_depth = staticmethod(full_depth)

    def make_adaptive(self, model, inputs):
        model.set_hash_table(routing_table(model.config))

    @staticmethod
    def exit_signature(outputs):
        # Each row's exit layers over its real tokens (padding dropped, so batched and single rows compare).
        return [[layer for layer in row if layer] for row in outputs.token_exit_layers.tolist()]

    def train_features(self, tokenizer):
        encoded = tokenizer(list(self.texts) * 2)
        return Dataset.from_dict({**encoded, "labels": [i % 3 for i in range(2 * len(self.texts))]})


class HashEERobertaModelTester(HashEEBertModelTester):
    """HashEE-RoBERTa: the same checks against RobertaForSequenceClassification."""

    model_class = HashEERobertaForSequenceClassification

    def get_config(self, **overrides):
        return HashEERobertaConfig(**{**tiny_roberta_config(), "num_labels": 3, "initializer_range": 0.2, **overrides})

    def create_model(self, seed: int = 0, **overrides):
        torch.manual_seed(seed)
        model = HashEERobertaForSequenceClassification(self.get_config(**overrides))
        model.set_hash_table(routing_table(model.config))
        return model.eval()

    def vanilla_model(self, model):
        return vanilla_of(model, RobertaConfig, RobertaForSequenceClassification)


class HashEEBartModelTester:
    model_class = HashEEBartForConditionalGeneration
    auto_class = "AutoModelForSeq2SeqLM"
    hub_code_files = ("configuration_hashee.py", "modeling_hashee.py")
    texts = TEXTS
    invalid_configs = [
        dict(num_buckets=4),  # more buckets than the 3 encoder layers
        dict(num_buckets=0),
        dict(hash_function="md5"),
        dict(special_token_ids=[99]),
    ]

    def get_config(self, **overrides):
        return HashEEBartConfig(**{**TINY_BART, **overrides})

    def create_model(self, seed: int = 0, **overrides):
        torch.manual_seed(seed)
        model = HashEEBartForConditionalGeneration(self.get_config(**overrides))
        model.set_hash_table(routing_table(model.config))
        return model.eval()

    def vanilla_model(self, model):
        return vanilla_of(model, BartConfig, BartForConditionalGeneration)

    full_depth = staticmethod(full_depth)

    def make_adaptive(self, model, inputs):
        model.set_hash_table(routing_table(model.config))

    @staticmethod
    def exit_signature(outputs):
        return [[layer for layer in row if layer] for row in outputs.encoder_token_exit_layers.tolist()]

    @staticmethod
    def make_labels(model, inputs):
        return inputs["input_ids"].masked_fill(inputs["attention_mask"] == 0, -100)  # copy the source

    @staticmethod
    def row_logits(outputs, inputs, row):
        # Decoder inputs are the source shifted right: the row's first n positions do not depend on its padding.
        return outputs.logits[row, : int(inputs["attention_mask"][row].sum())]

    @staticmethod
    def data_collator(tokenizer):
        return DataCollatorForSeq2Seq(tokenizer)

    def train_features(self, tokenizer):
        encoded = tokenizer(list(self.texts) * 2)
        return Dataset.from_dict({**encoded, "labels": encoded["input_ids"]})


def bart_tokenizer(tiny_tokenizer_dir):
    """The tiny WordPiece tokenizer without token_type_ids (BART takes none); saved folders keep the setting."""
    return AutoTokenizer.from_pretrained(tiny_tokenizer_dir, model_input_names=["input_ids", "attention_mask"])


class TestHashEEBert(AdaptiveModelTesterMixin):
    tester = HashEEBertModelTester()


class TestHashEERoberta(AdaptiveModelTesterMixin):
    tester = HashEERobertaModelTester()


class TestHashEEBart(AdaptiveModelTesterMixin):
    tester = HashEEBartModelTester()

    @pytest.fixture
    def tokenizer(self, tiny_tokenizer_dir):
        return bart_tokenizer(tiny_tokenizer_dir)


# -- fixtures and helpers for HashEE's own tests -----------------------------------------------------------------

TESTERS = {"bert": HashEEBertModelTester(), "bart": HashEEBartModelTester()}


@pytest.fixture
def bert_inputs(tiny_tokenizer_dir):
    return dict(AutoTokenizer.from_pretrained(tiny_tokenizer_dir)(TEXTS, padding=True, return_tensors="pt"))


@pytest.fixture
def bart_inputs(tiny_tokenizer_dir):
    return dict(bart_tokenizer(tiny_tokenizer_dir)(TEXTS, padding=True, return_tensors="pt"))


def encoder_parts(kind, model):
    """The encoder's layers, and a function running the encoder (BERT: with embeddings and pooler)."""
    if kind == "bert":
        def encode(inputs, **kwargs):
            return model.bert(**inputs, **kwargs)

        return model.bert.encoder.layer, encode
    def encode(inputs, **kwargs):
        return model.get_encoder()(**inputs, **kwargs)

    return model.model.encoder.layers, encode


def reference_token_exits(layers, config, embeddings, exit_layers, attention_mask, keys_from_running_only=False):
    """Eqs. 1-5 the slow way, with the stock layers on every token: a token's update is kept only while it runs
    (exit layer >= l). With `keys_from_running_only`, exited tokens are also dropped from the keys: what HashEE
    must NOT do."""
    states = embeddings  # (B, T, H)
    for layer_number, layer in enumerate(layers, start=1):
        running = exit_layers >= layer_number  # (B, T)
        keys = running if keys_from_running_only else attention_mask.bool()
        mask = create_bidirectional_mask(config=config, inputs_embeds=states, attention_mask=keys)
        states = torch.where(running[..., None], layer(states, attention_mask=mask), states)  # (B, T, H)
    return states


# -- configuration ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("num_layers", "num_buckets", "expected"),
    [(12, 3, [1, 5, 9]), (6, 6, [1, 2, 3, 4, 5, 6]), (12, 12, list(range(1, 13))), (12, 2, [1, 7]),
     (12, 4, [1, 4, 7, 10]), (6, 2, [1, 4]), (6, 3, [1, 3, 5]), (4, 1, [1])],
)
def test_bucket_exit_layers_follow_appendix_a3(num_layers, num_buckets, expected):
    assert bucket_exit_layers(num_layers, num_buckets) == expected


@pytest.mark.parametrize(("num_layers", "num_buckets"), [(4, 5), (4, 0), (0, 1), (4, 2.0)])
def test_bucket_exit_layers_rejects_impossible_layouts(num_layers, num_buckets):
    with pytest.raises(ValueError, match="num_"):
        bucket_exit_layers(num_layers, num_buckets)


def test_num_buckets_defaults_to_one_per_encoder_layer():
    assert HashEEBertConfig(num_hidden_layers=6).exit_layers == [1, 2, 3, 4, 5, 6]
    assert HashEEBartConfig(encoder_layers=12, decoder_layers=2, num_buckets=3).exit_layers == [1, 5, 9]
    config = HashEEBartConfig(encoder_layers=3, decoder_layers=5)
    assert config.num_buckets == 3 and HashEEBartConfig.from_dict(config.to_dict()).num_buckets == 3


def test_config_assignment_is_validated_too():
    config = HashEEBertModelTester().get_config()
    with pytest.raises(StrictDataclassError, match="hash_function"):
        config.hash_function = "md5"
    with pytest.raises(StrictDataclassError, match="token_early_exit"):
        config.token_early_exit = "no"
    with pytest.raises(StrictDataclassError, match="num_buckets"):
        config.num_buckets = 0
    config.hash_function = "random_inconsistent"
    config.token_early_exit = False
    assert config.hash_function == "random_inconsistent" and config.token_early_exit is False


# -- the hash table ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["bert", "bart"])
def test_weight_names_equal_the_vanilla_models_plus_the_table(kind):
    tester = TESTERS[kind]
    model = tester.create_model()
    vanilla = tester.vanilla_model(model)
    extra = set(model.state_dict()) - set(vanilla.state_dict())
    assert extra == {"bert.encoder.hash_table" if kind == "bert" else "model.encoder.hash_table"}
    assert set(vanilla.state_dict()) <= set(model.state_dict())
    assert model.hash_table.dtype == torch.long and model.hash_table.shape == (99,)


def test_a_plain_bert_checkpoint_loads_with_only_the_table_missing(tmp_path, bert_inputs):
    torch.manual_seed(0)
    plain = BertForSequenceClassification(BertConfig(**tiny_bert_config(), num_labels=3)).eval()
    plain.save_pretrained(tmp_path)
    model, info = HashEEBertForSequenceClassification.from_pretrained(tmp_path, output_loading_info=True)
    assert set(info["missing_keys"]) == {"bert.encoder.hash_table"} and not info["unexpected_keys"]
    assert torch.equal(model.hash_table, torch.zeros(99, dtype=torch.long)), "an absent table must read as zeros"
    model.eval()
    with pytest.raises(ValueError, match=r"set_hash_table\(exit_layers\).*adaptive-zoo hash build"):
        model(**bert_inputs)
    with torch.inference_mode(), full_depth(model):
        torch.testing.assert_close(model(**bert_inputs).logits, plain(**bert_inputs).logits, rtol=0, atol=1e-6)
    model.set_hash_table(routing_table(model.config))
    assert model(**bert_inputs).token_exit_layers.max() == 4


def test_a_plain_bart_checkpoint_loads_with_only_the_table_missing(tmp_path, bart_inputs):
    torch.manual_seed(0)
    plain = BartForConditionalGeneration(BartConfig(**TINY_BART)).eval()
    plain.save_pretrained(tmp_path)
    model, info = HashEEBartForConditionalGeneration.from_pretrained(tmp_path, output_loading_info=True)
    assert set(info["missing_keys"]) == {"model.encoder.hash_table"} and not info["unexpected_keys"]
    assert int(model.hash_table.abs().sum()) == 0
    model.eval()
    with pytest.raises(ValueError, match="set_hash_table"):
        model.generate(**bart_inputs, max_new_tokens=3)
    with torch.inference_mode(), full_depth(model):
        torch.testing.assert_close(model(**bart_inputs).logits, plain(**bart_inputs).logits, rtol=0, atol=1e-6)


def test_the_table_is_saved_with_the_weights(tmp_path):
    model = HashEEBertModelTester().create_model()
    model.save_pretrained(tmp_path)
    loaded = AutoModelForSequenceClassification.from_pretrained(tmp_path)
    assert torch.equal(loaded.hash_table, routing_table(model.config))


def test_set_hash_table_validates_the_table():
    model = HashEEBertModelTester().create_model(num_buckets=2)  # exit layers 1 and 3
    assert model.config.exit_layers == [1, 3]
    with pytest.raises(ValueError, match="98 entries.*99 token ids"):
        model.set_hash_table(torch.ones(98, dtype=torch.long))
    with pytest.raises(ValueError, match="1-D"):
        model.set_hash_table(torch.ones(1, 99, dtype=torch.long))
    with pytest.raises(ValueError, match="integer"):
        model.set_hash_table(torch.ones(99))
    with pytest.raises(ValueError, match=r"\[2\].*\[1, 3, 4\]"):
        model.set_hash_table([1] * 98 + [2])
    model.set_hash_table([1] * 97 + [4, 4])  # full depth (special, unseen tokens) is always allowed
    before = model.hash_table.clone()
    with pytest.raises(ValueError):
        model.set_hash_table([0] * 99)  # 0 means "unset", not a layer
    assert torch.equal(model.hash_table, before), "a rejected table must leave the old one in place"
    model.set_hash_table([1] * 50 + [3] * 49, special_token_ids=[3, 2, 2])
    assert model.config.special_token_ids == [2, 3]


def test_exit_layers_need_token_ids(bert_inputs):
    model = HashEEBertModelTester().create_model()
    embeds = model.bert.embeddings.word_embeddings(bert_inputs["input_ids"])
    with pytest.raises(ValueError, match="input_ids"):
        model(inputs_embeds=embeds, attention_mask=bert_inputs["attention_mask"])
    with full_depth(model):
        model(inputs_embeds=embeds, attention_mask=bert_inputs["attention_mask"])  # no lookup needed


@pytest.mark.parametrize("kind", ["bert", "bart"])
def test_over_long_input_fails_early_naming_truncation(kind):
    model = TESTERS[kind].create_model()
    with pytest.raises(ValueError, match="truncation=True"):
        model(input_ids=torch.full((1, 65), 7))


# -- token-level early exit --------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["bert", "bart"])
@pytest.mark.parametrize("attn_implementation", ["eager", "sdpa"])
def test_encoder_matches_the_exit_semantics_of_eqs_1_to_5(kind, attn_implementation, bert_inputs, bart_inputs):
    """Equal to running every stock layer on every token and keeping an update only while the token runs (so
    an exited token is frozen but still serves as key and value); different from dropping exited tokens."""
    tester = TESTERS[kind]
    inputs = bert_inputs if kind == "bert" else bart_inputs
    model = tester.create_model()
    model.config._attn_implementation = attn_implementation
    layers, encode = encoder_parts(kind, model)
    with torch.inference_mode():
        outputs = encode(inputs, output_hidden_states=True)
        embeddings, exit_layers = outputs.hidden_states[0], outputs.token_exit_layers
        expected = reference_token_exits(layers, model.config, embeddings, exit_layers, inputs["attention_mask"])
        not_attended = reference_token_exits(
            layers, model.config, embeddings, exit_layers, inputs["attention_mask"], keys_from_running_only=True
        )
    assert exit_layers.min() == 0 and set(exit_layers[exit_layers > 0].tolist()) == set(model.config.exit_layers)
    torch.testing.assert_close(outputs.last_hidden_state, expected, rtol=1e-5, atol=1e-5)
    deepest = exit_layers == max(model.config.exit_layers)  # tokens running after others have exited
    assert (outputs.last_hidden_state - not_attended)[deepest].abs().max() > 1e-3


@pytest.mark.parametrize("kind", ["bert", "bart"])
def test_an_exited_tokens_state_is_frozen_at_its_exit_layer(kind, bert_inputs, bart_inputs):
    tester = TESTERS[kind]
    inputs = bert_inputs if kind == "bert" else bart_inputs
    model = tester.create_model()
    layers, encode = encoder_parts(kind, model)
    with torch.inference_mode():
        outputs = encode(inputs, output_hidden_states=True)
    states, exit_layers = outputs.hidden_states, outputs.token_exit_layers  # L + 1 x (B, T, H), (B, T)
    assert len(states) == len(layers) + 1
    for layer_number in range(2, len(layers) + 1):  # at layer 1 every token runs
        exited = (exit_layers > 0) & (exit_layers < layer_number)  # (B, T)
        running = exit_layers >= layer_number
        assert exited.any() and running.any()
        frozen = torch.stack([states[int(exit_layers[row, column])][row, column]
                              for row, column in exited.nonzero().tolist()])  # each at its exit layer
        assert torch.equal(states[layer_number][exited], frozen), "exited tokens must not change"
        assert not torch.equal(states[layer_number][running], states[layer_number - 1][running])
    for row, column in (exit_layers > 0).nonzero().tolist():
        assert torch.equal(outputs.last_hidden_state[row, column], states[int(exit_layers[row, column])][row, column])

    # Layer 1 runs every token with the stock layer: a token exiting there keeps exactly the vanilla layer-1 state.
    with torch.inference_mode():
        mask = create_bidirectional_mask(
            config=model.config, inputs_embeds=states[0], attention_mask=inputs["attention_mask"]
        )
        vanilla_layer_1 = layers[0](states[0], attention_mask=mask)
    first = exit_layers == 1
    torch.testing.assert_close(outputs.last_hidden_state[first], vanilla_layer_1[first], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kind", ["bert", "bart"])
def test_each_layer_computes_queries_for_running_tokens_only(kind, bert_inputs, bart_inputs):
    """The saving is real: layer l's query projection (and so attention output, FFN, layer norms) sees
    M_l = max over rows of the running count columns; keys and values see every present token."""
    tester = TESTERS[kind]
    inputs = bert_inputs if kind == "bert" else bart_inputs
    model = tester.create_model()
    layers, encode = encoder_parts(kind, model)
    seen = {"query": [], "key": [], "ffn": []}
    hooks = []
    for layer in layers:
        query, key, ffn = (
            (layer.attention.self.query, layer.attention.self.key, layer.intermediate.dense)
            if kind == "bert"
            else (layer.self_attn.q_proj, layer.self_attn.k_proj, layer.fc1)
        )
        for name, module in (("query", query), ("key", key), ("ffn", ffn)):
            hooks.append(module.register_forward_hook(
                lambda module, args, output, name=name: seen[name].append(args[0].shape[1])
            ))
    with torch.inference_mode():
        exit_layers = encode(inputs).token_exit_layers
    for hook in hooks:
        hook.remove()
    num_layers = len(layers)
    running = [int((exit_layers >= layer).sum(dim=1).max()) for layer in range(1, num_layers + 1)]
    assert seen["query"] == running and seen["ffn"] == running
    assert seen["key"] == [int((exit_layers > 0).sum(dim=1).max())] * num_layers
    assert running[-1] < running[0]


@pytest.mark.parametrize("kind", ["bert", "bart"])
def test_executed_flops_drop_with_exits_and_equal_vanilla_at_full_depth(kind, bert_inputs, bart_inputs):
    tester = TESTERS[kind]
    inputs = bert_inputs if kind == "bert" else bart_inputs
    model = tester.create_model()
    vanilla = tester.vanilla_model(model)
    vanilla_flops = count_flops(lambda: vanilla(**inputs))
    adaptive_flops = count_flops(lambda: model(**inputs))
    with full_depth(model):
        assert count_flops(lambda: model(**inputs)) == vanilla_flops
    assert adaptive_flops < vanilla_flops
    # The token-exit path itself adds no matmul work: with every token at the last layer it costs what BERT does.
    model.set_hash_table(torch.full((99,), model.config.num_hidden_layers))
    assert count_flops(lambda: model(**inputs)) == vanilla_flops


@pytest.mark.parametrize("kind", ["bert", "bart"])
def test_saved_flops_match_table_10(kind, tiny_tokenizer_dir):
    """On one unpadded input the measured saving is exactly appendix A.4's Table 10 (matmuls only, as counted):
    per layer, (n - m) (d^2 query + d^2 output projection + 2 d d_ff FFN) + 2 n (n - m) d attention MACs."""
    tester = TESTERS[kind]
    model = tester.create_model()
    inputs = dict(bart_tokenizer(tiny_tokenizer_dir)([TEXTS[-1]], return_tensors="pt"))
    with torch.inference_mode():
        exit_layers = model(**inputs).token_exit_layers if kind == "bert" else model(**inputs).encoder_token_exit_layers
    config = model.config
    d, d_ff = config.hidden_size, (config.intermediate_size if kind == "bert" else config.encoder_ffn_dim)
    n = exit_layers.shape[1]
    saved_macs = 0
    for layer in range(1, config.num_hidden_layers + 1):
        skipped = n - int((exit_layers >= layer).sum())
        saved_macs += skipped * (2 * d * d + 2 * d * d_ff) + 2 * n * skipped * d
    measured = count_flops(lambda: tester.vanilla_model(model)(**inputs)) - count_flops(lambda: model(**inputs))
    assert saved_macs > 0 and measured == 2 * saved_macs


def test_every_token_at_the_last_layer_equals_the_vanilla_model(bert_inputs):
    model = HashEEBertModelTester().create_model()
    model.set_hash_table(torch.full((99,), 4))
    with torch.inference_mode():
        torch.testing.assert_close(
            model(**bert_inputs).logits, HashEEBertModelTester().vanilla_model(model)(**bert_inputs).logits,
            rtol=1e-5, atol=1e-5,
        )


@pytest.mark.parametrize("kind", ["bert", "bart"])
def test_training_backpropagates_through_the_exits(kind, bert_inputs, bart_inputs):
    tester = TESTERS[kind]
    inputs = bert_inputs if kind == "bert" else bart_inputs
    model = tester.create_model().train()
    labels = (tester.make_labels(model, inputs) if kind == "bart" else torch.arange(len(TEXTS)) % 3)
    outputs = model(**inputs, labels=labels)
    assert (outputs.token_exit_layers if kind == "bert" else outputs.encoder_token_exit_layers).min() == 0
    outputs.loss.backward()
    layers, _ = encoder_parts(kind, model)
    for layer in layers:
        assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in layer.parameters())
    # Tokens that exit at layer 1 still reach the loss: through their frozen state, as keys and values.
    word_embeddings = model.get_input_embeddings().weight
    exit_1_ids = inputs["input_ids"][model.hash_table[inputs["input_ids"]] == 1].unique()
    assert exit_1_ids.numel() and (word_embeddings.grad[exit_1_ids].abs().sum(dim=-1) > 0).all()


def test_random_inconsistent_draws_a_fresh_layer_per_occurrence(bert_inputs):
    tester = HashEEBertModelTester()
    model = tester.create_model(hash_function="random_inconsistent", num_buckets=2, special_token_ids=[2, 3])
    model.set_hash_table(torch.full((99,), 3))  # the table says 3 everywhere: random draws must differ from it
    ids, present = bert_inputs["input_ids"], bert_inputs["attention_mask"].bool()
    with torch.inference_mode():
        first, second = model(**bert_inputs).token_exit_layers, model(**bert_inputs).token_exit_layers
    assert torch.equal(first, second), "eval mode is seeded: reproducible"
    special = (ids == 2) | (ids == 3)
    assert (first[special] == 3).all(), "special tokens keep the table's layer"
    drawn = first[present & ~special]
    assert set(drawn.tolist()) == {1, 3}
    repeated = torch.tensor([[2] + [42] * 20 + [3]])  # [CLS] w37 x 20 [SEP]
    with torch.inference_mode():
        assert len(set(model(input_ids=repeated).token_exit_layers[0, 1:-1].tolist())) > 1, (
            "one token id, different layers per occurrence"
        )
    model.config.inconsistent_seed = 1
    with torch.inference_mode():
        assert not torch.equal(model(**bert_inputs).token_exit_layers, first)

    model.train()  # the global RNG
    torch.manual_seed(0)
    a = model(**bert_inputs).token_exit_layers
    torch.manual_seed(0)
    assert torch.equal(model(**bert_inputs).token_exit_layers, a)


def test_the_consistent_hash_gives_every_occurrence_the_tables_layer(bert_inputs):
    model = HashEEBertModelTester().create_model()
    with torch.inference_mode():
        exit_layers = model(**bert_inputs).token_exit_layers
    present = bert_inputs["attention_mask"].bool()
    assert torch.equal(exit_layers[present], model.hash_table[bert_inputs["input_ids"]][present])
    assert (exit_layers[~present] == 0).all()


def test_outputs_report_exits_per_token_and_row(bert_inputs):
    model = HashEEBertModelTester().create_model()
    with torch.inference_mode():
        outputs = model(**bert_inputs)
    assert outputs.token_exit_layers.shape == bert_inputs["input_ids"].shape
    assert outputs.token_exit_layers.dtype == torch.long
    exits, present = outputs.token_exit_layers.float(), bert_inputs["attention_mask"].float()
    torch.testing.assert_close(outputs.mean_exit_layer, (exits * present).sum(1) / present.sum(1))
    with torch.inference_mode(), full_depth(model):
        full = model(**bert_inputs)
    assert torch.equal(full.token_exit_layers, bert_inputs["attention_mask"] * 4)


# -- generation ----------------------------------------------------------------------------------------------


def strip_padding(sequences: torch.Tensor, pad_token_id: int = 0) -> list[list[int]]:
    return [[token for token in row if token != pad_token_id] for row in sequences.tolist()]


@pytest.mark.parametrize("num_beams", [1, 3])
def test_generate_is_batch_invariant(num_beams, tiny_tokenizer_dir, bart_inputs):
    tokenizer = bart_tokenizer(tiny_tokenizer_dir)
    model = HashEEBartModelTester().create_model()
    settings = dict(max_new_tokens=6, num_beams=num_beams, do_sample=False)
    with torch.inference_mode():
        batched = strip_padding(model.generate(**bart_inputs, **settings))
        singles = [
            strip_padding(model.generate(**tokenizer([text], return_tensors="pt"), **settings))[0] for text in TEXTS
        ]
    assert batched == singles
    assert len({tuple(row) for row in batched}) > 1, "generations should depend on the input"


@pytest.mark.parametrize("num_beams", [1, 3])
def test_generate_at_full_depth_equals_vanilla_bart(num_beams, bart_inputs):
    tester = HashEEBartModelTester()
    model = tester.create_model()
    vanilla = tester.vanilla_model(model)
    settings = dict(max_new_tokens=6, num_beams=num_beams, do_sample=False)
    with torch.inference_mode(), full_depth(model):
        assert torch.equal(model.generate(**bart_inputs, **settings), vanilla.generate(**bart_inputs, **settings))
    with torch.inference_mode():
        assert not torch.equal(model.generate(**bart_inputs, **settings), vanilla.generate(**bart_inputs, **settings))


def test_encoder_outputs_carry_the_token_exit_layers(bart_inputs):
    model = HashEEBartModelTester().create_model()
    with torch.inference_mode():
        encoder_outputs = model.get_encoder()(**bart_inputs)
        outputs = model(**bart_inputs)
        base = model.model(**bart_inputs)
        generated = model.generate(**bart_inputs, max_new_tokens=3, return_dict_in_generate=True)
    assert type(encoder_outputs).__name__ == "HashEEEncoderOutput"
    expected = routing_table(model.config)[bart_inputs["input_ids"]] * bart_inputs["attention_mask"]
    assert torch.equal(encoder_outputs.token_exit_layers, expected)
    assert torch.equal(outputs.encoder_token_exit_layers, expected)
    assert torch.equal(base.encoder_token_exit_layers, expected)
    assert generated.sequences.shape[0] == len(TEXTS)


GENERATE_CHILD = r"""
import json, sys
sys.modules["adaptive_zoo"] = None
import torch
from transformers import AutoModelForSeq2SeqLM, AutoTokenizer
source, texts, settings, out = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3]), sys.argv[4]
model = AutoModelForSeq2SeqLM.from_pretrained(source, trust_remote_code=True).eval()
tokenizer = AutoTokenizer.from_pretrained(source)
inputs = tokenizer(texts, return_tensors="pt", padding=True, truncation=True)
with torch.inference_mode():
    sequences = model.generate(**inputs, **settings)
    exits = model(**inputs).encoder_token_exit_layers
json.dump({"class": type(model).__module__ + "." + type(model).__name__, "sequences": sequences.tolist(),
           "exit_layers": exits.tolist()}, open(out, "w"))
"""


def generate_in_fresh_process(source, texts, settings: dict, env: dict | None = None) -> dict:
    """`generate` in a child process where adaptive-zoo cannot be imported (the shipped code only)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "outputs.json"
        result = subprocess.run(
            [sys.executable, "-c", GENERATE_CHILD, os.fspath(source), json.dumps(list(texts)), json.dumps(settings),
             str(out)],
            cwd=tmp, env={**os.environ, **(env or {})}, capture_output=True, text=True, timeout=300,
            stdin=subprocess.DEVNULL,
        )
        assert result.returncode == 0, result.stderr[-4000:]
        return json.loads(out.read_text())


def test_generate_is_identical_after_a_hub_round_trip_in_a_fresh_process(
    tiny_tokenizer_dir, bart_inputs, tmp_path, loopback_hub
):
    model = HashEEBartModelTester().create_model()
    folder = tmp_path / "folder"
    model.save_pretrained(folder)
    bart_tokenizer(tiny_tokenizer_dir).save_pretrained(folder)
    config = json.loads((folder / "config.json").read_text())
    assert config["auto_map"] == {
        "AutoConfig": "configuration_hashee.HashEEBartConfig",
        "AutoModel": "modeling_hashee.HashEEBartModel",
        "AutoModelForSeq2SeqLM": "modeling_hashee.HashEEBartForConditionalGeneration",
    }
    repo_id = f"{loopback_hub.user}/tiny-hashee-bart-generate"
    push_folder(folder, repo_id)
    settings = dict(max_new_tokens=6, num_beams=3, do_sample=False)
    child = generate_in_fresh_process(
        repo_id, TEXTS, settings, env=loopback_hub.subprocess_env(hf_home=tmp_path / "empty_cache")
    )
    assert child["class"].startswith("transformers_modules.")
    with torch.inference_mode():
        assert child["sequences"] == model.generate(**bart_inputs, **settings).tolist()
        assert child["exit_layers"] == model(**bart_inputs).encoder_token_exit_layers.tolist()


def test_base_models_load_through_auto_model(tmp_path):
    from transformers import AutoModel

    for kind, prefix in (("bert", "bert"), ("bart", "model")):
        model = TESTERS[kind].create_model()
        model.save_pretrained(tmp_path / kind)
        base = AutoModel.from_pretrained(tmp_path / kind)
        assert type(base).__name__ == ("HashEEBertModel" if kind == "bert" else "HashEEBartModel")
        assert torch.equal(base.encoder.hash_table, routing_table(model.config)), prefix
    assert AutoModelForSeq2SeqLM.from_pretrained(tmp_path / "bart").__class__ is HashEEBartForConditionalGeneration
