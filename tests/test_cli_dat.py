"""`adaptive-zoo train dat` / `evaluate` / `push` on Depth-Adaptive Transformer folders: a tiny BERT base, the toy
summarization CSV (the summary is the text's first three words)."""

from __future__ import annotations

import json

import pytest
import torch
from tiny import write_tiny_summarization_csv

from adaptive_zoo.cli import main
from adaptive_zoo.hub.folder import check_hub_folder
from adaptive_zoo.hub.verify import load_in_fresh_process

ARGS = ["--num-train-epochs", "2", "--max-length", "32", "--max-target-length", "8", "--batch-size", "8",
        "--learning-rate", "1e-3"]
N = 4  # decoder blocks: the tiny BERT's layers


@pytest.fixture(scope="module")
def summarization_csv(tmp_path_factory):
    return write_tiny_summarization_csv(tmp_path_factory.mktemp("sum") / "toy_sum.csv")


@pytest.fixture(scope="module")
def confidence_folder(tmp_path_factory, tiny_bert_dir, summarization_csv):
    """Warm-started from the tiny BERT, confidence exits, thresholds tuned on validation (budget: half depth)."""
    folder = tmp_path_factory.mktemp("runs") / "dat-confidence"
    assert main(["train", "dat", "--dataset", str(summarization_csv), "--output-dir", str(folder),
                 "--base-model", str(tiny_bert_dir), "--exit-prediction", "confidence", "--compute-budget", "0.5",
                 "--threshold-trials", "3", *ARGS]) == 0
    return folder


@pytest.fixture(scope="module")
def geometric_folder(tmp_path_factory, tiny_bert_dir, summarization_csv):
    """From scratch, decoder-heavy (2 encoder layers, 3 decoder blocks), geometric exits, mixed regime."""
    folder = tmp_path_factory.mktemp("runs") / "dat-geometric"
    assert main(["train", "dat", "--dataset", str(summarization_csv), "--output-dir", str(folder),
                 "--base-model", str(tiny_bert_dir), "--exit-prediction", "geometric", "--oracle", "correctness",
                 "--oracle-sigma", "2", "--oracle-depth-penalty", "0.1", "--exit-loss-weight", "0.5",
                 "--training-regime", "mixed", "--num-mixed-samples", "2", "--from-scratch", "--encoder-layers", "2",
                 "--decoder-layers", "3", "--seed", "3", *ARGS, "--num-train-epochs", "1"]) == 0
    return folder


def read_record(folder):
    return json.loads((folder / "adaptive_zoo_results.json").read_text())


def test_confidence_thresholds_are_tuned_on_validation_and_stored(confidence_folder):
    check_hub_folder(confidence_folder, require_tokenizer=True)
    config = json.loads((confidence_folder / "config.json").read_text())
    search = read_record(confidence_folder)["threshold_search"]
    assert search["budget"] == 0.5 * N and search["budget_fraction"] == 0.5 and search["metric"] == "rouge1"
    trials = search["trials"]
    assert len(trials) == N + 3  # every fixed exit (full depth first, then block 1, ...), three random settings
    assert trials[0]["thresholds"] == [1.0] * (N - 1) and trials[0]["average_exit"] == N
    assert trials[1]["thresholds"] == [0.0] * (N - 1) and trials[1]["average_exit"] == 1.0
    assert [t["average_exit"] for t in trials[2:N]] == [float(n) for n in range(2, N)]
    assert all(t["within_budget"] == (t["average_exit"] <= 2.0) for t in trials)
    best = search["best"]
    assert best["within_budget"] and best["score"] == max(t["score"] for t in trials if t["within_budget"])
    assert config["exit_prediction"] == "confidence" and config["confidence_thresholds"] == best["thresholds"]
    assert search["full_depth_score"] == trials[0]["score"]
    assert (confidence_folder / "threshold_search.png").stat().st_size > 0


