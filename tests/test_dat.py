"""Depth-Adaptive Transformer: the shared model checks (through the mixin) and what is the paper's own: the oracles
and losses on hand-computed examples, the geometric-like exit distribution, copied states and lazily computed
keys/values, incremental and beam-search decoding with real savings, the training regimes, threshold tuning."""

from __future__ import annotations

import contextlib
import json
import math
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
from tiny import TEXTS
from torch import nn
from transformers import (
    AutoModelForSeq2SeqLM,
    AutoTokenizer,
    BartConfig,
    BartForConditionalGeneration,
    DataCollatorForSeq2Seq,
    DynamicCache,
    EncoderDecoderCache,
)

from adaptive_zoo.evaluation.measure import count_flops
from adaptive_zoo.evaluation.operating_points import (
    fixed_exit_thresholds,
    generation_evaluator,
    tune_confidence_thresholds,
)
from adaptive_zoo.models.dat import (
    DepthAdaptiveCache,
    DepthAdaptiveTransformer,
    DepthAdaptiveTransformerConfig,
    aligned_decoder_loss,
    exit_correctness,
    exit_cross_entropy,
    exit_log_likelihoods,
    generated_token_mask,
    geometric_exit_log_probs,
    mixed_decoder_loss,
    oracle_exits,
    sequence_oracle_exits,
    smooth_over_positions,
    token_oracle_exits,
)
from adaptive_zoo.training.dat import build_dat, dat_config_from_bart

N = 4  # decoder blocks of the tiny model
PREDICTORS = ["sequence", "multinomial", "geometric", "confidence"]

# A tiny BART over tests/tiny.py's 99-token vocabulary: [PAD] = 0, [CLS] = 2 starts the decoder, [SEP] = 3 ends.
# A larger init_std than BART's 0.02, so that random weights generate input-dependent sequences.
TINY_BART = dict(
    vocab_size=99, d_model=32, encoder_layers=2, decoder_layers=N, encoder_attention_heads=4,
    decoder_attention_heads=4, encoder_ffn_dim=37, decoder_ffn_dim=37, max_position_embeddings=64,
    pad_token_id=0, bos_token_id=2, eos_token_id=3, decoder_start_token_id=2, forced_eos_token_id=None, init_std=0.2,
)


def get_config(**overrides) -> DepthAdaptiveTransformerConfig:
    return DepthAdaptiveTransformerConfig(**{**TINY_BART, **overrides})


def create_model(seed: int = 0, **overrides) -> DepthAdaptiveTransformer:
    torch.manual_seed(seed)
    return DepthAdaptiveTransformer(get_config(**overrides)).eval()


@contextlib.contextmanager
def full_depth(model):
    saved = model.config.adaptive_depth
    model.config.adaptive_depth = False
    try:
        yield model
    finally:
        model.config.adaptive_depth = saved


class WithoutTokenTypes(nn.Module):
    """BART rejects the token type ids a BERT WordPiece tokenizer returns (the DAT accepts and ignores them)."""

    def __init__(self, bart):
        super().__init__()
        self.bart = bart

    def forward(self, token_type_ids=None, **inputs):
        return self.bart(**inputs)


def vanilla_bart(model) -> BartForConditionalGeneration:
    """The plain BartForConditionalGeneration with the same weights: only the exit predictor is left out."""
    config = BartConfig.from_dict(model.config.to_dict())
    config._attn_implementation = model.config._attn_implementation
    bart = BartForConditionalGeneration(config)
    missing, unexpected = bart.load_state_dict(model.state_dict(), strict=False)
    assert not missing and all(key.startswith("exit_predictor.") for key in unexpected), (missing, unexpected)
    return bart.eval()


