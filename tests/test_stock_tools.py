"""The ecosystem's own doors on every zoo model: the stock `Trainer` / `Seq2SeqTrainer` (fine-tune, `predict`,
`predict_with_generate`), `generate()` in every decoding mode, and what happens to a tuned operating point when the
weights change (flagged stale, warned about, re-tuned by `adaptive-zoo calibrate`)."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch
from test_adapler import AdapLeRModelTester
from test_dat import DATModelTester
from test_deebert import DeeBertModelTester
from test_hashee import HashEEBartModelTester, HashEEBertModelTester
from tiny import write_tiny_summarization_csv
from transformers import (
    AutoModelForSeq2SeqLM,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    DataCollatorWithPadding,
    Seq2SeqTrainer,
    Seq2SeqTrainingArguments,
    Trainer,
)

from adaptive_zoo.cli import main
from adaptive_zoo.models.adapler.modeling_adapler import ETA_MIN, THETA_MIN
from adaptive_zoo.training.common import training_arguments

CLASSIFIERS = {"deebert": DeeBertModelTester(), "adapler": AdapLeRModelTester(), "hashee_bert": HashEEBertModelTester()}
SEQ2SEQ = {"hashee_bart": HashEEBartModelTester(), "dat": DATModelTester()}
SEQ2SEQ_TOKENIZER = dict(model_input_names=["input_ids", "attention_mask"])  # BART takes no token type ids


def collator_of(tester, tokenizer):
    make = getattr(tester, "data_collator", None)
    return make(tokenizer) if make is not None else DataCollatorWithPadding(tokenizer)


def stock_trainer(model, tester, tokenizer, output_dir, trainer_class=Trainer, **arguments):
    features = tester.train_features(tokenizer)
    return trainer_class(
        model=model,
        args=training_arguments(output_dir, **{"max_steps": 2, "eval_strategy": "no", "save_strategy": "no",
                                               "per_device_train_batch_size": 4, "per_device_eval_batch_size": 4,
                                               "learning_rate": 1e-2, **arguments}),
        train_dataset=features,
        data_collator=collator_of(tester, tokenizer),
    )


def adaptive_model(tester, tokenizer, **overrides):
    model = tester.create_model(**overrides)
    tester.make_adaptive(model, dict(tokenizer(list(tester.texts), padding=True, return_tensors="pt")))
    return model


def save_folder(model, tokenizer, folder):
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


# -- Trainer.predict -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_trainer_predict_returns_logits_a_script_can_argmax(name, tiny_tokenizer_dir, tmp_path):
    """What run_classification.py does with --do_predict: `np.argmax(predictions, axis=1)`."""
    tester = CLASSIFIERS[name]
    tokenizer = AutoTokenizer.from_pretrained(tiny_tokenizer_dir)
    model = adaptive_model(tester, tokenizer)
    trainer = stock_trainer(model, tester, tokenizer, tmp_path)
    trainer.train()
    features = trainer.train_dataset
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # DeeBERT's threshold is stale after training: tested below
        output = trainer.predict(features)
    assert isinstance(output.predictions, np.ndarray)
    assert output.predictions.shape == (len(features), model.config.num_labels)
    assert np.argmax(output.predictions, axis=1).shape == (len(features),)
    # the predictions are the adaptive model's own logits, exits included
    model.eval()
    batch = collator_of(tester, tokenizer)([features[i] for i in range(len(features))])
    with torch.inference_mode(), warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        expected = model(**batch).logits
    np.testing.assert_allclose(output.predictions, expected.numpy(), rtol=0, atol=1e-5)


@pytest.mark.parametrize("name", SEQ2SEQ)
def test_seq2seq_trainer_trains_then_predicts_with_generate(name, tiny_tokenizer_dir, tmp_path):
    tester = SEQ2SEQ[name]
    tokenizer = AutoTokenizer.from_pretrained(tiny_tokenizer_dir, **SEQ2SEQ_TOKENIZER)
    model = adaptive_model(tester, tokenizer)
    trainer = stock_trainer(model, tester, tokenizer, tmp_path, trainer_class=Seq2SeqTrainer,
                            arguments_class=Seq2SeqTrainingArguments, predict_with_generate=True,
                            generation_max_length=8)
    result = trainer.train()
    assert np.isfinite(result.training_loss)
    features = trainer.train_dataset
    output = trainer.predict(features)
    assert np.isfinite(output.metrics["test_loss"])
    assert output.predictions.dtype.kind == "i" and output.predictions.shape[0] == len(features)
    model.eval()
    batch = tokenizer([tester.texts[0]], return_tensors="pt")
    with torch.inference_mode():
        expected = model.generate(**batch, max_length=8)[0].tolist()
    produced = [token for token in output.predictions[0].tolist() if token != -100]
    assert produced[: len(expected)] == expected


# -- generate ------------------------------------------------------------------------------------------------------

DECODING = {"greedy": dict(num_beams=1), "beam": dict(num_beams=3), "sampling": dict(do_sample=True, top_k=5)}


@pytest.mark.parametrize("decoding", DECODING)
@pytest.mark.parametrize("name", SEQ2SEQ)
def test_generate_in_every_mode_with_and_without_the_cache(name, decoding, tiny_tokenizer_dir):
    """Greedy, beam and sampling generation work with adaptivity on, give the same tokens whether the cache is used
    or everything is recomputed, and the zoo's code paths raise no deprecation warning."""
    tester = SEQ2SEQ[name]
    tokenizer = AutoTokenizer.from_pretrained(tiny_tokenizer_dir, **SEQ2SEQ_TOKENIZER)
    model = adaptive_model(tester, tokenizer)
    inputs = tokenizer(list(tester.texts[:3]), padding=True, return_tensors="pt")
    generated = {}
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)
        warnings.simplefilter("error", DeprecationWarning)
        for use_cache in (True, False):
            torch.manual_seed(0)
            generated[use_cache] = model.generate(**inputs, max_new_tokens=6, use_cache=use_cache,
                                                  **DECODING[decoding])
    assert generated[True].shape[0] == 3 and generated[True].shape[1] > 1
    torch.testing.assert_close(generated[True], generated[False], rtol=0, atol=0)


