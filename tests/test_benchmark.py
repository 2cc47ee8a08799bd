"""`adaptive-zoo benchmark` end to end on a tiny DeeBERT trained by the command line (1 epoch per stage), the
results file's fixed schema, the summary table and Pareto plot made from it, and int8 quantization."""

from __future__ import annotations

import json

import pytest
import torch
from tiny import tiny_bert_config
from torch import nn
from transformers import BertConfig, BertForSequenceClassification

from adaptive_zoo.cli import main
from adaptive_zoo.evaluation.benchmark import quantize_int8
from adaptive_zoo.evaluation.benchmark_results import (
    ROW_FIELDS,
    SUMMARY_END,
    SUMMARY_START,
    check_row,
    current_rows,
    read_rows,
    verdict,
)
from adaptive_zoo.evaluation.classification import full_depth
from adaptive_zoo.evaluation.measure import count_flops
from adaptive_zoo.methods import METHODS
from adaptive_zoo.models.adapler import AdapLeRBertForSequenceClassification, AdapLeRConfig
from adaptive_zoo.models.deebert import DeeBertConfig, DeeBertForSequenceClassification
from adaptive_zoo.models.hashee import (
    HashEEBartConfig,
    HashEEBartForConditionalGeneration,
    HashEEBertConfig,
    HashEEBertForSequenceClassification,
)
from adaptive_zoo.training.baselines import MeanPooledBertForSequenceClassification

COLUMNS = ["--text-column", "sentence", "--label-column", "category"]


@pytest.fixture(scope="module")
def tiny_deebert(tmp_path_factory, tiny_bert_dir, tiny_csv):
    folder = tmp_path_factory.mktemp("bench") / "deebert-toy"
    assert main(["train", "deebert", "--dataset", str(tiny_csv), *COLUMNS, "--output-dir", str(folder),
                 "--base-model", str(tiny_bert_dir), "--max-length", "32", "--num-train-epochs", "1",
                 "--off-ramp-epochs", "1", "--batch-size", "8"]) == 0
    return folder


@pytest.fixture(scope="module")
def benchmarked(tiny_deebert, tiny_csv, tmp_path_factory):
    """Two benchmark runs of the same folder into one results file: the second reuses the cached baselines."""
    work = tmp_path_factory.mktemp("results")
    results, cache = work / "results.jsonl", work / "cache"
    argv = ["benchmark", str(tiny_deebert), "--dataset", str(tiny_csv), "--output", str(results),
            "--cache-dir", str(cache), "--depths", "1", "2", "--lengths", "8", "--repeats", "1",
            "--latency-samples", "4", "--batch-size", "8"]
    assert main(argv) == 0
    cached = sorted(path.name for path in cache.iterdir())
    assert main(argv) == 0
    return {"results": results, "cache": cache, "cached": cached, "folder": tiny_deebert}


def test_benchmark_measures_every_kind_of_point(benchmarked):
    rows = read_rows(benchmarked["results"])
    first_run = [row for row in rows if row["run_id"] == rows[0]["run_id"]]
    series = {row["series"] for row in first_run}
    assert series == {"vanilla", "deebert", "deebert+int8", "vanilla+int8", "depth", "length"}
    vanilla = next(row for row in first_run if row["series"] == "vanilla")
    assert vanilla["ratios"]["flops_speedup"] == 1.0
    assert sum(row["chosen"] for row in first_run if row["series"] == "deebert") == 1
    depth = {row["operating_point"]["num_layers"]: row for row in first_run if row["series"] == "depth"}
    assert set(depth) == {1, 2}
    assert depth[1]["metrics"]["flops"] < depth[2]["metrics"]["flops"] < vanilla["metrics"]["flops"]
    pooling = json.loads((benchmarked["folder"] / "config.json").read_text())["off_ramp_pooling"]
    assert depth[1]["operating_point"]["pooling"] == pooling  # the depth baselines pool as the off-ramps do
    assert next(row for row in first_run if row["series"] == "length")["metrics"]["max_length"] == 8
    for row in first_run:
        assert 0.0 <= row["metrics"]["accuracy"] <= 1.0
        assert row["ratios"]["throughput_speedup"] > 0 and row["ratios"]["latency_speedup"] > 0
        assert row["budget"]["num_train_epochs"] == 1.0 and row["budget"]["max_length"] == 32
        assert row["threads"] == torch.get_num_threads() and row["command"].startswith("adaptive-zoo benchmark")


def test_second_benchmark_reuses_the_cached_baselines(benchmarked):
    assert len(benchmarked["cached"]) == 3  # depth 1, depth 2, length 8
    assert sorted(path.name for path in benchmarked["cache"].iterdir()) == benchmarked["cached"]
    rows = read_rows(benchmarked["results"])
    runs = {row["run_id"] for row in rows}
    assert len(runs) == 2
    first, second = ([row for row in rows if row["run_id"] == run] for run in dict.fromkeys(r["run_id"] for r in rows))
    accuracy = {row["point"]: row["metrics"]["accuracy"] for row in first}
    assert all(accuracy[row["point"]] == row["metrics"]["accuracy"] for row in second if row["series"] == "depth")


