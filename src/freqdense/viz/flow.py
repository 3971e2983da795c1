"""Flow visualisation: the Middlebury colour wheel, arrow overlays and a FAFNet Fig. 6-like alignment panel.

Colour coding follows Baker et al., "A Database and Evaluation Methodology for Optical Flow" (IJCV 2011): a
55-colour wheel of six hue ramps (red-yellow 15, yellow-green 6, green-cyan 4, cyan-blue 11, blue-magenta 13,
magenta-red 6 steps), the hue from the flow direction and the saturation from its magnitude relative to
``max_flow``; zero flow is white, flows beyond ``max_flow`` are darkened to 75 %. Image coordinates: x right,
y down, flow channel 0 = x, channel 1 = y, so a flow pointing right is red, down orange-yellow, left cyan and up
violet-blue. Written from the published description; no code was copied.

Panel (FAFNet Fig. 6): RGB | depth input | RGB with depth edges (the misalignment) | colour-coded flow with
arrows | (the true displacement, when known) | feature overlays before and after alignment (RGB feature energy
in red, depth feature energy in cyan: aligned structures turn white/grey, misaligned ones show red/cyan fringes).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ShapeError
from .colormaps import ArrayLike, _as_rgb_uint8, _to_numpy, colorize_depth
from .depth_scale import colorize_depth_range, depth_range_of, draw_depth_colorbar
from .ticks import thin_overlapping_ticks

__all__ = [
    "color_wheel",
    "flow_to_color",
    "draw_flow_arrows",
    "feature_energy",
    "feature_overlay",
    "flow_panel",
]

#: Steps of the six hue ramps of the Middlebury wheel: RY, YG, GC, CB, BM, MR.
_RAMPS = (15, 6, 4, 11, 13, 6)


def color_wheel() -> np.ndarray:
    """The 55 x 3 Middlebury colour wheel, uint8 RGB; row 0 is red (flow pointing right)."""
    ry, yg, gc, cb, bm, mr = _RAMPS
    rows: list[tuple[int, int, int]] = []
    rows += [(255, 255 * i // ry, 0) for i in range(ry)]  # red -> yellow
    rows += [(255 - 255 * i // yg, 255, 0) for i in range(yg)]  # yellow -> green
    rows += [(0, 255, 255 * i // gc) for i in range(gc)]  # green -> cyan
    rows += [(0, 255 - 255 * i // cb, 255) for i in range(cb)]  # cyan -> blue
    rows += [(255 * i // bm, 0, 255) for i in range(bm)]  # blue -> magenta
    rows += [(255, 0, 255 - 255 * i // mr) for i in range(mr)]  # magenta -> red
    return np.asarray(rows, dtype=np.uint8)


def _as_flow(flow: ArrayLike, name: str = "flow") -> np.ndarray:
    """(2, H, W) or (1, 2, H, W) -> float64 (2, H, W)."""
    arr = _to_numpy(flow).astype(np.float64)
    while arr.ndim > 3 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim != 3 or arr.shape[0] != 2:
        raise ShapeError(f"{name} must be (2, H, W) with channel 0 = x and 1 = y, got shape {arr.shape}")
    return arr


def flow_to_color(flow: ArrayLike, *, max_flow: float | None = None) -> np.ndarray:
    """Colour-code a flow field with the Middlebury wheel.

    Args:
        flow: (2, H, W) displacement (channel 0 = x right, 1 = y down), any unit.
        max_flow: magnitude mapped to full saturation; ``None`` = the field's largest finite magnitude.
            Larger magnitudes are shown at 75 % brightness.

    Returns:
        (H, W, 3) uint8 RGB; zero flow (and non-finite vectors) white.

    Examples:
        >>> flow_to_color(np.array([1.0, 0.0]).reshape(2, 1, 1))[0, 0].tolist()  # pointing right: red
        [255, 0, 0]
    """
    u, v = _as_flow(flow)
    finite = np.isfinite(u) & np.isfinite(v)
    u, v = np.where(finite, u, 0.0), np.where(finite, v, 0.0)
    rad = np.hypot(u, v)
    if max_flow is None:
        max_flow = float(rad.max()) if rad.size else 0.0
    if max_flow > 0:
        u, v, rad = u / max_flow, v / max_flow, rad / max_flow
    wheel = color_wheel().astype(np.float64) / 255.0
    n = len(wheel)
    angle = np.arctan2(-v, -u) / math.pi  # in [-1, 1]: -1/+1 = pointing right
    fk = (angle + 1.0) / 2.0 * (n - 1)
    k0 = np.floor(fk).astype(np.int64)
    k1 = (k0 + 1) % n
    frac = (fk - k0)[..., None]
    col = (1.0 - frac) * wheel[k0 % n] + frac * wheel[k1]
    inside = (rad <= 1.0)[..., None]
    col = np.where(inside, 1.0 - rad[..., None] * (1.0 - col), col * 0.75)
    return np.floor(255.0 * col + 1e-9).clip(0, 255).astype(np.uint8)


def draw_flow_arrows(
    ax: Any,
    flow: ArrayLike,
    *,
    step: int = 8,
    scale: float = 1.0,
    color: str = "white",
    offset: float = 0.0,
    stride: float = 1.0,
) -> Any:
    """Draw every ``step``-th flow vector as an arrow on a matplotlib axes showing an image.

    Arrows start at the pixel and end at ``pixel + scale * flow`` in the axes' data (pixel) coordinates, so with
    ``imshow``'s downward y axis a positive y flow points down.

    Args:
        ax: matplotlib axes.
        flow: (2, h, w) displacement in pixels of its own grid.
        step: subsampling of the grid.
        scale: arrow length multiplier (for visibility; 1 = true length).
        color: arrow colour.
        offset, stride: map grid index k to axes coordinate ``offset + stride * k`` (draw a feature-grid flow on
            the full-resolution image: ``stride`` = the feature stride); the arrow length is multiplied by
            ``stride`` as well.

    Returns:
        The ``Quiver`` artist.
    """
    u, v = _as_flow(flow)
    step = max(1, int(step))
    h, w = u.shape
    ys, xs = np.mgrid[step // 2 : h : step, step // 2 : w : step]
    uu, vv = u[ys, xs] * stride * scale, v[ys, xs] * stride * scale
    return ax.quiver(
        offset + stride * xs,
        offset + stride * ys,
        uu,
        vv,
        color=color,
        angles="xy",
        scale_units="xy",
        scale=1.0,
        width=0.004,
        headwidth=4,
        headlength=4,
    )


def feature_energy(feature: ArrayLike, *, percentile: float = 99.0) -> np.ndarray:
    """Channel-mean absolute activation of a (C, h, w) feature map, scaled to [0, 1] by its ``percentile``."""
    arr = _to_numpy(feature).astype(np.float64)
    while arr.ndim > 3 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3:
        raise ShapeError(f"feature must be (C, h, w), got shape {arr.shape}")
    energy = np.abs(arr).mean(axis=0)
    top = np.percentile(energy, percentile) if energy.size else 0.0
    return np.clip(energy / top, 0.0, 1.0) if top > 0 else np.zeros_like(energy)


def _resize(arr: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of an (h, w) float map to ``size`` (H, W)."""
    if arr.shape == size:
        return arr
    import torch
    import torch.nn.functional as F

    t = torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float32))[None, None]
    return F.interpolate(t, size=size, mode="bilinear", align_corners=False)[0, 0].numpy().astype(np.float64)