# -- stock fine-tuning: a trained adaptive model or a clear refusal, and stale operating points ---------------------


def test_deebert_stock_fine_tune_trains_every_off_ramp_and_flags_the_threshold(tiny_tokenizer_dir, tmp_path):
    tester = CLASSIFIERS["deebert"]
    tokenizer = AutoTokenizer.from_pretrained(tiny_tokenizer_dir)
    model = adaptive_model(tester, tokenizer)
    assert model.config.entropy_threshold is not None and not model.config.operating_point_stale
    before = {name: p.detach().clone() for name, p in model.off_ramps.named_parameters()}
    stock_trainer(model, tester, tokenizer, tmp_path / "run").train()
    for index in range(len(model.off_ramps)):
        changed = [not torch.equal(before[name], p) for name, p in model.off_ramps.named_parameters()
                   if name.startswith(f"{index}.classifier")]
        assert all(changed), f"off-ramp {index + 1} got no gradient from the stock Trainer"
    assert model.config.operating_point_stale

    folder = save_folder(model, tokenizer, tmp_path / "folder")
    reloaded = AutoModelForSequenceClassification.from_pretrained(folder).eval()
    assert reloaded.config.operating_point_stale
    inputs = tokenizer(list(tester.texts), padding=True, return_tensors="pt")
    with pytest.warns(UserWarning, match="adaptive-zoo calibrate"):
        reloaded(**inputs)
    with warnings.catch_warnings():  # once per model, not on every call
        warnings.simplefilter("error", UserWarning)
        reloaded(**inputs)


def test_deebert_training_loss_is_the_joint_objective(tiny_tokenizer_dir):
    tester = CLASSIFIERS["deebert"]
    tokenizer = AutoTokenizer.from_pretrained(tiny_tokenizer_dir)
    model = tester.create_model().train()
    torch.nn.Module.train(model.bert, False)  # no dropout, so the loss can be recomputed from the outputs
    model.dropout.eval(), [ramp.eval() for ramp in model.off_ramps]  # off-ramp dropout follows the ramp's mode
    inputs = dict(tokenizer(list(tester.texts), padding=True, return_tensors="pt"))
    labels = torch.arange(len(tester.texts)) % model.config.num_labels
    outputs = model(**inputs, labels=labels)
    per_classifier = [torch.nn.functional.cross_entropy(outputs.ramp_logits[:, i], labels)
                      for i in range(model.config.num_hidden_layers)]
    torch.testing.assert_close(outputs.loss, torch.stack(per_classifier).mean())


