"""Every standard transformers / PyTorch switch on every model of the zoo: it works (the eager float32 outputs within
a stated tolerance, with the same exits) or it raises a clear error that says what is supported. A silent wrong
answer is the one outcome these tests do not accept.

A model family joins by adding its tester to `ZOO` and its row to `SWITCHES` (what README's "Standard switches"
table says it does); `test_every_family_declares_its_switches` fails until it does. The torch.compile cases that
need inductor are marked `slow` and run on a reduced matrix (one family per behaviour): a tiny model takes 15-90 s
to compile on two cores. They run by default; `-m "not slow"` leaves them out. The refusal is checked for every
family that refuses, with dynamo's fast "eager" backend (it is raised before any backend sees a graph).
"""

from __future__ import annotations

import ast
import contextlib
import re
import textwrap
import warnings
from pathlib import Path

import pytest
import torch
from test_adapler import AdapLeRModelTester, AdapLeRRobertaModelTester, first_layer_ratios
from test_dat import DATModelTester
from test_deebert import DeeBertModelTester, DeeRobertaModelTester
from test_hashee import HashEEBartModelTester, HashEEBertModelTester, HashEERobertaModelTester
from tiny import TEXTS, tiny_bert_config
from transformers import (
    AutoTokenizer,
    BertConfig,
    BertForSequenceClassification,
    DistilBertConfig,
    DistilBertForSequenceClassification,
    MBartConfig,
    MBartForConditionalGeneration,
    RobertaConfig,
    RobertaForSequenceClassification,
    T5Config,
    T5ForConditionalGeneration,
)

from adaptive_zoo import models as models_package
from adaptive_zoo.evaluation.measure import count_flops
from adaptive_zoo.methods import METHODS

ZOO = {
    "deebert": DeeBertModelTester(),
    "deeroberta": DeeRobertaModelTester(),
    "adapler": AdapLeRModelTester(),
    "adapler_roberta": AdapLeRRobertaModelTester(),
    "hashee_bert": HashEEBertModelTester(),
    "hashee_roberta": HashEERobertaModelTester(),
    "hashee_bart": HashEEBartModelTester(),
    "depth_adaptive_transformer": DATModelTester(),
}

# What each family does with each switch while adaptive (README, "Standard switches"); at full depth every switch
# but hidden states and attentions on the DAT gives the vanilla model's outputs.
# compile / export: "works" (eager outputs, same exits) or "refuses"; hidden_states: "works" (exited rows or tokens
# carried forward) or "refuses"; the off switch is what the refusals point to.
SWITCHES = {
    "deebert": dict(compile="works", export="refuses", hidden_states="works", off="entropy_threshold = None"),
    "deeroberta": dict(compile="works", export="refuses", hidden_states="works", off="entropy_threshold = None"),
    "adapler": dict(compile="works", export="refuses", hidden_states="works", off="inference_mode = 'off'"),
    "adapler_roberta": dict(compile="works", export="refuses", hidden_states="works", off="inference_mode = 'off'"),
    "hashee_bert": dict(compile="works", export="works", hidden_states="works", off="token_early_exit = False"),
    "hashee_roberta": dict(compile="works", export="works", hidden_states="works", off="token_early_exit = False"),
    "hashee_bart": dict(compile="works", export="works", hidden_states="works", off="token_early_exit = False"),
    "depth_adaptive_transformer": dict(
        compile="refuses", export="refuses", hidden_states="refuses", off="adaptive_depth = False"
    ),
}
BERT_BASED = ("deebert", "adapler", "hashee_bert")
SEQ2SEQ = ("hashee_bart", "depth_adaptive_transformer")
FAMILIES = list(ZOO)

# Tolerances against the eager float32 forward: a different kernel order (compile, export) moves a float32 logit
# by ~1e-6 on these tiny models; bfloat16 keeps 8 bits of mantissa.
ATOL = 1e-5
BF16_ATOL, BF16_RTOL = 0.15, 0.05


@contextlib.contextmanager
def full_depth(family, model):
    with ZOO[family].full_depth(model):
        yield model


@pytest.fixture(scope="module")
def tokenizer(tiny_tokenizer_dir):
    return AutoTokenizer.from_pretrained(tiny_tokenizer_dir)