def test_record_reports_exits_quality_and_measured_costs(confidence_folder):
    record = read_record(confidence_folder)
    test = record["test"]
    assert 1.0 <= test["average_exit"] <= 2.0  # within the budget chosen on validation
    assert test["average_exit_fraction"] == pytest.approx(test["average_exit"] / N)
    assert len(test["exit_histogram"]) == N and sum(test["exit_histogram"]) == test["num_generated_tokens"] > 0
    for key in ("rouge", "baseline_rouge", "vanilla_rouge"):
        assert set(test[key]) >= {"rouge1", "rouge2", "rougeL"}
    assert all(0.0 <= test[key] <= 100.0 for key in ("bleu", "baseline_bleu", "vanilla_bleu"))
    assert test["identical_to_vanilla_at_full_depth"]
    agreement = test["agreement_with_full_depth"]
    assert 0.0 <= agreement["same_output_fraction"] <= 1.0
    assert 0.0 <= agreement["rouge_against_full_depth"]["rouge1"] <= 100.0
    # the vanilla BART generates with the same settings (its KV cache on), so at full depth it costs the same
    assert test["full_depth_generate_flops"] == test["vanilla_generate_flops"]
    assert test["generate_flops_speedup"] == pytest.approx(test["full_depth_generate_flops"] / test["generate_flops"])
    assert test["generate_flops_speedup"] > 1.0 and test["decoder_flops_speedup"] > test["generate_flops_speedup"]
    assert test["generate_wallclock_speedup"] > 0 and test["wallclock_repeats"] == 5
    # the default warm start copies each decoder layer's self-attention into its cross-attention: nothing fresh
    assert record["warm_start"]["pretrained"] > 0 and record["warm_start"]["fresh"] == 0
    fresh = record["fresh_process_load"]
    assert fresh["class"].startswith("transformers_modules.") and fresh["same_exit_layers"]
    assert fresh["max_abs_logit_diff"] <= 1e-5


def test_card_carries_measured_figures_and_generate_usage(confidence_folder):
    from huggingface_hub import ModelCard

    test = read_record(confidence_folder)["test"]
    card = ModelCard.load(confidence_folder / "README.md")
    assert card.data.pipeline_tag == "summarization"
    assert {"custom_code", "dat", "depth-adaptive", "adaptive-zoo"} <= set(card.data.tags)
    metrics = {(m.metric_type, m.metric_name) for m in card.data.eval_results}
    assert ("bleu", "BLEU (sacrebleu)") in metrics and ("average_exit", "average exit / decoder depth") in metrics
    text = card.text
    assert "Which weights were pretrained" in text and "encoder_attn" in text
    assert f"{test['rouge']['rouge1']:.2f}" in text and f"{test['baseline_rouge']['rouge1']:.2f}" in text
    assert "removed the `summarization`" in text and "model.generate(**inputs" in text
    assert "Confidence thresholds, tuned on validation" in text and "threshold_search.png" in text


def test_paper_fields_shape_and_from_scratch_reach_the_folder(geometric_folder):
    check_hub_folder(geometric_folder, require_tokenizer=True)
    config = json.loads((geometric_folder / "config.json").read_text())
    expected = dict(exit_prediction="geometric", oracle="correctness", oracle_sigma=2.0, oracle_depth_penalty=0.1,
                    exit_loss_weight=0.5, training_regime="mixed", num_mixed_samples=2, encoder_layers=2,
                    decoder_layers=3, use_cache=True)
    assert {key: config[key] for key in expected} == expected
    record = read_record(geometric_folder)
    assert record["warm_start"]["pretrained"] == 0 and "threshold_search" not in record
    assert record["training"]["from_scratch"] is True
    assert sum(record["test"]["exit_histogram"]) == record["test"]["num_generated_tokens"]
    assert len(record["test"]["exit_histogram"]) == 3
    text = (geometric_folder / "README.md").read_text()
    assert "trained from scratch" in text and "`exit_predictor.*`" in text and "geometric" in text


def test_keeping_the_lowest_encoder_layers_updates_the_warm_start_report(tiny_bert_dir):
    from adaptive_zoo.training.dat import keep_lowest_encoder_layers
    from adaptive_zoo.training.warm_start import bart_from_bert

    bart, report = bart_from_bert(tiny_bert_dir, decoder_layers=3, return_report=True)
    before = report.parameter_counts(bart)
    keep_lowest_encoder_layers(bart, report, 1)
    assert bart.config.encoder_layers == 1 and len(bart.model.encoder.layers) == 1
    assert not [name for name in report.pretrained if name.startswith("model.encoder.layers.1.")]
    assert "model.encoder.layers.0.fc1.weight" in report.pretrained
    assert report.parameter_counts(bart)["pretrained"] < before["pretrained"]
    assert "lowest 1 of 4" in report.to_markdown(bart)
    inputs = {"input_ids": torch.tensor([[2, 7, 8, 9, 3]]), "attention_mask": torch.ones(1, 5, dtype=torch.long)}
    assert bart.eval()(**inputs).logits.shape == (1, 5, 99)
    with pytest.raises(ValueError, match="encoder_layers"):
        keep_lowest_encoder_layers(bart, report, 2)