def make_decisive(model, seed: int = 1, scale: float = 1.0):
    """Random exit predictor weights large enough that exits differ between tokens and rows, with margins far
    above float noise (so batched and one-at-a-time decoding take the same decisions). Confidence models get
    thresholds that let some tokens out early at every block."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        if model.exit_predictor is not None:
            weight = model.exit_predictor.classifier.weight
            weight.copy_(torch.randn(weight.shape, generator=generator) * scale)
            model.exit_predictor.classifier.bias.zero_()
    if model.config.exit_prediction == "confidence":
        model.config.confidence_thresholds = [0.12, 0.1, 0.08]
    return model


def decoder_rows(inputs, row):
    """The decoder positions of row `row` that are not padding: the decoder input is the source shifted right."""
    return int(inputs["attention_mask"][row].sum())


class DATModelTester:
    model_class = DepthAdaptiveTransformer
    auto_class = "AutoModelForSeq2SeqLM"
    hub_code_files = ("configuration_dat.py", "modeling_dat.py")
    texts = TEXTS
    invalid_configs = [
        dict(exit_loss_weights=[1.0, 1.0, 1.0]),
        dict(exit_loss_weights=[1.0, -1.0, 1.0, 1.0]),
        dict(exit_loss_weights=[0.0, 0.0, 0.0, 0.0]),
        dict(oracle_sigma=0.0),
        dict(oracle_sigma=-1.0),
        dict(confidence_thresholds=[0.5, 1.5, 0.5]),
        dict(confidence_thresholds=[-0.1, 0.5, 0.5]),
        dict(confidence_thresholds=[0.5, 0.5]),
        dict(training_regime="blended"),
        dict(exit_prediction="poisson"),
        dict(oracle="bleu"),
        dict(exit_loss_weight=-0.5),
        dict(oracle_depth_penalty=-1.0),
        dict(num_mixed_samples=0),
        dict(halting_threshold=1.5),
        dict(decoder_layers=1),
        dict(decoder_layerdrop=0.1),
    ]

    get_config = staticmethod(get_config)
    create_model = staticmethod(create_model)
    vanilla_model = staticmethod(lambda model: WithoutTokenTypes(vanilla_bart(model)))
    full_depth = staticmethod(full_depth)

    def make_adaptive(self, model, inputs):
        make_decisive(model)
        with torch.inference_mode():
            exits = model(**inputs).exit_layers
        assert len(set(exits.flatten().tolist())) == N, "every exit should be taken by some token"

    @staticmethod
    def exit_signature(outputs):
        return outputs.exit_layers.tolist()

    @staticmethod
    def row_logits(outputs, inputs, row):
        return outputs.logits[row, : decoder_rows(inputs, row)]

    @staticmethod
    def row_route(outputs, inputs, row):
        return outputs.exit_layers[row, : decoder_rows(inputs, row)].tolist()

    @staticmethod
    def make_labels(model, inputs):
        return inputs["input_ids"].masked_fill(inputs["attention_mask"] == 0, -100)  # reconstruct the source

    def train_features(self, tokenizer):
        texts = list(self.texts) * 2
        encoded = tokenizer(texts, return_token_type_ids=False)
        summaries = tokenizer([" ".join(text.split()[:3]) for text in texts], add_special_tokens=False)
        labels = [ids + [tokenizer.sep_token_id] for ids in summaries["input_ids"]]
        return Dataset.from_dict({**encoded, "labels": labels})

    @staticmethod
    def data_collator(tokenizer):
        return DataCollatorForSeq2Seq(tokenizer)


class TestDepthAdaptiveTransformer(AdaptiveModelTesterMixin):
    tester = DATModelTester()


# -- fixtures ------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def inputs(tiny_tokenizer_dir):
    tokenizer = AutoTokenizer.from_pretrained(tiny_tokenizer_dir)
    return dict(tokenizer(TEXTS[:6], padding=True, return_tensors="pt", return_token_type_ids=False))


def row_inputs(inputs, row):
    length = decoder_rows(inputs, row)
    return {k: v[row : row + 1, :length] for k, v in inputs.items()}


# -- oracles and losses on hand-computed examples -------------------------------------------------------------------


def test_exit_log_likelihoods_and_correctness():
    # one row, two positions, N = 2 exits, vocabulary of 3
    logits = torch.tensor([[[[2.0, 0.0, 0.0], [0.0, 3.0, 0.0]], [[0.0, 0.0, 1.0], [1.0, 1.0, 1.0]]]])
    labels = torch.tensor([[1, -100]])
    log_likelihoods = exit_log_likelihoods(logits, labels)
    expected_first = [-math.log(1 + math.exp(2) + 1) + 0.0, 3.0 - math.log(math.exp(3) + 2)]
    torch.testing.assert_close(log_likelihoods[0, 0], torch.tensor(expected_first))
    assert log_likelihoods[0, 1].eq(0).all(), "ignored labels contribute nothing"
    torch.testing.assert_close(exit_correctness(logits, labels), torch.tensor([[[0.0, 1.0], [0.0, 0.0]]]))


def test_smoothing_kernel_is_exp_minus_squared_distance_over_sigma():
    scores = torch.tensor([[[1.0, 0.0], [0.0, 2.0], [3.0, 0.0]]])  # (1, 3 positions, 2 exits)
    sigma = 2.0
    k1, k2 = math.exp(-1 / sigma), math.exp(-4 / sigma)  # kappa at distance 1 and 2
    expected = torch.tensor([[[1 + 3 * k2, 2 * k1], [k1 + 3 * k1, 2.0], [k2 + 3, 2 * k1]]])
    torch.testing.assert_close(smooth_over_positions(scores, None, sigma), expected)
    # a masked (padding) position does not contribute
    masked = smooth_over_positions(scores, torch.tensor([[True, True, False]]), sigma)
    torch.testing.assert_close(masked, torch.tensor([[[1.0, 2 * k1], [k1, 2.0], [k2, 2 * k1]]]))
    with pytest.raises(ValueError, match="sigma"):
        smooth_over_positions(scores, None, 0.0)


def test_token_oracle_on_hand_computed_example():
    # per-token log-likelihoods of N = 3 exits at 3 positions
    ll = torch.tensor([[[-3.0, -1.0, -0.9], [-0.5, -0.4, -0.3], [-2.0, -2.0, -0.1]]])
    # sigma -> 0: each token on its own; lambda = 0: the best exit, lambda = 0.2: cheaper ones win small gains
    tiny_sigma = 1e-3
    assert token_oracle_exits(ll, None, tiny_sigma, 0.0).tolist() == [[3, 3, 3]]
    # with lambda = 0.2: scores - 0.2 n = [-3.2, -1.4, -1.5], [-0.7, -0.8, -0.9], [-2.2, -2.4, -0.7]
    assert token_oracle_exits(ll, None, tiny_sigma, 0.2).tolist() == [[2, 1, 3]]
    # sigma = 1: smoothed_t = ll_t + e^{-1} (neighbours) + e^{-4} (two away)
    k1, k2 = math.exp(-1), math.exp(-4)
    smoothed = torch.stack([ll[0, 0] + k1 * ll[0, 1] + k2 * ll[0, 2], ll[0, 1] + k1 * (ll[0, 0] + ll[0, 2]),
                            ll[0, 2] + k1 * ll[0, 1] + k2 * ll[0, 0]])
    expected = (smoothed - 0.2 * torch.tensor([1.0, 2.0, 3.0])).argmax(-1) + 1
    assert token_oracle_exits(ll, None, 1.0, 0.2).tolist() == [expected.tolist()]
    assert expected.tolist() == [2, 3, 3]  # position 1 alone would exit at 1 (see above)
    # correctness scores: ties go to the cheapest exit
    correct = torch.tensor([[[0.0, 1.0, 1.0], [1.0, 1.0, 1.0]]])
    assert token_oracle_exits(correct, None, tiny_sigma, 0.0).tolist() == [[2, 1]]


def test_sequence_oracle_on_hand_computed_example():
    ll = torch.tensor([[[-1.0, -0.5, -0.4], [-2.0, -0.5, -0.1], [-9.0, -9.0, -9.0]]])
    present = torch.tensor([[True, True, False]])  # the last position is padding
    # LL^n = [-3.0, -1.0, -0.5]; lambda = 0: exit 3; lambda = 0.6: [-3.6, -2.2, -2.3] -> exit 2
    assert sequence_oracle_exits(ll, present, 0.0).tolist() == [3]
    assert sequence_oracle_exits(ll, present, 0.6).tolist() == [2]
    # correctness counts C^n = [0, 2, 2]: the cheaper of the tie
    correct = torch.tensor([[[0.0, 1.0, 1.0], [0.0, 1.0, 1.0]]])
    assert sequence_oracle_exits(correct, None, 0.0).tolist() == [2]
    assert int(oracle_exits(torch.tensor([0.0, 0.5, 1.2]), 0.5)) == 3  # [-0.5, -0.5, -0.3]
    assert int(oracle_exits(torch.tensor([0.0, 0.5, 1.0]), 0.5)) == 1  # a three-way tie: the cheapest


def test_geometric_exit_distribution_sums_to_one():
    chi = torch.tensor([0.5, 0.2, 0.9])
    q = geometric_exit_log_probs(torch.logit(chi)).exp()
    # q(1) = chi1, q(2) = (1 - chi1) chi2, q(3) = (1 - chi1)(1 - chi2) chi3, q(4) = (1 - chi1)(1 - chi2)(1 - chi3)
    torch.testing.assert_close(q, torch.tensor([0.5, 0.1, 0.36, 0.04]))
    logits = torch.randn(5, 7, N - 1, generator=torch.Generator().manual_seed(0)) * 3
    torch.testing.assert_close(geometric_exit_log_probs(logits).exp().sum(-1), torch.ones(5, 7))
    extreme = geometric_exit_log_probs(torch.tensor([[60.0, -60.0, 60.0], [-60.0, -60.0, -60.0]]))
    assert torch.isfinite(extreme).all()
    torch.testing.assert_close(extreme.exp().sum(-1), torch.ones(2))
    assert extreme.exp()[1, -1] > 0.999  # never halting: all the mass on the last exit


def test_decoder_and_exit_losses_on_hand_computed_examples():
    ll = torch.tensor([[[-1.0, -2.0], [-3.0, -4.0], [-9.0, -9.0]]])  # (1, 3 positions, 2 exits)
    present = torch.tensor([[True, True, False]])
    # per-exit means over present tokens: [-2, -3]; omega = [1, 3]: -(1 * -2 + 3 * -3) / 4
    assert aligned_decoder_loss(ll, present, [1.0, 3.0]).item() == pytest.approx(11 / 4)
    assert aligned_decoder_loss(ll, present, [1.0, 1.0]).item() == pytest.approx(2.5)
    samples = torch.tensor([[[-1.0, -3.0, -7.0]], [[-2.0, -4.0, -7.0]]])  # (M = 2, 1, 3)
    assert mixed_decoder_loss(samples, present).item() == pytest.approx((2 + 3) / 2)
    log_q = torch.log(torch.tensor([[[0.5, 0.5], [0.2, 0.8], [0.9, 0.1]]]))
    oracle = torch.tensor([[1, 2, 1]])
    expected = -(math.log(0.5) + math.log(0.8)) / 2
    assert exit_cross_entropy(log_q, oracle, present).item() == pytest.approx(expected)
    assert exit_cross_entropy(log_q[0], oracle[0]).item() == pytest.approx(-(math.log(0.5) + math.log(0.8)
                                                                              + math.log(0.9)) / 3)


def test_generated_token_mask_stops_after_the_first_eos():
    generated = torch.tensor([[5, 3, 0, 0], [5, 6, 7, 8], [3, 0, 0, 0]])
    assert generated_token_mask(generated, 3).tolist() == [
        [True, True, False, False], [True, True, True, True], [True, False, False, False]]
    assert generated_token_mask(generated, None).all()


# -- configuration ---------------------------------------------------------------------------------------------------


def test_config_defaults_and_assignment_validation():
    config = get_config()
    assert config.model_type == "depth_adaptive_transformer" and isinstance(config, BartConfig)
    assert config.num_exits == N and config.resolved_exit_loss_weights() == [1.0] * N
    assert config.resolved_confidence_thresholds() == [1.0] * (N - 1)  # untuned: never exit early
    config.confidence_thresholds = [0.9, 0.8, 0.7, 0.6]  # N values: the last one is unused
    assert config.resolved_confidence_thresholds() == [0.9, 0.8, 0.7]
    for name, value in [("confidence_thresholds", [0.5, 2.0, 0.5]), ("exit_prediction", "oracle"),
                        ("training_regime", "blend"), ("oracle", "rouge"), ("oracle_sigma", 0.0),
                        ("exit_loss_weight", -1.0), ("num_mixed_samples", 0), ("exit_loss_weights", [-1.0] * N)]:
        with pytest.raises(StrictDataclassError, match=name):
            setattr(config, name, value)
    # a wrong length is refused on assignment too (checked against `decoder_layers`), and the config is left as it was
    with pytest.raises(ValueError, match="confidence_thresholds"):
        config.confidence_thresholds = [0.5, 0.5]
    assert config.confidence_thresholds == [0.9, 0.8, 0.7, 0.6]


# -- exits at inference ----------------------------------------------------------------------------------------------


class FixedExits(nn.Module):
    """Stands in for the multinomial predictor: dictates the exit of each position, (B, T) in order; each call
    consumes the next S positions."""

    kind = "multinomial"

    def __init__(self, exits: torch.Tensor):
        super().__init__()
        self.exits, self.offset = exits, 0

    def forward(self, states):  # (B, S, d) -> (B, S, N)
        length = states.shape[1]
        chosen = self.exits[:, self.offset : self.offset + length]
        self.offset += length
        return nn.functional.one_hot(chosen - 1, N).float() * 10


def count_rows(module, record):
    return module.register_forward_hook(lambda mod, args, output: record.append(args[0].shape[:-1].numel()))


def test_exited_tokens_skip_upper_blocks_and_later_tokens_attend_to_their_copied_states(inputs):
    model = create_model()
    source = row_inputs(inputs, 0)
    decoder_input_ids = torch.tensor([[2, 10, 11, 12, 13, 14]])
    exits = torch.tensor([[4, 1, 4, 1, 2, 1, 4]])  # the last one for the incremental step below
    model.exit_predictor = FixedExits(exits)
    top = model.model.decoder.layers[N - 1]
    ffn_rows, key_rows = [], []
    hooks = [count_rows(top.fc1, ffn_rows), count_rows(top.self_attn.k_proj, key_rows)]
    with torch.inference_mode():
        out = model(**source, decoder_input_ids=decoder_input_ids, use_cache=True)
        assert out.exit_layers.tolist() == exits[:, :6].tolist()
        assert ffn_rows == [2], "block 4 ran for the two tokens that exit there only"
        # block 4's keys/values: positions 0 .. 2 (the last token reaching block 4), not 3 .. 5
        assert key_rows == [3]
        cache = out.cache
        assert cache.pending[N - 1].tolist() == [[False, False, False, True, True, True]]

        # Reference: every block run on every position, the states above each token's exit being copies of its
        # exit state (the mixed-regime pass). Block m's keys at position t must be the projection of the input
        # state of block m there, i.e. the copied state for tokens that exited below m.
        encoder_hidden = model.get_encoder()(**source).last_hidden_state
        decoder_inputs = dict(input_ids=decoder_input_ids, inputs_embeds=None, attention_mask=None)
        states = model._run_decoder(decoder_inputs, encoder_hidden, source["attention_mask"], None,
                                    copy_above=exits[:, :6])
        torch.testing.assert_close(out.logits, model.exit_logits_of(states[-1]), rtol=1e-5, atol=1e-5)
        keys = cache.self_attention_cache.layers[N - 1].keys[0]  # (H, T, Dh)
        attention = top.self_attn
        block3_states = states[N - 2][0]  # the input of block 4
        for position in range(3):
            expected = attention.k_proj(block3_states[position]).view(attention.num_heads, -1)
            torch.testing.assert_close(keys[:, position], expected, rtol=1e-5, atol=1e-5)
        # position 1 exited at block 1: its block-4 keys come from its block-1 state, not from a block-3 state
        torch.testing.assert_close(block3_states[1], states[0][0, 1])
        assert keys[:, 3:].eq(0).all(), "not computed: no later token has reached block 4 yet"

        # One more token that runs to block 4: it needs positions 3 .. 5 there, computed now from their copies.
        step = model(encoder_outputs=(encoder_hidden,), attention_mask=source["attention_mask"],
                     decoder_input_ids=torch.tensor([[15]]), cache=cache, use_cache=True)
        assert step.exit_layers.tolist() == [[4]]
        assert key_rows[-1] == 4 and not cache.pending[N - 1].any()
        full_ids = torch.cat([decoder_input_ids, torch.tensor([[15]])], dim=1)
        states = model._run_decoder(dict(input_ids=full_ids, inputs_embeds=None, attention_mask=None),
                                    encoder_hidden, source["attention_mask"], None, copy_above=exits)
        keys = cache.self_attention_cache.layers[N - 1].keys[0]
        expected = attention.k_proj(states[N - 2][0]).view(7, attention.num_heads, -1).transpose(0, 1)
        torch.testing.assert_close(keys, expected, rtol=1e-5, atol=1e-5)
        values = cache.self_attention_cache.layers[N - 1].values[0]
        expected = attention.v_proj(states[N - 2][0]).view(7, attention.num_heads, -1).transpose(0, 1)
        torch.testing.assert_close(values, expected, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(step.logits[:, 0], model.exit_logits_of(states[-1][:, -1]), rtol=1e-5, atol=1e-5)
    for hook in hooks:
        hook.remove()


def test_switching_to_full_depth_mid_decoding_fills_the_pending_slots_first(inputs):
    model = create_model()
    source = row_inputs(inputs, 1)
    exits = torch.tensor([[2, 1, 3, 1, 4]])  # the last token runs at full depth
    model.exit_predictor = FixedExits(exits)
    decoder_input_ids = torch.tensor([[2, 20, 21, 22, 23]])
    with torch.inference_mode():
        out = model(**source, decoder_input_ids=decoder_input_ids[:, :4], use_cache=True)
        assert out.cache.pending[N - 1].all()
        with full_depth(model):
            step = model(**source, decoder_input_ids=decoder_input_ids[:, 4:], cache=out.cache)
        assert not any(pending.any() for pending in step.cache.pending.values())
        encoder_hidden = model.get_encoder()(**source).last_hidden_state
        states = model._run_decoder(dict(input_ids=decoder_input_ids, inputs_embeds=None, attention_mask=None),
                                    encoder_hidden, source["attention_mask"], None, copy_above=exits)
        expected = model.exit_logits_of(states[-1][:, -1])
    torch.testing.assert_close(step.logits[:, 0], expected, rtol=1e-5, atol=1e-5)
    assert step.exit_layers.tolist() == [[N]]


@pytest.mark.parametrize("kind", PREDICTORS)
def test_incremental_decoding_equals_teacher_forcing(kind, inputs):
    model = make_decisive(create_model(exit_prediction=kind))
    decoder_input_ids = torch.randint(5, 99, (inputs["input_ids"].shape[0], 7),
                                      generator=torch.Generator().manual_seed(0))
    decoder_input_ids[:, 0] = 2
    with torch.inference_mode():
        teacher_forced = model(**inputs, decoder_input_ids=decoder_input_ids)
        encoder_outputs = model.get_encoder()(**inputs)
        cache, logits, exits = None, [], []
        for position in range(decoder_input_ids.shape[1]):
            step = model(encoder_outputs=encoder_outputs, attention_mask=inputs["attention_mask"],
                         decoder_input_ids=decoder_input_ids[:, position : position + 1], cache=cache)
            cache = step.cache
            logits.append(step.logits)
            exits.append(step.exit_layers)
    assert isinstance(cache, DepthAdaptiveCache)
    torch.testing.assert_close(torch.cat(logits, 1), teacher_forced.logits, rtol=1e-4, atol=1e-5)
    assert torch.equal(torch.cat(exits, 1), teacher_forced.exit_layers)
    assert torch.equal(cache.exit_layers, teacher_forced.exit_layers)
    assert len(set(teacher_forced.exit_layers.flatten().tolist())) > 1


def test_each_predictor_decides_as_the_paper_says(inputs):
    decoder_input_ids = torch.tensor([[2, 7, 8, 9, 10, 11]]).expand(inputs["input_ids"].shape[0], -1)
    with torch.inference_mode():
        # sequence-specific: one exit per row, argmax of q(n | x) from the mean encoder output
        model = make_decisive(create_model(exit_prediction="sequence"))
        out = model(**inputs, decoder_input_ids=decoder_input_ids)
        assert (out.exit_layers == out.exit_layers[:, :1]).all()
        assert torch.equal(out.exit_layers[:, 0], out.exit_probabilities[:, 0].argmax(-1) + 1)
        assert len(set(out.exit_layers[:, 0].tolist())) > 1, "rows exit at different blocks"
        # multinomial: argmax of q_t(n) from the first block's output
        model = make_decisive(create_model(exit_prediction="multinomial"))
        out = model(**inputs, decoder_input_ids=decoder_input_ids)
        assert torch.equal(out.exit_layers, out.exit_probabilities.argmax(-1) + 1)
        # geometric-like: the first block whose halting score passes the threshold; nothing computed above it
        model = make_decisive(create_model(exit_prediction="geometric"))
        out = model(**inputs, decoder_input_ids=decoder_input_ids)
        chi = out.halting_probabilities  # (B, S, N - 1)
        for row, position in zip(*torch.nonzero(out.exit_layers > 0, as_tuple=True)):
            exit_block, scores = int(out.exit_layers[row, position]), chi[row, position]
            assert (scores[: exit_block - 1] <= 0.5).all()
            assert exit_block == N or scores[exit_block - 1] > 0.5
            assert torch.isnan(scores[exit_block:]).all()
        # confidence: block 1 is the same for every token, so the tokens leaving there are those whose block-1
        # distribution (as in a full-depth pass) has a maximum probability above T_1
        model = make_decisive(create_model(exit_prediction="confidence"))
        out = model(**inputs, decoder_input_ids=decoder_input_ids)
        full = model(**inputs, decoder_input_ids=decoder_input_ids, output_exit_logits=True)
        confident = full.exit_logits[:, :, 0].softmax(-1).amax(-1) > model.config.confidence_thresholds[0]
        assert torch.equal(out.exit_layers == 1, confident) and confident.any() and not confident.all()
        # every position's logits are its exit block's, whether its exit decision computed them or not. Compared
        # where the full pass's states are the adaptive pass's: no earlier position of the row exited early (an early
        # exit's copied state changes what later positions attend to above its block)
        vocab_size = full.logits.shape[-1]
        taken = full.exit_logits.gather(2, (out.exit_layers - 1)[..., None, None].expand(-1, -1, 1, vocab_size))
        early = out.exit_layers < N  # (B, S)
        unaffected = (early.cumsum(-1) - early.long()) == 0  # (B, S): no early exit before this position
        assert (unaffected & early).any() and (unaffected & ~early).any()
        torch.testing.assert_close(out.logits[unaffected], taken.squeeze(2)[unaffected], rtol=1e-5, atol=1e-5)
        model.config.confidence_thresholds = [0.0] * (N - 1)  # p > 0 always: everyone leaves after block 1
        out = model(**inputs, decoder_input_ids=decoder_input_ids)
        assert out.exit_layers.eq(1).all()
        torch.testing.assert_close(out.logits, full.exit_logits[:, :, 0], rtol=1e-5, atol=1e-5)
        model.config.confidence_thresholds = [1.0] * (N - 1)  # never: full depth
        out = model(**inputs, decoder_input_ids=decoder_input_ids)
        assert out.exit_layers.eq(N).all()
        torch.testing.assert_close(out.logits, full.logits, rtol=1e-5, atol=1e-5)


def test_output_exit_logits_runs_every_block(inputs):
    model = make_decisive(create_model(exit_prediction="geometric"))
    with torch.inference_mode():
        out = model(**inputs, output_exit_logits=True)
        with full_depth(model):
            reference = model(**inputs)
    batch, length = inputs["input_ids"].shape
    assert out.exit_logits.shape == (batch, length, N, 99)
    torch.testing.assert_close(out.exit_logits[:, :, -1], reference.logits)
    torch.testing.assert_close(out.logits, reference.logits)
    torch.testing.assert_close(out.exit_probabilities.sum(-1), torch.ones(batch, length))
    assert out.exit_layers.eq(N).all() and reference.exit_probabilities is None


# -- generation --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("num_beams", [1, 3])
@pytest.mark.parametrize("kind", PREDICTORS)
def test_generate_is_batch_invariant_with_rows_exiting_at_different_blocks(kind, num_beams, inputs):
    model = make_decisive(create_model(exit_prediction=kind))
    settings = dict(max_new_tokens=6, num_beams=num_beams)
    with torch.inference_mode():
        batched = model.generate_with_exits(**inputs, **settings)
        singles = [model.generate_with_exits(**row_inputs(inputs, row), **settings)
                   for row in range(inputs["input_ids"].shape[0])]
    for row, single in enumerate(singles):
        length = single.sequences.shape[1]
        assert torch.equal(batched.sequences[row, :length], single.sequences[0])
        assert batched.sequences[row, length:].eq(model.config.pad_token_id).all()
        assert torch.equal(batched.exit_layers[row, : length - 1], single.exit_layers[0])
    row_exits = [tuple(single.exit_layers[0].tolist()) for single in singles]
    assert len(set(row_exits)) > 1
    assert len({e for exits in row_exits for e in exits}) > 1, "tokens exit at different blocks"
    assert batched.average_exit < N


@pytest.mark.parametrize("num_beams", [1, 3])
@pytest.mark.parametrize("kind", ["multinomial", "confidence"])
def test_generate_with_the_cache_equals_recomputing_without_it(kind, num_beams, inputs):
    """Without a cache every step re-runs the whole prefix (nothing to reorder or compute lazily): the cached path,
    with its lazily filled keys/values and beam-reordered bookkeeping, must decode the same."""
    model = make_decisive(create_model(exit_prediction=kind))
    settings = dict(max_new_tokens=7, num_beams=num_beams, return_dict_in_generate=True, output_scores=True)
    with torch.inference_mode():
        cached = model.generate(**inputs, **settings)
        recomputed = model.generate(**inputs, use_cache=False, **settings)
        exits = model.generated_exit_layers(inputs["input_ids"], cached.sequences, inputs["attention_mask"])
    assert torch.equal(cached.sequences, recomputed.sequences)
    torch.testing.assert_close(torch.stack(cached.scores), torch.stack(recomputed.scores), rtol=1e-4, atol=1e-4)
    assert isinstance(cached.cache, DepthAdaptiveCache)
    assert 1 < exits[exits > 0].float().mean() < N


def test_generated_exit_layers_match_the_incremental_record(inputs):
    model = make_decisive(create_model(exit_prediction="confidence"))
    with torch.inference_mode():
        out = model.generate(**inputs, max_new_tokens=8, return_dict_in_generate=True)
        replayed = model.generated_exit_layers(inputs["input_ids"], out.sequences, inputs["attention_mask"])
    recorded = out.cache.exit_layers  # the decoder positions that produced sequences[:, 1:]
    assert recorded.shape == replayed.shape
    present = replayed > 0
    assert torch.equal(recorded[present], replayed[present])


@pytest.mark.parametrize("num_beams", [1, 3])
def test_generate_at_full_depth_equals_bart(num_beams, inputs):
    model = make_decisive(create_model())
    bart = vanilla_bart(model)
    settings = dict(max_new_tokens=6, num_beams=num_beams, return_dict_in_generate=True, output_scores=True)
    with torch.inference_mode(), full_depth(model):
        ours = model.generate(**inputs, **settings)
        theirs = bart.generate(**inputs, **settings)
        exits = model.generated_exit_layers(inputs["input_ids"], ours.sequences, inputs["attention_mask"])
    assert torch.equal(ours.sequences, theirs.sequences)
    torch.testing.assert_close(torch.stack(ours.scores), torch.stack(theirs.scores), rtol=0, atol=0)
    assert exits[exits > 0].eq(N).all()


@pytest.mark.parametrize("kind", ["multinomial", "confidence"])
def test_generate_executes_fewer_flops_with_early_exits(kind, inputs):
    model = make_decisive(create_model(exit_prediction=kind))
    settings = dict(max_new_tokens=8, min_new_tokens=8)  # the same number of steps either way
    with torch.inference_mode():
        adaptive = count_flops(lambda: model.generate(**inputs, **settings))
        average_exit = float(model.generate_with_exits(**inputs, **settings).average_exit)
        with full_depth(model):
            full = count_flops(lambda: model.generate(**inputs, **settings))
    assert average_exit < N - 0.5
    assert adaptive < 0.9 * full, (adaptive, full, average_exit)


# -- training ----------------------------------------------------------------------------------------------------


def training_labels(inputs):
    return inputs["input_ids"][:, 1:6].masked_fill(inputs["attention_mask"][:, 1:6] == 0, -100)


@pytest.mark.parametrize("oracle", ["likelihood", "correctness"])
@pytest.mark.parametrize("kind", PREDICTORS)
@pytest.mark.parametrize("regime", ["aligned", "mixed"])
def test_each_regime_trains_and_reaches_the_exit_predictor(regime, kind, oracle, inputs):
    model = create_model(training_regime=regime, exit_prediction=kind, oracle=oracle, num_mixed_samples=2,
                         exit_loss_weight=0.5, oracle_depth_penalty=0.1, dropout=0.0).train()
    labels = training_labels(inputs)
    present = labels != -100
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(4):
        torch.manual_seed(0)  # the same sampled exits (mixed) at every step, so the losses compare
        out = model(**inputs, labels=labels)
        losses.append(out.loss.item())
        optimizer.zero_grad()
        out.loss.backward()
        if not losses[1:]:
            assert torch.isfinite(out.loss) and out.decoder_loss is not None
            assert model.model.decoder.layers[0].fc1.weight.grad.abs().sum() > 0
            if kind == "confidence":
                assert out.exit_loss is None and model.exit_predictor is None
                torch.testing.assert_close(out.loss, out.decoder_loss)
            else:
                torch.testing.assert_close(out.loss, out.decoder_loss + 0.5 * out.exit_loss)
                assert model.exit_predictor.classifier.weight.grad.abs().sum() > 0
                torch.testing.assert_close(out.exit_probabilities.sum(-1), torch.ones(labels.shape))
                oracle_exits_ = out.oracle_exit_layers
                assert ((oracle_exits_ >= 1) & (oracle_exits_ <= N))[present].all()
                assert oracle_exits_[~present].eq(0).all()
            assert out.logits.shape == (*labels.shape, 99)
            if regime == "aligned":
                assert out.exit_logits.shape == (*labels.shape, N, 99) and out.exit_layers.eq(N).all()
            else:
                assert ((out.exit_layers >= 1) & (out.exit_layers <= N)).all()
        optimizer.step()
    assert all(math.isfinite(loss) for loss in losses) and losses[-1] < losses[0]


def test_aligned_loss_with_all_weight_on_the_last_exit_is_barts_loss(inputs):
    model = create_model(exit_prediction="confidence", exit_loss_weights=[0, 0, 0, 1], dropout=0.0).train()
    labels = training_labels(inputs)
    bart = vanilla_bart(model).train()
    out = model(**inputs, labels=labels)
    torch.testing.assert_close(out.loss, bart(**inputs, labels=labels).loss)
    uniform = create_model(exit_prediction="confidence", dropout=0.0).train()(**inputs, labels=labels)
    per_exit = -exit_log_likelihoods(uniform.exit_logits, labels).sum((0, 1)) / (labels != -100).sum()
    torch.testing.assert_close(uniform.loss, per_exit.mean())


def test_mixed_regime_copies_states_as_inference_does(inputs):
    model = create_model(training_regime="mixed", num_mixed_samples=1, dropout=0.0).train()
    labels = training_labels(inputs)
    torch.manual_seed(3)
    trained = model(**inputs, labels=labels)  # sample 1: its logits and sampled exits
    assert len(set(trained.exit_layers.flatten().tolist())) == N
    model.eval()
    model.exit_predictor = FixedExits(trained.exit_layers)
    with torch.inference_mode():
        inferred = model(**inputs, decoder_input_ids=model.prepare_decoder_input_ids_from_labels(labels))
    assert torch.equal(inferred.exit_layers, trained.exit_layers)
    torch.testing.assert_close(inferred.logits, trained.logits.detach(), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("kind", ["sequence", "multinomial", "geometric"])
def test_detaching_the_predictor_input_keeps_the_exit_loss_out_of_the_transformer(kind, inputs):
    labels = training_labels(inputs)
    for detach in (False, True):
        model = create_model(exit_prediction=kind, detach_exit_predictor_input=detach).train()
        out = model(**inputs, labels=labels)
        decoder_weight = model.model.encoder.layers[-1].fc2.weight
        grad_transformer, grad_predictor = torch.autograd.grad(
            out.exit_loss, [decoder_weight, model.exit_predictor.classifier.weight], allow_unused=True)
        assert grad_predictor.abs().sum() > 0
        assert (grad_transformer is None or not grad_transformer.any()) == detach


# -- caches and bad input ------------------------------------------------------------------------------------------


def test_cache_bookkeeping_follows_beam_reordering_selection_and_cropping():
    cache = DepthAdaptiveCache()
    for layer in range(2):
        cache.append_placeholders(layer, (3, 2, 2, 4), torch.float32, "cpu")
    cache.self_attention_cache.layers[0].keys[:] = torch.arange(3.0)[:, None, None, None]
    cache.pending[1][:] = torch.tensor([[True, False], [False, False], [True, True]])
    cache.record_exits(torch.tensor([[1, 2], [3, 4], [2, 2]]), torch.arange(3.0)[:, None, None].expand(3, 2, 5))
    cache.reorder_cache(torch.tensor([2, 2, 0]))
    assert cache.exit_layers.tolist() == [[2, 2], [2, 2], [1, 2]]
    assert cache.pending[1].tolist() == [[True, True], [True, True], [True, False]]
    assert cache.exit_states[:, 0, 0].tolist() == [2.0, 2.0, 0.0]
    assert cache.self_attention_cache.layers[0].keys[:, 0, 0, 0].tolist() == [2.0, 2.0, 0.0]
    cache.batch_select_indices(torch.tensor([2]))
    assert cache.exit_layers.tolist() == [[1, 2]] and cache.pending[1].shape == (1, 2)
    cache.batch_repeat_interleave(2)
    assert cache.exit_layers.tolist() == [[1, 2], [1, 2]]
    cache.crop(-1)
    assert cache.get_seq_length() == 1 and cache.exit_layers.shape == (2, 1) and cache.pending[0].shape == (2, 1)
    assert cache.exit_states.shape == (2, 1, 5)


def test_bad_inputs_fail_clearly(inputs):
    model = create_model()
    filled = EncoderDecoderCache(DynamicCache(), DynamicCache())
    filled.self_attention_cache.update(torch.zeros(6, 4, 1, 8), torch.zeros(6, 4, 1, 8), 0)
    with pytest.raises(ValueError, match="DepthAdaptiveCache"):
        model(**inputs, decoder_input_ids=torch.full((6, 1), 2), cache=filled)
    with pytest.raises(ValueError, match="output_attentions"):
        model(**inputs, output_attentions=True)
    model.config.exit_prediction = "geometric"  # the model was built with a multinomial predictor
    with pytest.raises(ValueError, match="exit predictor"):
        model(**inputs)
    model.config.exit_prediction = "confidence"  # needs no predictor: fine
    with pytest.raises(ValueError, match="confidence_thresholds"):
        model.config.confidence_thresholds = [0.5, 0.5]  # refused on assignment, before any forward
    with pytest.raises(ValueError, match="labels"):
        model(**inputs, labels=training_labels(inputs)[:-1])


# -- building from BART and saving -----------------------------------------------------------------------------------


def test_a_bart_warm_started_from_bert_loads_with_only_the_exit_predictor_missing(tiny_bert_dir, tmp_path, inputs):
    from adaptive_zoo.training.warm_start import bart_from_bert

    bart = bart_from_bert(tiny_bert_dir)
    bart.save_pretrained(tmp_path)
    config = dat_config_from_bart(tmp_path, exit_prediction="geometric", oracle="correctness")
    assert config.model_type == "depth_adaptive_transformer" and config.decoder_start_token_id == 2
    model, info = DepthAdaptiveTransformer.from_pretrained(tmp_path, config=config, output_loading_info=True)
    assert sorted(info["missing_keys"]) == ["exit_predictor.classifier.bias", "exit_predictor.classifier.weight"]
    assert not info["unexpected_keys"] and not info["mismatched_keys"]
    assert torch.isfinite(model.exit_predictor.classifier.weight).all()
    assert model.lm_head.weight.data_ptr() == model.model.shared.weight.data_ptr()
    built = build_dat(tmp_path, exit_prediction="geometric")
    assert isinstance(built, DepthAdaptiveTransformer) and built.config.exit_prediction == "geometric"
    with torch.inference_mode(), full_depth(model.eval()):
        torch.testing.assert_close(model(**inputs).logits, bart.eval()(**inputs).logits, rtol=0, atol=0)
    with pytest.raises(ValueError, match="BART"):
        dat_config_from_bart(tiny_bert_dir)


FRESH_PROCESS_GENERATE = r"""
import json, sys
sys.modules["adaptive_zoo"] = None
import torch
from transformers import AutoModelForSeq2SeqLM, AutoTokenizer
source, texts, settings, out = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3]), sys.argv[4]
model = AutoModelForSeq2SeqLM.from_pretrained(source, trust_remote_code=True).eval()
tokenizer = AutoTokenizer.from_pretrained(source)
inputs = tokenizer(texts, return_tensors="pt", padding=True, return_token_type_ids=False)
result = {"class": type(model).__module__ + "." + type(model).__name__}
with torch.inference_mode():
    for beams in (1, 3):
        generated = model.generate_with_exits(**inputs, num_beams=beams, **settings)
        result[str(beams)] = [generated.sequences.tolist(), generated.exit_layers.tolist()]
