"""The README sample panel: every modality of a few synthetic samples side by side."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .classes import CLASSES, IGNORE_INDEX, PALETTE
from .config import SyntheticConfig

__all__ = ["colorize_labels", "colorize_depth", "render_panel"]

#: Depth range of the panel's depth colours, in metres (``turbo``: near = blue, far = red; 0 = black).
PANEL_MAX_DEPTH = 8.0

_COLUMNS = (
    ("image", "RGB (t)"),
    ("semantic", "labels"),
    ("depth", "depth (exact)"),
    ("sensor_depth", "sensor depth"),
    ("image_right", "stereo right"),
    ("image_prev", "frame t-1"),
    ("image_next", "frame t+1"),
)


def colorize_labels(labels: np.ndarray) -> np.ndarray:
    """(H, W) class ids -> (H, W, 3) uint8 with :data:`PALETTE`; ignore (255) is black."""
    lut = np.zeros((256, 3), dtype=np.uint8)
    lut[: len(PALETTE)] = PALETTE
    lut[IGNORE_INDEX] = 0
    return lut[labels.astype(np.int64)]


def colorize_depth(depth: np.ndarray, max_depth: float = PANEL_MAX_DEPTH) -> np.ndarray:
    """(H, W) metres -> (H, W, 3) uint8 with matplotlib's ``turbo`` (near = blue); invalid (0) is black."""
    from matplotlib import colormaps

    rgb = colormaps["turbo"](np.clip(depth / max_depth, 0.0, 1.0))[..., :3]
    rgb[~(depth > 0)] = 0.0
    return (rgb * 255).astype(np.uint8)


def render_panel(
    path: str | os.PathLike,
    *,
    num_samples: int = 3,
    split: str = "val",
    size: tuple[int, int] = (96, 128),
    seed: int = 0,
    config: SyntheticConfig | None = None,
    dpi: int = 100,
) -> Path:
    """Render ``num_samples`` samples (all modalities, no cache) into a PNG grid with a class legend and a depth
    colour bar (0 to :data:`PANEL_MAX_DEPTH` metres) under the depth columns."""
    from matplotlib import colormaps
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    from .dataset import SyntheticScenes

    dataset = SyntheticScenes(split=split, config=config, size=size, seed=seed, num_samples=num_samples)
    h, w = size
    cell_w = 2.0  # inches per image column
    cell_h = cell_w * h / w
    title_in, legend_in = 0.3, 1.3  # legend band: the depth colour bar, then the class legend
    fig_h = num_samples * cell_h * 1.04 + title_in + legend_in
    fig = Figure(figsize=(len(_COLUMNS) * cell_w * 1.04, fig_h), dpi=dpi)
    FigureCanvasAgg(fig)
    axes = fig.subplots(num_samples, len(_COLUMNS), squeeze=False)
    for row in range(num_samples):
        record = dataset.record(row)
        for col, (key, title) in enumerate(_COLUMNS):
            ax = axes[row][col]
            if key == "semantic":
                img = colorize_labels(record[key])
            elif key in ("depth", "sensor_depth"):
                img = colorize_depth(record[key])
            else:
                img = record[key]
            ax.imshow(img, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title(title, fontsize=9)
    handles = [Patch(color=np.array(c) / 255, label=name) for name, c in zip(CLASSES, PALETTE)]
    handles.append(Patch(color="black", label="ignore (255) / no depth"))
    fig.legend(
        handles=handles, loc="lower center", ncol=6, fontsize=8, frameon=False, title="classes", title_fontsize=8
    )
    fig.subplots_adjust(
        left=0.005, right=0.995, top=1 - title_in / fig_h, bottom=legend_in / fig_h, wspace=0.04, hspace=0.04
    )
    depth_cols = [c for c, (key, _) in enumerate(_COLUMNS) if key in ("depth", "sensor_depth")]
    left = axes[-1][depth_cols[0]].get_position().x0
    right = axes[-1][depth_cols[-1]].get_position().x1
    cax = fig.add_axes((left, (legend_in - 0.22) / fig_h, right - left, 0.1 / fig_h))
    bar = fig.colorbar(
        ScalarMappable(norm=Normalize(0.0, PANEL_MAX_DEPTH), cmap=colormaps["turbo"]),
        cax=cax,
        orientation="horizontal",
        extend="max",
    )
    bar.ax.tick_params(labelsize=7)
    bar.set_label("depth [m] (black = no depth)", fontsize=8)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, bbox_inches="tight", pad_inches=0.05)
    return path