def batch(family, tokenizer, texts=TEXTS):
    inputs = dict(tokenizer(list(texts), padding=True, return_tensors="pt"))
    if family in SEQ2SEQ:
        inputs.pop("token_type_ids")  # BART takes none
    return inputs


def adaptive_model(family, tokenizer, **overrides):
    """The tester's tiny model, set so that rows or tokens take different paths on `TEXTS`."""
    tester = ZOO[family]
    model = tester.create_model(**overrides)
    tester.make_adaptive(model, batch(family, tokenizer))
    return model


def other_batch(family, tokenizer, like):
    """Inputs of the same shape as `like` with other tokens and other padding, routed differently."""
    inputs = batch(family, tokenizer, ["w1 w2 w3 " + text for text in reversed(TEXTS)])
    return {name: tensor[:, : like["input_ids"].shape[1]] for name, tensor in inputs.items()}


def route(family, outputs):
    return ZOO[family].exit_signature(outputs)


def vanilla(family, model):
    tester = ZOO[family]
    plain = tester.vanilla_model(model)
    return plain.bart if family == "depth_adaptive_transformer" else plain


def encoder_states(family, outputs):
    return outputs.encoder_hidden_states if family == "hashee_bart" else outputs.hidden_states


def carried_positions(family, outputs, inputs, layer):
    """(B, T) bool: the real tokens that layer `layer` (1-based) did not compute, whose state is carried forward."""
    real = inputs["attention_mask"].bool()
    if family in ("deebert", "deeroberta"):
        return (outputs.exit_layers < layer)[:, None] & real
    if family in ("adapler", "adapler_roberta"):
        return ~outputs.kept_masks[layer - 1] & real
    exits = outputs.encoder_token_exit_layers if family == "hashee_bart" else outputs.token_exit_layers
    return (exits < layer) & real


def test_every_family_declares_its_switches():
    assert set(ZOO) == set(SWITCHES) == {t for method in METHODS.values() for t in method.model_types()}, "a new model family must join ZOO and SWITCHES"


# -- attention implementations ---------------------------------------------------------------------------------


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("implementation", ["flex_attention", "flash_attention_2"])
def test_unsupported_attention_implementation_is_refused_where_it_is_chosen(family, implementation, tmp_path):
    tester = ZOO[family]
    model = tester.create_model()
    message = rf"supports attn_implementation in \('eager', 'sdpa'\); got '{implementation}'"
    with pytest.raises(ValueError, match=message):
        model.set_attn_implementation(implementation)
    assert model.config._attn_implementation == "sdpa"
    model.save_pretrained(tmp_path)
    with pytest.raises(ValueError, match=message):
        tester.model_class.from_pretrained(tmp_path, attn_implementation=implementation)
    config = tester.get_config()
    config._attn_implementation = implementation
    with pytest.raises(ValueError, match=message):
        tester.model_class(config)
    for supported in ("eager", "sdpa"):
        loaded = tester.model_class.from_pretrained(tmp_path, attn_implementation=supported)
        assert loaded.config._attn_implementation == supported


# -- loading another family's checkpoint -----------------------------------------------------------------------


def save_foreign(kind, folder):
    """A tiny checkpoint of another family, with the tiny vocabulary."""
    torch.manual_seed(0)
    if kind == "bert":
        model = BertForSequenceClassification(BertConfig(**tiny_bert_config(), num_labels=3))
    elif kind == "roberta":
        model = RobertaForSequenceClassification(RobertaConfig(**tiny_bert_config(), num_labels=3, pad_token_id=0))
    elif kind == "distilbert":
        model = DistilBertForSequenceClassification(
            DistilBertConfig(vocab_size=99, dim=32, n_layers=2, n_heads=4, hidden_dim=37, num_labels=3)
        )
    elif kind == "t5":
        model = T5ForConditionalGeneration(
            T5Config(vocab_size=99, d_model=32, d_kv=8, d_ff=37, num_layers=2, num_heads=4)
        )
    else:
        model = MBartForConditionalGeneration(
            MBartConfig(vocab_size=99, d_model=32, encoder_layers=2, decoder_layers=2, encoder_attention_heads=4,
                        decoder_attention_heads=4, encoder_ffn_dim=37, decoder_ffn_dim=37, max_position_embeddings=64)
        )
    model.save_pretrained(folder)
    return folder