def feature_overlay(
    rgb_energy: ArrayLike, depth_energy: ArrayLike, *, size: tuple[int, int] | None = None
) -> np.ndarray:
    """Two-colour overlay: RGB feature energy in red, depth feature energy in cyan (both (h, w) in [0, 1]).

    Where both are strong the pixel is white, where only one is, red or cyan, so misaligned edges show as
    red/cyan fringes. ``size`` resizes both maps (bilinear) first.

    Returns:
        (H, W, 3) uint8 RGB.
    """
    a, b = np.asarray(_to_numpy(rgb_energy), np.float64), np.asarray(_to_numpy(depth_energy), np.float64)
    if a.ndim != 2 or b.shape != a.shape:
        raise ShapeError(f"rgb_energy and depth_energy must be (h, w) maps of one size, got {a.shape}, {b.shape}")
    if size is not None:
        a, b = _resize(a, size), _resize(b, size)
    rgb = np.stack([a, b, b], axis=-1)
    return np.clip(np.rint(rgb * 255.0), 0, 255).astype(np.uint8)


def _edges(depth: np.ndarray) -> np.ndarray:
    """Depth discontinuities: valid 4-neighbours whose inverse depths differ by more than 10 % (holes ignored)."""
    valid = depth > 0
    inv = np.where(valid, 1.0 / np.maximum(depth, 1e-6), 0.0)
    edge = np.zeros(depth.shape, dtype=bool)
    both_v, both_h = valid[1:, :] & valid[:-1, :], valid[:, 1:] & valid[:, :-1]
    vertical = both_v & (np.abs(inv[1:, :] - inv[:-1, :]) > 0.1 * np.minimum(inv[1:, :], inv[:-1, :]))
    horizontal = both_h & (np.abs(inv[:, 1:] - inv[:, :-1]) > 0.1 * np.minimum(inv[:, 1:], inv[:, :-1]))
    edge[1:, :] |= vertical
    edge[:-1, :] |= vertical
    edge[:, 1:] |= horizontal
    edge[:, :-1] |= horizontal
    return edge


