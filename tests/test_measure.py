"""Tests of the measurement utilities: executed FLOPs, interleaved wall-clock, padding, exit stats, plots."""

from __future__ import annotations

import time

import pytest
import torch
from torch import nn
from transformers import BertConfig, BertForSequenceClassification

from adaptive_zoo.evaluation.measure import (
    compare_wallclock,
    count_flops,
    exit_histogram,
    exit_summary,
    flop_breakdown,
    latency_and_throughput,
    model_flops,
    pad_batch,
)
from adaptive_zoo.evaluation.plots import line_style, plot_tradeoff, plot_tradeoff_panels


def _tiny_bert(attn_implementation: str) -> BertForSequenceClassification:
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=100,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=64,
        attn_implementation=attn_implementation,
    )
    return BertForSequenceClassification(config).eval()


def _inputs(batch: int, length: int) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    mask = torch.ones(batch, length, dtype=torch.long)
    mask[-1, length // 2 :] = 0  # one padded row, so the sdpa path gets a real mask
    return {"input_ids": torch.randint(1, 100, (batch, length), generator=generator), "attention_mask": mask}


def test_count_flops_linear():
    layer = nn.Linear(8, 16)
    x = torch.randn(4, 8)
    assert count_flops(lambda: layer(x)) == 2 * 4 * 8 * 16


def test_bert_flops_positive_and_scale_with_tokens():
    model = _tiny_bert("sdpa")
    short = count_flops(lambda: model(**_inputs(2, 8)))
    long = count_flops(lambda: model(**_inputs(2, 16)))
    assert short > 0
    # Linear layers scale exactly 2x; attention 4x and the pooler/classifier not at all.
    assert 1.9 < long / short < 2.3


def test_sdpa_attention_flops_are_counted_and_match_eager():
    inputs = _inputs(2, 12)
    eager, sdpa = _tiny_bert("eager"), _tiny_bert("sdpa")
    assert sdpa.config._attn_implementation == "sdpa"
    breakdown = flop_breakdown(lambda: sdpa(**inputs))
    attention_ops = [op for op in breakdown if "scaled_dot_product" in op]
    assert attention_ops and all(breakdown[op] > 0 for op in attention_ops)
    # QK^T and PV per layer: 2 matmuls * 2 FLOPs * B * L * L * hidden.
    assert sum(breakdown[op] for op in attention_ops) == 2 * 2 * 2 * 2 * 12 * 12 * 32
    assert count_flops(lambda: sdpa(**inputs)) == count_flops(lambda: eager(**inputs))


def test_model_flops_sums_batches_and_restores_mode():
    model = _tiny_bert("sdpa").train()
    batches = [_inputs(1, 8), _inputs(2, 8)]
    total = model_flops(model, batches)
    assert total == sum(count_flops(lambda b=b: model.eval()(**b)) for b in batches)
    model.train()
    model_flops(model, batches)
    assert model.training


def test_compare_wallclock_sleeps():
    result = compare_wallclock(
        {"slow": lambda: time.sleep(0.004), "fast": lambda: time.sleep(0.002)}, repeats=5, baseline="slow"
    )
    assert result.speedup["slow"] == pytest.approx(1.0)
    assert 1.3 < result.speedup["fast"] < 3.5
    assert 1.3 < result.speedup_of_medians["fast"] < 3.5
    assert all(len(times) == 5 for times in result.samples.values())
    assert result.order[0] != result.order[1]  # rotating order


def test_compare_wallclock_rejects_unknown_baseline():
    with pytest.raises(ValueError):
        compare_wallclock({"a": lambda: None}, baseline="b")


def test_pad_batch_pads_right():
    examples = [
        {"input_ids": torch.tensor([[5, 6, 7]]), "attention_mask": torch.ones(1, 3, dtype=torch.long),
         "token_type_ids": torch.zeros(1, 3, dtype=torch.long), "labels": torch.tensor([1])},
        {"input_ids": torch.tensor([[8]]), "attention_mask": torch.ones(1, 1, dtype=torch.long),
         "token_type_ids": torch.zeros(1, 1, dtype=torch.long), "labels": torch.tensor([0])},
    ]
    batch = pad_batch(examples, pad_token_id=9)
    assert batch["input_ids"].tolist() == [[5, 6, 7], [8, 9, 9]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]
    assert batch["token_type_ids"].tolist() == [[0, 0, 0], [0, 0, 0]]
    assert batch["labels"].tolist() == [1, 0]
    assert batch["input_ids"].dtype == torch.long


def test_latency_and_throughput_structure():
    model = _tiny_bert("sdpa")
    features = [
        {"input_ids": torch.randint(1, 100, (1, length)), "attention_mask": torch.ones(1, length, dtype=torch.long)}
        for length in (3, 5, 7, 4, 6)
    ]
    report = latency_and_throughput(
        {"vanilla": model, "same": model}, features, baseline="vanilla", batch_size=2, latency_samples=3, repeats=2
    )
    assert report["latency_speedup"]["vanilla"] == pytest.approx(1.0)
    assert report["throughput_speedup"]["same"] > 0
    assert set(report["latency_ms_per_sample"]) == {"vanilla", "same"}
    assert all(value > 0 for value in report["throughput_samples_per_s"].values())
    assert report["batch_size"] == 2 and report["repeats"] == 2 and report["latency_samples"] == 3


def test_exit_histogram_and_summary():
    assert exit_histogram([1, 3, 3, 2, 3], num_layers=4) == [1, 1, 3, 0]
    assert exit_histogram(torch.tensor([4, 4]), num_layers=4) == [0, 0, 0, 2]
    with pytest.raises(ValueError):
        exit_histogram([0], num_layers=4)
    summary = exit_summary(torch.tensor([1, 3, 3, 2, 3]), num_layers=4)
    assert summary["mean_exit_layer"] == pytest.approx(12 / 5)
    assert summary["fraction"] == pytest.approx([0.2, 0.2, 0.6, 0.0])
    assert summary["histogram"] == [1, 1, 3, 0]


def test_plot_tradeoff_writes_png(tmp_path):
    points = [
        {"threshold": t, "speedup": 1 + t, "accuracy": 0.9 - 0.1 * t, "method": method}
        for method in ("entropy", "patience")
        for t in (0.0, 0.2, 0.5)
    ]
    path = plot_tradeoff(
        points, "speedup", "accuracy", tmp_path / "sub" / "tradeoff.png",
        label_key="threshold", title="trade-off", baseline_y=0.9, chosen=1, series_key="method",
    )
    data = path.read_bytes()
    assert data.startswith(b"\x89PNG") and len(data) > 1000


def test_many_series_never_share_a_colour_and_marker(tmp_path):
    """A benchmark plot of two methods has 12 lines; matplotlib's default cycle has 10 colours."""
    styles = [tuple(sorted(line_style(index).items())) for index in range(30)]
    assert len(set(styles)) == 30
    points = [{"speedup": 1.0 + k, "accuracy": 0.5 + 0.01 * k, "series": f"line {index}"}
              for index in range(12) for k in range(2)]
    path = plot_tradeoff(points, "speedup", "accuracy", tmp_path / "many.png", series_key="series")
    assert path.read_bytes().startswith(b"\x89PNG")


def test_panels_give_a_series_the_same_style_in_every_panel(tmp_path, monkeypatch):
    """A dataset's benchmark plot has one panel per method's run; "vanilla" or "depth" must look alike in all."""
    from matplotlib.axes import Axes

    drawn = []
    original = Axes.plot
    monkeypatch.setattr(Axes, "plot", lambda axes, *args, **kwargs: drawn.append(
        (kwargs.get("label"), kwargs["color"], kwargs["marker"])) or original(axes, *args, **kwargs))
    panels = {"deebert": [{"speedup": 1.0, "accuracy": 98.0, "series": "vanilla"},
                          {"speedup": 3.0, "accuracy": 97.0, "series": "deebert"},
                          {"speedup": 2.0, "accuracy": 95.0, "series": "depth"}],
              "hashee": [{"speedup": 2.0, "accuracy": 94.0, "series": "depth"},
                         {"speedup": 1.0, "accuracy": 97.5, "series": "vanilla"},
                         {"speedup": 2.2, "accuracy": 96.0, "series": "hashee"}]}
    path = plot_tradeoff_panels(panels, "speedup", "accuracy", tmp_path / "panels.png", series_key="series",
                                chosen={"hashee": {"speedup": 2.2, "accuracy": 96.0}})
    assert path.read_bytes().startswith(b"\x89PNG")
    styles = {}
    for label, color, marker in drawn:
        assert styles.setdefault(label, (color, marker)) == (color, marker)
    assert sorted(styles) == ["deebert", "depth", "hashee", "vanilla"]
    assert len(set(styles.values())) == 4


def test_a_one_panel_plot_keeps_its_title_and_legend_inside_the_image(tmp_path):
    """A dataset benchmarked with one method gets a one-panel figure, narrower than its title and its legend of up to
    a dozen series: nothing drawn may be cut at the image's edges (the PNG keeps a blank margin on every side)."""
    from matplotlib.image import imread

    series = ["vanilla", "adapler", "vanilla+int8", "adapler+int8", "own weights", "own weights+int8", "depth",
              "length"]
    panel = [{"speedup": 1.0 + index, "accuracy": 90.0 + index, "series": name} for index, name in enumerate(series)]
    path = plot_tradeoff_panels({"adapler (a long run name that fills the panel)": panel}, "speedup", "accuracy",
                                tmp_path / "one.png", series_key="series", chosen={},
                                title="bbc_news_no_headline: accuracy vs measured throughput (star: the shipped point)")
    pixels = imread(path)[..., :3]  # (height, width, RGB) floats in [0, 1]
    margin = 3
    edges = [pixels[:margin], pixels[-margin:], pixels[:, :margin], pixels[:, -margin:]]
    assert all((edge > 0.99).all() for edge in edges)
