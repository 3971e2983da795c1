"""Figures written to disk: the prediction panel (image | ground truth | prediction) and training curves."""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ShapeError
from .colormaps import (
    ArrayLike,
    _as_hw,
    _as_rgb_uint8,
    colorize_depth,
    colorize_labels,
    disparity_limits,
)

__all__ = ["prediction_panel", "compose_prediction_panel", "plot_loss_curves"]

log = logging.getLogger(__name__)

#: Colour of tiles with nothing to show (e.g. no ground truth for a task).
MISSING_TILE_RGB = (128, 128, 128)
#: Colour of the gaps between tiles.
GAP_RGB = (255, 255, 255)
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


def _resize_nearest(tile: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    if tile.shape[:2] == size:
        return tile
    from PIL import Image

    return np.asarray(Image.fromarray(tile).resize((size[1], size[0]), resample=Image.Resampling.NEAREST))


def compose_prediction_panel(
    image: ArrayLike,
    gt_semantic: ArrayLike | None,
    pred_semantic: ArrayLike | None,
    gt_depth: ArrayLike | None,
    pred_depth: ArrayLike | None,
    palette: ArrayLike | None,
    *,
    gap: int = 4,
    cmap: str = "magma",
) -> np.ndarray:
    """Build the panel as an ``(rows*H + (rows-1)*gap, 3*W + 2*gap, 3)`` uint8 array (see ``prediction_panel``)."""
    rgb = _as_rgb_uint8(image)
    size = rgb.shape[:2]
    missing = np.empty((*size, 3), dtype=np.uint8)
    missing[:] = MISSING_TILE_RGB
    rows: list[list[np.ndarray]] = []
    if gt_semantic is not None or pred_semantic is not None:
        if palette is None:
            raise ShapeError("prediction_panel needs a palette for semantic maps; pass default_palette(num_classes)")
        tiles = [rgb]
        for labels in (gt_semantic, pred_semantic):
            tiles.append(missing if labels is None else _resize_nearest(colorize_labels(labels, palette), size))
        rows.append(tiles)
    if gt_depth is not None or pred_depth is not None:
        # One colour scale for both tiles, taken from the (dense) prediction when there is one.
        reference = pred_depth if pred_depth is not None else gt_depth
        vmin, vmax = disparity_limits(reference)
        tiles = [rgb]
        for depth in (gt_depth, pred_depth):
            if depth is None:
                tiles.append(missing)
            else:
                tiles.append(
                    _resize_nearest(colorize_depth(_as_hw(depth, "depth"), cmap=cmap, vmin=vmin, vmax=vmax), size)
                )
        rows.append(tiles)
    if not rows:
        raise ShapeError("prediction_panel got no semantic or depth map; pass at least one of them")
    height, width = size
    out = np.empty((len(rows) * height + (len(rows) - 1) * gap, 3 * width + 2 * gap, 3), dtype=np.uint8)
    out[:] = GAP_RGB
    for r, tiles in enumerate(rows):
        top = r * (height + gap)
        for c, tile in enumerate(tiles):
            left = c * (width + gap)
            out[top : top + height, left : left + width] = tile
    return out


def prediction_panel(
    image: ArrayLike,
    gt_semantic: ArrayLike | None,
    pred_semantic: ArrayLike | None,
    gt_depth: ArrayLike | None,
    pred_depth: ArrayLike | None,
    palette: ArrayLike | None,
    path: str | Path,
    *,
    gap: int = 4,
    cmap: str = "magma",
) -> Path:
    """Write a PNG grid: columns image | ground truth | prediction, one row per task present.

    The semantic row (if either semantic map is given) comes first, then the depth row. Missing ground truth or
    prediction tiles are grey; 255 labels and invalid depth are black. Both depth tiles share one disparity
    scale (the prediction's min..95th percentile). Maps of another size than the image are resized (nearest).

    Args:
        image: ``(3, H, W)`` float in [0, 1] or ``(H, W, 3)`` uint8.
        gt_semantic, pred_semantic: ``(H, W)`` class ids or None.
        gt_depth, pred_depth: ``(H, W)``/``(1, H, W)`` depth in metres (0 = invalid) or None.
        palette: ``(N, 3)`` colours, needed when a semantic map is given.
        path: output PNG path (parent directories are created).
        gap: white pixels between tiles.
        cmap: matplotlib colour map for depth.

    Returns:
        ``path`` as a Path.
    """
    from PIL import Image

    panel = compose_prediction_panel(
        image, gt_semantic, pred_semantic, gt_depth, pred_depth, palette, gap=gap, cmap=cmap
    )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(panel).save(path, format="PNG")
    return path


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


def plot_loss_curves(
    history: Sequence[Mapping[str, Any]],
    path: str | Path,
    *,
    loss_keys: Sequence[str] | None = None,
    metric_keys: Sequence[str] | None = None,
    max_metric_plots: int = 8,
    figsize: tuple[float, float] = (10.0, 6.0),
    dpi: int = 100,
) -> Path:
    """Plot training losses and evaluation metrics from JSONL log rows into one PNG (Agg backend, no pyplot).

    Rows need a numeric ``"step"``; every other finite number is a series. By default keys containing
    ``"loss"`` (or named ``"total"``) go to one log-scale axes, ``"lr"`` to its own, and each remaining key
    (except bookkeeping keys and per-class ``iou/...``) to its own small axes, at most ``max_metric_plots``.

    Args:
        history: the parsed JSONL rows, in order.
        path: output PNG path; the image is ``figsize * dpi`` pixels.
        loss_keys, metric_keys: explicit series to plot instead of the defaults.

    Returns:
        ``path`` as a Path.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    numeric_keys: list[str] = []
    for row in history:
        for key, value in row.items():
            if key not in numeric_keys and _is_number(value):
                numeric_keys.append(key)
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

    panels: list[tuple[str, dict[str, tuple[list[float], list[float]]]]] = []
    if losses:
        panels.append(("losses", losses))
    if lr:
        panels.append(("learning rate", lr))
    panels.extend((name, {name: series}) for name, series in metrics.items())

    fig = Figure(figsize=figsize, dpi=dpi)
    FigureCanvasAgg(fig)
    if not panels:
        ax = fig.add_subplot(1, 1, 1)
        ax.text(0.5, 0.5, "no numeric series with a step yet", ha="center", va="center")
        ax.set_axis_off()
    else:
        cols = min(3, len(panels))
        nrows = math.ceil(len(panels) / cols)
        for i, (title, series) in enumerate(panels):
            ax = fig.add_subplot(nrows, cols, i + 1)
            for name, (steps, values) in series.items():
                ax.plot(steps, values, marker="o" if len(steps) < 30 else None, markersize=3, label=name)
            if title == "losses" and all(v > 0 for _, vals in series.values() for v in vals):
                ax.set_yscale("log")
            ax.set_title(title, fontsize=9)
            ax.set_xlabel("step", fontsize=8)
            ax.tick_params(labelsize=7)
            ax.grid(True, alpha=0.3)
            if len(series) > 1:
                ax.legend(fontsize=7)
        fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", dpi=dpi)
    return path
