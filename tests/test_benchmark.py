"""`adaptive-zoo benchmark` end to end on a tiny DeeBERT trained by the command line (1 epoch per stage) and on a
tiny Depth-Adaptive Transformer and HashEE-BART (1 epoch, a few dozen toy text/summary pairs), the results file's
fixed schema, the summary table and Pareto plot made from it, and int8 quantization."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess

import pytest
import torch
from safetensors.torch import load_file
from tiny import save_tiny_bart, tiny_bert_config, write_tiny_summarization_csv
from torch import nn
from transformers import (
    AutoModelForSeq2SeqLM,
    BartConfig,
    BartForConditionalGeneration,
    BertConfig,
    BertForSequenceClassification,
)

from adaptive_zoo.benchmark import TASK_BENCHMARKS, BenchmarkedModel, git_commit, machine, own_weights_candidates
from adaptive_zoo.cli import main
from adaptive_zoo.evaluation import benchmark_results
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
from adaptive_zoo.methods.dat import threshold_front
from adaptive_zoo.models.adapler import AdapLeRBertForSequenceClassification, AdapLeRConfig
from adaptive_zoo.models.deebert import DeeBertConfig, DeeBertForSequenceClassification
from adaptive_zoo.models.hashee import (
    HashEEBartConfig,
    HashEEBartForConditionalGeneration,
    HashEEBertConfig,
    HashEEBertForSequenceClassification,
)
from adaptive_zoo.training.baselines import (
    FinetuningBudget,
    GenerationBaseline,
    GenerationBudget,
    MeanPooledBertForSequenceClassification,
    keep_lowest_layers,
)

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


def test_rows_name_the_instruction_set_int8_timings_depend_on(benchmarked):
    capability = torch.backends.cpu.get_cpu_capability()  # "AVX2", "AVX512", "DEFAULT", ...
    assert f", {capability}, " in machine()
    assert {row["machine"] for row in read_rows(benchmarked["results"])} == {machine()}


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_rows_are_marked_dirty_only_for_changes_to_the_package_source(tmp_path):
    def git(*args):
        return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=tmp_path,
                              capture_output=True, text=True, check=True).stdout.strip()

    package = tmp_path / "src" / "pkg"
    package.mkdir(parents=True)
    (package / "model.py").write_text("LAYERS = 6\n")
    (tmp_path / "BENCHMARKS.md").write_text("# Benchmarks\n")
    (tmp_path / ".gitignore").write_text("__pycache__/\n")
    git("init", "-q")
    git("add", ".")
    git("commit", "-q", "-m", "initial")
    commit = git("rev-parse", "HEAD")
    assert git_commit(package) == commit

    (tmp_path / "BENCHMARKS.md").write_text("# Benchmarks\nnew rows\n")  # docs and results, edited during a run
    (package / "__pycache__").mkdir()
    (package / "__pycache__" / "model.pyc").write_bytes(b"\0")  # ignored
    assert git_commit(package) == commit

    (package / "helper.py").write_text("")  # a new module the run may import
    assert git_commit(package) == commit + "-dirty"
    (package / "helper.py").unlink()
    (package / "model.py").write_text("LAYERS = 3\n")
    assert git_commit(package) == commit + "-dirty"
    assert git_commit(tmp_path.parent / "no-such-checkout") == "unknown"


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


def test_a_model_trained_with_its_exits_on_is_measured_against_a_fine_tuned_vanilla_model(tiny_bert_dir, tiny_csv,
                                                                                          tmp_path):
    """HashEE trains the backbone with its token exits on: the benchmark's full model is the backbone fine-tuned
    with the same budget (cached like the other baselines), not HashEE's weights with the exits off."""
    folder, results, cache = tmp_path / "hashee", tmp_path / "results.jsonl", tmp_path / "cache"
    assert main(["train", "hashee", "--dataset", str(tiny_csv), *COLUMNS, "--output-dir", str(folder),
                 "--base-model", str(tiny_bert_dir), "--max-length", "32", "--num-train-epochs", "1",
                 "--batch-size", "8"]) == 0
    assert main(["benchmark", str(folder), "--dataset", str(tiny_csv), "--output", str(results), "--cache-dir",
                 str(cache), "--baselines", "int8", "--repeats", "1", "--latency-samples", "2",
                 "--batch-size", "8"]) == 0
    rows = {row["series"]: row for row in read_rows(results)}
    assert set(rows) == {"vanilla", "hashee", "hashee+int8", "vanilla+int8", "own weights", "own weights+int8"}
    assert rows["vanilla"]["operating_point"] == {"weights": "fine-tuned with the same budget"}
    assert rows["vanilla+int8"]["operating_point"]["weights"] == "fine-tuned with the same budget"
    own = "the adaptive model's, adaptivity off"
    assert rows["own weights"]["operating_point"] == {"weights": own}
    assert rows["own weights+int8"]["operating_point"] == {"weights": own, "quantization": "int8"}
    assert rows["own weights"]["metrics"]["flops"] == rows["vanilla"]["metrics"]["flops"]  # every token, every layer
    (cached,) = cache.iterdir()
    config = json.loads((cached / "config.json").read_text())
    layers = json.loads((folder / "config.json").read_text())["num_hidden_layers"]
    assert "-full-" in cached.name and config["model_type"] == "bert" and config["num_hidden_layers"] == layers
    reference, adaptive = load_file(cached / "model.safetensors"), load_file(folder / "model.safetensors")
    key = "bert.encoder.layer.0.attention.self.query.weight"
    assert not torch.equal(reference[key], adaptive[key])  # trained apart from HashEE's backbone
    assert rows["vanilla"]["ratios"]["flops_speedup"] == 1.0


