"""AdapLeR: the shared model checks (through the mixin) and what is AdapLeR's own."""

from __future__ import annotations

import math

import pytest
import torch
from datasets import Dataset
from huggingface_hub.errors import StrictDataclassError
from mixins import AdaptiveModelTesterMixin, config_set, vanilla_from_config
from tiny import TEXTS, tiny_bert_config, tiny_roberta_config
from torch import nn
from transformers import AutoTokenizer

from adaptive_zoo.models.adapler import (
    AdapLeRBertForSequenceClassification,
    AdapLeRConfig,
    AdapLeRRobertaConfig,
    AdapLeRRobertaForSequenceClassification,
    amplify_cls,
    dummy_variable,
    inclusive_kl,
    modeling_adapler,
    soft_removal,
)
from adaptive_zoo.models.adapler.modeling_adapler import ETA_MIN
from adaptive_zoo.training.adapler import SALIENCY_COLUMN, SaliencyCollator


def first_layer_ratios(model, inputs) -> torch.Tensor:
    """n * S̃^0 of every token (1 is the uniform level): CP_0 reads the embeddings, so this is exact."""
    present = inputs["attention_mask"].bool()
    with torch.no_grad():
        hidden = model.base_model.embeddings(input_ids=inputs["input_ids"], token_type_ids=inputs.get("token_type_ids"))
        return model.contribution_predictors[0](hidden, present) * present.sum(-1, keepdim=True)  # (B, T)


def eta_in_widest_gap(ratios: torch.Tensor, present: torch.Tensor, min_log_gap: float = 0.2) -> float | None:
    """An η^0 far (in log ratio) from every token's n * S̃^0, such that some rows drop no token while the batch's
    longest kept row is at least 2 tokens shorter than the padded length (so the batch really shrinks)."""
    candidates = present.clone()
    candidates[:, 0] = False  # [CLS] is kept whatever its score
    values = ratios[candidates].sort().values
    best, best_gap = None, min_log_gap
    for low, high in zip(values[:-1].tolist(), values[1:].tolist()):
        high = min(high, 1.0)
        if high <= low or math.log(high / low) <= best_gap:
            continue
        eta = math.sqrt(low * high)
        drops = (ratios < eta) & candidates  # (B, T)
        kept = present.sum(-1) - drops.sum(-1)  # (B,)
        if (~drops.any(-1)).any() and int(kept.max()) <= present.shape[1] - 2:
            best, best_gap = eta, math.log(high / low)
    return best


def full_depth(model):
    """The method's own off setting, inference_mode="off"."""
    return config_set(model, inference_mode="off")