def flow_panel(
    path: str | Path,
    *,
    image: ArrayLike,
    depth: ArrayLike | None = None,
    flow: ArrayLike | None = None,
    true_flow: ArrayLike | None = None,
    features_before: tuple[ArrayLike, ArrayLike] | None = None,
    features_after: tuple[ArrayLike, ArrayLike] | None = None,
    flow_stride: float | None = None,
    arrow_step: int = 4,
    arrow_scale: float = 1.0,
    max_flow: float | None = None,
    title: str | None = None,
    dpi: int = 120,
) -> Path:
    """Write a Fig. 6-like PNG: inputs, the RGB-depth misalignment, the flow, features before/after alignment.

    Tiles (those whose data is given): RGB; depth (inverse-depth colour map for (1, H, W) metres, or a 3-channel
    HHA in [0, 1] shown as RGB); RGB with the depth discontinuities in cyan (raw depth only); the flow colour-coded
    (stretched over the image) with white arrows; the true displacement on the same colour scale; the feature
    overlays before and after.

    Args:
        path: output PNG.
        image: (3, H, W) RGB in [0, 1] (or (H, W, 3) uint8).
        depth: (1, H, W) metres (0 = invalid) or (3, H, W) HHA in [0, 1].
        flow: (2, h, w) learned displacement in pixels of its own (feature) grid.
        true_flow: (2, h, w) the true displacement on the same grid and unit.
        features_before, features_after: ``(rgb_feature, depth_feature)`` maps (C, h, w) each; shown with
            :func:`feature_overlay` of their :func:`feature_energy`, resized to the image.
        flow_stride: the flow grid's stride in image pixels (4 for ResNet stage 1; default: image width / flow
            width): arrows start at image pixel ``stride * k`` (a ResNet feature pixel k is centred there: odd
            kernels with symmetric padding) and their length is multiplied by ``stride``.
        arrow_step: arrow subsampling on the flow grid.
        arrow_scale: arrow length multiplier.
        max_flow: colour saturation magnitude (default: the largest of the flow and the true flow).
        title: figure title.
        dpi: resolution.

    Returns:
        ``path`` as a Path.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    rgb = _as_rgb_uint8(image)
    h, w = rgb.shape[:2]
    tiles: list[tuple[str, np.ndarray, Any]] = [("RGB", rgb, None)]
    depth_range = None
    if depth is not None:
        d = _to_numpy(depth).astype(np.float64)
        while d.ndim > 3 and d.shape[0] == 1:
            d = d[0]
        if d.ndim == 3 and d.shape[0] == 3:
            tiles.append(("HHA input", _as_rgb_uint8(d), None))
        else:
            d2 = d[0] if d.ndim == 3 else d
            depth_range = depth_range_of(d2)
            coloured = colorize_depth_range(d2, depth_range) if depth_range else colorize_depth(d2)
            tiles.append(("depth input", coloured, None))
            mixed = rgb.copy()
            mixed[_edges(d2)] = (0, 255, 255)
            tiles.append(("RGB + depth edges", mixed, None))
    mags = [np.hypot(*_as_flow(f)) for f in (flow, true_flow) if f is not None]
    if max_flow is None and mags:
        max_flow = max(float(m.max()) if m.size else 0.0 for m in mags) or None
    for name, f in (("learned flow", flow), ("true displacement", true_flow)):
        if f is not None:
            tiles.append((name, flow_to_color(f, max_flow=max_flow), f))
    for name, feats in (("features before alignment", features_before), ("features after alignment", features_after)):
        if feats is not None:
            tiles.append((name, feature_overlay(feature_energy(feats[0]), feature_energy(feats[1]), size=(h, w)), None))

    bars: list[tuple[Any, tuple[float, float]]] = []
    cols = min(4, len(tiles))
    rows = math.ceil(len(tiles) / cols)
    # 0.75 in per row below the tiles: the keys under the depth, flow and feature tiles
    fig = Figure(figsize=(3.2 * cols, rows * (3.2 * h / max(w, 1) + 0.75) + (0.4 if title else 0.1)), dpi=dpi)
    FigureCanvasAgg(fig)
    for i, (name, tile, arrows) in enumerate(tiles):
        ax = fig.add_subplot(rows, cols, i + 1)
        if arrows is not None:
            fh, fw = tile.shape[:2]
            stride = flow_stride if flow_stride is not None else w / max(fw, 1)
            half = stride / 2.0  # flow pixel k covers image pixels around stride * k
            ax.imshow(tile, extent=(-half, stride * fw - half, stride * fh - half, -half), interpolation="nearest")
            draw_flow_arrows(ax, arrows, step=arrow_step, scale=arrow_scale, stride=stride)
            ax.set_xlim(-0.5, w - 0.5)
            ax.set_ylim(h - 0.5, -0.5)
            _wheel_key(ax)
            limit = f"{max_flow * stride:.2g} image px" if max_flow else "0"
            _caption(ax, f"hue: direction (key, top right)\nwhite to full colour: length 0 to {limit}")
        else:
            ax.imshow(tile, interpolation="nearest")
            if name == "depth input" and depth_range is not None:
                cax = ax.inset_axes((0.0, -0.1, 1.0, 0.06))
                draw_depth_colorbar(fig, cax, depth_range, orientation="horizontal", fontsize=6, thin=False)
                bars.append((cax, depth_range))
            elif name == "RGB + depth edges":
                _caption(ax, "cyan: depth discontinuities")
            elif name.startswith("features"):
                _caption(ax, "red: RGB feature energy, cyan: depth\nwhite: both (aligned)")
        ax.set_title(name, fontsize=8)
        ax.set_axis_off()
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    for cax, rng in bars:
        thin_overlapping_ticks(cax, "x", keep=(1.0 / rng[1], 1.0 / rng[0]))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", dpi=dpi)
    return path


def _caption(ax: Any, text: str) -> None:
    """A small key under an image tile (axes are off, so no xlabel)."""
    ax.text(0.5, -0.04, text, transform=ax.transAxes, ha="center", va="top", fontsize=6.5, color="0.25")


def _wheel_key(ax: Any, size: int = 41) -> None:
    """The colour wheel as an inset key in the tile's top-right corner: the colour of a flow in each direction."""
    r = np.linspace(-1.0, 1.0, size)
    x, y = np.meshgrid(r, r)
    disc = flow_to_color(np.stack([x, y]), max_flow=1.0)
    rgba = np.concatenate([disc, np.where(np.hypot(x, y) <= 1.0, 255, 0)[..., None].astype(np.uint8)], axis=-1)
    key = ax.inset_axes((0.76, 0.70, 0.22, 0.28))
    key.imshow(rgba, interpolation="bilinear")
    key.set_axis_off()
