"""Training curves: losses, learning rate and evaluation metrics of a run's ``log.jsonl`` in one PNG."""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["plot_loss_curves", "loss_curves_figure"]

log = logging.getLogger(__name__)

#: JSONL keys that are bookkeeping, never plotted as a loss or metric.
_BOOKKEEPING_KEYS = frozenset(
    {
        "step",
        "epoch",
        "iter",
        "iteration",
        "time",
        "wall_time",
        "elapsed",
        "seconds",
        "timestamp",
        "split",
        "phase",
        "tag",
        "kind",
        "samples",
        "images_per_s",
    }
)
#: Row kinds (the ``kind`` key the run logger writes) whose numbers are evaluation results.
_EVAL_KINDS = frozenset({"eval", "val", "validation", "test"})


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _series(history: Iterable[Mapping[str, Any]], keys: Sequence[str]) -> dict[str, tuple[list[float], list[float]]]:
    out: dict[str, tuple[list[float], list[float]]] = {k: ([], []) for k in keys}
    for row in history:
        step = row.get("step")
        if not _is_number(step):
            continue
        for key in keys:
            value = row.get(key)
            if _is_number(value):
                out[key][0].append(float(step))
                out[key][1].append(float(value))
    return {k: v for k, v in out.items() if v[0]}


def _positive(series: Mapping[str, tuple[list[float], list[float]]]) -> bool:
    return all(v > 0 for _, values in series.values() for v in values)


def _spans_decades(series: Mapping[str, tuple[list[float], list[float]]], ratio: float = 20.0) -> bool:
    values = [v for _, vals in series.values() for v in vals]
    return bool(values) and min(values) > 0 and max(values) / min(values) >= ratio


def loss_curves_figure(
    history: Sequence[Mapping[str, Any]],
    *,
    loss_keys: Sequence[str] | None = None,
    metric_keys: Sequence[str] | None = None,
    max_metric_plots: int = 8,
    figsize: tuple[float, float] = (10.0, 6.0),
    dpi: int = 100,
    title: str | None = "training curves",
) -> Any:
    """The matplotlib Figure of :func:`plot_loss_curves` (Agg canvas, no pyplot), for callers that add to it."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    numeric_keys: list[str] = []
    eval_keys: set[str] = set()
    for row in history:
        is_eval = str(row.get("kind", "")).lower() in _EVAL_KINDS
        for key, value in row.items():
            if _is_number(value):
                if key not in numeric_keys:
                    numeric_keys.append(key)
                if is_eval:
                    eval_keys.add(key)
    candidates = [k for k in numeric_keys if k not in _BOOKKEEPING_KEYS]
    if loss_keys is None:
        loss_keys = [k for k in candidates if "loss" in k.lower() or k.split("/")[-1] == "total"]
    if metric_keys is None:
        metric_keys = [
            k
            for k in candidates
            if k not in loss_keys and k != "lr" and not k.split("/")[-1].isdigit() and "iou/" not in k
        ]
    if len(metric_keys) > max_metric_plots:
        log.info(
            "plot_loss_curves: plotting %d of %d metrics (%s)",
            max_metric_plots,
            len(metric_keys),
            ", ".join(metric_keys[:max_metric_plots]),
        )
        metric_keys = list(metric_keys[:max_metric_plots])
    losses = _series(history, loss_keys)
    lr = _series(history, ["lr"]) if "lr" in numeric_keys else {}
    metrics = _series(history, metric_keys)

    # (title, y label, series, kind) per axes
    panels: list[tuple[str, str, dict[str, tuple[list[float], list[float]]], str]] = []
    if losses:
        panels.append(("training losses", "loss", losses, "loss"))
    if lr:
        panels.append(("learning rate", "learning rate", lr, "lr"))
    for name, series in metrics.items():
        source = "validation" if name in eval_keys else "training"
        panels.append((f"{name} ({source})", name.split("/")[-1], {name: series}, source))

    fig = Figure(figsize=figsize, dpi=dpi, layout="constrained")
    FigureCanvasAgg(fig)
    if title:
        fig.suptitle(title, fontsize=11)
    if not panels:
        ax = fig.add_subplot(1, 1, 1)
        ax.text(0.5, 0.5, "no numeric series with a step yet", ha="center", va="center")
        ax.set_axis_off()
        return fig
    steps_all = [s for _, _, series, _ in panels for steps, _ in series.values() for s in steps]
    x_range = (min(steps_all), max(steps_all))
    for ax, (panel_title, ylabel, series, kind) in zip(_panel_axes(fig, panels), panels):
        for name, (steps, values) in series.items():
            label = name if kind in ("loss", "lr") else f"{kind} ({len(steps)} point{'s' if len(steps) > 1 else ''})"
            ax.plot(steps, values, marker="o" if len(steps) < 30 else None, markersize=3, label=label)
            if kind not in ("loss", "lr"):  # the last value in numbers: one-point series are common (final eval)
                ax.annotate(
                    f"{values[-1]:.4g}",
                    (steps[-1], values[-1]),
                    textcoords="offset points",
                    xytext=(-4, 5),
                    ha="right",
                    fontsize=7,
                )
        log_scale = (kind == "loss" and _positive(series)) or (kind == "lr" and _spans_decades(series))
        if log_scale:
            _plain_log_axis(ax)
            ylabel += " (log scale)"
        if x_range[1] > x_range[0]:
            pad = 0.03 * (x_range[1] - x_range[0])
            ax.set_xlim(x_range[0] - pad, x_range[1] + pad)
        ax.set_title(panel_title, fontsize=9)
        ax.set_xlabel("step", fontsize=8)
        ax.set_ylabel(ylabel, fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7, loc="best")
    return fig


def _panel_axes(fig: Any, panels: Sequence[Any]) -> list[Any]:
    """Axes for the panels: the losses (first) twice as tall and two columns wide when there are others."""
    if len(panels) == 1:
        return [fig.add_subplot(1, 1, 1)]
    cols = 3
    has_losses = panels[0][3] == "loss"
    first_row = 2 if has_losses else 3  # panels in the first row
    rest = max(0, len(panels) - first_row)
    nrows = 1 + -(-rest // cols)
    grid = fig.add_gridspec(nrows, cols, height_ratios=(2.0, *([1.0] * (nrows - 1))) if has_losses else None)
    axes = []
    if has_losses:
        axes.append(fig.add_subplot(grid[0, :2]))
        if len(panels) > 1:
            axes.append(fig.add_subplot(grid[0, 2]))
    else:
        axes.extend(fig.add_subplot(grid[0, c]) for c in range(min(cols, len(panels))))
    for k in range(len(panels) - len(axes)):
        axes.append(fig.add_subplot(grid[1 + k // cols, k % cols]))
    return axes


def _plain_log_axis(ax: Any) -> None:
    """Log-scale y with ticks at 1-2-5 per decade written as plain numbers (0.5, 1, 2), labels never overlapping."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    ax.set_yscale("log")
    ax.yaxis.set_major_locator(LogLocator(base=10.0, subs=(1.0, 2.0, 5.0)))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda value, _pos: f"{value:g}"))
    ax.yaxis.set_minor_formatter(NullFormatter())