FOREIGN = [(family, kind) for family in BERT_BASED for kind in ("roberta", "distilbert")] + [
    ("deeroberta", "bert"), ("deeroberta", "distilbert"), ("hashee_roberta", "bert"),
    ("hashee_roberta", "distilbert"), ("adapler_roberta", "bert"), ("adapler_roberta", "distilbert")] + [
    (family, kind) for family in SEQ2SEQ for kind in ("t5", "mbart")
]


@pytest.mark.parametrize(("family", "kind"), FOREIGN)
def test_checkpoint_of_another_family_is_refused(family, kind, tmp_path):
    folder = save_foreign(kind, tmp_path / kind)
    model_class = ZOO[family].model_class
    message = rf"loads checkpoints with model_type in .*; .* is a '{kind}' checkpoint"
    with pytest.raises(ValueError, match=message):
        model_class.from_pretrained(folder)
    with pytest.raises(ValueError, match=message):  # an explicit config does not make the weights fit
        model_class.from_pretrained(folder, config=ZOO[family].get_config())


@pytest.mark.parametrize("family", FAMILIES)
def test_checkpoint_of_the_vanilla_family_loads(family, tokenizer, tmp_path):
    model = adaptive_model(family, tokenizer)
    inputs = batch(family, tokenizer)
    vanilla(family, model).save_pretrained(tmp_path)
    loaded = ZOO[family].model_class.from_pretrained(tmp_path, config=model.config).eval()
    with torch.inference_mode(), full_depth(family, model), full_depth(family, loaded):
        torch.testing.assert_close(loaded(**inputs).logits, model(**inputs).logits, rtol=0, atol=0)


# -- output_hidden_states / output_attentions --------------------------------------------------------------------


@pytest.mark.parametrize("family", FAMILIES)
def test_hidden_states_are_computed_or_carried_forward(family, tokenizer):
    model = adaptive_model(family, tokenizer)
    inputs = batch(family, tokenizer)
    extra = {"output_kept_masks": True} if family in ("adapler", "adapler_roberta") else {}
    if SWITCHES[family]["hidden_states"] == "refuses":
        with pytest.raises(ValueError, match=r"`output_hidden_states=True` .* is not supported .* BartForConditional"):
            model(**inputs, output_hidden_states=True)
        model.config.output_hidden_states = True
        with pytest.raises(ValueError, match="output_hidden_states"):
            model(**inputs)
        return
    with torch.inference_mode():
        outputs = model(**inputs, output_hidden_states=True, **extra)
        model.config.output_hidden_states = True  # the config field is honoured too
        from_config = model(**inputs, **extra)
        model.config.output_hidden_states = False
        rows = range(0, len(TEXTS), 2)  # half the rows, each routed its own way, keep the test fast
        singles = {row: model(**batch(family, tokenizer, [TEXTS[row]]), output_hidden_states=True) for row in rows}
    states = encoder_states(family, outputs)
    num_layers = model.config.num_hidden_layers
    assert len(states) == num_layers + 1 and len(encoder_states(family, from_config)) == num_layers + 1
    carried_somewhere = False
    for layer in range(1, num_layers + 1):
        carried = carried_positions(family, outputs, inputs, layer)  # (B, T)
        carried_somewhere |= bool(carried.any())
        assert torch.equal(states[layer][carried], states[layer - 1][carried]), f"layer {layer} changed a carried state"
    assert carried_somewhere, "the adaptive model must leave some rows or tokens out, or this test checks nothing"
    for row, single in singles.items():  # what was computed is what the row alone computes
        length = int(inputs["attention_mask"][row].sum())
        for batched_state, single_state in zip(states, encoder_states(family, single)):
            torch.testing.assert_close(batched_state[row, :length], single_state[0, :length], rtol=1e-4, atol=ATOL)