def verdict_row(series, quality, throughput, chosen=False, metric="accuracy"):
    """A results row with only what `verdict` reads."""
    return {"method": "m", "dataset": "d", "series": series, "point": series, "chosen": chosen,
            "metrics": {metric: quality}, "ratios": {"throughput_speedup": throughput}}


def test_verdict_reads_the_targets_off_the_rows():
    row = verdict_row

    rows = [row("vanilla", 0.90, 1.0, True), row("m", 0.90, 2.0, True), row("m+int8", 0.895, 3.0, True),
            row("depth", 0.85, 2.5), row("length", 0.91, 1.5), row("vanilla+int8", 0.90, 2.0)]
    result = verdict(rows)
    assert result.target_1 and result.target_2 and result.best_faster_static["series"] == "vanilla+int8"
    rows[3] = row("depth", 0.92, 3.5)  # a static shortcut faster than everything, and more accurate
    result = verdict(rows)
    assert not result.target_1 and not result.target_2 and result.fastest_within_tolerance["series"] == "depth"


def test_verdict_reads_the_adaptive_model_against_its_own_weights_too():
    """A model trained longer than the reference (AdapLeR's phase 3) can beat every fine-tuned alternative by its
    training alone: its own weights quantized, as fast and as accurate as it, is a shortcut it must beat as well."""
    row = verdict_row

    rows = [row("vanilla", 0.72, 1.0, True), row("m", 0.76, 1.2, True), row("m+int8", 0.75, 1.9, True),
            row("vanilla+int8", 0.71, 1.5), row("own weights", 0.77, 1.0), row("own weights+int8", 0.765, 1.4)]
    result = verdict(rows)
    assert not result.target_1 and result.best_faster_static["series"] == "own weights+int8"
    assert result.target_2  # the stack is still the fastest point within a point of the full model


def test_own_weights_candidates_are_the_adaptive_weights_in_the_plain_class(tiny_bert_dir):
    """What the benchmark measures as "own weights" is the saved model's parameters, not the reference's, in the
    stock class (every token through every layer), and its int8 copy."""
    torch.manual_seed(0)
    model = AdapLeRBertForSequenceClassification(AdapLeRConfig(**tiny_bert_config(), num_labels=3)).eval()
    budget = FinetuningBudget(base_model="b", dataset="d", num_train_epochs=1.0, learning_rate=1e-3, batch_size=8,
                              max_length=16, max_train_samples=None, seed=0, warmup_ratio=0.0, weight_decay=0.0)
    loaded = BenchmarkedModel(folder="f", method=METHODS["adapler"], task=TASK_BENCHMARKS["classification"],
                              model=model, tokenizer=None, record={}, budget=budget)
    plain, quantized = own_weights_candidates(loaded, ("int8",))
    assert type(plain.model) is BertForSequenceClassification and (plain.series, quantized.series) == (
        "own weights", "own weights+int8")
    own = model.state_dict()
    assert all(torch.equal(value, own[key]) for key, value in plain.model.state_dict().items())
    assert isinstance(quantized.model.bert.encoder.layer[0].attention.self.query, torch.ao.nn.quantized.dynamic.Linear)
    assert [candidate.series for candidate in own_weights_candidates(loaded, ("depth",))] == ["own weights"]


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


