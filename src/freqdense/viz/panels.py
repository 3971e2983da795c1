"""Prediction panels: image | ground truth | prediction per task, labelled for a reader.

:func:`prediction_figure` draws samples as a matplotlib Figure: column titles, a row label per task, a class legend
(names and colours of the classes shown) and, per depth row, a colour bar in metres on the row's fixed range (ground
truth and prediction share it). :func:`save_prediction_panels` writes it as a PNG (``predictions.png`` of runs and
the demo); :func:`prediction_panel` does so for one sample. :func:`compose_prediction_panel` returns the bare tile
grid as an array (no text), for callers that compose images themselves.

Training curves live in :mod:`freqdense.viz.curves` (``plot_loss_curves`` is re-exported here).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ShapeError
from .colormaps import (
    IGNORE_INDEX,
    ArrayLike,
    _as_hw,
    _as_palette,
    _as_rgb_uint8,
    colorize_depth,
    colorize_labels,
    disparity_limits,
)
from .curves import plot_loss_curves
from .depth_scale import (
    check_depth_range,
    colorize_depth_range,
    depth_range_of,
    draw_depth_colorbar,
    thin_depth_colorbar,
)

__all__ = [
    "prediction_panel",
    "prediction_figure",
    "save_prediction_panels",
    "compose_prediction_panel",
    "plot_loss_curves",
]

log = logging.getLogger(__name__)

#: Colour of tiles with nothing to show (e.g. no ground truth for a task).
MISSING_TILE_RGB = (128, 128, 128)
#: Colour of the gaps between tiles.
GAP_RGB = (255, 255, 255)
#: Most classes listed in a panel's legend (the most frequent ones shown; the rest are counted).
MAX_LEGEND_CLASSES = 30


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
    depth_range: Sequence[float] | None = None,
) -> np.ndarray:
    """The bare tile grid, an ``(rows*H + (rows-1)*gap, 3*W + 2*gap, 3)`` uint8 array with no text.

    Columns image | ground truth | prediction, a semantic row and/or a depth row; missing tiles grey, gaps white.
    Both depth tiles share one scale: ``depth_range`` ``(near, far)`` metres when given, else the prediction's
    disparity min..95th percentile. For a figure a reader can interpret (titles, legend, colour bar) use
    :func:`prediction_figure` / :func:`prediction_panel`.
    """
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
        if depth_range is not None:
            near, far = check_depth_range(depth_range)
            vmin, vmax = 1.0 / far, 1.0 / near
        else:
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


def _class_names(class_names: Sequence[str] | None, num_colours: int) -> list[str]:
    names = [str(n) for n in class_names] if class_names is not None else []
    return names + [f"class {i}" for i in range(len(names), num_colours)]


def _label_counts(maps: Sequence[np.ndarray], num_colours: int) -> tuple[np.ndarray, bool]:
    counts = np.zeros(num_colours, dtype=np.int64)
    ignore = False
    for lab in maps:
        values = lab.astype(np.int64).ravel()
        ignore |= bool((values == IGNORE_INDEX).any())
        values = values[(values >= 0) & (values < num_colours)]
        counts += np.bincount(values, minlength=num_colours)[:num_colours]
    return counts, ignore


def _legend_handles(
    maps: Sequence[np.ndarray], palette: np.ndarray, class_names: Sequence[str] | None, has_depth: bool
) -> tuple[list[Any], str | None]:
    """Legend patches of the classes present in ``maps`` (by id), ignore/invalid black, and an overflow note."""
    from matplotlib.patches import Patch

    names = _class_names(class_names, len(palette))
    counts, ignore = _label_counts(maps, len(palette))
    present = np.flatnonzero(counts)
    note = None
    if len(present) > MAX_LEGEND_CLASSES:
        top = np.sort(present[np.argsort(-counts[present], kind="stable")[:MAX_LEGEND_CLASSES]])
        note = f"{len(present) - len(top)} rarer classes present but not listed"
        present = top
    handles = [
        Patch(facecolor=palette[c] / 255.0, edgecolor="0.4", linewidth=0.5, label=f"{c}: {names[c]}") for c in present
    ]
    if ignore or has_depth:
        what = " / ".join(w for w, on in (("ignore label", ignore), ("invalid depth", has_depth)) if on)
        handles.append(Patch(facecolor="black", edgecolor="0.4", linewidth=0.5, label=what))
    return handles, note


def _row_depth_range(
    gt: ArrayLike | None, pred: ArrayLike | None, depth_range: Sequence[float] | None
) -> tuple[tuple[float, float] | None, str]:
    """The row's fixed range and where it comes from: given, else ground truth, else the prediction."""
    if depth_range is not None:
        return check_depth_range(depth_range), "fixed"
    if gt is not None:
        found = depth_range_of(gt)
        if found is not None:
            return found, "ground truth"
    if pred is not None:
        found = depth_range_of(pred)
        if found is not None:
            return found, "prediction"
    return None, ""