@pytest.mark.parametrize("family", FAMILIES)
def test_full_depth_hidden_states_and_attentions_equal_the_vanilla_model(family, tokenizer):
    model = adaptive_model(family, tokenizer)
    inputs = batch(family, tokenizer)
    if family == "depth_adaptive_transformer":
        with full_depth(family, model), pytest.raises(ValueError, match="`output_attentions=True` .* not supported"):
            model(**inputs, output_attentions=True)
        return
    model.set_attn_implementation("eager")
    plain = vanilla(family, model)
    with torch.inference_mode(), full_depth(family, model):
        ours = model(**inputs, output_hidden_states=True, output_attentions=True)
        theirs = plain(**inputs, output_hidden_states=True, output_attentions=True)
    pairs = [(encoder_states(family, ours), encoder_states(family, theirs))]
    pairs.append((ours.encoder_attentions, theirs.encoder_attentions) if family == "hashee_bart"
                 else (ours.attentions, theirs.attentions))
    for mine, reference in pairs:
        assert len(mine) == len(reference) > 0
        for a, b in zip(mine, reference):
            torch.testing.assert_close(a, b, rtol=0, atol=1e-6)


@pytest.mark.parametrize("family", FAMILIES)
def test_attentions_are_refused_where_they_would_be_partial_or_missing(family, tokenizer):
    model = adaptive_model(family, tokenizer)
    inputs = batch(family, tokenizer)
    if family == "depth_adaptive_transformer":
        expected = r"`output_attentions=True` .* not supported by DepthAdaptiveTransformer"
    else:
        expected = rf"attention weights only at full depth.*Set `config.{SWITCHES[family]['off']}`"
    with pytest.raises(ValueError, match=expected):
        model(**inputs, output_attentions=True)
    if family != "depth_adaptive_transformer":  # full depth, but sdpa computes no weights
        with full_depth(family, model), pytest.raises(ValueError, match="attn_implementation='eager'"):
            model(**inputs, output_attentions=True)
    model.set_attn_implementation("eager")  # transformers refuses the config field with sdpa itself
    model.config.output_attentions = True  # the config field is honoured too
    with pytest.raises(ValueError, match="output_attentions" if family == "depth_adaptive_transformer" else expected):
        model(**inputs)


# -- gradient checkpointing ---------------------------------------------------------------------------------------


def training_step(family, model, inputs, labels):
    """Loss and gradients of one step, the number of query projections run (forward + recompute) and the bytes
    autograd kept for the backward outside checkpointed regions."""
    projections = [module for name, module in model.named_modules()
                   if name.endswith(("attention.self.query", "self_attn.q_proj"))]
    calls, saved = [0], [0]
    hooks = [module.register_forward_hook(lambda *args: calls.__setitem__(0, calls[0] + 1)) for module in projections]

    def pack(tensor):
        saved[0] += tensor.numel() * tensor.element_size()
        return tensor

    model.zero_grad()
    torch.manual_seed(0)
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        loss = model(**inputs, labels=labels).loss
    loss.backward()
    for hook in hooks:
        hook.remove()
    grads = {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}
    return loss.detach(), grads, calls[0], saved[0]


@pytest.mark.parametrize("family", FAMILIES)
def test_gradient_checkpointing_recomputes_layers_and_keeps_less(family, tokenizer):
    model = ZOO[family].create_model().train()  # training runs every layer: no routing to set up
    inputs = batch(family, tokenizer, TEXTS[:4])
    labels = ZOO[family].make_labels(model, inputs) if hasattr(ZOO[family], "make_labels") else (
        torch.arange(len(inputs["input_ids"])) % model.config.num_labels)
    if family in ("adapler", "adapler_roberta"):  # AdapLeR refuses to train without the saliencies its contribution predictors learn from
        generator = torch.Generator().manual_seed(0)
        inputs["saliency"] = torch.rand(inputs["input_ids"].shape, generator=generator) * inputs["attention_mask"]
    loss, grads, calls, saved = training_step(family, model, inputs, labels)
    with pytest.warns(FutureWarning, match="gradient_checkpointing_enable"):  # the 5.x name of the switch
        model.gradient_checkpointing_enable()
    checkpointed_loss, checkpointed_grads, recomputed_calls, checkpointed_saved = training_step(
        family, model, inputs, labels)
    assert recomputed_calls == 2 * calls, "every layer must run again in the backward pass"
    assert checkpointed_saved < 0.6 * saved, f"kept {checkpointed_saved} bytes for the backward, {saved} without"
    torch.testing.assert_close(checkpointed_loss, loss, rtol=0, atol=1e-6)
    assert grads.keys() == checkpointed_grads.keys()
    for name in grads:
        torch.testing.assert_close(checkpointed_grads[name], grads[name], rtol=1e-4, atol=1e-6, msg=name)