# -- seq2seq: the Depth-Adaptive Transformer (adaptive decoder) and HashEE-BART (token exits in the encoder) --------

SEQ2SEQ_ARGS = ["--num-train-epochs", "1", "--max-length", "32", "--max-target-length", "8", "--batch-size", "8",
                "--learning-rate", "1e-3"]
SEQ2SEQ_LAYERS = 4  # the tiny BERT's layers: encoder and decoder of the warm-started BART


@pytest.fixture(scope="module")
def summarization_csv(tmp_path_factory):
    return write_tiny_summarization_csv(tmp_path_factory.mktemp("sum") / "toy_sum.csv", num_rows=40)


@pytest.fixture(scope="module")
def seq2seq_benchmarks(tmp_path_factory, tiny_bert_dir, summarization_csv):
    """A tiny DAT (confidence exits, thresholds searched on validation) and a tiny HashEE-BART, each trained by the
    command line and benchmarked into one results file, with depth baselines k = 1, 2."""
    work = tmp_path_factory.mktemp("seq2seq-bench")
    folders = {"dat": work / "dat", "hashee": work / "hashee-bart"}
    assert main(["train", "dat", "--dataset", str(summarization_csv), "--output-dir", str(folders["dat"]),
                 "--base-model", str(tiny_bert_dir), "--exit-prediction", "confidence", "--compute-budget", "0.5",
                 "--threshold-trials", "2", *SEQ2SEQ_ARGS]) == 0
    assert main(["train", "hashee", "--dataset", str(summarization_csv), "--output-dir", str(folders["hashee"]),
                 "--base-model", str(tiny_bert_dir), *SEQ2SEQ_ARGS]) == 0
    results, cache = work / "results.jsonl", work / "cache"
    for folder in folders.values():
        assert main(["benchmark", str(folder), "--dataset", str(summarization_csv), "--output", str(results),
                     "--cache-dir", str(cache), "--depths", "1", "2", "--repeats", "1", "--latency-samples", "2",
                     "--batch-size", "8"]) == 0
    rows = read_rows(results)
    return {"folders": folders, "results": results, "cache": cache,
            "rows": {method: [row for row in rows if row["method"] == method] for method in folders}}


@pytest.mark.parametrize("method", ["dat", "hashee"])
def test_seq2seq_benchmark_rows_carry_rouge_under_its_own_name(seq2seq_benchmarks, method):
    rows = seq2seq_benchmarks["rows"][method]
    assert {row["series"] for row in rows} == {"vanilla", method, f"{method}+int8", "vanilla+int8", "depth",
                                               "own weights", "own weights+int8"}
    assert sum(row["chosen"] for row in rows if row["series"] == method) == 1
    for row in rows:
        assert tuple(row) == ROW_FIELDS
        metrics = row["metrics"]
        assert "accuracy" not in metrics and {"rouge1", "rouge2", "rougeL"} <= set(metrics)
        assert 0.0 <= metrics["rouge1"] <= 100.0 and metrics["flops"] > 0 and metrics["mean_generated_tokens"] > 0
        assert row["timing"]["generation"] == {"max_new_tokens": 8, "num_beams": 1, "do_sample": False}
        assert row["budget"]["max_target_length"] == 8 and row["budget"]["num_train_epochs"] == 1.0
        assert row["ratios"]["throughput_speedup"] > 0 and row["ratios"]["latency_speedup"] > 0
    vanilla = next(row for row in rows if row["series"] == "vanilla")
    assert vanilla["ratios"]["flops_speedup"] == 1.0 and vanilla["metrics"]["mean_exit_layer"] is None
    assert benchmark_results.quality_metric(vanilla).label == "ROUGE-1"
    shipped = next(row for row in rows if row["series"] == method and row["chosen"])
    assert 1.0 <= shipped["metrics"]["mean_exit_layer"] <= SEQ2SEQ_LAYERS  # DAT: generated tokens; HashEE: sources


