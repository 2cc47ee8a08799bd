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

__all__ = ["plot_tradeoff", "plot_tradeoff_panels"]


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
LEGEND_COLUMNS = 5  # of the shared legend below a row of panels
MIN_PANELS_WIDTH = 6.5  # inches: a row of panels is at least as wide as a legend row of LEGEND_COLUMNS entries


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
    figure = _new_figure((6.0, 4.5))
    axes = figure.add_subplot()
    _draw_tradeoff(axes, points, x, y, label_key=label_key, baseline_y=baseline_y, baseline_label=baseline_label,
                   chosen=chosen, series_key=series_key)
    axes.set_xlabel(xlabel or x)
    axes.set_ylabel(ylabel or y)
    if title:
        axes.set_title(title)
    if axes.get_legend_handles_labels()[0]:
        axes.legend(fontsize=8)
    return _save(figure, path)


def plot_tradeoff_panels(
    panels: Mapping[str, Sequence[Mapping[str, Any]]],
    x: str,
    y: str,
    path: str | Path,
    *,
    series_key: str,
    chosen: Mapping[str, Mapping[str, Any]] | None = None,
    title: str | None = None,
    xlabel: str | None = None,
    ylabel: str | None = None,
) -> Path:
    """Like `plot_tradeoff` with `series_key`, one panel per entry of `panels` (titled by its key), side by side,
    each with its own y range. A series keeps its colour and marker in every panel, and one legend below the panels
    names them all, so no legend covers a panel's points (e.g. one panel per benchmark run of a dataset).
    `chosen` maps a panel's title to its point to star."""
    names = list(_group([point for points in panels.values() for point in points], series_key))
    figure = _new_figure((max(4.2 * len(panels), MIN_PANELS_WIDTH), 4.6))
    for index, (panel_title, points) in enumerate(panels.items()):
        axes = figure.add_subplot(1, len(panels), index + 1)
        _draw_tradeoff(axes, points, x, y, series_key=series_key, series_order=names,
                       chosen=(chosen or {}).get(panel_title))
        axes.set_title(panel_title, fontsize=10)
        axes.set_xlabel(xlabel or x, fontsize=9)
        if index == 0:
            axes.set_ylabel(ylabel or y)
    handles, labels = [], []
    for axes in figure.axes:
        for handle, label in zip(*axes.get_legend_handles_labels()):
            if label not in labels:
                handles.append(handle)
                labels.append(label)
    figure.legend(handles, labels, loc="lower center", ncol=min(len(labels), LEGEND_COLUMNS), fontsize=8,
                  frameon=False)
    if title:
        figure.suptitle(title)
    legend_rows = -(-len(labels) // LEGEND_COLUMNS)
    return _save(figure, path, layout_rect=(0, 0.04 + 0.045 * legend_rows, 1, 1))


def _new_figure(size: tuple[float, float]):
    # lazy: matplotlib costs every CLI start ~0.25 s, and only a finished run's plots need it
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=size, dpi=120)
    FigureCanvasAgg(figure)
    return figure


def _save(figure, path: str | Path, layout_rect: tuple[float, float, float, float] | None = None) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.tight_layout(rect=layout_rect)
    # "tight" grows the image to whatever is drawn: a one-panel figure is narrower than its title and its legend
    figure.savefig(path, format="png", bbox_inches="tight", pad_inches=0.1)
    return path


def _draw_tradeoff(axes, points: Sequence[Mapping[str, Any]], x: str, y: str, *, label_key: str | None = None,
                   baseline_y: float | None = None, baseline_label: str = "baseline",
                   chosen: int | Mapping[str, Any] | None = None, series_key: str | None = None,
                   series_order: Sequence[str] | None = None) -> None:
    """`points` on `axes`: one line per series (sorted by `x`), styled by the series' place in `series_order`
    (default: first seen here), optional labels, baseline and chosen point."""
    groups = _group(points, series_key)
    order = list(series_order) if series_order is not None else list(groups)
    for name, series in groups.items():
        series = sorted(series, key=lambda point: point[x])
        axes.plot(
            [point[x] for point in series], [point[y] for point in series], label=name or None,
            **line_style(order.index(name))
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

    axes.grid(True, alpha=0.3)