@pytest.mark.parametrize("family", ["hashee_bert", "hashee_roberta", "hashee_bart"])
def test_hooks_on_hashee_encoder_layers_fire_on_the_token_exit_path(family, tokenizer):
    """Tools attach forward hooks to `encoder.layer[i]` (activation capture, interpretability, offloading): on the
    token-exit path each layer is still called as a module, on the tokens still running, so its hooks fire."""
    model = adaptive_model(family, tokenizer)
    inputs = batch(family, tokenizer)
    encoder = model.hash_encoder()
    layers = encoder.layers if family == "hashee_bart" else encoder.layer
    seen = []
    handles = [layer.register_forward_hook(lambda module, args, output, index=index: seen.append((index, output.shape)))
               for index, layer in enumerate(layers)]
    with torch.inference_mode():
        outputs = model(**inputs)
    for handle in handles:
        handle.remove()
    exits = outputs.encoder_token_exit_layers if family == "hashee_bart" else outputs.token_exit_layers  # (B, T)
    running = [int((exits > index).sum(dim=1).max()) for index in range(len(layers))]  # M per layer
    assert min(running) < exits.shape[1], "some tokens must exit early, or this test checks nothing"
    hidden = model.config.hidden_size if family != "hashee_bart" else model.config.d_model
    assert seen == [(index, (len(exits), count, hidden)) for index, count in enumerate(running) if count > 0]


# -- resize_token_embeddings ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("family", FAMILIES)
def test_resize_token_embeddings_keeps_old_ids_and_runs_new_ones(family, tokenizer):
    model = adaptive_model(family, tokenizer)
    inputs = batch(family, tokenizer)
    old_size = model.config.vocab_size
    with torch.inference_mode():
        before = model(**inputs)
    model.resize_token_embeddings(old_size + 5, mean_resizing=False)
    assert model.config.vocab_size == old_size + 5
    with torch.inference_mode():
        after = model(**inputs)
        with_new_id = dict(inputs, input_ids=inputs["input_ids"].clone())
        with_new_id["input_ids"][0, 1] = old_size + 4
        new_outputs = model(**with_new_id)
    torch.testing.assert_close(after.logits[..., :old_size], before.logits, rtol=0, atol=0)
    assert route(family, after) == route(family, before)
    assert torch.isfinite(new_outputs.logits).all()
    if family.startswith("hashee"):  # the new id runs every layer, as ids the table builder never saw
        exits = new_outputs.encoder_token_exit_layers if family == "hashee_bart" else new_outputs.token_exit_layers
        assert exits[0, 1] == model.config.num_hidden_layers
        assert model.hash_table.shape == (old_size + 5,)


# -- bfloat16 --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("family", FAMILIES)
def test_bfloat16_is_close_to_float32(family, tokenizer):
    model = adaptive_model(family, tokenizer)
    inputs = batch(family, tokenizer)
    with torch.inference_mode():
        reference = model(**inputs)
        with full_depth(family, model):
            full_reference = model(**inputs)
        model.to(torch.bfloat16)
        halved = model(**inputs)
        with full_depth(family, model):
            full_halved = model(**inputs)
    torch.testing.assert_close(full_halved.logits.float(), full_reference.logits, rtol=BF16_RTOL, atol=BF16_ATOL)
    if family.startswith("hashee"):  # exits fixed by the table: the same in any dtype
        assert route(family, halved) == route(family, reference)
        torch.testing.assert_close(halved.logits.float(), reference.logits, rtol=BF16_RTOL, atol=BF16_ATOL)