def plot_loss_curves(
    history: Sequence[Mapping[str, Any]],
    path: str | Path,
    *,
    loss_keys: Sequence[str] | None = None,
    metric_keys: Sequence[str] | None = None,
    max_metric_plots: int = 8,
    figsize: tuple[float, float] = (10.0, 6.0),
    dpi: int = 100,
    title: str | None = "training curves",
) -> Path:
    """Plot training losses and evaluation metrics from JSONL log rows into one PNG (Agg backend, no pyplot).

    Rows need a numeric ``"step"``; every other finite number is a series. By default keys containing
    ``"loss"`` (or named ``"total"``) share one axes ("training losses", log scale when all are positive, one legend
    entry per loss), ``"lr"`` gets its own (log scale when it spans more than a factor 20), and each remaining key
    (except bookkeeping keys and per-class ``iou/...``) its own small axes, at most ``max_metric_plots``, titled
    with the metric and whether it comes from validation rows (``"kind": "eval"``) or training rows. Every axes has
    a title, ``step`` on x, the quantity on y and a legend.

    Args:
        history: the parsed JSONL rows, in order.
        path: output PNG path; the image is ``figsize * dpi`` pixels.
        loss_keys, metric_keys: explicit series to plot instead of the defaults.
        max_metric_plots: most metric axes drawn (the first ones in log order).
        figsize, dpi: figure size in inches and resolution.
        title: figure title (None: none).

    Returns:
        ``path`` as a Path.
    """
    fig = loss_curves_figure(
        history,
        loss_keys=loss_keys,
        metric_keys=metric_keys,
        max_metric_plots=max_metric_plots,
        figsize=figsize,
        dpi=dpi,
        title=title,
    )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _thin_log_ticks(fig)
    fig.savefig(path, format="png", dpi=dpi)
    return path


def _thin_log_ticks(fig: Any) -> None:
    from .ticks import thin_overlapping_ticks

    for ax in fig.axes:
        if ax.get_yscale() == "log":
            thin_overlapping_ticks(ax, "y")
