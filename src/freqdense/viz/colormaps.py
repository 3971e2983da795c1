"""Colour maps for depth and label images, overlays and indexed label PNGs.

Depth is shown as inverse depth (disparity) with a perceptual colour map normalised to [min, 95th percentile]
like monodepth2's ``test_simple.py``; invalid pixels are black. Label 255 (ignore) is black in every palette.
matplotlib is imported inside the functions that need it, so ``import freqdense`` stays light.
"""

from __future__ import annotations

import colorsys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import ConfigError, DataError, ShapeError

__all__ = [
    "colorize_depth",
    "disparity_limits",
    "colorize_labels",
    "overlay",
    "label_boundaries",
    "default_palette",
    "cityscapes_palette",
    "save_indexed_png",
]

IGNORE_INDEX = 255

ArrayLike = Any  # torch.Tensor | np.ndarray


def _to_numpy(x: ArrayLike) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def _as_hw(x: ArrayLike, name: str) -> np.ndarray:
    arr = _to_numpy(x)
    while arr.ndim > 2 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim != 2:
        raise ShapeError(f"{name} must be (H, W) or (1, H, W), got shape {arr.shape}")
    return arr


def _as_palette(palette: ArrayLike) -> np.ndarray:
    pal = _to_numpy(palette)
    if pal.ndim != 2 or pal.shape[1] != 3:
        raise ShapeError(f"palette must be (N, 3) RGB colours, got shape {pal.shape}; see default_palette(N)")
    if pal.dtype.kind == "f" and pal.size and pal.max() <= 1.0:
        pal = pal * 255.0
    return np.clip(np.rint(pal), 0, 255).astype(np.uint8)


def _as_rgb_uint8(image: ArrayLike, hw: tuple[int, ...] | None = None) -> np.ndarray:
    """(3, H, W) float in [0, 1] (tensor convention) or (H, W, 3) uint8/float -> (H, W, 3) uint8.

    A (3, N, 3) array fits both layouts (an image 3 px wide, or 3 px high). ``hw``, the size the image must have
    (e.g. its label map's), decides where only one layout gives it; otherwise a torch tensor or a float array is
    channels-first (the tensor convention) and a uint8 array channels-last.
    """
    arr = _to_numpy(image)
    while arr.ndim > 3 and arr.shape[0] == 1:
        arr = arr[0]
    channels_first = arr.ndim == 3 and arr.shape[0] == 3
    if channels_first and arr.shape[2] == 3:  # ambiguous
        fits_first = hw is not None and tuple(arr.shape[1:]) == tuple(hw)
        fits_last = hw is not None and tuple(arr.shape[:2]) == tuple(hw)
        if fits_first != fits_last:
            channels_first = fits_first
        else:
            channels_first = isinstance(image, torch.Tensor) or arr.dtype != np.uint8
    if channels_first:
        arr = arr.transpose(1, 2, 0)
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise ShapeError(f"image must be (3, H, W) or (H, W, 3) RGB, got shape {arr.shape}")
    if arr.dtype == np.uint8:
        return arr
    return np.clip(np.rint(arr.astype(np.float64) * 255.0), 0, 255).astype(np.uint8)


def disparity_limits(
    depth: ArrayLike,
    *,
    valid: ArrayLike | None = None,
    vmin_percentile: float = 0.0,
    vmax_percentile: float = 95.0,
    inverse: bool = True,
) -> tuple[float, float]:
    """The (vmin, vmax) that ``colorize_depth`` maps to the ends of the colour map (in disparity if ``inverse``).

    Use it to colour several depth maps on one scale (e.g. ground truth and prediction).
    """
    values = _valid_values(depth, valid, inverse)
    if values.size == 0:
        return 0.0, 1.0
    return float(np.percentile(values, vmin_percentile)), float(np.percentile(values, vmax_percentile))


def _valid_mask(arr: np.ndarray, valid: ArrayLike | None, inverse: bool) -> np.ndarray:
    mask = np.isfinite(arr)
    if inverse:
        mask &= arr > 0
    if valid is not None:
        v = _as_hw(valid, "valid").astype(bool)
        if v.shape != arr.shape:
            raise ShapeError(f"valid mask {v.shape} must match depth {arr.shape}")
        mask &= v
    return mask


