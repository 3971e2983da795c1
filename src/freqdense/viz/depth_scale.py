"""Fixed depth colour scales in metres: the range a depth colour map spans, and its colour bar.

Depth is coloured as inverse depth (disparity, near = bright; :func:`~freqdense.viz.colormaps.colorize_depth`).
A *depth range* ``(near, far)`` in metres fixes the scale: ``near`` and closer get the brightest colour, ``far``
and farther the darkest, invalid pixels are black. Images drawn with the same range are comparable, and the colour
bar (:func:`draw_depth_colorbar`, :func:`save_depth_colorbar`) states it with ticks in metres.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError
from .colormaps import ArrayLike, _as_hw

__all__ = [
    "DEPTH_CMAP_FLOOR",
    "DEPTH_NEAR_PERCENTILE",
    "check_depth_range",
    "colorize_depth_range",
    "depth_colormap",
    "depth_range_of",
    "depth_ticks",
    "draw_depth_colorbar",
    "save_depth_colorbar",
    "thin_depth_colorbar",
]

#: Share of the bottom of the colour map left out, so that the far end is not the black of invalid pixels.
DEPTH_CMAP_FLOOR = 0.12
#: Percentile of the valid depths taken as the near end of an automatic range (the far end is the maximum).
#: The same clipping as :func:`~freqdense.viz.colormaps.colorize_depth`'s default (95th percentile of disparity).
DEPTH_NEAR_PERCENTILE = 5.0


def _round_sig(value: float, digits: int, direction: str) -> float:
    """Round ``value > 0`` down or up to ``digits`` significant digits (0.734 -> 0.73 down, 14.2 -> 15 up)."""
    exponent = math.floor(math.log10(value)) - digits + 1
    scale = 10.0**exponent
    quotient = value / scale
    rounded = (math.floor(quotient + 1e-9) if direction == "down" else math.ceil(quotient - 1e-9)) * scale
    return float(f"{rounded:.{digits}g}")


def check_depth_range(depth_range: Sequence[float]) -> tuple[float, float]:
    """``(near, far)`` as floats with ``0 < near < far``; ConfigError otherwise."""
    try:
        near, far = (float(v) for v in depth_range)
    except (TypeError, ValueError):
        raise ConfigError(f"a depth range is two numbers (near, far) in metres, got {depth_range!r}") from None
    if not (math.isfinite(near) and math.isfinite(far) and 0 < near < far):
        raise ConfigError(f"a depth range needs 0 < near < far (metres), got near={near:g}, far={far:g}")
    return near, far


def depth_range_of(
    *depths: ArrayLike | None, near_percentile: float = DEPTH_NEAR_PERCENTILE, digits: int = 2
) -> tuple[float, float] | None:
    """A rounded ``(near, far)`` in metres covering the valid pixels of ``depths`` (None where nothing is valid).

    ``near`` is the ``near_percentile`` percentile of the valid depths (closer pixels are clipped to the brightest
    colour, as in monodepth2's colouring), ``far`` the largest valid depth; both are rounded outwards to ``digits``
    significant digits, so that the colour bar states plain numbers. Maps that are None are skipped.
    """
    values = []
    for depth in depths:
        if depth is None:
            continue
        arr = _as_hw(depth, "depth").astype(np.float64)
        values.append(arr[np.isfinite(arr) & (arr > 0)])
    valid = np.concatenate(values) if values else np.zeros(0)
    if valid.size == 0:
        return None
    near = float(np.percentile(valid, near_percentile))
    far = float(valid.max())
    near = _round_sig(near, digits, "down")
    far = _round_sig(far, digits, "up")
    if far <= near:
        far = _round_sig(near * 1.1, digits, "up")
    return near, far


def depth_colormap(cmap: str = "magma") -> Any:
    """The colour map of fixed-range depth: ``cmap`` without its darkest :data:`DEPTH_CMAP_FLOOR` part.

    magma and inferno start at black, which also marks invalid pixels; dropping the bottom keeps the far end a
    visible dark purple, distinct from "no depth".
    """
    import matplotlib
    from matplotlib.colors import ListedColormap

    try:
        base = matplotlib.colormaps[cmap]
    except KeyError as err:
        raise ConfigError(f"unknown matplotlib colour map {cmap!r}; try 'magma', 'plasma' or 'viridis'") from err
    return ListedColormap(base(np.linspace(DEPTH_CMAP_FLOOR, 1.0, 256)), name=f"{cmap}_depth")


def colorize_depth_range(depth: ArrayLike, depth_range: Sequence[float], *, cmap: str = "magma") -> np.ndarray:
    """``(H, W, 3)`` uint8 inverse-depth colours on the fixed ``(near, far)`` range in metres (invalid = black).

    Colours are linear in ``1 / depth`` between ``1 / far`` and ``1 / near`` (clipped outside), from
    :func:`depth_colormap`, so that the colour bar of :func:`draw_depth_colorbar` reads them back in metres.
    """
    near, far = check_depth_range(depth_range)
    arr = _as_hw(depth, "depth").astype(np.float64)
    valid = np.isfinite(arr) & (arr > 0)
    out = np.zeros((*arr.shape, 3), dtype=np.uint8)
    if valid.any():
        lo, hi = 1.0 / far, 1.0 / near
        normed = np.clip((1.0 / arr[valid] - lo) / (hi - lo), 0.0, 1.0)
        out[valid] = depth_colormap(cmap)(normed, bytes=True)[:, :3]
    return out


def depth_ticks(
    near: float, far: float, *, steps: Sequence[float] = (1.0, 1.5, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0)
) -> list[float]:
    """Round depths (``steps`` per decade) inside ``[near, far]`` plus both ends, ascending: colour-bar ticks in metres.

    Crowded ones (the far end of an inverse-depth bar) are dropped when drawn, see :func:`draw_depth_colorbar`.
    """
    near, far = check_depth_range((near, far))
    ticks = {near, far}
    for exponent in range(math.floor(math.log10(near)) - 1, math.ceil(math.log10(far)) + 1):
        for step in steps:
            value = float(f"{step * 10.0**exponent:.6g}")
            if near < value < far:
                ticks.add(value)
    return sorted(ticks)


def _metres(value: float) -> str:
    return f"{value:g}"


def draw_depth_colorbar(
    fig: Any,
    cax: Any,
    depth_range: Sequence[float],
    *,
    cmap: str = "magma",
    orientation: str = "vertical",
    label: str | None = "depth [m]",
    fontsize: float = 8.0,
    thin: bool = True,
) -> Any:
    """Draw the colour bar of a depth range into ``cax``: ticks in metres, near = bright, clipped ends marked.

    The bar is linear in inverse depth, like the colours; its tick labels are depths in metres, the ends being the
    range's ``near`` and ``far`` (kept whenever labels would overlap; see
    :func:`~freqdense.viz.ticks.thin_overlapping_ticks`). The triangles at both ends mean "this colour and beyond":
    depths outside the range are clipped to the end colours.

    ``thin=True`` drops overlapping tick labels at once (draws the figure); a caller that adds more to the figure
    afterwards passes False and calls :func:`thin_depth_colorbar` when the figure is complete.

    Returns:
        The matplotlib Colorbar.
    """
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    near, far = check_depth_range(depth_range)
    mappable = ScalarMappable(norm=Normalize(vmin=1.0 / far, vmax=1.0 / near), cmap=depth_colormap(cmap))
    bar = fig.colorbar(mappable, cax=cax, orientation=orientation, extend="both")
    ticks = depth_ticks(near, far)
    bar.set_ticks([1.0 / t for t in ticks], labels=[_metres(t) for t in ticks])
    bar.ax.tick_params(labelsize=fontsize)
    if label:
        bar.set_label(label, fontsize=fontsize)
    if thin:
        thin_depth_colorbar(bar, (near, far))
    return bar


def thin_depth_colorbar(bar: Any, depth_range: Sequence[float]) -> list[float]:
    """Drop the overlapping tick labels of a colour bar of :func:`draw_depth_colorbar` (keeps the range's ends).

    Args:
        bar: the Colorbar :func:`draw_depth_colorbar` returned.
        depth_range: the ``(near, far)`` it was drawn with.

    Returns:
        The depths (metres) whose labels remain, ascending.
    """
    from .ticks import thin_overlapping_ticks

    near, far = check_depth_range(depth_range)
    axis = "y" if bar.orientation == "vertical" else "x"
    kept = thin_overlapping_ticks(bar.ax, axis, keep=(1.0 / near, 1.0 / far))
    return sorted(float(f"{1.0 / v:.6g}") for v in kept)


def save_depth_colorbar(
    path: str | Path,
    depth_range: Sequence[float],
    *,
    cmap: str = "magma",
    title: str | None = None,
    dpi: int = 100,
) -> Path:
    """Write a horizontal colour bar PNG for ``depth_range`` (metres), e.g. ``depth_colorbar.png`` of ``predict``.

    The title states the range (default ``"depth colour scale: near 0.5 m (bright) to far 12 m (dark)"``) and a
    note below the bar says that colours are linear in 1/depth, that depths outside are clipped and that black
    marks invalid pixels.

    Returns:
        ``path`` as a Path.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    near, far = check_depth_range(depth_range)
    fig = Figure(figsize=(6.0, 1.6), dpi=dpi)
    FigureCanvasAgg(fig)
    cax = fig.add_axes((0.06, 0.42, 0.88, 0.22))
    fig.suptitle(
        title or f"depth colour scale: near {_metres(near)} m (bright) to far {_metres(far)} m (dark)",
        fontsize=10,
        y=0.95,
    )
    bar = draw_depth_colorbar(
        fig, cax, (near, far), cmap=cmap, orientation="horizontal", label="depth [m]", fontsize=8, thin=False
    )
    fig.text(
        0.5,
        0.03,
        "colour linear in 1/depth; depths outside the range take the end colours; black = invalid / no depth",
        ha="center",
        va="bottom",
        fontsize=7,
        color="0.3",
    )
    thin_depth_colorbar(bar, (near, far))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", dpi=dpi)
    return path