def test_rows_have_the_fixed_schema(benchmarked):
    for row in read_rows(benchmarked["results"]):
        assert tuple(row) == ROW_FIELDS
    with pytest.raises(ValueError, match="missing"):
        check_row({"method": "deebert"})


def test_summary_table_and_pareto_plot_from_the_results(benchmarked, tmp_path):
    markdown = tmp_path / "BENCHMARKS.md"
    markdown.write_text(f"# Benchmarks\n\n{SUMMARY_START}\nold\n{SUMMARY_END}\n\n## DeeBERT\nkept\n")
    assert main(["summarize-benchmarks", "--results", str(benchmarked["results"]), "--markdown", str(markdown),
                 "--plots-dir", str(tmp_path / "plots")]) == 0
    text = markdown.read_text()
    assert "old" not in text and "## DeeBERT\nkept" in text
    table_rows = [line for line in text.splitlines() if line.startswith("| ") and "deebert" in line]
    assert len(table_rows) == 1  # current numbers only: the latest of the two runs
    assert "`adaptive-zoo benchmark" in table_rows[0]
    plots = list((tmp_path / "plots").glob("pareto_*.png"))
    assert len(plots) == 1 and plots[0].read_bytes()[:4] == b"\x89PNG"


def test_verdict_reads_the_targets_off_the_rows():
    def row(series, accuracy, throughput, chosen=False):
        return {"method": "m", "dataset": "d", "series": series, "point": series, "chosen": chosen,
                "metrics": {"accuracy": accuracy}, "ratios": {"throughput_speedup": throughput}}

    rows = [row("vanilla", 0.90, 1.0, True), row("m", 0.90, 2.0, True), row("m+int8", 0.895, 3.0, True),
            row("depth", 0.85, 2.5), row("length", 0.91, 1.5), row("vanilla+int8", 0.90, 2.0)]
    result = verdict(rows)
    assert result.target_1 and result.target_2 and result.best_faster_static["series"] == "vanilla+int8"
    rows[3] = row("depth", 0.92, 3.5)  # a static shortcut faster than everything, and more accurate
    result = verdict(rows)
    assert not result.target_1 and not result.target_2 and result.fastest_within_tolerance["series"] == "depth"


def test_current_rows_keep_each_method_and_datasets_latest_run():
    rows = [{"method": "m", "dataset": "d", "date": date, "run_id": run} for date, run in
            (("2026-01-01", "a"), ("2026-01-02", "b"), ("2026-01-02", "b"))]
    assert [row["run_id"] for row in current_rows(rows)] == ["b", "b"]


def test_int8_quantization_replaces_the_linear_layers_and_is_counted():
    torch.manual_seed(0)
    model = BertForSequenceClassification(BertConfig(**tiny_bert_config(), num_labels=3)).eval()
    quantized = quantize_int8(model)
    assert not any(type(module) is nn.Linear for module in quantized.modules())
    linear = quantized.bert.encoder.layer[0].attention.self.query
    assert type(linear).__module__.startswith("torch.ao.nn.quantized.dynamic")
    assert linear.weight().dtype == torch.qint8
    assert any(type(module) is nn.Linear for module in model.modules())  # the original is left as it was
    batch = {"input_ids": torch.randint(5, 99, (2, 9)), "attention_mask": torch.ones(2, 9, dtype=torch.long)}
    with torch.inference_mode():
        float_logits, int8_logits = model(**batch).logits, quantized(**batch).logits
    assert not torch.equal(float_logits, int8_logits) and torch.allclose(float_logits, int8_logits, atol=0.1)
    # int8 matmuls count as the same operations as the float ones (attention products stay float)
    assert count_flops(lambda: quantized(**batch)) == count_flops(lambda: model(**batch))


def test_mean_pooled_depth_baseline_reads_the_token_mean():
    torch.manual_seed(0)
    config = BertConfig(**tiny_bert_config(), num_labels=3, zoo_baseline_pooling="mean")
    model = MeanPooledBertForSequenceClassification(config).eval()
    ids = torch.randint(5, 99, (1, 6))
    padded = {"input_ids": torch.cat([ids, torch.zeros(1, 3, dtype=torch.long)], 1),
              "attention_mask": torch.tensor([[1] * 6 + [0] * 3])}
    with torch.inference_mode():
        assert torch.allclose(model(input_ids=ids).logits, model(**padded).logits, atol=1e-5)
    assert json.loads(config.to_json_string())["zoo_baseline_pooling"] == "mean"