def _valid_values(depth: ArrayLike, valid: ArrayLike | None, inverse: bool) -> np.ndarray:
    arr = _as_hw(depth, "depth").astype(np.float64)
    mask = _valid_mask(arr, valid, inverse)
    values = arr[mask]
    return 1.0 / values if inverse else values


def colorize_depth(
    depth: ArrayLike,
    *,
    valid: ArrayLike | None = None,
    cmap: str = "magma",
    vmin_percentile: float = 0.0,
    vmax_percentile: float = 95.0,
    vmin: float | None = None,
    vmax: float | None = None,
    inverse: bool = True,
) -> np.ndarray:
    """Colour a depth map as disparity: near = bright (magma), far = dark, invalid = black.

    Args:
        depth: ``(H, W)`` or ``(1, H, W)`` depth in metres (tensor or array); ``<= 0``/NaN/inf are invalid.
        valid: optional boolean mask of the same size, AND-ed with the validity above.
        cmap: a matplotlib colour-map name (perceptual ones: magma, plasma, inferno, viridis).
        vmin_percentile, vmax_percentile: percentiles of the valid disparities mapped to 0 and 1 (monodepth2:
            minimum and 95th percentile); values outside are clipped.
        vmin, vmax: explicit limits overriding the percentiles (see ``disparity_limits``).
        inverse: colour ``1 / depth`` (True) or the values as given (False; e.g. a disparity or error map).

    Returns:
        ``(H, W, 3)`` uint8 RGB.
    """
    import matplotlib

    arr = _as_hw(depth, "depth").astype(np.float64)
    mask = _valid_mask(arr, valid, inverse)
    values = np.zeros_like(arr)
    values[mask] = 1.0 / arr[mask] if inverse else arr[mask]
    out = np.zeros((*arr.shape, 3), dtype=np.uint8)
    if not mask.any():
        return out
    lo = float(np.percentile(values[mask], vmin_percentile)) if vmin is None else float(vmin)
    hi = float(np.percentile(values[mask], vmax_percentile)) if vmax is None else float(vmax)
    scale = hi - lo if hi > lo else 1.0
    normed = np.clip((values[mask] - lo) / scale, 0.0, 1.0)
    try:
        colormap = matplotlib.colormaps[cmap]
    except KeyError as err:
        raise ConfigError(f"unknown matplotlib colour map {cmap!r}; try 'magma', 'plasma' or 'viridis'") from err
    out[mask] = colormap(normed, bytes=True)[:, :3]
    return out