def test_adapler_keeps_the_tokens_its_float32_scores_select(tokenizer):
    """AdapLeR's kept tokens are decided on the model's dtype (README): float32 is the reference, and its decisions
    are those of the float32 contribution scores against δ = η / n, whatever the dtype the model is later run in."""
    model = adaptive_model("adapler", tokenizer)
    inputs = batch("adapler", tokenizer)
    present = inputs["attention_mask"].bool()
    ratios = first_layer_ratios(model, inputs)  # n * S̃^0 in float32
    kept = ((ratios >= model.eta[0]) & present)
    kept[:, 0] = True
    with torch.inference_mode():
        float32_outputs = model(**inputs)
        model.to(torch.bfloat16)
        bfloat16_outputs = model(**inputs)
    assert float32_outputs.kept_tokens[:, 0].tolist() == kept.sum(-1).tolist()
    assert (float32_outputs.kept_tokens[:, 0] < present.sum(-1)).any(), "some row must drop tokens"
    same = [row for row in range(len(TEXTS))
            if bfloat16_outputs.kept_tokens[row].tolist() == float32_outputs.kept_tokens[row].tolist()]
    assert same, "with η in a wide gap of the scores, bfloat16 keeps the same tokens for most rows"
    torch.testing.assert_close(bfloat16_outputs.logits[same].float(), float32_outputs.logits[same],
                               rtol=BF16_RTOL, atol=BF16_ATOL)


# -- tracing and exporting -------------------------------------------------------------------------------------------