def test_calibrate_rechooses_the_deebert_threshold_and_clears_the_flag(tiny_tokenizer_dir, tiny_csv, tmp_path,
                                                                       capsys):
    tester = CLASSIFIERS["deebert"]
    tokenizer = AutoTokenizer.from_pretrained(tiny_tokenizer_dir)
    model = adaptive_model(tester, tokenizer)
    stock_trainer(model, tester, tokenizer, tmp_path / "run").train()
    folder = save_folder(model, tokenizer, tmp_path / "folder")
    (folder / "README.md").write_text("# a card\n")
    code = main(["calibrate", str(folder), "--dataset", str(tiny_csv), "--text-column", "sentence",
                 "--label-column", "category", "--accuracy-budget", "100"])
    assert code == 0, capsys.readouterr().err
    assert "calibrated on" in capsys.readouterr().out
    calibrated = AutoModelForSequenceClassification.from_pretrained(folder).eval()
    assert not calibrated.config.operating_point_stale
    record = json.loads((folder / "adaptive_zoo_results.json").read_text())["calibrations"][-1]
    assert record["was_stale"] and calibrated.config.entropy_threshold == record["operating_point"]["entropy_threshold"]
    # a 100-point budget allows every threshold, so the fastest (everything exits at layer 1) is chosen
    assert record["chosen"]["mean_exit_layer"] == 1.0
    assert "## Calibration" in (folder / "README.md").read_text()
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        calibrated(**tokenizer(list(tester.texts), padding=True, return_tensors="pt"))


def test_adapler_stock_fine_tune_without_saliency_is_refused_at_the_first_step(tiny_tokenizer_dir, tmp_path):
    tester = CLASSIFIERS["adapler"]
    tokenizer = AutoTokenizer.from_pretrained(tiny_tokenizer_dir)
    model = tester.create_model()
    features = tester.train_features(tokenizer).remove_columns("saliency")
    trainer = Trainer(model=model, args=training_arguments(tmp_path, max_steps=2, eval_strategy="no",
                                                           save_strategy="no", per_device_train_batch_size=4),
                      train_dataset=features, data_collator=DataCollatorWithPadding(tokenizer))
    with pytest.raises(ValueError, match="adaptive-zoo train adapler"):
        trainer.train()
    assert trainer.state.global_step == 0


def test_adapler_bounds_hold_whatever_the_optimizer_did_and_the_saved_config_has_the_trained_values(
        tiny_tokenizer_dir, tmp_path):
    tester = CLASSIFIERS["adapler"]
    tokenizer = AutoTokenizer.from_pretrained(tiny_tokenizer_dir)
    model = tester.create_model()
    out_of_bounds = torch.tensor([1.5, 1e-6, 0.5, 2.0]), torch.tensor([-1.0, 0.5, 2.0, 1e-9])
    with torch.no_grad():  # as an optimiser step with no knowledge of the bounds could leave them
        model.eta.copy_(out_of_bounds[0])
        model.theta.copy_(out_of_bounds[1])
    stock_trainer(model, tester, tokenizer, tmp_path / "run", optim="sgd", learning_rate=0.0).train()
    # the forward computes with η, θ in their bounds (the soft removal of training, the hard removal of inference)
    # and writes nothing to them: the same outputs as with the projected values
    projected = copy.deepcopy(model)
    with torch.no_grad():
        projected.eta.copy_(torch.tensor([1.0, ETA_MIN, 0.5, 1.0]))
        projected.theta.copy_(torch.tensor([THETA_MIN, 0.5, 2.0, THETA_MIN]))
    inputs = dict(tokenizer(list(tester.texts), padding=True, return_tensors="pt"))
    for mode in ("mask", "remove"):
        model.config.inference_mode = projected.config.inference_mode = mode
        with torch.inference_mode():
            torch.testing.assert_close(model.eval()(**inputs).logits, projected.eval()(**inputs).logits)
    model.config.inference_mode = "remove"
    torch.testing.assert_close(model.eta.detach(), out_of_bounds[0])

    folder = save_folder(model, tokenizer, tmp_path / "folder")  # saving projects them
    saved = json.loads((folder / "config.json").read_text())
    assert saved["eta"] == pytest.approx([1.0, ETA_MIN, 0.5, 1.0])
    reloaded = AutoModelForSequenceClassification.from_pretrained(folder)
    assert reloaded.eta.tolist() == pytest.approx(saved["eta"])


def test_adapler_backbone_fine_tune_flags_the_operating_point_and_calibrate_rechooses_it(
        tiny_tokenizer_dir, tiny_csv, tmp_path, capsys):
    tester = CLASSIFIERS["adapler"]
    tokenizer = AutoTokenizer.from_pretrained(tiny_tokenizer_dir)
    model = adaptive_model(tester, tokenizer)
    model.config.inference_mode = "off"  # a plain BERT fine-tune: the contribution predictors stay as they were
    stock_trainer(model, tester, tokenizer, tmp_path / "run").train()
    assert model.config.operating_point_stale
    model.config.inference_mode = "remove"
    folder = save_folder(model, tokenizer, tmp_path / "folder")
    reloaded = AutoModelForSequenceClassification.from_pretrained(folder).eval()
    with pytest.warns(UserWarning, match="adaptive-zoo calibrate"):
        reloaded(**tokenizer(list(tester.texts), padding=True, return_tensors="pt"))

    code = main(["calibrate", str(folder), "--dataset", str(tiny_csv), "--text-column", "sentence",
                 "--label-column", "category", "--accuracy-budget", "100"])
    assert code == 0, capsys.readouterr().err
    calibrated = AutoModelForSequenceClassification.from_pretrained(folder)
    record = json.loads((folder / "adaptive_zoo_results.json").read_text())["calibrations"][-1]
    assert not calibrated.config.operating_point_stale
    assert calibrated.config.eta == pytest.approx(record["operating_point"]["eta"])
    assert calibrated.eta.tolist() == pytest.approx(record["operating_point"]["eta"])
    # the fastest scale wins under a 100-point budget: the largest η
    assert record["operating_point"]["eta_scale"] == 1.0