def default_palette(num_classes: int) -> np.ndarray:
    """``num_classes`` distinct RGB colours ``(N, 3)`` uint8, the same every call.

    Hues follow the golden-ratio sequence (so neighbouring class ids get far-apart hues), and the
    saturation/value cycle through three levels; no colour is black (black marks ignore/invalid).
    """
    if num_classes < 1 or num_classes > 255:
        raise ConfigError(f"default_palette num_classes must be in [1, 255] (255 is the ignore id), got {num_classes}")
    levels = ((0.75, 0.95), (0.95, 0.70), (0.50, 0.85))
    colours = []
    for i in range(num_classes):
        hue = (i * 0.6180339887498949) % 1.0
        sat, val = levels[(i // 7) % 3]
        colours.append(colorsys.hsv_to_rgb(hue, sat, val))
    return np.clip(np.rint(np.asarray(colours) * 255.0), 0, 255).astype(np.uint8)


def cityscapes_palette() -> np.ndarray:
    """The official Cityscapes colours of the 19 train ids (road, sidewalk, ..., bicycle), ``(19, 3)`` uint8."""
    from ..data.cityscapes import CITYSCAPES_PALETTE

    return np.array(CITYSCAPES_PALETTE, dtype=np.uint8)


def colorize_labels(labels: ArrayLike, palette: ArrayLike) -> np.ndarray:
    """Map class ids ``(H, W)`` to ``(H, W, 3)`` uint8 colours; 255 (ignore) is black.

    Raises:
        DataError: a label is neither 255 nor a palette index (names the offending values).
    """
    lab = _as_hw(labels, "labels").astype(np.int64)
    pal = _as_palette(palette)
    ignore = lab == IGNORE_INDEX
    bad = ~ignore & ((lab < 0) | (lab >= len(pal)))
    if bad.any():
        values = np.unique(lab[bad])[:10].tolist()
        raise DataError(
            f"labels hold ids {values} that the palette ({len(pal)} colours) does not cover and that are not the "
            f"ignore id {IGNORE_INDEX}; pass a palette with one colour per class, e.g. default_palette(num_classes)"
        )
    out = np.zeros((*lab.shape, 3), dtype=np.uint8)
    out[~ignore] = pal[lab[~ignore]]
    return out


def label_boundaries(labels: ArrayLike) -> np.ndarray:
    """Boolean ``(H, W)`` mask of pixels whose right or lower 4-neighbour has a different label."""
    lab = _as_hw(labels, "labels")
    edge = np.zeros(lab.shape, dtype=bool)
    horizontal = lab[:, 1:] != lab[:, :-1]
    vertical = lab[1:, :] != lab[:-1, :]
    edge[:, :-1] |= horizontal
    edge[:-1, :] |= vertical
    return edge


def overlay(
    image: ArrayLike,
    labels: ArrayLike,
    palette: ArrayLike,
    alpha: float = 0.5,
    boundaries: bool = True,
    *,
    boundary_color: Sequence[int] = (255, 255, 255),
) -> np.ndarray:
    """Alpha-blend label colours over an RGB image; ignore pixels show the image unchanged.

    Args:
        image: ``(3, H, W)`` float in [0, 1] or ``(H, W, 3)`` uint8.
        labels: ``(H, W)`` class ids (255 = ignore).
        palette: ``(N, 3)`` colours.
        alpha: weight of the label colour, ``out = (1 - alpha) * image + alpha * colour``.
        boundaries: draw label boundaries (see ``label_boundaries``) in ``boundary_color``.

    Returns:
        ``(H, W, 3)`` uint8.
    """
    if not 0.0 <= alpha <= 1.0:
        raise ConfigError(f"overlay alpha must be in [0, 1], got {alpha}")
    lab = _as_hw(labels, "labels")
    rgb = _as_rgb_uint8(image, lab.shape)
    if lab.shape != rgb.shape[:2]:
        raise ShapeError(f"labels {lab.shape} and image {rgb.shape[:2]} differ in size; resize the labels (nearest)")
    colours = colorize_labels(lab, palette).astype(np.float64)
    out = rgb.astype(np.float64)
    labelled = lab != IGNORE_INDEX
    out[labelled] = (1.0 - alpha) * out[labelled] + alpha * colours[labelled]
    out = np.clip(np.rint(out), 0, 255).astype(np.uint8)
    if boundaries:
        out[label_boundaries(lab)] = np.asarray(boundary_color, dtype=np.uint8)
    return out


def save_indexed_png(labels: ArrayLike, palette: ArrayLike, path: str | Path) -> Path:
    """Save ``(H, W)`` class ids as a palette PNG (PIL mode ``"P"``) atomically: pixel values stay the class ids.

    Index 255 (ignore) is black. Reading back with ``np.asarray(PIL.Image.open(path))`` returns the ids.
    """
    from ..data.io import write_png_atomic

    lab = _as_hw(labels, "labels").astype(np.int64)
    pal = _as_palette(palette)
    if len(pal) > IGNORE_INDEX:
        raise ConfigError(f"an indexed PNG holds at most {IGNORE_INDEX} classes plus ignore, palette has {len(pal)}")
    bad = (lab < 0) | (lab > IGNORE_INDEX) | ((lab >= len(pal)) & (lab != IGNORE_INDEX))
    if bad.any():
        raise DataError(
            f"labels hold ids {np.unique(lab[bad])[:10].tolist()} outside the palette ({len(pal)} colours) and not "
            f"{IGNORE_INDEX}; fix the labels or the palette"
        )
    full = np.zeros((256, 3), dtype=np.uint8)
    full[: len(pal)] = pal
    path = Path(path)
    # written atomically (temporary file, fsync, rename): an interrupted save never leaves a truncated PNG
    write_png_atomic(lab.astype(np.uint8), path, palette=full.reshape(-1).tolist())
    return path