json.dump(result, open(out, "w"))
"""


def test_generate_is_identical_in_a_fresh_process_with_the_shipped_code(tiny_tokenizer_dir, tmp_path):
    model = make_decisive(create_model(exit_prediction="confidence"))
    tokenizer = AutoTokenizer.from_pretrained(tiny_tokenizer_dir)
    model.save_pretrained(tmp_path / "model")
    tokenizer.save_pretrained(tmp_path / "model")
    assert {"configuration_dat.py", "modeling_dat.py"} <= {p.name for p in (tmp_path / "model").iterdir()}
    settings = dict(max_new_tokens=6)
    texts = TEXTS[:4]
    with tempfile.TemporaryDirectory() as work:
        out = Path(work) / "out.json"
        result = subprocess.run(
            [sys.executable, "-c", FRESH_PROCESS_GENERATE, str(tmp_path / "model"), json.dumps(texts),
             json.dumps(settings), str(out)],
            cwd=work, env={**os.environ, "HF_MODULES_CACHE": str(tmp_path / "modules")}, capture_output=True,
            text=True, timeout=300, stdin=subprocess.DEVNULL,
        )
        assert result.returncode == 0, result.stderr[-3000:]
        child = json.loads(out.read_text())
    assert child["class"].startswith("transformers_modules."), child["class"]
    inputs = tokenizer(texts, return_tensors="pt", padding=True, return_token_type_ids=False)
    loaded = AutoModelForSeq2SeqLM.from_pretrained(tmp_path / "model").eval()
    assert type(loaded) is DepthAdaptiveTransformer
    with torch.inference_mode():
        for beams in (1, 3):
            generated = model.generate_with_exits(**inputs, num_beams=beams, **settings)
            assert child[str(beams)] == [generated.sequences.tolist(), generated.exit_layers.tolist()]


# -- confidence thresholds -------------------------------------------------------------------------------------------


def test_random_search_keeps_the_best_thresholds_within_the_budget():
    def evaluate(thresholds):  # higher thresholds: better and more expensive
        return sum(thresholds), 1 + sum(thresholds)

    result = tune_confidence_thresholds(evaluate, N, budget=2.0, num_trials=40, seed=0, candidates=[[1.0] * 3])
    assert len(result.trials) == 41 and result.trials[0].thresholds == [1.0, 1.0, 1.0]
    assert not result.trials[0].within_budget  # full depth costs 4 > 2
    within = [trial for trial in result.trials if trial.within_budget]
    assert within and all(trial.average_exit <= 2.0 for trial in within)
    assert result.best.score == max(trial.score for trial in within)
    assert result.best_thresholds == result.best.thresholds
    assert all(len(trial.thresholds) == N - 1 and all(0 <= t <= 1 for t in trial.thresholds) for trial in result.trials)
    again = tune_confidence_thresholds(evaluate, N, budget=2.0, num_trials=40, seed=0, candidates=[[1.0] * 3])
    assert again.trials == result.trials
    other = tune_confidence_thresholds(evaluate, N, budget=2.0, num_trials=40, seed=1)
    assert other.trials[0].thresholds != result.trials[1].thresholds
    unconstrained = tune_confidence_thresholds(evaluate, N, num_trials=5, candidates=[[1.0] * 3])
    assert unconstrained.best.thresholds == [1.0, 1.0, 1.0]
    assert tune_confidence_thresholds(evaluate, N, budget=1.0, num_trials=5).best is None
    with pytest.raises(ValueError, match="num_exits"):
        tune_confidence_thresholds(evaluate, 1)
    with pytest.raises(ValueError, match="candidate"):
        tune_confidence_thresholds(evaluate, N, candidates=[[0.5, 0.5]])


def test_threshold_search_over_real_generations(tiny_tokenizer_dir):
    model = make_decisive(create_model(exit_prediction="confidence"))
    model.config.confidence_thresholds = [0.3, 0.3, 0.3]
    tokenizer = AutoTokenizer.from_pretrained(tiny_tokenizer_dir)
    sources, references = TEXTS[:4], [" ".join(text.split()[:2]) for text in TEXTS[:4]]

    def overlap(predictions, references):  # a stand-in for ROUGE: shared words
        return sum(len(set(p.split()) & set(r.split())) for p, r in zip(predictions, references))

    evaluate = generation_evaluator(model, tokenizer, sources, references, overlap, batch_size=3, max_new_tokens=5)
    result = tune_confidence_thresholds(evaluate, N, budget=3.0, num_trials=2, candidates=[[1.0] * 3, [0.0] * 3])
    assert result.trials[0].average_exit == N and result.trials[1].average_exit == 1.0
    assert all(1 <= trial.average_exit <= N for trial in result.trials)
    assert result.best is not None and result.best.average_exit <= 3.0
    assert model.config.confidence_thresholds == [0.3, 0.3, 0.3], "the evaluator restores the model's thresholds"
    with pytest.raises(ValueError, match="confidence"):
        generation_evaluator(create_model(), tokenizer, sources, references, overlap)


def test_fixed_exit_thresholds_send_every_token_to_that_block(inputs):
    model = create_model(exit_prediction="confidence")
    assert fixed_exit_thresholds(1, N) == [0.0] * (N - 1) and fixed_exit_thresholds(N, N) == [1.0] * (N - 1)
    with torch.inference_mode():
        with full_depth(model):
            full = model.generate(**inputs, max_new_tokens=6)
        for exit_block in range(1, N + 1):
            model.config.confidence_thresholds = fixed_exit_thresholds(exit_block, N)
            output = model.generate_with_exits(**inputs, max_new_tokens=6)
            exits = output.exit_layers[output.exit_layers > 0]
            assert exits.numel() > 0 and torch.all(exits == exit_block), exit_block
        assert torch.equal(output.sequences, full), "exit N is full depth"
    for bad in (0, N + 1, True):
        with pytest.raises(ValueError, match="exit_block"):
            fixed_exit_thresholds(bad, N)


def test_adaptive_decoding_is_the_same_with_eager_and_sdpa_attention(inputs):
    sdpa = make_decisive(create_model(exit_prediction="confidence"))
    eager = make_decisive(create_model(exit_prediction="confidence"))
    eager.set_attn_implementation("eager")
    assert eager.config._attn_implementation == "eager" and sdpa.config._attn_implementation == "sdpa"
    with torch.inference_mode():
        expected, actual = sdpa(**inputs), eager(**inputs)
        assert torch.equal(sdpa.generate(**inputs, max_new_tokens=6), eager.generate(**inputs, max_new_tokens=6))
    torch.testing.assert_close(actual.logits, expected.logits, rtol=1e-4, atol=1e-5)
    assert torch.equal(actual.exit_layers, expected.exit_layers)


def test_finetune_dat_trains_and_evaluates_with_the_stock_trainer(tiny_tokenizer_dir, tmp_path):
    from adaptive_zoo.training.dat import finetune_dat

    tokenizer = AutoTokenizer.from_pretrained(tiny_tokenizer_dir)
    features = DATModelTester().train_features(tokenizer)
    model = create_model(exit_prediction="geometric", training_regime="mixed", num_mixed_samples=2).train()
    before = model.exit_predictor.classifier.weight.detach().clone()
    trainer = finetune_dat(model, tokenizer, features, features.select(range(4)), tmp_path / "run",
                           num_train_epochs=1, per_device_train_batch_size=4, per_device_eval_batch_size=4,
                           learning_rate=1e-2)
    history = trainer.state.log_history
    assert any("eval_loss" in entry and math.isfinite(entry["eval_loss"]) for entry in history)
    assert not torch.equal(before, trainer.model.exit_predictor.classifier.weight.detach())


@pytest.mark.parametrize("adaptive", [True, False])
def test_over_long_target_is_a_clear_error(adaptive, tiny_tokenizer_dir):
    model = create_model()
    model.config.adaptive = adaptive
    positions = model.config.max_position_embeddings
    source = torch.full((1, 4), 7)
    with torch.inference_mode(), pytest.raises(ValueError, match=f"target has {positions + 1} tokens"):
        model(input_ids=source, decoder_input_ids=torch.full((1, positions + 1), 7))
    with torch.inference_mode():
        model(input_ids=source, decoder_input_ids=torch.full((1, positions), 7))  # the longest target runs