class AdapLeRModelTester:
    model_class = AdapLeRBertForSequenceClassification
    auto_class = "AutoModelForSequenceClassification"
    hub_code_files = ("configuration_adapler.py", "modeling_adapler.py")
    texts = TEXTS
    invalid_configs = [
        dict(eta=[1.5, 1.0, 1.0, 1.0]),
        dict(eta=[0.0, 1.0, 1.0, 1.0]),
        dict(eta=[1.0, 1.0, 1.0]),
        dict(theta=[1.0, 0.0, 1.0, 1.0]),
        dict(theta=[1.0, 1.0]),
        dict(beta=0.1),
        dict(beta=0.0),
        dict(lambda_init=0.0),
        dict(lambda_growth=0.5),
        dict(gamma=-1.0),
        dict(phi=-1.0),
        dict(inference_mode="prune"),
        dict(contribution_predictor_hidden_size=0),
        dict(num_labels=1),
        dict(problem_type="multi_label_classification"),
        dict(is_decoder=True),
    ]

    def get_config(self, **overrides):
        # Narrow CPs: at this tiny width a 64-wide CP would cost as much as a layer.
        return AdapLeRConfig(
            **tiny_bert_config(), **{"num_labels": 3, "contribution_predictor_hidden_size": 4, **overrides}
        )

    def create_model(self, seed: int = 0, **overrides):
        torch.manual_seed(seed)
        return AdapLeRBertForSequenceClassification(self.get_config(**overrides)).eval()

    vanilla_model = staticmethod(vanilla_from_config)
    full_depth = staticmethod(full_depth)

    def make_adaptive(self, model, inputs):
        """CP_0 drops tokens from some rows (the longest among them) and none from others; deeper layers drop
        nothing (η = 1e-3 against near-uniform untrained CPs). η^0 sits in a wide gap of the scores, so float
        noise between batched and single-row runs cannot flip a decision."""
        present = inputs["attention_mask"].bool()
        for _ in range(8):
            eta = eta_in_widest_gap(first_layer_ratios(model, inputs), present)
            if eta is not None:
                break
            with torch.no_grad():  # random tiny CPs are near-uniform: sharpen CP_0 until its scores spread out
                model.contribution_predictors[0].output.weight.mul_(3.0)
        assert eta is not None, "no usable eta found"
        with torch.no_grad():
            model.eta.copy_(torch.tensor([eta] + [ETA_MIN] * (model.config.num_hidden_layers - 1)))
        model.sync_config_from_parameters()

    @staticmethod
    def exit_signature(outputs):
        return outputs.kept_tokens.tolist()

    def train_features(self, tokenizer):
        # A `saliency` column, as phase 2 stores it: training with soft removal refuses to run without one.
        encoded = tokenizer(list(self.texts) * 2)
        generator = torch.Generator().manual_seed(0)
        saliency = [torch.rand(len(ids), generator=generator).tolist() for ids in encoded["input_ids"]]
        return Dataset.from_dict({**encoded, "labels": [i % 3 for i in range(2 * len(self.texts))],
                                  SALIENCY_COLUMN: saliency})

    @staticmethod
    def data_collator(tokenizer):
        return SaliencyCollator(tokenizer)


class TestAdapLeR(AdaptiveModelTesterMixin):
    tester = AdapLeRModelTester()


class AdapLeRRobertaModelTester(AdapLeRModelTester):
    """AdapLeR-RoBERTa: the same checks against RobertaForSequenceClassification."""

    model_class = AdapLeRRobertaForSequenceClassification

    def get_config(self, **overrides):
        return AdapLeRRobertaConfig(
            **tiny_roberta_config(), **{"num_labels": 3, "contribution_predictor_hidden_size": 4, **overrides}
        )

    def create_model(self, seed: int = 0, **overrides):
        torch.manual_seed(seed)
        return AdapLeRRobertaForSequenceClassification(self.get_config(**overrides)).eval()


class TestAdapLeRRoberta(AdaptiveModelTesterMixin):
    tester = AdapLeRRobertaModelTester()


# -- AdapLeR's own behaviour --------------------------------------------------------------------------------


@pytest.fixture
def inputs(tiny_tokenizer_dir):
    return dict(AutoTokenizer.from_pretrained(tiny_tokenizer_dir)(TEXTS, padding=True, return_tensors="pt"))


def adaptive_model(inputs):
    tester = AdapLeRModelTester()
    model = tester.create_model()
    tester.make_adaptive(model, inputs)
    return model


class FixedPredictor(nn.Module):
    """Stands in for a CP: fixed logits per position (extra positions get 0), softmax over present tokens."""

    def __init__(self, position_logits: list[float]):
        super().__init__()
        self.position_logits = position_logits

    def log_scores(self, hidden_states, present):
        if present is None:  # the single-row path: every token present
            present = torch.ones(hidden_states.shape[:2], dtype=torch.bool)
        logits = torch.zeros(present.shape)
        head = torch.tensor(self.position_logits)[: present.shape[1]]
        logits[:, : len(head)] = head
        return torch.log_softmax(logits.masked_fill(~present, float("-inf")), dim=-1)

    def forward(self, hidden_states, present):
        return self.log_scores(hidden_states, present).exp()


def training_batch(inputs, seed=0):
    generator = torch.Generator().manual_seed(seed)
    saliency = torch.rand(inputs["input_ids"].shape, generator=generator) * inputs["attention_mask"]
    labels = torch.arange(inputs["input_ids"].shape[0]) % 3
    return {**inputs, "labels": labels, "saliency": saliency}