def prediction_figure(
    samples: Sequence[Mapping[str, Any]],
    *,
    palette: ArrayLike | None = None,
    class_names: Sequence[str] | None = None,
    depth_range: Sequence[float] | None = None,
    cmap: str = "magma",
    title: str | None = None,
    tile_width: float = 2.4,
    dpi: int = 100,
) -> Any:
    """A labelled panel of ``samples``: columns image | ground truth | prediction, one row per sample and task.

    Each sample row is labelled (``sample name`` and the task); the top row has the column titles. Semantic rows
    colour classes with ``palette``; a legend below the panel lists the classes shown (``id: name`` with its
    colour; the :data:`MAX_LEGEND_CLASSES` most frequent when there are more) and black for ignore labels / invalid
    depth. Depth rows colour inverse depth (near = bright) on one fixed range for both tiles, with a colour bar in
    metres at the end of the row; the range is ``depth_range`` when given, else the row's ground truth (its 5th
    percentile to its maximum, rounded outwards), else its prediction, and the row label states it. Missing tiles
    are grey and say what is missing.

    Args:
        samples: mappings with ``image`` (``(3, H, W)`` float in [0, 1] or ``(H, W, 3)`` uint8) and any of
            ``gt_semantic``/``pred_semantic`` (``(H, W)`` class ids, 255 = ignore) and ``gt_depth``/``pred_depth``
            (``(H, W)`` or ``(1, H, W)`` metres, ``<= 0`` = invalid); optional ``name`` (row label).
        palette: ``(N, 3)`` class colours; needed when a sample has a semantic map.
        class_names: class names by id (e.g. the dataset's ``classes``); default ``"class <id>"``.
        depth_range: ``(near, far)`` metres for every depth row (default: per row, see above).
        cmap: matplotlib colour map of depth.
        title: figure title.
        tile_width: width of one tile in inches.
        dpi: resolution of the figure.

    Returns:
        A matplotlib ``Figure`` with an Agg canvas (no pyplot); ``fig.savefig`` writes it.

    Raises:
        ShapeError: no samples, a sample without any map, or semantic maps without a palette.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if not samples:
        raise ShapeError("prediction_figure got no samples")
    pal = _as_palette(palette) if palette is not None else None
    rows: list[dict[str, Any]] = []
    label_maps: list[np.ndarray] = []
    has_depth = False
    for k, sample in enumerate(samples):
        rgb = _as_rgb_uint8(sample["image"])
        size = rgb.shape[:2]
        name = str(sample.get("name", f"sample {k + 1}" if len(samples) > 1 else ""))
        gt_sem, pred_sem = sample.get("gt_semantic"), sample.get("pred_semantic")
        gt_dep, pred_dep = sample.get("gt_depth"), sample.get("pred_depth")
        if gt_sem is None and pred_sem is None and gt_dep is None and pred_dep is None:
            raise ShapeError(f"prediction_figure sample {k} has no semantic or depth map; pass at least one")
        if gt_sem is not None or pred_sem is not None:
            if pal is None:
                raise ShapeError(
                    "prediction_figure needs a palette for semantic maps; pass the dataset's palette or "
                    "default_palette(num_classes)"
                )
            tiles = [rgb]
            for labels in (gt_sem, pred_sem):
                if labels is None:
                    tiles.append(None)
                else:
                    lab = _as_hw(labels, "labels")
                    label_maps.append(lab)
                    tiles.append(_resize_nearest(colorize_labels(lab, pal), size))
            rows.append({"name": name, "task": "semantic", "tiles": tiles, "range": None})
        if gt_dep is not None or pred_dep is not None:
            has_depth = True
            rng, source = _row_depth_range(gt_dep, pred_dep, depth_range)
            tiles = [rgb]
            for depth in (gt_dep, pred_dep):
                if depth is None or rng is None:
                    tiles.append(None if depth is None else np.zeros((*size, 3), dtype=np.uint8))
                else:
                    tiles.append(_resize_nearest(colorize_depth_range(depth, rng, cmap=cmap), size))
            rows.append({"name": name, "task": "depth", "tiles": tiles, "range": rng, "source": source})

    height, width = rows[0]["tiles"][0].shape[:2]
    tile_h = tile_width * height / max(width, 1)
    legend_rows = 0
    handles: list[Any] = []
    note = None
    if label_maps or has_depth:
        handles, note = _legend_handles(
            label_maps, pal if pal is not None else np.zeros((0, 3)), class_names, has_depth
        )
        legend_rows = -(-len(handles) // 4)
    fig_w = 3 * tile_width + 1.9
    fig_h = len(rows) * (tile_h + 0.3) + (0.55 if title else 0.35) + 0.3 + 0.25 * legend_rows
    fig = Figure(figsize=(fig_w, fig_h), dpi=dpi, layout="constrained")
    FigureCanvasAgg(fig)
    grid = fig.add_gridspec(len(rows), 4, width_ratios=(1.0, 1.0, 1.0, 0.07))
    bars: list[Any] = []
    columns = ("image", "ground truth", "prediction")
    missing_text = ("", "no ground truth", "no prediction")
    for r, row in enumerate(rows):
        for c, tile in enumerate(row["tiles"]):
            ax = fig.add_subplot(grid[r, c])
            ax.set_xticks([])
            ax.set_yticks([])
            if tile is None:
                ax.imshow(np.full((height, width, 3), MISSING_TILE_RGB, dtype=np.uint8))
                ax.text(0.5, 0.5, missing_text[c], ha="center", va="center", transform=ax.transAxes, fontsize=8)
            else:
                ax.imshow(tile, interpolation="nearest")
            if r == 0:
                ax.set_title(columns[c], fontsize=10)
            if c == 0:
                label = row["task"]
                if row["task"] == "depth" and row["range"] is not None:
                    near, far = row["range"]
                    label = f"depth, {near:g}-{far:g} m\n(range of the {row['source']})"
                ax.set_ylabel(f"{row['name']}\n{label}" if row["name"] else label, fontsize=8)
        cax = fig.add_subplot(grid[r, 3])
        if row["task"] == "depth" and row["range"] is not None:
            bar = draw_depth_colorbar(fig, cax, row["range"], cmap=cmap, label="depth [m]", fontsize=7, thin=False)
            bars.append((bar, row["range"]))
        else:
            cax.set_axis_off()
    if title:
        fig.suptitle(title, fontsize=11)
    if handles:
        legend_title = "classes (id: name)" if label_maps else None
        if note:
            legend_title = f"{legend_title}; {note}"
        fig.legend(
            handles=handles,
            loc="outside lower center",
            ncols=min(4, len(handles)),
            fontsize=8,
            title=legend_title,
            title_fontsize=8,
            frameon=False,
        )
    for bar, rng in bars:  # once the layout is complete: drop colour-bar tick labels that would overlap
        thin_depth_colorbar(bar, rng)
    return fig


def save_prediction_panels(
    samples: Sequence[Mapping[str, Any]],
    path: str | Path,
    *,
    palette: ArrayLike | None = None,
    class_names: Sequence[str] | None = None,
    depth_range: Sequence[float] | None = None,
    cmap: str = "magma",
    title: str | None = None,
    dpi: int = 100,
) -> Path:
    """Write :func:`prediction_figure` of ``samples`` as a PNG (parent directories are created).

    Returns:
        ``path`` as a Path.
    """
    fig = prediction_figure(
        samples, palette=palette, class_names=class_names, depth_range=depth_range, cmap=cmap, title=title, dpi=dpi
    )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", dpi=dpi)
    return path


def prediction_panel(
    image: ArrayLike,
    gt_semantic: ArrayLike | None,
    pred_semantic: ArrayLike | None,
    gt_depth: ArrayLike | None,
    pred_depth: ArrayLike | None,
    palette: ArrayLike | None,
    path: str | Path,
    *,
    class_names: Sequence[str] | None = None,
    depth_range: Sequence[float] | None = None,
    title: str | None = None,
    gap: int = 4,
    cmap: str = "magma",
    labelled: bool = True,
) -> Path:
    """Write the labelled panel of one sample (see :func:`prediction_figure`) as a PNG.

    Args:
        image: ``(3, H, W)`` float in [0, 1] or ``(H, W, 3)`` uint8.
        gt_semantic, pred_semantic: ``(H, W)`` class ids or None.
        gt_depth, pred_depth: ``(H, W)``/``(1, H, W)`` depth in metres (0 = invalid) or None.
        palette: ``(N, 3)`` colours, needed when a semantic map is given.
        path: output PNG path (parent directories are created).
        class_names: class names by id for the legend (default ``"class <id>"``).
        depth_range: fixed ``(near, far)`` metres of the depth colours (default: the ground truth's range).
        title: figure title.
        gap: white pixels between tiles (``labelled=False`` only).
        cmap: matplotlib colour map for depth.
        labelled: False writes the bare tile grid of :func:`compose_prediction_panel` (no text) instead.

    Returns:
        ``path`` as a Path.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not labelled:
        from PIL import Image

        panel = compose_prediction_panel(
            image,
            gt_semantic,
            pred_semantic,
            gt_depth,
            pred_depth,
            palette,
            gap=gap,
            cmap=cmap,
            depth_range=depth_range,
        )
        Image.fromarray(panel).save(path, format="PNG")
        return path
    sample = {
        "image": image,
        "gt_semantic": gt_semantic,
        "pred_semantic": pred_semantic,
        "gt_depth": gt_depth,
        "pred_depth": pred_depth,
    }
    return save_prediction_panels(
        [sample], path, palette=palette, class_names=class_names, depth_range=depth_range, cmap=cmap, title=title
    )