@pytest.mark.parametrize(("method", "side"), [("dat", "decoder"), ("hashee", "encoder")])
def test_seq2seq_depth_baselines_have_fewer_layers_of_the_adapted_stack(seq2seq_benchmarks, method, side):
    other = "encoder" if side == "decoder" else "decoder"
    depth = {row["operating_point"]["num_layers"]: row for row in seq2seq_benchmarks["rows"][method]
             if row["series"] == "depth"}
    assert set(depth) == {1, 2}
    for k, row in depth.items():
        point = row["operating_point"]
        assert point["side"] == side and point[f"{side}_layers"] == k and point[f"{other}_layers"] == SEQ2SEQ_LAYERS
        assert row["point"] == f"first {k} {side} layer{'s' if k > 1 else ''}"
    cached = [folder for folder in seq2seq_benchmarks["cache"].iterdir() if f"-seq2seq-{side}" in folder.name]
    assert len(cached) == 2
    for folder in cached:
        config = json.loads((folder / "config.json").read_text())
        layers = {int(key.split(".")[3]) for key in load_file(folder / "model.safetensors")
                  if key.startswith(f"model.{side}.layers.")}
        assert config["model_type"] == "bart" and layers == set(range(config[f"{side}_layers"]))
        assert config[f"{side}_layers"] < SEQ2SEQ_LAYERS == config[f"{other}_layers"]


@pytest.mark.parametrize("method", ["dat", "hashee"])
def test_seq2seq_reference_is_the_starting_bart_fine_tuned_with_the_same_budget(seq2seq_benchmarks, method):
    """Both models train their BART with the exits on, so their weights with the exits off are no fair reference:
    the full model is the starting BART, every layer kept, fine-tuned with the model's own budget."""
    rows = seq2seq_benchmarks["rows"][method]
    reference = next(row for row in rows if row["series"] == "vanilla")
    assert reference["operating_point"] == {"weights": "fine-tuned with the same budget"}
    assert next(row for row in rows if row["series"] == "vanilla+int8")["operating_point"] == {
        "weights": "fine-tuned with the same budget", "quantization": "int8"}
    full = [folder for folder in seq2seq_benchmarks["cache"].iterdir() if "-seq2seq-full-" in folder.name]
    assert len(full) == 2  # one per model: their budgets differ
    for folder in full:
        config = json.loads((folder / "config.json").read_text())
        assert config["encoder_layers"] == config["decoder_layers"] == SEQ2SEQ_LAYERS


def test_dat_shipped_point_carries_its_thresholds(seq2seq_benchmarks):
    rows = {row["point"]: row for row in seq2seq_benchmarks["rows"]["dat"]}
    config = json.loads((seq2seq_benchmarks["folders"]["dat"] / "config.json").read_text())
    chosen = next(row for row in rows.values() if row["series"] == "dat" and row["chosen"])
    assert chosen["operating_point"]["confidence_thresholds"] == config["confidence_thresholds"][:SEQ2SEQ_LAYERS - 1]
    assert 1.0 <= chosen["metrics"]["mean_exit_layer"] <= SEQ2SEQ_LAYERS  # the generated tokens' average exit


def test_dat_operating_points_follow_the_recorded_threshold_search(seq2seq_benchmarks):
    folder = seq2seq_benchmarks["folders"]["dat"]
    model, method = AutoModelForSeq2SeqLM.from_pretrained(folder), METHODS["dat"]
    record = json.loads((folder / "adaptive_zoo_results.json").read_text())
    points = method.operating_points(model, record)
    assert points[0].label == "full depth" and points[0].values == {"adaptive": False}
    assert [point.chosen for point in points].count(True) == 1
    searched = {tuple(trial["thresholds"]) for trial in record["threshold_search"]["trials"]}
    assert all(tuple(point.values["confidence_thresholds"]) in searched for point in points[1:])
    method.set_operating_point(model, points[0])
    assert model.config.adaptive is False
    method.set_operating_point(model, points[-1])
    assert model.config.adaptive and model.config.confidence_thresholds == points[-1].values["confidence_thresholds"]


def test_threshold_front_keeps_the_searched_settings_nothing_beats():
    trials = [{"thresholds": [1.0, 1.0], "average_exit": 3.0, "score": 20.0},
              {"thresholds": [0.0, 0.0], "average_exit": 1.0, "score": 10.0},
              {"thresholds": [0.5, 0.5], "average_exit": 2.0, "score": 9.0},  # slower and worse than exit at block 1
              {"thresholds": [0.9, 0.2], "average_exit": 2.5, "score": 15.0}]
    assert threshold_front(trials) == [[0.0, 0.0], [0.9, 0.2], [1.0, 1.0]]