def test_soft_removal_matches_equation_4():
    delta, lam, beta = 0.25, 9.0, 0.05
    scores = torch.tensor([0.0, 0.1, 0.25, 0.6, 1.0], dtype=torch.float64)
    expected = torch.tensor(
        [
            (lam / delta) * (0.0 - delta) - beta / lam,  # removal zone: λ_adj (S - δ) - β/λ
            (lam / delta) * (0.1 - delta) - beta / lam,
            -beta / lam,  # at δ
            (0.6 - 1) * beta / ((1 - delta) * lam),  # leaky zone: (S - 1) β / ((1 - δ) λ)
            0.0,  # S = 1: nothing
        ],
        dtype=torch.float64,
    )
    torch.testing.assert_close(soft_removal(scores, delta, lam, beta), expected)
    assert soft_removal(torch.tensor([0.1], dtype=torch.float64), delta, lam, beta).item() == pytest.approx(-5.4055556)
    # Continuous at δ: both branches meet at -β/λ.
    eps = 1e-9
    below, above = soft_removal(torch.tensor([delta - eps, delta + eps], dtype=torch.float64), delta, lam, beta)
    assert below.item() == pytest.approx(-beta / lam, abs=1e-6) and above.item() == pytest.approx(-beta / lam, abs=1e-6)
    # Steeper removal as λ grows (Figure 2), and per-row δ broadcasts.
    assert soft_removal(torch.tensor([0.1]), delta, 81.0, beta) < soft_removal(torch.tensor([0.1]), delta, 3.0, beta)
    rows = soft_removal(torch.tensor([[0.2, 0.2], [0.2, 0.2]]), torch.tensor([[0.1], [0.5]]), lam, beta)
    assert (rows[0] > -beta / lam).all() and (rows[1] < -beta / lam).all()


def test_inclusive_kl_is_target_first():
    p, q = torch.tensor([[0.7, 0.2, 0.1]]), torch.tensor([[0.4, 0.4, 0.2]])
    expected = 0.7 * math.log(0.7 / 0.4) + 0.2 * math.log(0.2 / 0.4) + 0.1 * math.log(0.1 / 0.2)
    assert inclusive_kl(p, q.log()).item() == pytest.approx(expected, rel=1e-5)
    swapped = 0.4 * math.log(0.4 / 0.7) + 0.4 * math.log(0.4 / 0.2) + 0.2 * math.log(0.2 / 0.1)
    assert inclusive_kl(q, p.log()).item() == pytest.approx(swapped, rel=1e-5)
    assert abs(expected - swapped) > 1e-3
    # Absent tokens (target 0, log-prediction -inf) contribute nothing.
    padded = inclusive_kl(torch.tensor([[0.7, 0.2, 0.1, 0.0]]), torch.tensor([[0.4, 0.4, 0.2, 0.0]]).log())
    assert padded.item() == pytest.approx(expected, rel=1e-5)


def test_cp_loss_is_weighted_inclusive_kl_against_cls_amplified_saliency(inputs):
    """With uniform CPs, L_CP = Σ_ℓ (L - ℓ) mean_b KL(Ŝ^ℓ || uniform), Ŝ^ℓ from eq. 7 with each layer's θ."""
    model = AdapLeRModelTester().create_model(theta=[1.0, 2.0, 3.0, 4.0])
    with torch.no_grad():
        for predictor in model.contribution_predictors:
            predictor.output.weight.zero_()
    batch = training_batch(inputs)
    model.train()
    outputs = model(**batch)
    present = inputs["attention_mask"].bool()
    n = present.sum(-1, keepdim=True)
    expected = 0.0
    for layer, theta in enumerate([1.0, 2.0, 3.0, 4.0]):
        saliency = batch["saliency"].clone()
        saliency[:, 0] *= theta
        target = saliency / saliency.sum(-1, keepdim=True)  # eq. 7
        kl = torch.where(present, torch.xlogy(target, target * n), 0.0).sum(-1)  # Σ Ŝ log(Ŝ / (1/n))
        expected += (4 - layer) * kl.mean()
    torch.testing.assert_close(outputs.cp_loss, expected)
    torch.testing.assert_close(outputs.loss, outputs.ce_loss + 5e-3 * outputs.cp_loss + 5e-4 * outputs.length_loss)
    assert 0 < outputs.length_loss.item() <= 1


