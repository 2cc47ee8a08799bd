"""One model shared by a server's request threads, and config changes on a built model (issue 34).

- Every output is returned by the call that asked for it: concurrent calls of one model, attentions included, give
  exactly what the same calls give one after the other.
- A config field either takes effect on the next forward or, where it cannot (the modules or the weights were built
  for it), the next forward and `save_pretrained` refuse it with a message that says how to rebuild.
- The operating point goes stale when the weights change (an optimiser step, a load of other weights), not because
  a forward ran in training mode.
- Every trained value survives `save_pretrained` / `from_pretrained`.

Over every family of `test_switches`' matrix; the threaded tests are small (tiny models, a few dozen calls).
"""

from __future__ import annotations

import threading

import pytest
import torch
from test_switches import FAMILIES, SEQ2SEQ, ZOO, adaptive_model, batch, full_depth
from tiny import TEXTS

from adaptive_zoo.models.adapler import AdapLeRBertForSequenceClassification
from adaptive_zoo.models.deebert import DeeBertForSequenceClassification

# The families that return attention weights (at full depth, eager attention); the DAT refuses them.
ATTENTION_FAMILIES = [family for family in FAMILIES if family != "depth_adaptive_transformer"]
CALLS_PER_THREAD = 25


def run_threads(jobs: list, calls: int = CALLS_PER_THREAD) -> list[list]:
    """Run each job `calls` times in its own thread, all threads started together; the results, per job."""
    results: list[list] = [[] for _ in jobs]
    errors: list[BaseException] = []
    start = threading.Barrier(len(jobs))

    def work(index, job):
        try:
            start.wait()
            for _ in range(calls):
                results[index].append(job())
        except BaseException as error:  # noqa: BLE001 - re-raised below, in the test's thread
            errors.append(error)

    threads = [threading.Thread(target=work, args=(index, job)) for index, job in enumerate(jobs)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    if errors:
        raise errors[0]
    assert not any(thread.is_alive() for thread in threads), "a request thread did not finish"
    return results


def attentions_of(family, outputs):
    return outputs.encoder_attentions if family == "hashee_bart" else outputs.attentions


@pytest.fixture(scope="module")
def tokenizer(tiny_tokenizer_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_tokenizer_dir)


# -- outputs are the caller's own ------------------------------------------------------------------------------


@pytest.mark.parametrize("family", ATTENTION_FAMILIES)
def test_concurrent_calls_get_their_own_attentions(family, tokenizer):
    model = adaptive_model(family, tokenizer)
    model.set_attn_implementation("eager")
    wide, narrow = batch(family, tokenizer), batch(family, tokenizer, TEXTS[:2])
    with torch.inference_mode(), full_depth(family, model):

        def with_attentions(inputs):
            return lambda: [a.clone() for a in attentions_of(family, model(**inputs, output_attentions=True))]

        def plain():
            return model(**narrow).logits.clone()

        expected = [with_attentions(wide)(), with_attentions(narrow)(), plain()]
        results = run_threads([with_attentions(wide), with_attentions(narrow), plain])
    layers = model.config.num_hidden_layers
    for job, (answers, reference) in enumerate(zip(results, expected)):
        for answer in answers:
            if job == 2:
                assert torch.equal(answer, reference)
                continue
            assert len(answer) == layers, f"job {job}: {len(answer)} attention tensors for {layers} layers"
            assert all(torch.equal(a, r) for a, r in zip(answer, reference)), f"job {job}: other attentions"


@pytest.mark.parametrize("family", FAMILIES)
def test_concurrent_adaptive_calls_equal_sequential_ones(family, tokenizer):
    model = adaptive_model(family, tokenizer)
    batches = [batch(family, tokenizer), batch(family, tokenizer, TEXTS[:3]), batch(family, tokenizer, TEXTS[-1:])]
    extra = {} if family in SEQ2SEQ else {"output_hidden_states": True}
    with torch.inference_mode():

        def call(inputs):
            return lambda: model(**inputs, **extra).logits.clone()

        expected = [call(inputs)() for inputs in batches]
        results = run_threads([call(inputs) for inputs in batches])
    for answers, reference in zip(results, expected):
        assert all(torch.equal(answer, reference) for answer in answers)


# -- config fields: take effect, or refused -----------------------------------------------------------------------

# A change each family's built model cannot follow: its modules or weights were made for the old value.
CHANGES_THAT_CANNOT_TAKE_EFFECT = {
    "deebert": ("num_labels", 4),
    "deeroberta": ("num_labels", 4),
    "adapler": ("eta", "0.5 per layer"),
    "adapler_roberta": ("eta", "0.5 per layer"),
    "hashee_bert": ("num_buckets", 1),
    "hashee_roberta": ("num_buckets", 1),
    "hashee_bart": ("num_buckets", 1),
    "depth_adaptive_transformer": ("decoder_layers", 3),
}


def test_every_family_names_a_change_it_refuses():
    assert set(CHANGES_THAT_CANNOT_TAKE_EFFECT) == set(FAMILIES)


@pytest.mark.parametrize("family", FAMILIES)
def test_a_change_that_cannot_take_effect_is_refused_by_forward_and_save(family, tokenizer, tmp_path):
    model = adaptive_model(family, tokenizer)
    inputs = batch(family, tokenizer)
    name, value = CHANGES_THAT_CANNOT_TAKE_EFFECT[family]
    built_with = getattr(model.config, name)
    if value == "0.5 per layer":
        value = [0.5] * model.config.num_hidden_layers
    setattr(model.config, name, value)
    message = rf"`config.{name}` was changed to .* after this \w+ was built with"
    with pytest.raises(ValueError, match=message):
        model(**inputs)
    with pytest.raises(ValueError, match=message):
        model.save_pretrained(tmp_path / "saved")
    assert not (tmp_path / "saved").exists(), "a refused save must write nothing"
    setattr(model.config, name, built_with)
    with torch.inference_mode():
        model(**inputs)
    model.save_pretrained(tmp_path / "saved")


@pytest.mark.parametrize("family", ["hashee_bert", "hashee_roberta"])
def test_hashee_classifier_refuses_a_changed_label_count(family, tokenizer):
    model = adaptive_model(family, tokenizer)
    model.config.num_labels = model.num_labels + 2
    with pytest.raises(ValueError, match=r"`config.num_labels` was changed to"):
        model(**batch(family, tokenizer))


@pytest.mark.parametrize("family", ["deebert", "deeroberta"])
def test_deebert_off_ramp_pooling_and_dropout_take_effect_on_the_next_forward(family, tokenizer):
    model = adaptive_model(family, tokenizer)
    inputs = batch(family, tokenizer)
    model.config.off_ramp_pooling = "cls"
    model.config.off_ramp_dropout = 0.3
    rebuilt = ZOO[family].create_model(off_ramp_pooling="cls", off_ramp_dropout=0.3)
    rebuilt.load_state_dict(model.state_dict())
    rebuilt.config.entropy_threshold = model.config.entropy_threshold
    with torch.inference_mode():
        ours, theirs = model(**inputs, output_ramp_logits=True), rebuilt(**inputs, output_ramp_logits=True)
    torch.testing.assert_close(ours.ramp_logits, theirs.ramp_logits, rtol=0, atol=0, equal_nan=True)
    assert torch.equal(ours.exit_layers, theirs.exit_layers)
    model.train()
    torch.manual_seed(0)
    dropped = model(**inputs, output_ramp_logits=True).ramp_logits
    torch.manual_seed(0)
    rebuilt.train()
    torch.testing.assert_close(dropped, rebuilt(**inputs, output_ramp_logits=True).ramp_logits, rtol=0, atol=0)


@pytest.mark.parametrize("family", ["deebert", "adapler"])
def test_invalid_assignments_are_refused_and_leave_the_config_as_it_was(family):
    model = ZOO[family].create_model()
    assignments = [("problem_type", "regression"), ("problem_type", "multi_label_classification"), ("num_labels", 1)]
    if family == "deebert":
        assignments.append(("off_ramp_pooling", "max"))
    for name, value in assignments:
        before = model.config.to_dict()
        with pytest.raises(ValueError, match=name):
            setattr(model.config, name, value)
        assert model.config.to_dict() == before


# -- AdapLeR: η, θ and λ live in the weights ----------------------------------------------------------------------


def test_adapler_eta_is_changed_through_the_weights_and_kept_in_step(tokenizer, tmp_path):
    model = adaptive_model("adapler", tokenizer)
    inputs = batch("adapler", tokenizer)
    layers = model.config.num_hidden_layers
    model.config.eta = [0.9] * layers
    with pytest.raises(ValueError, match=r"model\.eta\.copy_"):
        model(**inputs)
    with pytest.raises(ValueError, match="config.eta"):
        model.save_pretrained(tmp_path / "refused")
    assert not (tmp_path / "refused").exists()
    model.config.eta = model.fixed_config_fields["eta"]
    with torch.no_grad():
        model.eta.copy_(torch.full((layers,), 0.9))
    model.sync_config_from_parameters()
    assert model.config.eta == pytest.approx([0.9] * layers)
    with torch.inference_mode():
        kept = model(**inputs).kept_tokens
    model.save_pretrained(tmp_path / "saved")
    loaded = AdapLeRBertForSequenceClassification.from_pretrained(tmp_path / "saved").eval()
    assert loaded.config.eta == pytest.approx([0.9] * layers)
    with torch.inference_mode():
        assert torch.equal(loaded(**inputs).kept_tokens, kept)


def test_adapler_soft_removal_lambda_survives_save_and_load(tokenizer, tmp_path):
    model = adaptive_model("adapler", tokenizer)
    inputs = batch("adapler", tokenizer)
    model.soft_removal_lambda = 1234.5  # what training reached, not `lambda_init`
    model.config.inference_mode = "mask"
    with torch.inference_mode():
        masked = model(**inputs).logits
    model.save_pretrained(tmp_path)
    loaded = AdapLeRBertForSequenceClassification.from_pretrained(tmp_path).eval()
    assert loaded.soft_removal_lambda == 1234.5 != loaded.config.lambda_init
    with torch.inference_mode():
        torch.testing.assert_close(loaded(**inputs).logits, masked, rtol=0, atol=0)


def test_adapler_training_forward_leaves_eta_and_theta_as_they_are(tokenizer):
    model = adaptive_model("adapler", tokenizer)
    inputs = batch("adapler", tokenizer)
    model.config.inference_mode = "off"
    with torch.no_grad():
        model.eta.fill_(1.5)  # out of bounds: the zoo's training loop clamps after each step, not the forward
    model.train()
    model(**inputs, labels=torch.zeros(len(TEXTS), dtype=torch.long))
    assert model.eta.detach().tolist() == [1.5] * model.config.num_hidden_layers


# -- the stale flag follows the weights ---------------------------------------------------------------------------


def with_operating_point(family, tokenizer):
    """A model with a chosen operating point that a training step can make stale, and labels for its inputs."""
    if family == "depth_adaptive_transformer":
        model = ZOO[family].create_model(exit_prediction="confidence", confidence_thresholds=[0.5, 0.5, 0.5])
    else:
        model = adaptive_model(family, tokenizer)
    if family in ("adapler", "adapler_roberta"):
        model.config.inference_mode = "off"  # the backbone trains without the adaptive objective
    inputs = batch(family, tokenizer)
    labels = inputs["input_ids"].clone() if family in SEQ2SEQ else torch.zeros(len(TEXTS), dtype=torch.long)
    return model, inputs, labels


STALE_FAMILIES = ["deebert", "deeroberta", "adapler", "adapler_roberta", "depth_adaptive_transformer"]


@pytest.mark.parametrize("family", STALE_FAMILIES)
def test_a_training_forward_without_a_step_leaves_the_point_current(family, tokenizer):
    model, inputs, labels = with_operating_point(family, tokenizer)
    model.train()
    model(**inputs, labels=labels).loss.backward()
    model.eval()
    with torch.inference_mode():
        model(**inputs)
    assert model.config.operating_point_stale is False


@pytest.mark.parametrize("family", STALE_FAMILIES)
@pytest.mark.parametrize("fused", [False, True])
def test_an_optimiser_step_makes_the_point_stale(family, fused, tokenizer, tmp_path):
    model, inputs, labels = with_operating_point(family, tokenizer)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, fused=fused)  # fused: the Trainer's default
    model.train()
    model(**inputs, labels=labels).loss.backward()
    optimizer.step()
    assert model.config.operating_point_stale is False  # nothing has looked at the weights yet
    model.save_pretrained(tmp_path)  # e.g. a Trainer checkpoint, with no forward after the last step
    assert model.config.operating_point_stale is True
    assert '"operating_point_stale": true' in (tmp_path / "config.json").read_text()


@pytest.mark.parametrize("family", ["deebert", "depth_adaptive_transformer", "adapler"])
def test_loading_other_weights_makes_the_point_stale(family, tokenizer):
    model, _, _ = with_operating_point(family, tokenizer)
    other, _, _ = with_operating_point(family, tokenizer)
    if family == "adapler":
        # a whole AdapLeR state dict brings its own η and predictors: the point comes with the weights
        model.load_state_dict(other.state_dict())
        assert model.config.operating_point_stale is False
        backbone_only = {k: v for k, v in other.state_dict().items() if k.startswith("bert.")}
        model.load_state_dict(backbone_only, strict=False)
    else:
        model.load_state_dict(other.state_dict())
    assert model.config.operating_point_stale is True


def test_a_loaded_model_with_a_point_is_not_stale(tokenizer, tmp_path):
    model = adaptive_model("deebert", tokenizer)
    model.save_pretrained(tmp_path)
    loaded = DeeBertForSequenceClassification.from_pretrained(tmp_path)
    assert loaded.config.entropy_threshold is not None and loaded.config.operating_point_stale is False