def test_folder_generates_from_plain_tokenizer_output(confidence_folder):
    """transformers 5 removed the summarization pipeline: generate() on the saved tokenizer's output is the path."""
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    model = AutoModelForSeq2SeqLM.from_pretrained(confidence_folder).eval()
    tokenizer = AutoTokenizer.from_pretrained(confidence_folder)
    inputs = tokenizer(["w1 w2 w3 w4 w5 w6 w7", "w8 w9"], padding=True, return_tensors="pt")
    assert "token_type_ids" not in inputs
    generated = model.generate(**inputs, max_new_tokens=4, num_beams=2)
    assert generated.shape[0] == 2 and all(isinstance(t, str) for t in tokenizer.batch_decode(generated))
    out = model.generate_with_exits(**inputs, max_new_tokens=4)
    assert ((out.exit_layers >= 0) & (out.exit_layers <= N)).all() and 1.0 <= float(out.average_exit) <= N


def test_evaluate_reports_the_average_exit_and_quality(confidence_folder, summarization_csv, tmp_path, capsys):
    path = tmp_path / "report.json"
    assert main(["evaluate", str(confidence_folder), "--dataset", str(summarization_csv), "--no-wallclock",
                 "--max-new-tokens", "6", "--json", str(path)]) == 0
    report = json.loads(path.read_text())
    assert report["model_type"] == "depth_adaptive_transformer" and report["split"] == "test"
    assert {"average_exit", "average_exit_fraction", "exit_histogram", "bleu", "rouge", "baseline_rouge",
            "generate_flops_speedup"} <= set(report)
    assert "generate_wallclock_speedup" not in report and report["max_new_tokens"] == 6
    assert "average exit" in capsys.readouterr().out


def test_push_then_load_from_the_hub_in_a_fresh_process(confidence_folder, loopback_hub, tmp_path, capsys):
    assert main(["push", str(confidence_folder), "user/dat-toy"]) == 0
    files = loopback_hub.files("user/dat-toy")
    assert {"README.md", "config.json", "configuration_dat.py", "modeling_dat.py", "model.safetensors",
            "tokenizer.json", "threshold_search.png", "adaptive_zoo_results.json"} <= set(files)
    child = load_in_fresh_process("user/dat-toy", ["w1 w2 w3 w4 w5 w6"], auto_class="AutoModelForSeq2SeqLM",
                                  env=loopback_hub.subprocess_env(hf_home=tmp_path / "child"))
    assert child["class"].startswith("transformers_modules.") and child["class"].endswith("DepthAdaptiveTransformer")


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--exit-prediction", "poisson"], "exit_prediction"),
        (["--oracle", "bleu"], "oracle"),
        (["--oracle-sigma", "0"], "oracle_sigma"),
        (["--oracle-depth-penalty", "-1"], "oracle_depth_penalty"),
        (["--exit-loss-weight", "-0.5"], "exit_loss_weight"),
        (["--training-regime", "blended"], "training_regime"),
        (["--num-mixed-samples", "0"], "num_mixed_samples"),
        (["--decoder-layers", "1"], "decoder_layers"),
        (["--decoder-layers", "9"], "decoder_layers"),
        (["--encoder-layers", "7"], "encoder_layers"),
        (["--exit-prediction", "confidence", "--compute-budget", "1.5"], "compute_budget"),
        (["--exit-prediction", "confidence", "--compute-budget", "0.1"], "below 1 block"),
        (["--exit-prediction", "confidence", "--threshold-trials", "-1"], "threshold_trials"),
        (["--compute-budget", "0.5"], "--compute-budget"),  # the default multinomial exits are learned
        (["--hash-function", "frequency"], "--hash-function"),
        (["--gamma", "0.1"], "--gamma"),
        (["--off-ramp-epochs", "1"], "--off-ramp-epochs"),
    ],
)
def test_bad_dat_arguments_are_clear_errors(extra, message, tmp_path, tiny_bert_dir, summarization_csv, capsys):
    assert main(["train", "dat", "--dataset", str(summarization_csv), "--output-dir", str(tmp_path / "x"),
                 "--base-model", str(tiny_bert_dir), *ARGS, *extra]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_dat_needs_a_summarization_dataset(tmp_path, tiny_bert_dir, tiny_csv, capsys):
    assert main(["train", "dat", "--dataset", str(tiny_csv), "--text-column", "sentence", "--label-column",
                 "category", "--output-dir", str(tmp_path / "x"), "--base-model", str(tiny_bert_dir), *ARGS]) == 2
    assert "summarization" in capsys.readouterr().err


@pytest.mark.parametrize("method, flag", [("hashee", ["--exit-prediction", "confidence"]),
                                          ("deebert", ["--from-scratch"]), ("adapler", ["--compute-budget", "0.4"])])
def test_other_methods_refuse_dat_flags(method, flag, tmp_path, tiny_bert_dir, tiny_csv, capsys):
    assert main(["train", method, "--dataset", str(tiny_csv), "--text-column", "sentence", "--label-column",
                 "category", "--output-dir", str(tmp_path / "x"), "--base-model", str(tiny_bert_dir), *flag]) == 2
    assert flag[0] in capsys.readouterr().err