def test_amplify_cls_derivative_matches_equations_11_and_14():
    scores = torch.softmax(torch.tensor([[0.3, -1.0, 0.5, 2.0, 0.1]], dtype=torch.float64), dim=-1)
    theta = torch.tensor(2.5, dtype=torch.float64, requires_grad=True)
    theta_d = dummy_variable(theta)
    assert theta_d.item() == 1.0
    amplified = amplify_cls(scores, theta_d)
    torch.testing.assert_close(amplified, scores)  # θ_d = 1: same distribution
    s1 = scores[0, 0]
    for i in range(scores.shape[1]):
        (grad,) = torch.autograd.grad(amplified[0, i], theta, retain_graph=True)
        eq11 = s1 * (1 - s1) if i == 0 else -s1 * scores[0, i]  # ∂S̃_i / ∂θ_d at θ_d = 1
        torch.testing.assert_close(grad, eq11 / theta.detach())  # eq. 14: ∂/∂θ = (∂/∂θ_d) / θ


def test_model_theta_gradient_is_dummy_gradient_over_theta(inputs, monkeypatch):
    dummies = []

    def recording_dummy(theta):
        theta_d = dummy_variable(theta)
        theta_d.retain_grad()
        dummies.append(theta_d)
        return theta_d

    monkeypatch.setattr(modeling_adapler, "dummy_variable", recording_dummy)
    model = AdapLeRModelTester().create_model(theta=[0.5, 2.0, 3.0, 1.5]).train()
    model(**training_batch(inputs)).loss.backward()
    assert len(dummies) == model.config.num_hidden_layers
    grad_theta_d = torch.stack([d.grad for d in dummies])
    assert grad_theta_d.abs().min() > 0
    torch.testing.assert_close(model.theta.grad, grad_theta_d / model.theta.detach())


def test_gradient_routing_of_the_two_objectives(inputs):
    model = AdapLeRModelTester().create_model().train()
    outputs = model(**training_batch(inputs))

    def grads(loss):
        model.zero_grad()
        loss.backward(retain_graph=True)
        return {name: p.grad.clone() if p.grad is not None else None for name, p in model.named_parameters()}

    def is_zero(grad):
        return grad is None or not grad.any()

    length = grads(outputs.length_loss)
    assert not is_zero(length["eta"]) and not is_zero(length["theta"])
    assert all(is_zero(g) for name, g in length.items() if name not in ("eta", "theta")), "L_LENGTH leaked"
    cp = grads(outputs.cp_loss)
    assert not is_zero(cp["contribution_predictors.0.dense.weight"])
    assert not is_zero(cp["bert.embeddings.word_embeddings.weight"])
    ce = grads(outputs.ce_loss)  # CE trains everything, η and θ through the soft mask
    assert not is_zero(ce["eta"]) and not is_zero(ce["theta"])
    assert not is_zero(ce["contribution_predictors.1.dense.weight"]) and not is_zero(ce["classifier.weight"])


def test_removed_tokens_are_gone_from_the_next_layer(inputs):
    model = adaptive_model(inputs)
    seen = []
    hook = model.bert.encoder.layer[0].register_forward_hook(lambda module, args, output: seen.append(output.shape))
    with torch.inference_mode():
        outputs = model(**inputs, output_kept_masks=True)
        ratios = first_layer_ratios(model, inputs)
    hook.remove()
    present = inputs["attention_mask"].bool()
    kept = outputs.kept_masks[0]
    assert seen[0][1] == int(outputs.kept_tokens[:, 0].max()) < present.shape[1]
    removed = present & ~kept
    assert removed.any() and (~removed).all(dim=-1).any()
    kept_words = kept.clone()
    kept_words[:, 0] = False
    assert (ratios[removed] < model.eta[0]).all() and (ratios[kept_words] >= model.eta[0]).all()
    # Removing a token before layer 1 equals masking it out of every layer of the plain model.
    with torch.inference_mode(), full_depth(model):
        masked = model(**{**inputs, "attention_mask": kept.long()}).logits
    torch.testing.assert_close(outputs.logits, masked, rtol=1e-5, atol=1e-5)