def test_seq2seq_summary_and_pareto_plot_name_rouge(seq2seq_benchmarks, tmp_path, monkeypatch):
    calls = []
    original = benchmark_results.plot_tradeoff_panels
    monkeypatch.setattr(benchmark_results, "plot_tradeoff_panels",
                        lambda *args, **kwargs: calls.append((args, kwargs)) or original(*args, **kwargs))
    markdown = tmp_path / "BENCHMARKS.md"
    markdown.write_text(f"# Benchmarks\n\n{SUMMARY_START}\n{SUMMARY_END}\n")
    assert main(["summarize-benchmarks", "--results", str(seq2seq_benchmarks["results"]), "--markdown",
                 str(markdown), "--plots-dir", str(tmp_path / "plots")]) == 0
    table_rows = [line for line in markdown.read_text().splitlines() if line.startswith("| toy_sum.csv")
                  or "| [dat](#dat-on-" in line or "| [hashee](#hashee-on-" in line]  # linked to the run's section
    assert len(table_rows) == 2 and all("ROUGE-1" in line for line in table_rows)
    assert [kwargs["ylabel"] for _, kwargs in calls] == ["test ROUGE-1"]
    (panels, *_), kwargs = calls[0]
    assert sorted(title.split()[0] for title in panels) == ["dat", "hashee"]  # one panel per run
    for title, points in panels.items():  # each run's shipped point is starred, and it is one of the run's points
        assert kwargs["chosen"][title] in [{"speedup": p["speedup"], "quality": p["quality"]} for p in points]


def test_verdict_reads_rouge_points_for_seq2seq_rows():
    def row(series, rouge1, throughput, chosen=False):
        return verdict_row(series, rouge1, throughput, chosen, metric="rouge1")

    rows = [row("vanilla", 30.0, 1.0, True), row("m", 29.5, 2.0, True), row("m+int8", 29.2, 3.0, True),
            row("depth", 25.0, 2.5)]
    result = verdict(rows)  # 29.2 is within 1 ROUGE-1 point of 30.0; a fraction scale would call it 0.8 points off
    assert result.target_1 and result.target_2
    rows[2] = row("m+int8", 28.9, 3.0, True)
    assert verdict(rows).target_2 is False


def test_dat_from_a_pretrained_bart_with_learned_exits(tmp_path, summarization_csv):
    """The other starting point: a pretrained BART (3 + 3 layers) kept to its lowest 2 decoder layers, multinomial
    exits (no thresholds: full depth and the model as saved); the depth baseline starts from that BART."""
    bart = save_tiny_bart(tmp_path / "tiny-bart")
    folder, results, cache = tmp_path / "dat", tmp_path / "results.jsonl", tmp_path / "cache"
    assert main(["train", "dat", "--dataset", str(summarization_csv), "--output-dir", str(folder), "--base-model",
                 str(bart), "--decoder-layers", "2", "--max-train-samples", "16", *SEQ2SEQ_ARGS]) == 0
    assert main(["benchmark", str(folder), "--dataset", str(summarization_csv), "--output", str(results),
                 "--cache-dir", str(cache), "--baselines", "depth", "--repeats", "1", "--latency-samples", "2"]) == 0
    rows = {row["point"]: row for row in read_rows(results)}
    assert set(rows) == {"vanilla (full model)", "dat full depth", "dat multinomial exits", "first 1 decoder layer",
                         "own weights, adaptivity off"}  # no int8 asked for: no quantized rows
    assert rows["own weights, adaptivity off"]["metrics"]["rouge1"] == rows["dat full depth"]["metrics"]["rouge1"]
    assert rows["dat multinomial exits"]["chosen"] and not rows["dat full depth"]["chosen"]
    assert rows["first 1 decoder layer"]["operating_point"]["encoder_layers"] == 3
    assert rows["first 1 decoder layer"]["budget"]["warm_start"]["decoder_layers"] == 2
    baselines = {folder.name.split("-")[-3]: folder for folder in cache.iterdir()}
    assert set(baselines) == {"decoder1l", "full"}
    tiny = BartConfig.from_pretrained(bart)
    config = json.loads((baselines["full"] / "config.json").read_text())  # the reference: the kept 2 + 3 layers
    assert (config["decoder_layers"], config["encoder_layers"]) == (2, 3)
    config = json.loads((baselines["decoder1l"] / "config.json").read_text())
    assert (config["decoder_layers"], config["encoder_layers"]) == (1, 3)
    assert (config["vocab_size"], config["decoder_start_token_id"]) == (tiny.vocab_size, tiny.decoder_start_token_id)


