# Copyright 2025 The adaptive-zoo authors.
# Licensed under the Apache License, Version 2.0.
"""Trade-off plots (speed-up vs. accuracy, or any two measured quantities) saved as PNG files.

Used for threshold sweeps (DeeBERT entropy), phi sweeps, exit-method comparisons, ... : each point is a
plain dict of measurements, so one function serves all of them. Figures are drawn on an explicit Agg
canvas instead of `pyplot`, so importing this module neither needs a display nor changes matplotlib's
global backend for the caller.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["plot_tradeoff"]


def _group(points: Sequence[Mapping[str, Any]], series_key: str | None) -> dict[str, list[Mapping[str, Any]]]:
    """Split points into named series, keeping first-seen order of the series."""
    groups: dict[str, list[Mapping[str, Any]]] = {}
    for point in points:
        name = str(point[series_key]) if series_key is not None else ""
        groups.setdefault(name, []).append(point)
    return groups


def _format_label(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def _resolve_chosen(
    points: Sequence[Mapping[str, Any]], chosen: int | Mapping[str, Any] | None
) -> Mapping[str, Any] | None:
    if chosen is None or isinstance(chosen, Mapping):
        return chosen
    return points[chosen]


LINE_MARKERS = ("o", "s", "^", "D", "v", "P")


def line_style(index: int) -> dict[str, str]:
    """The colour and marker of the `index`-th line: matplotlib's 10 default colours, then the same colours with the
    next marker, so that no two of up to 60 lines look alike (a benchmark plot has one line per method and per
    static alternative of each run: 12 with two methods)."""
    return {"color": f"C{index % 10}", "marker": LINE_MARKERS[(index // 10) % len(LINE_MARKERS)]}


def plot_tradeoff(
    points: Sequence[Mapping[str, Any]],
    x: str,
    y: str,
    path: str | Path,
    *,
    label_key: str | None = None,
    title: str | None = None,
    baseline_y: float | None = None,
    baseline_label: str = "baseline",
    chosen: int | Mapping[str, Any] | None = None,
    series_key: str | None = None,
    xlabel: str | None = None,
    ylabel: str | None = None,
) -> Path:
    """Draw `points[i][y]` against `points[i][x]` and save the figure as a PNG.

    Args:
        points: one dict of measurements per operating point (e.g. one entropy threshold).
        x, y: keys of the plotted quantities, e.g. `"speedup"` and `"accuracy"`.
        path: output file; parent folders are created.
        label_key: if given, each point is annotated with `point[label_key]` (e.g. the threshold), so
            the plot says which setting produced which trade-off.
        title: figure title.
        baseline_y: draws a horizontal dashed line (e.g. the vanilla model's accuracy) to read off the
            cost of each operating point.
        baseline_label: legend entry of that line.
        chosen: the operating point retained (index into `points`, or the point itself), highlighted
            with a star.
        series_key: if given, points are split into one line per distinct `point[series_key]` (e.g. the
            exit method), each sorted by `x`.
        xlabel, ylabel: axis labels, defaulting to `x` and `y`.

    Returns:
        The path of the written PNG.
    """
    # lazy: matplotlib costs every CLI start ~0.25 s, and only a finished run's plots need it
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure = Figure(figsize=(6.0, 4.5), dpi=120)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()

    for index, (name, series) in enumerate(_group(points, series_key).items()):
        series = sorted(series, key=lambda point: point[x])
        axes.plot(
            [point[x] for point in series], [point[y] for point in series], label=name or None, **line_style(index)
        )
        if label_key is not None:
            for point in series:
                axes.annotate(
                    _format_label(point[label_key]),
                    (point[x], point[y]),
                    textcoords="offset points",
                    xytext=(4, 4),
                    fontsize=7,
                )

    if baseline_y is not None:
        axes.axhline(baseline_y, linestyle="--", color="grey", label=baseline_label)
    chosen_point = _resolve_chosen(points, chosen)
    if chosen_point is not None:
        axes.scatter(
            [chosen_point[x]], [chosen_point[y]], marker="*", s=220, color="red", zorder=5, label="chosen"
        )

    axes.set_xlabel(xlabel or x)
    axes.set_ylabel(ylabel or y)
    if title:
        axes.set_title(title)
    axes.grid(True, alpha=0.3)
    if axes.get_legend_handles_labels()[0]:
        axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, format="png")
    return path