def test_single_row_path_removes_what_the_packed_path_removes(tiny_tokenizer_dir, monkeypatch):
    """Batch size 1 without padding takes the boolean-index path, with one padding column the packed path: the same
    tokens must leave at the same layers. Slot-fixed CPs drop every third token before every layer, so decisions
    cannot hinge on float noise."""
    model = AdapLeRModelTester().create_model(eta=[1.0] * 4)
    model.contribution_predictors = nn.ModuleList(FixedPredictor([0.0, 0.0, -5.0] * 30) for _ in range(4))
    single_row_calls = []
    single_row_path = model._forward_hard_single_row
    monkeypatch.setattr(
        model, "_forward_hard_single_row", lambda *args, **kwargs: single_row_calls.append(1) or single_row_path(*args, **kwargs)
    )
    layer_input_lengths = []
    for layer in model.bert.encoder.layer:
        layer.register_forward_hook(lambda module, args, output: layer_input_lengths.append(output.shape[1]))
    unpadded = dict(AutoTokenizer.from_pretrained(tiny_tokenizer_dir)(max(TEXTS, key=len), return_tensors="pt"))
    padded = {key: torch.cat([value, torch.zeros_like(value[:, :1])], dim=1) for key, value in unpadded.items()}
    with torch.inference_mode():
        single_row = model(**unpadded, output_kept_masks=True)
        assert single_row_calls == [1] and layer_input_lengths == single_row.kept_tokens[0].tolist()
        packed = model(**padded, output_kept_masks=True)
    assert single_row_calls == [1], "a padded row must take the packed path"
    length = unpadded["input_ids"].shape[1]
    expected, count = [], length
    for _ in range(4):
        count -= count // 3  # slots 2, 5, 8, ... go before each layer
        expected.append(count)
    assert single_row.kept_tokens[0].tolist() == expected and expected[-1] < expected[0] < length
    assert torch.equal(single_row.kept_tokens, packed.kept_tokens)
    for single_row_mask, packed_mask in zip(single_row.kept_masks, packed.kept_masks):
        assert torch.equal(single_row_mask, packed_mask[:, :length]) and not packed_mask[:, length:].any()
    torch.testing.assert_close(single_row.logits, packed.logits, rtol=1e-5, atol=1e-5)


def test_cls_is_always_kept(inputs):
    model = AdapLeRModelTester().create_model(eta=[1.0] * 4)
    present = inputs["attention_mask"].bool()
    # [CLS] scored far below everything: it still enters every layer.
    model.contribution_predictors = nn.ModuleList(FixedPredictor([-30.0]) for _ in range(4))
    with torch.inference_mode():
        outputs = model(**inputs, output_kept_masks=True)
    assert all(mask[:, 0].all() for mask in outputs.kept_masks)
    assert (outputs.kept_tokens[:, 0] == present.sum(-1)).all()  # the others are exactly uniform: all kept
    # All the mass on [CLS]: everything else goes before layer 1, and a [CLS]-only row stays [CLS]-only.
    model.contribution_predictors = nn.ModuleList(FixedPredictor([30.0]) for _ in range(4))
    with torch.inference_mode():
        outputs = model(**inputs, output_kept_masks=True)
    assert outputs.kept_tokens.eq(1).all()
    assert all(mask[:, 0].all() and mask.sum() == len(TEXTS) for mask in outputs.kept_masks)
    assert torch.isfinite(outputs.logits).all()