def test_keep_lowest_layers_keeps_the_lowest_ones_and_the_cache_key_tracks_the_start():
    torch.manual_seed(0)
    config = BartConfig(vocab_size=99, d_model=16, encoder_layers=3, decoder_layers=3, encoder_attention_heads=2,
                        decoder_attention_heads=2, encoder_ffn_dim=20, decoder_ffn_dim=20, max_position_embeddings=32)
    bart = BartForConditionalGeneration(config)
    first = bart.model.decoder.layers[0].fc1.weight.clone()
    keep_lowest_layers(bart, "decoder", 1)
    assert len(bart.model.decoder.layers) == bart.config.decoder_layers == 1
    assert torch.equal(bart.model.decoder.layers[0].fc1.weight, first) and len(bart.model.encoder.layers) == 3
    with pytest.raises(ValueError, match="'encoder' or the 'decoder'"):
        keep_lowest_layers(bart, "middle", 1)
    with pytest.raises(ValueError, match="cannot be cut to 4"):
        keep_lowest_layers(bart, "encoder", 4)
    budget = dict(base_model="b", dataset="d.csv", num_train_epochs=1.0, learning_rate=1e-3, batch_size=8,
                  max_length=32, max_train_samples=None, seed=42, warmup_ratio=0.06, weight_decay=0.01,
                  max_target_length=8)
    baseline = GenerationBaseline("decoder", 1, 32)
    keys = {baseline.cache_key(GenerationBudget(**budget, warm_start=start), "b")
            for start in ({"cross_attention_init": None}, {"cross_attention_init": "fresh"})}
    assert len(keys) == 2 and all(key.startswith("d-seq2seq-decoder1l-32t-") for key in keys)


def _tiny_hashee_bart_folder(folder):
    torch.manual_seed(0)
    config = HashEEBartConfig(vocab_size=99, d_model=32, encoder_layers=2, decoder_layers=2, encoder_attention_heads=4,
                              decoder_attention_heads=4, encoder_ffn_dim=37, decoder_ffn_dim=37,
                              max_position_embeddings=64, pad_token_id=0, bos_token_id=2, eos_token_id=3,
                              decoder_start_token_id=2)
    model = HashEEBartForConditionalGeneration(config)
    model.set_hash_table([1 + i % 2 for i in range(99)])
    model.save_pretrained(folder)
    return folder


def test_a_seq2seq_folder_without_its_results_record_is_refused(tmp_path, capsys):
    folder = _tiny_hashee_bart_folder(tmp_path / "bart")
    assert main(["benchmark", str(folder), "--dataset", "bbc_headlines"]) == 2
    assert "has no adaptive_zoo_results.json" in capsys.readouterr().err


def test_seq2seq_refusals_name_what_does_not_apply(seq2seq_benchmarks, summarization_csv, tmp_path, capsys):
    folder = seq2seq_benchmarks["folders"]["hashee"]
    common = ["--output", str(tmp_path / "r.jsonl"), "--cache-dir", str(tmp_path / "cache")]
    assert main(["benchmark", str(folder), "--dataset", str(summarization_csv), "--baselines", "length",
                 *common]) == 2
    assert "apply to classifiers only" in capsys.readouterr().err
    classification = tmp_path / "labels.csv"
    with classification.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "label"])
        writer.writerows([[f"w{i} w{i + 1} w{i + 2}", ["a", "b"][i % 2]] for i in range(20)])
    assert main(["benchmark", str(folder), "--dataset", str(classification), *common]) == 2
    error = capsys.readouterr().err
    assert "is a classification dataset" in error and "is a seq2seq model" in error
    copy = tmp_path / "no-record"
    shutil.copytree(folder, copy)
    (copy / "adaptive_zoo_results.json").unlink()
    assert main(["benchmark", str(copy), "--dataset", str(summarization_csv), *common]) == 2
    assert "has no adaptive_zoo_results.json" in capsys.readouterr().err
    assert not (tmp_path / "r.jsonl").exists()
