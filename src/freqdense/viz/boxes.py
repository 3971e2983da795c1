"""Draw detections on an image: one coloured rectangle per box with its class name and score.

The drawing is a matplotlib figure on an Agg canvas (no pyplot, no window) whose axes fill the canvas exactly, so a
box ``(x1, y1, x2, y2)`` in image pixels lands on ``scale * (x1, y1, x2, y2)`` of the returned array. Rectangles are
drawn without antialiasing (their pixels carry the class colour exactly); labels are white text on a patch of the
class colour, above the box where there is room, else inside its top edge. Small images are enlarged by an integer
factor (nearest neighbour) so that the labels stay readable.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from ..errors import ConfigError, ShapeError

__all__ = ["draw_detections", "drawing_scale"]

#: Long side, in pixels, below which :func:`drawing_scale` enlarges the drawing.
MIN_DRAWN_SIDE = 480


def drawing_scale(height: int, width: int) -> int:
    """The integer enlargement :func:`draw_detections` uses by default: ``ceil(480 / max(H, W))``, at least 1."""
    return max(1, math.ceil(MIN_DRAWN_SIDE / max(1, height, width)))


def _as_hwc_uint8(image: Any) -> np.ndarray:
    if isinstance(image, torch.Tensor):
        if image.dim() != 3 or image.shape[0] != 3:
            raise ShapeError(f"draw_detections image tensor must be (3, H, W) RGB in [0, 1], got {tuple(image.shape)}")
        array = image.detach().float().clamp(0, 1).permute(1, 2, 0).cpu().numpy()
        return np.round(array * 255).astype(np.uint8)
    array = np.asarray(image)
    if array.ndim != 3 or array.shape[2] != 3:
        raise ShapeError(f"draw_detections image array must be (H, W, 3) RGB, got {array.shape}")
    if array.dtype != np.uint8:
        array = np.round(np.clip(array.astype(np.float64), 0, 1) * 255).astype(np.uint8)
    return array


def draw_detections(
    image: Any,
    boxes: Any,
    labels: Any,
    scores: Any | None = None,
    *,
    class_names: Sequence[str] | None = None,
    palette: Any | None = None,
    scale: int | None = None,
    line_width: float | None = None,
) -> np.ndarray:
    """An RGB uint8 ``(scale H, scale W, 3)`` array: ``image`` with the boxes and their labels drawn.

    Args:
        image: ``(3, H, W)`` tensor in [0, 1] or ``(H, W, 3)`` array (uint8, or float in [0, 1]).
        boxes: ``(N, 4)`` ``x1, y1, x2, y2`` in image pixels.
        labels: ``(N,)`` class ids.
        scores: ``(N,)`` confidences written after the class name (optional).
        class_names: name per class id (default: the id).
        palette: ``(K, 3)`` uint8 colour per class id (default: :func:`freqdense.viz.default_palette`).
        scale: integer enlargement (default: :func:`drawing_scale`).
        line_width: rectangle width in output pixels (default: 2, 3 from 1000 px on).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle

    from .colormaps import default_palette

    rgb = _as_hwc_uint8(image)
    h, w = rgb.shape[:2]
    box_array = np.asarray(boxes.detach().cpu() if isinstance(boxes, torch.Tensor) else boxes, dtype=np.float64)
    box_array = box_array.reshape(-1, 4)
    label_array = np.asarray(labels.detach().cpu() if isinstance(labels, torch.Tensor) else labels).reshape(-1)
    if label_array.shape[0] != box_array.shape[0]:
        raise ShapeError(f"draw_detections got {box_array.shape[0]} boxes but {label_array.shape[0]} labels")
    score_array = None
    if scores is not None:
        score_array = np.asarray(scores.detach().cpu() if isinstance(scores, torch.Tensor) else scores).reshape(-1)
        if score_array.shape[0] != box_array.shape[0]:
            raise ShapeError(f"draw_detections got {box_array.shape[0]} boxes but {score_array.shape[0]} scores")
    num = int(label_array.max()) + 1 if label_array.size else 1
    colours = np.asarray(default_palette(max(num, 1)) if palette is None else palette, dtype=np.int64).reshape(-1, 3)
    if label_array.size and (label_array.min() < 0 or label_array.max() >= len(colours)):
        raise ConfigError(
            f"draw_detections: labels span [{label_array.min()}, {label_array.max()}] but the palette has "
            f"{len(colours)} colours"
        )
    s = drawing_scale(h, w) if scale is None else int(scale)
    if s < 1:
        raise ConfigError(f"draw_detections scale must be an integer >= 1, got {scale!r}")
    big = np.repeat(np.repeat(rgb, s, axis=0), s, axis=1) if s > 1 else rgb
    out_h, out_w = h * s, w * s
    lw_px = float(line_width) if line_width is not None else (3.0 if max(out_h, out_w) >= 1000 else 2.0)

    dpi = 100.0
    fig = Figure(figsize=(out_w / dpi, out_h / dpi), dpi=dpi)
    canvas = FigureCanvasAgg(fig)
    ax = fig.add_axes((0.0, 0.0, 1.0, 1.0))
    ax.imshow(big, interpolation="nearest", extent=(0, out_w, out_h, 0))
    ax.set_xlim(0, out_w)
    ax.set_ylim(out_h, 0)
    ax.set_axis_off()
    points_per_px = 72.0 / dpi
    font = max(6.0, min(14.0, out_h / 28.0)) * 1.0
    order = np.argsort(-score_array, kind="stable") if score_array is not None else np.arange(len(box_array))
    for i in order[::-1]:  # the best box drawn last, on top
        x1, y1, x2, y2 = (box_array[i] * s).tolist()
        colour = tuple(int(c) / 255.0 for c in colours[int(label_array[i])])
        ax.add_patch(
            Rectangle(
                (x1, y1),
                max(x2 - x1, 0.0),
                max(y2 - y1, 0.0),
                fill=False,
                edgecolor=colour,
                linewidth=lw_px * points_per_px,
                antialiased=False,
            )
        )
        name = str(class_names[int(label_array[i])]) if class_names is not None else str(int(label_array[i]))
        text = name if score_array is None else f"{name} {float(score_array[i]):.2f}"
        above = y1 >= font / points_per_px + 2
        ax.text(
            x1,
            y1 if above else y1 + lw_px,
            text,
            color="white",
            fontsize=font,
            va="bottom" if above else "top",
            ha="left",
            bbox={"facecolor": colour, "edgecolor": "none", "pad": 1.0},
            clip_on=True,
        )
    canvas.draw()
    drawn = np.asarray(canvas.buffer_rgba())[..., :3].copy()
    if drawn.shape[:2] != (out_h, out_w):  # figure size rounding: pad or cut to the exact size
        fixed = np.zeros((out_h, out_w, 3), dtype=np.uint8)
        hh, ww = min(out_h, drawn.shape[0]), min(out_w, drawn.shape[1])
        fixed[:hh, :ww] = drawn[:hh, :ww]
        drawn = fixed
    return drawn