class LogitsOf(torch.nn.Module):
    """A positional (input_ids, attention_mask) -> logits wrapper, the form exporters and tracers take."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask):
        return self.model(input_ids=input_ids, attention_mask=attention_mask).logits


def capture(how, module, example):
    if how == "torch.export":
        return torch.export.export(module, example).module()
    with torch.no_grad(), warnings.catch_warnings():  # the tracer of torch.onnx.export(dynamo=False)
        # the tracer reads every module property, transformers' deprecated alias among them
        warnings.filterwarnings("ignore", message="`is_gradient_checkpointing` is deprecated", category=FutureWarning)
        warnings.filterwarnings("ignore", message="`torch.jit.trace", category=DeprecationWarning)
        return torch.jit.trace(module, example, check_trace=False)


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("how", ["torch.export", "torch.jit.trace"])
def test_export_keeps_the_exits_or_refuses(family, how, tokenizer):
    model = adaptive_model(family, tokenizer)
    inputs, other = batch(family, tokenizer), None
    other = other_batch(family, tokenizer, inputs)
    module = LogitsOf(model).eval()
    example = (inputs["input_ids"], inputs["attention_mask"])
    if SWITCHES[family]["export"] == "refuses":
        with pytest.raises(ValueError, match=rf"Export the full-depth model.*`model.config.{SWITCHES[family]['off']}`"):
            capture(how, module, example)
        return
    graph = capture(how, module, example)
    with torch.inference_mode():
        assert route(family, model(**other)) != route(family, model(**inputs)), "the second batch must route otherwise"
        for batch_inputs in (inputs, other):
            args = (batch_inputs["input_ids"], batch_inputs["attention_mask"])
            torch.testing.assert_close(graph(*args), module(*args), rtol=1e-4, atol=ATOL)
            if how == "torch.export":  # the exported program keeps the data-dependent widths: the same saving
                exported_flops = count_flops(lambda: graph(*args))
                with full_depth(family, model):
                    full_flops = count_flops(lambda: module(*args))
                assert exported_flops == count_flops(lambda: module(*args)) < full_flops


@pytest.mark.parametrize("family", [family for family in FAMILIES if SWITCHES[family]["export"] == "refuses"])
def test_full_depth_export_equals_eager(family, tokenizer):
    """What the refusals point to: the full-depth model exports, and the graph gives the eager outputs."""
    model = adaptive_model(family, tokenizer)
    inputs = batch(family, tokenizer)
    other = other_batch(family, tokenizer, inputs)
    module = LogitsOf(model).eval()
    with full_depth(family, model):
        graph = capture("torch.export", module, (inputs["input_ids"], inputs["attention_mask"]))
        with torch.inference_mode():
            args = (other["input_ids"], other["attention_mask"])
            torch.testing.assert_close(graph(*args), module(*args), rtol=0, atol=ATOL)


def test_legacy_onnx_export_refuses_adaptive_deebert(tokenizer, tmp_path):
    pytest.importorskip("onnx")  # torch.onnx.export needs it even for the TorchScript exporter
    model = adaptive_model("deebert", tokenizer)
    inputs = batch("deebert", tokenizer)
    example = (inputs["input_ids"], inputs["attention_mask"])
    with pytest.raises(ValueError, match="Export the full-depth model"):
        torch.onnx.export(LogitsOf(model).eval(), example, tmp_path / "deebert.onnx", dynamo=False)


# -- torch.compile ---------------------------------------------------------------------------------------------------


def compiled_matches_eager(family, model, inputs, backend):
    compiled = torch.compile(model, backend=backend)
    with torch.inference_mode():
        expected, actual = model(**inputs), compiled(**inputs)
    assert route(family, actual) == route(family, expected)
    torch.testing.assert_close(actual.logits, expected.logits, rtol=1e-4, atol=ATOL)


@pytest.mark.parametrize("family", [family for family in FAMILIES if SWITCHES[family]["compile"] == "refuses"])
def test_compile_refuses_adaptive_decoding(family, tokenizer):
    model = adaptive_model(family, tokenizer)
    compiled = torch.compile(model, backend="eager")  # the refusal is raised before any backend sees a graph
    with pytest.raises(ValueError, match=rf"torch.compile .* `model.config.{SWITCHES[family]['off']}`"):
        compiled(**batch(family, tokenizer))
    torch._dynamo.reset()


@pytest.mark.slow
@pytest.mark.parametrize("family", ["hashee_bart"])  # reduced matrix: token exits under inductor
def test_compiled_adaptive_model_equals_eager(family, tokenizer):
    torch._dynamo.reset()
    compiled_matches_eager(family, adaptive_model(family, tokenizer), batch(family, tokenizer), "inductor")
    torch._dynamo.reset()


@pytest.mark.slow
@pytest.mark.parametrize("family", ["depth_adaptive_transformer"])  # reduced matrix: the family that refuses
def test_compiled_full_depth_model_equals_eager(family, tokenizer):
    torch._dynamo.reset()
    model = adaptive_model(family, tokenizer)
    with full_depth(family, model):
        compiled_matches_eager(family, model, batch(family, tokenizer), "inductor")
    torch._dynamo.reset()


# -- the pieces every Hub folder carries its own copy of ---------------------------------------------------------------
#
# Each model folder is self-contained Hub code (its modeling file imports only torch, transformers and its sibling
# configuration), so a piece the folders share is written once and copied, each copy marked on the line above its
# `def`, `class` or assignment (above its decorators, at its indentation):
#
#     # Copied from adaptive_zoo.models.deebert.modeling_deebert.check_checkpoint_model_type
#     # Copied from adaptive_zoo.models.deebert.modeling_deebert.DeeBertPreTrainedModel.from_pretrained
#     # Copied from adaptive_zoo.models.deebert.configuration_deebert.check_encoder_classifier with DeeBERT->AdapLeR
#
# The dotted path names a module of this package and a definition in it (a function, class, method or module-level
# assignment); `with Old->New[,Old2->New2]` renames, applied in order to the source's text, before comparing. The
# copy must equal the source to the character (decorators, docstring and comments included).

COPIED_FROM = re.compile(
    r"^(?P<indent>\s*)# Copied from (?P<path>[\w.]+)(?: with (?P<renames>\S+->\S*(?:,\S+->\S*)*))?\s*$"
)
DEFINITIONS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Assign, ast.AnnAssign)


def definition_names(node: ast.AST) -> list[str]:
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return [node.name]
    targets = node.targets if isinstance(node, ast.Assign) else [node.target]
    return [target.id for target in targets if isinstance(target, ast.Name)]


def definition_source(lines: list[str], node: ast.AST) -> str:
    """The text of a definition, decorators included, dedented."""
    first = min([node.lineno, *(decorator.lineno for decorator in getattr(node, "decorator_list", []))])
    return textwrap.dedent("\n".join(lines[first - 1 : node.end_lineno]))


def find_definition(tree: ast.Module, names: list[str]) -> ast.AST | None:
    """The definition at `names` (e.g. ["DeeBertPreTrainedModel", "from_pretrained"]) in a module, or None."""
    body, node = tree.body, None
    for name in names:
        node = next((child for child in body if isinstance(child, DEFINITIONS) and name in definition_names(child)),
                    None)
        if node is None:
            return None
        body = node.body if isinstance(node, ast.ClassDef) else []
    return node


def copied_from_problems(source_root: Path, package_dir: Path) -> tuple[int, list[str]]:
    """Check every `# Copied from` marker in the Python files under `package_dir` (a package below `source_root`):
    the number of marked copies, and what is wrong (a copy that differs from its source, a marker that points at
    nothing, one that stands above no definition)."""
    count, problems = 0, []
    parsed: dict[Path, tuple[ast.Module, list[str]]] = {}

    def parse(path: Path):
        if path not in parsed:
            text = path.read_text()
            parsed[path] = (ast.parse(text), text.splitlines())
        return parsed[path]

    for path in sorted(package_dir.rglob("*.py")):
        tree, lines = parse(path)
        starts = {}  # first line (decorators included) of every definition -> the definition
        for node in ast.walk(tree):
            if isinstance(node, DEFINITIONS):
                starts[min([node.lineno, *(d.lineno for d in getattr(node, "decorator_list", []))])] = node
        for number, line in enumerate(lines, start=1):
            if "# Copied from" not in line:
                continue
            where = f"{path.relative_to(source_root)}:{number}"
            marker = COPIED_FROM.match(line)
            copy = starts.get(number + 1)
            if marker is None:
                problems.append(f"{where}: malformed marker {line.strip()!r}")
                continue
            if copy is None or copy.col_offset != len(marker["indent"]):
                problems.append(f"{where}: the marker stands above no definition at its indentation")
                continue
            parts = marker["path"].split(".")
            split = next((i for i in range(len(parts), 0, -1)
                          if source_root.joinpath(*parts[:i]).with_suffix(".py").is_file()), None)
            original = None
            if split is not None:
                original_path = source_root.joinpath(*parts[:split]).with_suffix(".py")
                original_tree, original_lines = parse(original_path)
                original = find_definition(original_tree, parts[split:])
            if original is None or not parts[split:]:
                problems.append(f"{where}: `{marker['path']}` points at nothing")
                continue
            if original_path == path and original is copy:
                problems.append(f"{where}: `{marker['path']}` points at the copy itself")
                continue
            expected = definition_source(original_lines, original)
            for rename in (marker["renames"] or "").split(",") if marker["renames"] else []:
                old, new = rename.split("->")
                expected = expected.replace(old, new)
            if definition_source(lines, copy) != expected:
                problems.append(f"{where}: differs from {marker['path']}" + (
                    f" with {marker['renames']}" if marker["renames"] else ""))
            count += 1
    return count, problems


def test_copied_checks_are_identical_to_their_source():
    """Every `# Copied from` marker in the models' folders is found and checked: a copy that drifts from its source
    would make one model check or compute differently; a marker that points at nothing checks nothing."""
    package_dir = Path(models_package.__file__).parent
    source_root = package_dir.parents[1]  # the folder that holds `adaptive_zoo`
    count, problems = copied_from_problems(source_root, package_dir)
    assert not problems, "\n".join(problems)
    assert count >= 20, f"found only {count} marked copies"


def test_copied_from_check_reports_drift_renames_and_dangling_markers(tmp_path):
    package = tmp_path / "zoo" / "models"
    (package / "a").mkdir(parents=True)
    (package / "b").mkdir()
    (package / "a" / "modeling_a.py").write_text(textwrap.dedent('''
        LIMIT = 3


        class APreTrained:
            @classmethod
            def load(cls, path):
                """Load A."""
                return cls(path)  # comment


        def check(value):
            return value < LIMIT
        '''))
    (package / "b" / "modeling_b.py").write_text(textwrap.dedent('''
        # Copied from zoo.models.a.modeling_a.LIMIT
        LIMIT = 3


        class BPreTrained:
            # Copied from zoo.models.a.modeling_a.APreTrained.load with A.->B.
            @classmethod
            def load(cls, path):
                """Load B."""
                return cls(path)  # comment


        # Copied from zoo.models.a.modeling_a.check
        def check(value):
            return value <= LIMIT


        # Copied from zoo.models.a.modeling_a.missing
        def missing():
            pass


        # Copied from zoo.models.a.modeling_a.check

        def too_far(value):
            return value
        '''))
    count, problems = copied_from_problems(tmp_path, package)
    assert count == 3
    assert problems == [
        "zoo/models/b/modeling_b.py:14: differs from zoo.models.a.modeling_a.check",
        "zoo/models/b/modeling_b.py:19: `zoo.models.a.modeling_a.missing` points at nothing",
        "zoo/models/b/modeling_b.py:24: the marker stands above no definition at its indentation",
    ]