def test_kept_tokens_are_monotone_and_match_kept_masks(inputs):
    model = AdapLeRModelTester().create_model(eta=[1.0] * 4)  # untrained CPs at the uniform level: drops a lot
    with torch.inference_mode():
        outputs = model(**inputs, output_kept_masks=True)
    kept_tokens = outputs.kept_tokens
    assert kept_tokens.shape == (len(TEXTS), 4) and kept_tokens.dtype == torch.long
    assert (kept_tokens[:, 1:] <= kept_tokens[:, :-1]).all()
    assert (kept_tokens[:, -1] < kept_tokens[:, 0]).any()
    for layer, mask in enumerate(outputs.kept_masks):
        assert mask.shape == inputs["input_ids"].shape
        assert (mask.sum(-1) == kept_tokens[:, layer]).all()
        assert not (mask & ~inputs["attention_mask"].bool()).any(), "padding never enters"
        if layer:
            assert not (mask & ~outputs.kept_masks[layer - 1]).any(), "a removed token never comes back"


def test_mask_mode_keeps_every_token_and_off_mode_is_full_length(inputs):
    model = AdapLeRModelTester().create_model(eta=[1.0] * 4, inference_mode="mask")
    model.soft_removal_lambda = 1e4
    shapes = []
    hooks = [layer.register_forward_hook(lambda module, args, output: shapes.append(output.shape))
             for layer in model.bert.encoder.layer]
    with torch.inference_mode():
        masked = model(**inputs)
        model.config.inference_mode = "off"
        off = model(**inputs)
    for hook in hooks:
        hook.remove()
    assert shapes == [inputs["input_ids"].shape + (32,)] * 8
    lengths = inputs["attention_mask"].sum(-1)
    assert (masked.kept_tokens == lengths[:, None]).all() and (off.kept_tokens == lengths[:, None]).all()
    assert not torch.allclose(masked.logits, off.logits), "the soft mask changes the computation"
    assert masked.loss is None and masked.length_loss is None


def test_soft_mask_is_the_same_under_sdpa_and_eager_attention(inputs):
    """The accumulated mask M enters BertLayer as a float additive (B, 1, 1, T) mask; both kernels add it."""
    tester = AdapLeRModelTester()
    sdpa = tester.create_model(eta=[1.0] * 4, inference_mode="mask")
    eager = tester.create_model(eta=[1.0] * 4, inference_mode="mask")
    eager.set_attn_implementation("eager")
    assert eager.config._attn_implementation == "eager" and sdpa.config._attn_implementation == "sdpa"
    for model in (sdpa, eager):
        model.soft_removal_lambda = 100.0
    with torch.inference_mode():
        torch.testing.assert_close(sdpa(**inputs).logits, eager(**inputs).logits, rtol=1e-5, atol=1e-6)
        sdpa.config.inference_mode = "off"
        assert not torch.allclose(sdpa(**inputs).logits, eager(**inputs).logits)


def test_eval_losses_and_input_errors(inputs):
    model = AdapLeRModelTester().create_model()
    batch = training_batch(inputs)
    with torch.inference_mode():
        outputs = model(**batch)
    assert outputs.loss is not None and outputs.loss == outputs.ce_loss
    assert outputs.cp_loss is None and outputs.length_loss is None
    with pytest.raises(ValueError, match="saliency"):
        model(**{**batch, "saliency": batch["saliency"][:, :-1]})
    with pytest.raises(ValueError, match="truncation=True"):
        model(input_ids=torch.randint(5, 99, (1, 65)))
    left_padded = {k: v.flip(-1) for k, v in inputs.items()}
    with pytest.raises(ValueError, match="right"):
        model(**left_padded)


def test_training_without_saliency_is_refused_with_what_to_run(inputs):
    """A stock training loop cannot supply saliencies: the first step says so instead of training stale CPs."""
    model = AdapLeRModelTester().create_model().train()
    batch = training_batch(inputs)
    del batch["saliency"]
    with pytest.raises(ValueError, match="adaptive-zoo train adapler"):
        model(**batch)
    with torch.no_grad():  # no training step: the loss terms can still be inspected
        outputs = model(**batch)
    assert outputs.cp_loss is None and outputs.length_loss is not None
    torch.testing.assert_close(outputs.loss, outputs.ce_loss + 5e-4 * outputs.length_loss)