@pytest.mark.parametrize("family", ["bert", "roberta"])
def test_depth_baseline_keeps_the_first_pretrained_layers_of_its_own_family(family, tmp_path):
    from tiny import save_tiny_bert, save_tiny_roberta
    from transformers import AutoModel

    from adaptive_zoo.training.baselines import StaticBaseline, build_static_baseline

    base = (save_tiny_bert if family == "bert" else save_tiny_roberta)(tmp_path / family)
    model = build_static_baseline(str(base), ["a", "b", "c"], StaticBaseline("depth", 2, 32))
    assert model.config.model_type == family and model.config.num_hidden_layers == 2
    pretrained = AutoModel.from_pretrained(base).state_dict()
    kept = getattr(model, family).state_dict()
    layer = "encoder.layer.1.attention.self.query.weight"
    assert torch.equal(kept[layer], pretrained[layer]) and "encoder.layer.2.output.dense.weight" not in kept
    if family == "roberta":
        with pytest.raises(ValueError, match="mean-pooled depth baseline is built on BERT only"):
            build_static_baseline(str(base), ["a", "b", "c"], StaticBaseline("depth", 2, 32, "mean"))


def test_a_baseline_whose_weights_do_not_fit_is_an_error_not_a_random_model(tmp_path):
    from tiny import save_tiny_tokenizer
    from transformers import AutoConfig, AutoModel

    from adaptive_zoo.training.baselines import StaticBaseline, build_static_baseline

    base = tmp_path / "electra"
    AutoModel.from_config(AutoConfig.for_model("electra", **tiny_bert_config())).save_pretrained(base)
    save_tiny_tokenizer(base)
    with pytest.raises(ValueError, match="BERT or RoBERTa backbones"):
        build_static_baseline(str(base), ["a", "b", "c"], StaticBaseline("depth", 2, 32))


def _tiny_classifier(kind: str):
    torch.manual_seed(0)
    if kind == "deebert":
        model = DeeBertForSequenceClassification(DeeBertConfig(**tiny_bert_config(), num_labels=3,
                                                               entropy_threshold=0.5))
    elif kind == "adapler":
        model = AdapLeRBertForSequenceClassification(AdapLeRConfig(**tiny_bert_config(), num_labels=3,
                                                                   eta=[0.9] * 4))
    else:
        model = HashEEBertForSequenceClassification(HashEEBertConfig(**tiny_bert_config(), num_labels=3))
        model.set_hash_table([1 + i % 4 for i in range(99)])
    return model.eval()


@pytest.mark.parametrize("kind", ["deebert", "adapler", "hashee"])
def test_every_classifier_runs_adaptively_after_int8_quantization(kind):
    model = _tiny_classifier(kind)
    quantized = quantize_int8(model)
    assert not any(type(module) is nn.Linear for module in quantized.modules())
    batch = {"input_ids": torch.randint(5, 99, (3, 12)), "attention_mask": torch.ones(3, 12, dtype=torch.long)}
    with torch.inference_mode():
        outputs = quantized(**batch)
    assert outputs.logits.shape == (3, 3) and torch.isfinite(outputs.logits).all()
    assert count_flops(lambda: quantized(**batch)) > 0
    with full_depth(model), full_depth(quantized):  # the same computation: the same operations counted
        assert count_flops(lambda: quantized(**batch)) == count_flops(lambda: model(**batch))


def test_adapler_operating_points_scale_the_learned_eta():
    model, method = _tiny_classifier("adapler"), METHODS["adapler"]
    record = {"learned_eta": [0.8] * 4, "eta_scale": 0.9, "training": {"eta_scales": [1.0, 0.9, 0.5]}}
    points = method.operating_points(model, record)
    assert [point.values["eta_scale"] for point in points] == [1.0, 0.9, 0.5]
    assert [point.chosen for point in points] == [False, True, False]
    method.set_operating_point(model, points[2])
    assert torch.allclose(model.eta, torch.full((4,), 0.4))


def test_deebert_operating_points_come_from_the_validation_sweep():
    model, method = _tiny_classifier("deebert"), METHODS["deebert"]
    record = {"validation_sweep": {"points": [{"threshold": t} for t in (0.0, 0.1, 0.2, 0.5, 0.9)]}}
    points = method.operating_points(model, record)
    assert [point.values["entropy_threshold"] for point in points] == [0.0, 0.1, 0.2, 0.5, 0.9]
    assert [point.label for point in points if point.chosen] == ["S=0.5"]


def test_a_seq2seq_folder_is_refused_clearly(tmp_path, capsys):
    torch.manual_seed(0)
    config = HashEEBartConfig(vocab_size=99, d_model=32, encoder_layers=2, decoder_layers=2, encoder_attention_heads=4,
                              decoder_attention_heads=4, encoder_ffn_dim=37, decoder_ffn_dim=37,
                              max_position_embeddings=64, pad_token_id=0, bos_token_id=2, eos_token_id=3,
                              decoder_start_token_id=2)
    model = HashEEBartForConditionalGeneration(config)
    model.set_hash_table([1 + i % 2 for i in range(99)])
    model.save_pretrained(tmp_path / "bart")
    assert main(["benchmark", str(tmp_path / "bart"), "--dataset", "bbc_headlines"]) == 2
    assert "measures classifiers only" in capsys.readouterr().err
