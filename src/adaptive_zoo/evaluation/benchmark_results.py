"""Benchmark results as data: the rows `adaptive-zoo benchmark` appends to a JSONL file, the current ones among
them (each (method, dataset)'s latest run), the two targets read off them, BENCHMARKS.md's generated summary table
and one Pareto plot per dataset.

Targets, for each classifier method and dataset, at the operating point the saved model ships with:
1. the adaptive model is at least as accurate as every static alternative (fewer layers, shorter inputs, int8;
   and, where its reference is another fine-tune, its own weights with the adaptivity off, plain or int8) that
   is at least as fast (measured throughput at batch 32);
2. the adaptive model with int8 stacked on it is the fastest point within 1 accuracy point of the full model.

A seq2seq run is read the same way by its own quality metric, ROUGE-1 (`QUALITY_METRICS`): the shipped point
against the static alternatives (fewer encoder or decoder layers, int8) at least as fast, and the fastest point
within 1 ROUGE-1 point of the full vanilla model. A row says which metric it carries by its `metrics` key
("accuracy" or "rouge1"); nothing calls ROUGE accuracy.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .plots import plot_tradeoff_panels

SCHEMA_VERSION = 1
ROW_FIELDS = ("schema_version", "run_id", "date", "method", "dataset", "split", "num_samples", "model", "base_model",
              "series", "point", "operating_point", "chosen", "metrics", "ratios", "absolute", "budget", "timing",
              "command", "git_commit", "machine", "threads", "torch_version")
"""Every row has exactly these keys."""
STATIC_SERIES = ("depth", "length", "vanilla+int8", "own weights", "own weights+int8")
"""The shortcuts target 1 reads the adaptive model against: the static alternatives fine-tuned with the model's
phase-1 budget, and (for a model whose reference is another fine-tune) its own weights with the adaptivity off, as
they are and with int8, which hold the training fixed."""
SUMMARY_START, SUMMARY_END = "<!-- benchmark-summary:start -->", "<!-- benchmark-summary:end -->"
TOLERANCE_POINTS = 1.0
"""Target 2's "within 1 point (of accuracy, or of ROUGE-1) of the full model"."""


@dataclass(frozen=True)
class QualityMetric:
    """How a row's headline quality metric is read and shown."""

    key: str
    """Its key in a row's `metrics`."""
    label: str
    """How tables and plot axes name it."""
    points_per_unit: float
    """What turns the stored value into points (accuracy is stored as a fraction, ROUGE already as 0-100)."""


QUALITY_METRICS = (QualityMetric("accuracy", "accuracy", 100.0), QualityMetric("rouge1", "ROUGE-1", 1.0))
"""Classifier rows carry accuracy, seq2seq rows ROUGE-1; the first one a row has is its headline metric."""


def quality_metric(row: dict[str, Any]) -> QualityMetric:
    """The headline metric of a row; a ValueError for a row with none of `QUALITY_METRICS`."""
    for metric in QUALITY_METRICS:
        if metric.key in row["metrics"]:
            return metric
    raise ValueError(f"Benchmark row {row.get('point')!r} has none of the quality metrics "
                     f"{[metric.key for metric in QUALITY_METRICS]} in its metrics: {sorted(row['metrics'])}.")


def check_row(row: dict[str, Any]) -> dict[str, Any]:
    """The row with exactly `ROW_FIELDS`, in that order; a ValueError naming what differs otherwise."""
    missing, extra = set(ROW_FIELDS) - set(row), set(row) - set(ROW_FIELDS)
    if missing or extra:
        raise ValueError(f"A benchmark row must have exactly {ROW_FIELDS}: missing {sorted(missing)}, extra "
                         f"{sorted(extra)}.")
    return {key: row[key] for key in ROW_FIELDS}


def append_rows(path: str | os.PathLike, rows: Iterable[dict[str, Any]]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(check_row(row), sort_keys=False, default=str) + "\n")
    return path


def read_rows(path: str | os.PathLike) -> list[dict[str, Any]]:
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    return [check_row(json.loads(line)) for line in lines if line.strip()]