def test_adaptive_parameters_clamp_sync_and_round_trip(inputs, tmp_path):
    model = AdapLeRModelTester().create_model(eta=[0.9, 0.8, 0.7, 0.6], theta=[1.0, 2.0, 3.0, 4.0])
    assert model.adaptive_parameters() == [model.eta, model.theta]
    torch.testing.assert_close(model.theta.detach(), torch.tensor([1.0, 2.0, 3.0, 4.0]))
    with torch.no_grad():
        model.eta.copy_(torch.tensor([1.5, 1e-5, 0.5, 0.25]))
        model.theta.copy_(torch.tensor([-1.0, 0.5, 2.0, 8.0]))
    model.clamp_adaptive_parameters_()
    torch.testing.assert_close(model.eta.detach(), torch.tensor([1.0, 1e-3, 0.5, 0.25]))
    torch.testing.assert_close(model.theta.detach(), torch.tensor([1e-3, 0.5, 2.0, 8.0]))
    model.sync_config_from_parameters()
    assert model.config.eta == pytest.approx([1.0, 1e-3, 0.5, 0.25])
    assert model.config.theta == pytest.approx([1e-3, 0.5, 2.0, 8.0])
    model.save_pretrained(tmp_path)
    loaded = AdapLeRBertForSequenceClassification.from_pretrained(tmp_path)
    torch.testing.assert_close(loaded.eta, model.eta)
    torch.testing.assert_close(loaded.theta, model.theta)
    assert loaded.soft_removal_lambda == model.config.lambda_init


def test_a_bert_checkpoint_loads_with_eta_theta_from_the_config(tiny_bert_dir):
    """η, θ and the CPs are missing from a BERT checkpoint: `from_pretrained` initialises them (on the meta
    device, through `_init_weights`), η and θ from the config."""
    from transformers import AutoConfig

    skip = {"model_type", "architectures", "transformers_version", "_name_or_path", "auto_map", "dtype"}
    bert_fields = {k: v for k, v in AutoConfig.from_pretrained(tiny_bert_dir).to_dict().items() if k not in skip}
    config = AdapLeRConfig(**bert_fields, num_labels=2, eta=[0.5, 0.6, 0.7, 0.8], theta=[2.0, 2.0, 3.0, 3.0])
    model = AdapLeRBertForSequenceClassification.from_pretrained(tiny_bert_dir, config=config)
    assert model.config.model_type == "adapler"
    torch.testing.assert_close(model.eta.detach(), torch.tensor([0.5, 0.6, 0.7, 0.8]))
    torch.testing.assert_close(model.theta.detach(), torch.tensor([2.0, 2.0, 3.0, 3.0]))
    assert torch.isfinite(model.contribution_predictors[0].dense.weight).all()


def test_config_assignment_is_validated_and_lambda_schedule():
    config = AdapLeRModelTester().get_config()
    with pytest.raises(StrictDataclassError, match="inference_mode"):
        config.inference_mode = "drop"
    with pytest.raises(StrictDataclassError, match="eta"):
        config.eta = [0.5, 2.0, 0.5, 0.5]
    config.inference_mode = "off"
    config.eta = [0.5] * 4
    assert config.inference_mode == "off" and config.eta == [0.5] * 4
    assert [config.lambda_at_epoch(e) for e in range(3)] == [10.0, 100.0, 1000.0]  # Table 4's 10^epoch
    mrpc = AdapLeRModelTester().get_config(lambda_init=10.0, lambda_growth=3.0)
    assert [mrpc.lambda_at_epoch(e) for e in range(3)] == [10.0, 30.0, 90.0]  # 10 x 3^epoch


def test_weights_share_names_with_bert_for_sequence_classification():
    model = AdapLeRModelTester().create_model()
    vanilla = vanilla_from_config(model)
    assert set(vanilla.state_dict()) <= set(model.state_dict())
    assert {k for k in model.state_dict() if k not in vanilla.state_dict()} == {
        k for k in model.state_dict() if k.startswith("contribution_predictors.")
    } | {"eta", "theta", "soft_removal_lambda_value"}