def test_dat_stock_fine_tune_flags_tuned_thresholds_and_calibrate_retunes_them(tiny_tokenizer_dir, tmp_path,
                                                                               capsys):
    tester = SEQ2SEQ["dat"]
    tokenizer = AutoTokenizer.from_pretrained(tiny_tokenizer_dir, **SEQ2SEQ_TOKENIZER)
    model = adaptive_model(tester, tokenizer, exit_prediction="confidence")
    assert model.config.confidence_thresholds is not None
    stock_trainer(model, tester, tokenizer, tmp_path / "run", trainer_class=Seq2SeqTrainer,
                  arguments_class=Seq2SeqTrainingArguments).train()
    assert model.config.operating_point_stale
    folder = save_folder(model, tokenizer, tmp_path / "folder")
    data = write_tiny_summarization_csv(tmp_path / "summaries.csv")
    code = main(["calibrate", str(folder), "--dataset", str(data), "--threshold-trials", "3",
                 "--compute-budget", "0.5"])
    assert code == 0, capsys.readouterr().err
    calibrated = AutoModelForSeq2SeqLM.from_pretrained(folder)
    record = json.loads((folder / "adaptive_zoo_results.json").read_text())["calibrations"][-1]
    assert not calibrated.config.operating_point_stale
    assert calibrated.config.confidence_thresholds == pytest.approx(record["operating_point"]["confidence_thresholds"])
    assert record["chosen"]["average_exit"] <= 0.5 * calibrated.config.num_exits


@pytest.mark.parametrize("name", ["hashee_bert", "learned_dat"])
def test_calibrate_says_when_there_is_nothing_to_calibrate(name, tiny_tokenizer_dir, tiny_csv, tmp_path, capsys):
    if name == "hashee_bert":
        tokenizer = AutoTokenizer.from_pretrained(tiny_tokenizer_dir)
        model, data, reason = CLASSIFIERS[name].create_model(), tiny_csv, "hash table"
    else:
        tokenizer = AutoTokenizer.from_pretrained(tiny_tokenizer_dir, **SEQ2SEQ_TOKENIZER)
        model = SEQ2SEQ["dat"].create_model(exit_prediction="multinomial")
        data, reason = write_tiny_summarization_csv(tmp_path / "summaries.csv"), "no operating point"
    folder = save_folder(model, tokenizer, tmp_path / "folder")
    assert main(["calibrate", str(folder), "--dataset", str(data)]) == 2
    assert reason in capsys.readouterr().err


# -- the tokenizer of a zoo folder -----------------------------------------------------------------------------------

TOKENIZER_CHILD = """
import sys
sys.modules["adaptive_zoo"] = None
from transformers import AutoTokenizer
for trust in (True, False):
    tokenizer = AutoTokenizer.from_pretrained(sys.argv[1], trust_remote_code=trust)
    print(type(tokenizer).__name__, tokenizer("w1 w2")["input_ids"])
"""


def test_tokenizer_loads_without_the_package_and_without_a_prompt(tiny_tokenizer_dir, tmp_path):
    """The README's two ways to load a zoo folder's tokenizer where adaptive_zoo is not installed: neither asks
    "run the custom code? [y/N]" (with stdin closed, a prompt would print its question)."""
    tokenizer = AutoTokenizer.from_pretrained(tiny_tokenizer_dir)
    folder = save_folder(CLASSIFIERS["deebert"].create_model(), tokenizer, tmp_path / "folder")
    result = subprocess.run([sys.executable, "-c", TOKENIZER_CHILD, str(folder)], capture_output=True, text=True,
                            stdin=subprocess.DEVNULL, cwd=tmp_path, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "[y/N]" not in result.stdout + result.stderr
    expected = str(tokenizer("w1 w2")["input_ids"])
    assert result.stdout.splitlines() == [f"{type(tokenizer).__name__} {expected}"] * 2