def current_rows(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows of each (method, dataset)'s latest run (by date), in file order."""
    latest: dict[tuple[str, str], tuple[str, str]] = {}
    for row in rows:
        key = (row["method"], row["dataset"])
        if key not in latest or row["date"] >= latest[key][0]:
            latest[key] = (row["date"], row["run_id"])
    return [row for row in rows if latest[(row["method"], row["dataset"])][1] == row["run_id"]]


@dataclass
class Verdict:
    """The two targets, for one run (one method on one dataset)."""

    method: str
    dataset: str
    chosen: dict[str, Any]
    full: dict[str, Any]
    faster_statics: list[dict[str, Any]]
    """Static alternatives at least as fast as the chosen point (throughput)."""
    best_faster_static: dict[str, Any] | None
    target_1: bool
    fastest_within_tolerance: dict[str, Any]
    target_2: bool | None
    """None where the run measured no adaptive+int8 point."""


def _quality(row: dict[str, Any]) -> float:
    """The row's headline quality in points (accuracy in %, ROUGE-1 as it is)."""
    metric = quality_metric(row)
    return metric.points_per_unit * row["metrics"][metric.key]


def _throughput(row: dict[str, Any]) -> float:
    return row["ratios"]["throughput_speedup"]


def verdict(run_rows: Sequence[dict[str, Any]]) -> Verdict:
    """The targets read off the rows of one run."""
    method = run_rows[0]["method"]
    chosen = next(row for row in run_rows if row["series"] == method and row["chosen"])
    full = next(row for row in run_rows if row["series"] == "vanilla")
    faster = [row for row in run_rows if row["series"] in STATIC_SERIES and _throughput(row) >= _throughput(chosen)]
    best = max(faster, key=_quality, default=None)
    within = [row for row in run_rows if _quality(row) >= _quality(full) - TOLERANCE_POINTS - 1e-9]
    fastest = max(within, key=_throughput)
    has_int8 = any(row["series"] == f"{method}+int8" for row in run_rows)
    return Verdict(method=method, dataset=run_rows[0]["dataset"], chosen=chosen, full=full, faster_statics=faster,
                   best_faster_static=best, target_1=all(_quality(chosen) >= _quality(row) for row in faster),
                   fastest_within_tolerance=fastest,
                   target_2=(fastest["series"] == f"{method}+int8") if has_int8 else None)


def runs_of(rows: Sequence[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Rows grouped by run, in file order."""
    runs: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        runs.setdefault(row["run_id"], []).append(row)
    return list(runs.values())


def quality_text(row: dict[str, Any]) -> str:
    """The headline quality in points, named unless it is accuracy (the table's default): "97.62", "23.10 ROUGE-1"."""
    metric = quality_metric(row)
    return f"{_quality(row):.2f}" + ("" if metric.key == "accuracy" else f" {metric.label}")


def _point_text(row: dict[str, Any]) -> str:
    return (f"{row['point']}: {quality_text(row)}, {_throughput(row):.2f}x throughput, "
            f"{row['ratios']['latency_speedup']:.2f}x latency")


def _yes_no(flag: bool | None) -> str:
    return "not measured" if flag is None else ("**met**" if flag else "**missed**")


def summary_table(rows: Sequence[dict[str, Any]]) -> str:
    """The Markdown summary of the current rows: one line per (method, dataset) run."""
    header = ("| dataset | method | full model (vanilla) | adaptive, shipped point: accuracy (or ROUGE-1), "
              "throughput / latency / FLOPs speed-up | best static alternative at least as fast | target 1 | "
              "fastest point within 1 point of the full model | target 2 | command |\n"
              "|---|---|---|---|---|---|---|---|---|")
    lines = [header]
    for run in sorted(runs_of(current_rows(rows)), key=lambda run: (run[0]["dataset"], run[0]["method"])):
        result = verdict(run)
        chosen, ratios = result.chosen, result.chosen["ratios"]
        best = result.best_faster_static
        lines.append(
            f"| {result.dataset} | {result.method} | {quality_text(result.full)} | {quality_text(chosen)} "
            f"({chosen['point']}): {ratios['throughput_speedup']:.2f}x / {ratios['latency_speedup']:.2f}x / "
            f"{ratios['flops_speedup']:.2f}x | {'none' if best is None else _point_text(best)} | "
            f"{_yes_no(result.target_1)} | {_point_text(result.fastest_within_tolerance)} | "
            f"{_yes_no(result.target_2)} | `{chosen['command']}` |")
    return "\n".join(lines)


def pareto_plots(rows: Sequence[dict[str, Any]], folder: str | os.PathLike) -> list[Path]:
    """One PNG per dataset of the current rows: quality (accuracy, or ROUGE-1 for a summarization dataset) against
    measured throughput speed-up, one panel per benchmark run (method), one line per series of the run (the adaptive
    model, its int8 stack, the vanilla model and each static alternative), the shipped point starred."""
    paths = []
    current = current_rows(rows)
    for dataset in sorted({row["dataset"] for row in current}):
        dataset_rows = [row for row in current if row["dataset"] == dataset]
        metrics = {quality_metric(row) for row in dataset_rows}
        if len(metrics) > 1:
            raise ValueError(f"The current rows of {dataset!r} mix quality metrics "
                             f"({', '.join(sorted(metric.label for metric in metrics))}): one plot cannot show both.")
        metric = metrics.pop()
        panels, chosen = {}, {}
        for run in sorted(runs_of(dataset_rows), key=lambda run: run[0]["method"]):
            title = f"{run[0]['method']} ({Path(run[0]['model']).name})"
            panels[title] = [{"series": row["series"], "speedup": _throughput(row), "quality": _quality(row)}
                             for row in run]
            shipped = verdict(run).chosen
            chosen[title] = {"speedup": _throughput(shipped), "quality": _quality(shipped)}
        name = re.sub(r"[^A-Za-z0-9_.-]", "_", Path(dataset).stem)
        ylabel = "accuracy (%)" if metric.key == "accuracy" else metric.label
        split = dataset_rows[0]["split"]
        paths.append(plot_tradeoff_panels(panels, "speedup", "quality", Path(folder) / f"pareto_{name}.png",
                                          series_key="series", chosen=chosen,
                                          title=f"{dataset}: {metric.label} vs measured throughput "
                                                "(star: the shipped operating point)",
                                          xlabel="throughput speed-up vs the full vanilla model (batch 32)",
                                          ylabel=f"{split} {ylabel}"))
    return paths


def update_markdown(path: str | os.PathLike, table: str, plots: Sequence[Path]) -> Path:
    """Replace the text between the summary markers of the Markdown file with the table and links to the plots."""
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    if SUMMARY_START not in text or SUMMARY_END not in text:
        raise ValueError(f"{path} has no {SUMMARY_START} ... {SUMMARY_END} section to fill in.")
    links = " ".join(f"[{plot.stem}]({os.path.relpath(plot, path.parent)})" for plot in plots)
    body = (f"{SUMMARY_START}\n<!-- generated by `adaptive-zoo summarize-benchmarks` from the results file; edit "
            f"that, not this table -->\n\n{table}\n\nPareto plots: {links or 'none yet'}\n{SUMMARY_END}")
    before, rest = text.split(SUMMARY_START, 1)
    path.write_text(before + body + rest.split(SUMMARY_END, 1)[1], encoding="utf-8")
    return path
