"""Joint transforms: one random draw applied to every modality of a sample, with exact camera geometry.

Every transform is a callable ``Sample -> Sample`` (see :mod:`freqdense.data.sample` for the keys) that never
mutates its input. Geometry conventions (docs/data/transforms.md has the derivations):

* Pixel centres sit at integer coordinates. A resize from ``W`` to ``W'`` columns (factor ``s = W'/W``) maps
  ``x -> (x + 0.5) * s - 0.5``; images use ``align_corners=False`` (the same map) and nearest-neighbour maps use
  the source index ``floor((x' + 0.5) / s)`` (torch's ``nearest-exact``), so ``fx' = s fx`` and
  ``cx' = (cx + 0.5) s - 0.5``.
* Every pixel map ``p' = A p`` updates the intrinsics as ``K' = A K``, so the viewing ray of each pixel is unchanged.
* A horizontal flip maps ``x -> W - 1 - x`` and mirrors the camera frames: ``K' = A K F3`` (``cx' = W - 1 - cx``),
  every pose becomes ``F T F`` with ``F = diag(-1, 1, 1, 1)``, ``sensor_flow`` x is negated, and the signed
  ``baseline`` is negated so that ``pose_right[0, 3] == -baseline`` keeps holding (the right view of a flipped
  pair sits at ``-|baseline|``, i.e. to the left).
* ``hha`` (an image-like depth encoding) is flipped, cropped (padded with 0 = invalid) and resampled like an image,
  but colour jitter never touches it. Its channels are mirror-invariant (disparity, height, angle to gravity), so a
  flip needs no value change.
* ``disparity`` (inverse depth in pixels of a fixed reference scale) is resampled like depth (nearest neighbour,
  values unchanged: they stay in the reference unit, unlike ``sensor_flow``), padded with 0 = invalid and flipped
  like depth; where :func:`center_zoom` divides depth by ``s`` it multiplies disparity by ``s``.
* Boxes (``boxes``, ``crowd_boxes``: (N, 4) ``x1, y1, x2, y2`` in continuous pixels, pixel ``(x, y)`` covering
  ``[x, x + 1) x [y, y + 1)``) move with the pixels: a flip maps ``x -> W - x`` (so ``x1' = W - x2``), a resize
  scales by ``(sx, sy)`` (pixel edges map to pixel edges; ``image_scale`` accumulates the factors), a crop shifts by
  ``(-left, -top)`` and clips to the window. A crop drops the boxes left with width or height <= 0 or with less than
  ``min_visible`` of their area inside, together with their rows of ``labels``, ``instance_ids``,
  ``annotation_ids`` and ``masks`` (N, H, W; resampled like a label map). The ``instance`` id map is a label map
  (nearest neighbour, crops pad 0 = no thing).

Randomness comes from an explicit :class:`numpy.random.Generator`: pass ``rng=`` per call, or let the transform use
its own generator, which is (re)built per process from ``(torch.initial_seed(), seed)``. Inside DataLoader workers
``torch.initial_seed()`` differs per worker and per epoch and is derived from the main process seed, so
``torch.manual_seed(s)`` makes the augmentation reproducible for a fixed ``num_workers``.
"""

from __future__ import annotations

import difflib
import logging
import os
import zlib
from collections.abc import Callable, Sequence
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import ConfigError, DataError, ShapeError
from .sample import (
    BOX_KEYS,
    BOX_ROW_KEYS,
    DENSE_FLOAT_KEYS,
    DISPARITY_KEYS,
    IGNORE_INDEX,
    IMAGE_KEYS,
    IMAGE_LIKE_KEYS,
    LABEL_KEYS,
    POSE_KEYS,
    SPATIAL_KEYS,
    Sample,
)

__all__ = [
    "Transform",
    "Compose",
    "RandomHorizontalFlip",
    "RandomScale",
    "CenterZoom",
    "RandomCrop",
    "CenterCrop",
    "Resize",
    "ResizeKeepRatio",
    "ColorJitter",
    "BlockwiseLabels",
    "ComputeHHA",
    "build_transforms",
    "hflip",
    "crop",
    "resize",
    "center_zoom",
    "jitter_color",
    "compute_hha",
    "flip_boxes",
    "scale_boxes",
    "crop_boxes",
]

log = logging.getLogger(__name__)

Interpolation = Literal["bilinear", "bicubic"]

#: Fill value used where a crop reaches outside the image (0 = black / invalid depth / no flow).
_PAD_FILL: dict[str, float | int | bool] = {"semantic": IGNORE_INDEX, "depth_valid": False}

#: ITU-R BT.601 luma weights (the ones torchvision and PIL use for ``convert("L")``).
_LUMA = (0.299, 0.587, 0.114)


# --------------------------------------------------------------------------------------------------------------
# Functional core: deterministic, parameters given explicitly.
# --------------------------------------------------------------------------------------------------------------


def _spatial_size(sample: Sample) -> tuple[int, int]:
    """Return the common (H, W) of all spatial keys; raise ShapeError naming the keys if they disagree."""
    sizes: dict[str, tuple[int, int]] = {}
    for key in SPATIAL_KEYS:
        value = sample.get(key)
        if value is None:
            continue
        if not isinstance(value, torch.Tensor) or value.dim() < 2:
            raise ShapeError(f"sample[{key!r}] must be a tensor with (..., H, W) layout, got {_describe(value)}")
        sizes[key] = (int(value.shape[-2]), int(value.shape[-1]))
    if not sizes:
        raise ShapeError(
            f"sample has no spatial key to transform (expected one of {', '.join(SPATIAL_KEYS)}); "
            f"got keys {sorted(sample)}"
        )
    if len(set(sizes.values())) > 1:
        listing = ", ".join(f"{k}: {h}x{w}" for k, (h, w) in sizes.items())
        raise ShapeError(f"sample modalities disagree in spatial size ({listing}); every map must be H x W")
    size = next(iter(sizes.values()))
    _reject_unknown_spatial(sample, size)
    return size


def _reject_unknown_spatial(sample: Sample, size: tuple[int, int]) -> None:
    # An unknown H x W tensor would silently fall out of alignment, so refuse it instead of passing it through.
    known = (
        set(SPATIAL_KEYS)
        | set(POSE_KEYS)
        | set(BOX_KEYS)
        | set(BOX_ROW_KEYS)
        | {"intrinsics", "baseline", "meta", "image_scale", "image_id", "image_size"}
    )
    for key, value in sample.items():
        if key in known or not isinstance(value, torch.Tensor) or value.dim() < 2:
            continue
        if tuple(value.shape[-2:]) == size:
            raise ShapeError(
                f"sample[{key!r}] has the spatial size {size} but is not a key the joint transforms know how to "
                f"resample; add it to SPATIAL_KEYS in freqdense/data/sample.py or drop it before transforming"
            )


#: One-time warnings already logged (per process).
_WARNED_ONCE: set[str] = set()


def _warn_once(key: str, message: str) -> None:
    if key not in _WARNED_ONCE:
        _WARNED_ONCE.add(key)
        log.warning(message)


def _describe(value: object) -> str:
    if isinstance(value, torch.Tensor):
        return f"tensor of shape {tuple(value.shape)}"
    return type(value).__name__


def _apply_pixel_map(sample: Sample, out: Sample, a: torch.Tensor, *, mirror: bool = False) -> None:
    """Update intrinsics for the pixel map ``p' = a @ p`` (3x3), optionally with a mirrored camera frame."""
    k = sample.get("intrinsics")
    if k is None:
        return
    a = a.to(torch.float64)
    k_new = a @ k.to(torch.float64)
    if mirror:
        k_new = k_new @ torch.diag(torch.tensor([-1.0, 1.0, 1.0], dtype=torch.float64))
    out["intrinsics"] = k_new.to(k.dtype)


def _check_box_tensor(sample: Sample, key: str) -> torch.Tensor:
    boxes = sample[key]
    if not isinstance(boxes, torch.Tensor) or boxes.dim() != 2 or boxes.shape[-1] != 4:
        raise ShapeError(f"sample[{key!r}] must be an (N, 4) tensor of x1, y1, x2, y2 pixels, got {_describe(boxes)}")
    if not boxes.is_floating_point():
        raise ShapeError(f"sample[{key!r}] must be float (x1, y1, x2, y2 pixels), got {boxes.dtype}; use .float()")
    return boxes


def _check_rows(sample: Sample) -> int | None:
    """Number of boxes N; every key of BOX_ROW_KEYS present must have N rows (ShapeError naming it otherwise)."""
    if "boxes" not in sample:
        for key in BOX_ROW_KEYS:
            if key == "labels" and key in sample and isinstance(sample[key], torch.Tensor):
                raise ShapeError("sample has 'labels' but no 'boxes'; box labels need their boxes")
        return None
    n = int(_check_box_tensor(sample, "boxes").shape[0])
    for key in BOX_ROW_KEYS:
        value = sample.get(key)
        if value is None:
            continue
        if not isinstance(value, torch.Tensor) or value.dim() < 1 or int(value.shape[0]) != n:
            raise ShapeError(
                f"sample[{key!r}] must have one row per box ({n} boxes), got {_describe(value)}; keep it aligned "
                "with sample['boxes']"
            )
    return n


def flip_boxes(boxes: torch.Tensor, width: int) -> torch.Tensor:
    """Mirror xyxy boxes of an image ``width`` pixels wide: ``x1' = W - x2``, ``x2' = W - x1`` (exact twice)."""
    out = boxes.clone()
    out[:, 0] = width - boxes[:, 2]
    out[:, 2] = width - boxes[:, 0]
    return out


def scale_boxes(boxes: torch.Tensor, sx: float, sy: float) -> torch.Tensor:
    """Resize xyxy boxes with the image: ``x -> sx x``, ``y -> sy y`` (pixel edges map to pixel edges)."""
    factors = torch.tensor([sx, sy, sx, sy], dtype=torch.float64)
    return (boxes.to(torch.float64) * factors).to(boxes.dtype)


def crop_boxes(
    boxes: torch.Tensor, top: int, left: int, height: int, width: int, *, min_visible: float = 0.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Shift xyxy boxes into the window ``[top, top + height) x [left, left + width)`` and clip them to it.

    Returns the clipped boxes that are kept and the boolean keep mask over the input: a box is dropped when its
    clipped width or height is <= 0, or when less than ``min_visible`` (a fraction in [0, 1]) of its area lies
    inside the window.
    """
    shifted = boxes.to(torch.float64) - torch.tensor([left, top, left, top], dtype=torch.float64)
    clipped = torch.stack(
        [
            shifted[:, 0].clamp(0, width),
            shifted[:, 1].clamp(0, height),
            shifted[:, 2].clamp(0, width),
            shifted[:, 3].clamp(0, height),
        ],
        dim=1,
    )
    w, h = clipped[:, 2] - clipped[:, 0], clipped[:, 3] - clipped[:, 1]
    keep = (w > 0) & (h > 0)
    if min_visible > 0:
        area = (shifted[:, 2] - shifted[:, 0]).clamp(min=0) * (shifted[:, 3] - shifted[:, 1]).clamp(min=0)
        keep &= w.clamp(min=0) * h.clamp(min=0) >= min_visible * area
    return clipped[keep].to(boxes.dtype), keep


def _filter_rows(out: Sample, keep: torch.Tensor) -> None:
    for key in BOX_ROW_KEYS:
        if isinstance(out.get(key), torch.Tensor):
            out[key] = out[key][keep]


def _update_scale(sample: Sample, out: Sample, sx: float, sy: float) -> None:
    previous = sample.get("image_scale")
    base = previous.to(torch.float64) if isinstance(previous, torch.Tensor) else torch.ones(2, dtype=torch.float64)
    out["image_scale"] = base * torch.tensor([sx, sy], dtype=torch.float64)


def hflip(sample: Sample) -> Sample:
    """Mirror a sample left-right: ``x -> W - 1 - x`` for every map, with consistent camera geometry.

    ``K' = A K F3``; poses become ``F T F`` (``F = diag(-1, 1, 1, 1)``); ``sensor_flow`` x is negated; the signed
    ``baseline`` is negated (the flipped right view sits at ``-baseline``, so ``pose_right[0, 3] == -baseline``).
    Flipping twice returns the original sample exactly.

    Examples:
        >>> s = {"image": torch.rand(3, 4, 5), "intrinsics": torch.tensor([[2.0, 0, 1], [0, 2, 1], [0, 0, 1]])}
        >>> float(hflip(s)["intrinsics"][0, 2])  # W - 1 - cx
        3.0
    """
    _, w = _spatial_size(sample)
    _check_rows(sample)
    out = dict(sample)
    for key in SPATIAL_KEYS:
        if key in sample:
            out[key] = torch.flip(sample[key], dims=(-1,))
    for key in BOX_KEYS:
        if key in sample:
            out[key] = flip_boxes(_check_box_tensor(sample, key), w)
    if isinstance(sample.get("masks"), torch.Tensor):
        out["masks"] = torch.flip(sample["masks"], dims=(-1,))
    if "sensor_flow" in sample:
        flow = out["sensor_flow"].clone()
        flow[0] = -flow[0]
        out["sensor_flow"] = flow
    a = torch.tensor([[-1.0, 0.0, w - 1.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    _apply_pixel_map(sample, out, a, mirror=True)
    mirror4 = torch.diag(torch.tensor([-1.0, 1.0, 1.0, 1.0]))
    for key in POSE_KEYS:
        if key in sample:
            pose = sample[key]
            out[key] = (mirror4.to(pose.dtype) @ pose @ mirror4.to(pose.dtype)).contiguous()
    if "baseline" in sample:
        out["baseline"] = -sample["baseline"]
    return out


def crop(sample: Sample, top: int, left: int, height: int, width: int, *, min_visible: float = 0.0) -> Sample:
    """Crop the window ``[top, top + height) x [left, left + width)``; parts outside the image are padded.

    Padding: images, hha, depth, disparity, sensor depth and flow 0; ``semantic`` 255; ``depth_valid`` False.
    ``top``/``left`` may be negative (padding before the image). The principal point shifts: ``cx' = cx - left``,
    ``cy' = cy - top``. Boxes shift and are clipped to the window; boxes that end up empty or with less than
    ``min_visible`` of their area inside are dropped with their rows (:func:`crop_boxes`); ``masks`` pad False.

    Examples:
        >>> s = {"depth": torch.ones(1, 4, 4), "intrinsics": torch.eye(3)}
        >>> out = crop(s, 1, 2, 2, 3)
        >>> tuple(out["depth"].shape), out["intrinsics"][:2, 2].tolist()
        ((1, 2, 3), [-2.0, -1.0])
    """
    if height <= 0 or width <= 0:
        raise ShapeError(f"crop size must be positive, got height={height}, width={width}")
    if not 0.0 <= float(min_visible) <= 1.0:
        raise ConfigError(f"crop min_visible must be a fraction in [0, 1], got {min_visible!r}")
    _spatial_size(sample)
    _check_rows(sample)
    out = dict(sample)
    for key in SPATIAL_KEYS:
        if key in sample:
            out[key] = _crop_tensor(sample[key], top, left, height, width, _PAD_FILL.get(key, 0))
    if isinstance(sample.get("masks"), torch.Tensor):
        out["masks"] = _crop_tensor(sample["masks"], top, left, height, width, False)
    if "crowd_boxes" in sample:
        out["crowd_boxes"], _ = crop_boxes(_check_box_tensor(sample, "crowd_boxes"), top, left, height, width)
    if "boxes" in sample:
        out["boxes"], keep = crop_boxes(sample["boxes"], top, left, height, width, min_visible=float(min_visible))
        _filter_rows(out, keep)
    a = torch.tensor([[1.0, 0.0, -float(left)], [0.0, 1.0, -float(top)], [0.0, 0.0, 1.0]])
    _apply_pixel_map(sample, out, a)
    return out


def _crop_tensor(x: torch.Tensor, top: int, left: int, h: int, w: int, fill: float | int | bool) -> torch.Tensor:
    big_h, big_w = x.shape[-2:]
    if top >= 0 and left >= 0 and top + h <= big_h and left + w <= big_w:
        return x[..., top : top + h, left : left + w].clone()
    out = x.new_full((*x.shape[:-2], h, w), fill)
    y0, y1 = max(top, 0), min(top + h, big_h)
    x0, x1 = max(left, 0), min(left + w, big_w)
    if y1 > y0 and x1 > x0:
        out[..., y0 - top : y1 - top, x0 - left : x1 - left] = x[..., y0:y1, x0:x1]
    return out


def _nearest_index(size_in: int, size_out: int) -> torch.Tensor:
    # Source pixel whose centre is nearest to the output centre under x -> (x + 0.5) * s - 0.5.
    idx = torch.floor((torch.arange(size_out, dtype=torch.float64) + 0.5) * (size_in / size_out)).long()
    return idx.clamp_(0, size_in - 1)


def resize(sample: Sample, size: Sequence[int], *, interpolation: Interpolation = "bilinear") -> Sample:
    """Resize every map to ``size = (height, width)``; the camera rays of all pixels stay the same.

    Images and image-like maps (``hha``): ``interpolation`` with ``align_corners=False`` (antialiased when a side
    shrinks; clamped to [0, 1]).
    Depth, sensor depth, disparity, semantic and depth_valid: nearest neighbour, values unchanged (disparity keeps
    the pixel unit of its reference scale; it is not rescaled by ``W'/W``).
    ``sensor_flow``: nearest neighbour, rescaled exactly (including the sub-pixel offset the nearest-neighbour pick
    introduces, so it still describes the resampled ``sensor_depth``). Intrinsics: ``fx' = sx fx``,
    ``cx' = (cx + 0.5) sx - 0.5`` with ``sx = W'/W`` (likewise y). Boxes scale by ``(sx, sy)``, ``masks`` and the
    ``instance`` map are resampled like label maps, and a sample with boxes records the factors in ``image_scale``.

    Examples:
        >>> k = torch.tensor([[10.0, 0, 4.5], [0, 10, 2.5], [0, 0, 1]])
        >>> out = resize({"image": torch.rand(3, 6, 10), "intrinsics": k}, (12, 20))
        >>> out["intrinsics"][0].tolist()
        [20.0, 0.0, 9.5]
    """
    out_h, out_w = _check_size(size, "size")
    h, w = _spatial_size(sample)
    _check_rows(sample)
    if (out_h, out_w) == (h, w):
        out = dict(sample)
        if "boxes" in sample:
            _update_scale(sample, out, 1.0, 1.0)
        return out
    sy, sx = out_h / h, out_w / w
    iy, ix = _nearest_index(h, out_h), _nearest_index(w, out_w)
    shrink = out_h < h or out_w < w
    out = dict(sample)
    for key in BOX_KEYS:
        if key in sample:
            out[key] = scale_boxes(_check_box_tensor(sample, key), sx, sy)
    if "boxes" in sample:
        _update_scale(sample, out, sx, sy)
    if isinstance(sample.get("masks"), torch.Tensor):
        out["masks"] = sample["masks"][..., iy[:, None], ix[None, :]]
    for key in IMAGE_KEYS + IMAGE_LIKE_KEYS:
        if key in sample:
            img = sample[key]
            res = F.interpolate(
                img[None].float(), size=(out_h, out_w), mode=interpolation, align_corners=False, antialias=shrink
            )[0]
            # Bicubic overshoots and the antialiasing weights can exceed 1 by rounding: keep the [0, 1] contract.
            out[key] = res.clamp_(0.0, 1.0).to(img.dtype)
    for key in DENSE_FLOAT_KEYS + DISPARITY_KEYS + LABEL_KEYS:
        if key in sample:
            out[key] = sample[key][..., iy[:, None], ix[None, :]]
    if "sensor_flow" in sample:
        flow = sample["sensor_flow"][..., iy[:, None], ix[None, :]].to(torch.float64)
        xs = torch.arange(out_w, dtype=torch.float64)
        ys = torch.arange(out_h, dtype=torch.float64)
        fx = (ix.to(torch.float64)[None, :] + flow[0] + 0.5) * sx - 0.5 - xs[None, :]
        fy = (iy.to(torch.float64)[:, None] + flow[1] + 0.5) * sy - 0.5 - ys[:, None]
        out["sensor_flow"] = torch.stack([fx, fy]).to(sample["sensor_flow"].dtype)
    a = torch.tensor([[sx, 0.0, 0.5 * sx - 0.5], [0.0, sy, 0.5 * sy - 0.5], [0.0, 0.0, 1.0]], dtype=torch.float64)
    _apply_pixel_map(sample, out, a)
    return out


def center_zoom(
    sample: Sample,
    scale: float,
    *,
    divide_depth: bool = True,
    interpolation: Interpolation = "bilinear",
    min_visible: float = 0.0,
) -> Sample:
    """Zoom by ``scale`` about the image centre keeping the size (resize, then centre crop or pad).

    With ``divide_depth=True`` this is the MTL-PyTorch NYUD "ScaleNRotate" augmentation: depth (and sensor depth)
    are divided by ``scale``, so a zoomed-in image looks ``scale`` times closer. To keep the geometry exact the scene
    is treated as shrunk by ``1/scale`` (a similarity, invisible to a camera): intrinsics follow the zoom, and the
    translations of all poses and the baseline are divided by ``scale`` too. With ``divide_depth=False`` it is a
    plain zoom (depth values unchanged, poses unchanged). ``disparity`` is inverse depth, so where depth is divided
    by ``scale`` it is multiplied by ``scale`` (zero, i.e. invalid, stays zero).

    An ``hha`` map is zoomed like an image but not re-encoded: after ``divide_depth`` its disparity and height
    channels describe the unscaled scene (a warning is logged once). Put :class:`ComputeHHA` after the zoom when
    the encoding must match the divided depth.
    """
    if scale <= 0:
        raise ShapeError(f"zoom scale must be positive, got {scale}")
    if divide_depth and scale != 1.0 and any(k in sample for k in IMAGE_LIKE_KEYS):
        _warn_once(
            "center_zoom_hha",
            "center_zoom(divide_depth=True) divides depth by the scale but cannot re-encode sample['hha']; its "
            "disparity/height channels now describe the unscaled scene. Apply ComputeHHA after the zoom, or use "
            "divide_depth=false, if they must agree",
        )
    h, w = _spatial_size(sample)
    big_h, big_w = max(1, round(h * scale)), max(1, round(w * scale))
    out = resize(sample, (big_h, big_w), interpolation=interpolation)
    out = crop(out, (big_h - h) // 2, (big_w - w) // 2, h, w, min_visible=min_visible)
    if divide_depth:
        for key in DENSE_FLOAT_KEYS:
            if key in out:
                out[key] = out[key] / scale
        for key in DISPARITY_KEYS:
            if key in out:
                out[key] = out[key] * scale
        for key in POSE_KEYS:
            if key in out:
                pose = out[key].clone()
                pose[:3, 3] = pose[:3, 3] / scale
                out[key] = pose
        if "baseline" in out:
            out["baseline"] = out["baseline"] / scale
    return out


def _shift_hue(img: torch.Tensor, shift: float) -> torch.Tensor:
    """Rotate the HSV hue of RGB ``img`` (..., 3, H, W) by ``shift`` turns; saturation and value are kept.

    HSV round trip without divisions by V: with ``V = max``, ``V S = max - min`` and the closed-form inverse
    ``c_n = V - V S clamp(min(k, 4 - k), 0, 1)``, ``k = (n + 6 H) mod 6``, ``n = 5, 3, 1`` for R, G, B.
    """
    r, g, b = img.unbind(-3)
    maxc, argmax = img.max(dim=-3)
    minc = img.amin(dim=-3)
    chroma = maxc - minc
    # 6 H * chroma per max channel (ties give the same hue whichever channel is picked).
    num = torch.where(argmax == 0, g - b, torch.where(argmax == 1, b - r + 2.0 * chroma, r - g + 4.0 * chroma))
    hue6 = num / torch.where(chroma > 0, chroma, torch.ones_like(chroma)) + 6.0 * shift
    n = torch.tensor([5.0, 3.0, 1.0], dtype=img.dtype).view(3, 1, 1)
    k = torch.remainder(n + hue6.unsqueeze(-3), 6.0)
    ramp = torch.clamp(torch.minimum(k, 4.0 - k), 0.0, 1.0)
    return maxc.unsqueeze(-3) - chroma.unsqueeze(-3) * ramp


def _grayscale(img: torch.Tensor) -> torch.Tensor:
    r, g, b = img.unbind(-3)
    return (_LUMA[0] * r + _LUMA[1] * g + _LUMA[2] * b).unsqueeze(-3)


def jitter_color(
    sample: Sample,
    *,
    brightness: float = 1.0,
    contrast: float = 1.0,
    saturation: float = 1.0,
    hue: float = 0.0,
    order: Sequence[int] = (0, 1, 2, 3),
) -> Sample:
    """Apply the same photometric change to every RGB view (image, image_right, image_prev, image_next).

    Factors follow torchvision's ``ColorJitter`` semantics: brightness multiplies; contrast blends with the mean
    grey level of each image; saturation blends with the grey image (BT.601 luma); hue shifts H in HSV by ``hue``
    turns (in [-0.5, 0.5]). ``order`` is the permutation of (brightness, contrast, saturation, hue). Results are
    clamped to [0, 1] after each step. Geometry keys are untouched.

    Examples:
        >>> red = torch.zeros(3, 1, 1); red[0] = 1
        >>> jitter_color({"image": red}, hue=1 / 3)["image"].flatten().round(decimals=4).tolist()
        [0.0, 1.0, 0.0]
    """
    keys = [k for k in IMAGE_KEYS if k in sample]
    out = dict(sample)
    if not keys:
        return out
    img = torch.stack([sample[k].float() for k in keys])  # all views at once: (V, 3, H, W)
    for op in order:
        if op == 0 and brightness != 1.0:
            img = (img * brightness).clamp_(0.0, 1.0)
        elif op == 1 and contrast != 1.0:
            mean = _grayscale(img).mean(dim=(-3, -2, -1), keepdim=True)
            img = (contrast * img + (1.0 - contrast) * mean).clamp_(0.0, 1.0)
        elif op == 2 and saturation != 1.0:
            img = (saturation * img + (1.0 - saturation) * _grayscale(img)).clamp_(0.0, 1.0)
        elif op == 3 and hue != 0.0:
            img = _shift_hue(img, hue).clamp_(0.0, 1.0)
    for i, key in enumerate(keys):
        out[key] = img[i].to(sample[key].dtype)
    return out


HHADepthKey = Literal["auto", "depth", "sensor_depth"]


def compute_hha(
    sample: Sample,
    *,
    depth_key: HHADepthKey = "auto",
    raw_depth: torch.Tensor | None = None,
    quantize: bool = True,
) -> Sample:
    """Add ``sample["hha"]``: the HHA encoding of the sample's depth (Gupta et al. 2014), divided by 255.

    Uses :func:`freqdense.ops.depth_to_hha` with ``sample["intrinsics"]``; channels (disparity, height, angle),
    0 where depth is invalid. ``depth_key="auto"`` takes ``sensor_depth`` when the sample has it (the RGB-D input of
    the synthetic scenes; their ``depth`` is the ground truth) and ``depth`` otherwise (real datasets' sensor depth).

    Args:
        sample: needs ``intrinsics`` and the chosen depth key, (1, H, W) metres.
        depth_key: ``"auto"``, ``"depth"`` or ``"sensor_depth"``.
        raw_depth: optional (1, H, W) raw sensor depth whose holes are left out of the normal fits (Depth2HHA's
            missing mask; NYUv2's ``rawDepths`` next to the in-painted ``depths``).
        quantize: round to the 8-bit levels of cached HHA PNGs (so computed and loaded HHA agree); otherwise the
            unrounded encoding, clipped to [0, 1].

    Raises:
        ConfigError: unknown ``depth_key``.
        DataError: the sample lacks the depth or the intrinsics.

    Examples:
        >>> k = torch.tensor([[50.0, 0, 16], [0, 50.0, 12], [0, 0, 1]])
        >>> s = compute_hha({"depth": torch.full((1, 24, 32), 3.1), "intrinsics": k})
        >>> round(float(s["hha"][0, 12, 16]) * 255)  # disparity 31000 / 310 cm
        100
    """
    key = _hha_depth_key(sample, depth_key)
    if "intrinsics" not in sample:
        raise DataError(
            f"compute_hha needs sample['intrinsics'] (3x3 K) to encode sample[{key!r}]; use a dataset that provides "
            f"the camera, or load precomputed HHA (hha='load') instead"
        )
    from ..ops.hha import depth_to_hha

    depth = sample[key]
    if not isinstance(depth, torch.Tensor) or depth.dim() != 3 or depth.shape[0] != 1:
        raise ShapeError(f"compute_hha: sample[{key!r}] must be a (1, H, W) depth tensor, got {_describe(depth)}")
    code = depth_to_hha(
        depth[None].float(),
        sample["intrinsics"][None].float(),
        raw_depth=None if raw_depth is None else raw_depth[None].float(),
        quantize=quantize,
        unit_range=True,
    )[0]
    out = dict(sample)
    out["hha"] = code if quantize else code.clamp_(0.0, 1.0)
    return out


def _hha_depth_key(sample: Sample, depth_key: str) -> str:
    if depth_key not in ("auto", "depth", "sensor_depth"):
        raise ConfigError(f"HHA depth_key must be 'auto', 'depth' or 'sensor_depth', got {depth_key!r}")
    key = ("sensor_depth" if "sensor_depth" in sample else "depth") if depth_key == "auto" else depth_key
    if key not in sample:
        present = [k for k in DENSE_FLOAT_KEYS if k in sample]
        hint = f"; the sample has {', '.join(repr(k) for k in present)}" if present else "; the sample has no depth"
        raise DataError(
            f"cannot compute HHA: sample[{key!r}] is missing{hint}. Pick depth_key accordingly, or enable the depth "
            f"modality of the dataset (e.g. synthetic modalities=[..., 'sensor'])"
        )
    return key


# --------------------------------------------------------------------------------------------------------------
# Transform objects: draw parameters, call the functional core.
# --------------------------------------------------------------------------------------------------------------


class Transform:
    """Base class: ``transform(sample, rng=None) -> sample``. Deterministic transforms ignore ``rng``."""

    def __call__(self, sample: Sample, rng: np.random.Generator | None = None) -> Sample:
        raise NotImplementedError

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({args})"


class _RandomTransform(Transform):
    """A transform with its own per-process generator, used when no ``rng`` is passed."""

    def __init__(self, seed: int | None = None) -> None:
        self.seed = seed
        self._gen: np.random.Generator | None = None
        self._gen_key: tuple[int, int] | None = None

    def _rng(self, rng: np.random.Generator | None) -> np.random.Generator:
        if rng is not None:
            return rng
        # Rebuilt whenever the process or torch's seed changes: each DataLoader worker (and each epoch with
        # non-persistent workers) gets its own stream, all derived from the main process torch seed.
        key = (os.getpid(), torch.initial_seed())
        if self._gen is None or self._gen_key != key:
            salt = zlib.crc32(type(self).__name__.encode()) if self.seed is None else int(self.seed)
            self._gen = np.random.default_rng([torch.initial_seed(), salt])
            self._gen_key = key
        return self._gen

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_gen"], state["_gen_key"] = None, None  # never ship one stream to several workers
        return state


class Compose(_RandomTransform):
    """Apply transforms in order with one shared generator (one random stream per sample pipeline).

    Args:
        transforms: :class:`Transform` objects, or plain ``Sample -> Sample`` callables (called without ``rng``).
        seed: salt for the pipeline's own generator (see the module docstring); ignored when ``rng`` is passed.
    """

    def __init__(self, transforms: Sequence[Callable[..., Sample]], *, seed: int | None = None) -> None:
        super().__init__(seed)
        self.transforms = list(transforms)

    def __call__(self, sample: Sample, rng: np.random.Generator | None = None) -> Sample:
        gen = self._rng(rng)
        for t in self.transforms:
            sample = t(sample, gen) if isinstance(t, Transform) else t(sample)
        return sample

    def __repr__(self) -> str:
        inner = ",\n  ".join(repr(t) for t in self.transforms)
        return f"Compose([\n  {inner}\n])" if self.transforms else "Compose([])"


class RandomHorizontalFlip(_RandomTransform):
    """Flip with probability ``p`` (see :func:`hflip` for the geometry)."""

    def __init__(self, p: float = 0.5, *, seed: int | None = None) -> None:
        super().__init__(seed)
        if not 0.0 <= p <= 1.0:
            raise ConfigError(f"RandomHorizontalFlip p must be in [0, 1], got {p}")
        self.p = float(p)

    def __call__(self, sample: Sample, rng: np.random.Generator | None = None) -> Sample:
        return hflip(sample) if self._rng(rng).random() < self.p else sample


class RandomScale(_RandomTransform):
    """Resize by a random factor: a choice from ``scales`` or uniform in ``scale_range=(min, max)`` (which wins).

    The output size is ``round(H s) x round(W s)``; intrinsics use the realised factors, depth values are unchanged
    (a pure resize does not move the camera). See :func:`resize`.
    """

    def __init__(
        self,
        scales: Sequence[float] | None = (1.0, 1.2, 1.5),
        *,
        scale_range: Sequence[float] | None = None,
        interpolation: Interpolation = "bilinear",
        seed: int | None = None,
    ) -> None:
        super().__init__(seed)
        self.scale_range = None if scale_range is None else _check_range(scale_range, "RandomScale scale_range")
        # A range, when given, wins over the discrete default.
        self.scales = None if scales is None or scale_range is not None else _check_scales(scales, "RandomScale scales")
        if self.scales is None and self.scale_range is None:
            raise ConfigError("RandomScale needs scales=[...] (discrete choice) or scale_range=(min, max)")
        self.interpolation = interpolation

    def _draw(self, gen: np.random.Generator) -> float:
        if self.scale_range is not None:
            return float(gen.uniform(*self.scale_range))
        return float(self.scales[int(gen.integers(len(self.scales)))])  # type: ignore[index]

    def __call__(self, sample: Sample, rng: np.random.Generator | None = None) -> Sample:
        s = self._draw(self._rng(rng))
        h, w = _spatial_size(sample)
        return resize(sample, (max(1, round(h * s)), max(1, round(w * s))), interpolation=self.interpolation)


class CenterZoom(_RandomTransform):
    """MTL-PyTorch NYUD "ScaleNRotate" (rotation 0): zoom about the centre by a random choice of ``scales``.

    Keeps the size; with ``divide_depth=True`` depth is divided by the scale (see :func:`center_zoom`).
    ``min_visible``: boxes with less of their area inside the zoomed view are dropped (:func:`crop_boxes`).
    """

    def __init__(
        self,
        scales: Sequence[float] = (1.0, 1.2, 1.5),
        divide_depth: bool = True,
        *,
        interpolation: Interpolation = "bilinear",
        min_visible: float = 0.0,
        seed: int | None = None,
    ) -> None:
        super().__init__(seed)
        self.scales = _check_scales(scales, "CenterZoom scales")
        self.divide_depth = bool(divide_depth)
        self.interpolation = interpolation
        self.min_visible = _check_fraction(min_visible, "CenterZoom min_visible")

    def __call__(self, sample: Sample, rng: np.random.Generator | None = None) -> Sample:
        s = float(self.scales[int(self._rng(rng).integers(len(self.scales)))])
        if s == 1.0:
            return sample
        return center_zoom(
            sample, s, divide_depth=self.divide_depth, interpolation=self.interpolation, min_visible=self.min_visible
        )


class RandomCrop(_RandomTransform):
    """Crop ``size = (height, width)`` at a uniformly random position.

    If the sample is smaller than the crop along a side, the image is placed at a random offset inside a padded
    canvas (``pad_if_needed=True``) or a ShapeError is raised. Boxes with less than ``min_visible`` of their area
    inside the crop (or nothing) are dropped (:func:`crop_boxes`).
    """

    def __init__(
        self, size: Sequence[int], pad_if_needed: bool = True, *, min_visible: float = 0.0, seed: int | None = None
    ) -> None:
        super().__init__(seed)
        self.size = _check_size(size, "RandomCrop size")
        self.pad_if_needed = bool(pad_if_needed)
        self.min_visible = _check_fraction(min_visible, "RandomCrop min_visible")

    def __call__(self, sample: Sample, rng: np.random.Generator | None = None) -> Sample:
        gen = self._rng(rng)
        h, w = _spatial_size(sample)
        ch, cw = self.size
        if not self.pad_if_needed and (h < ch or w < cw):
            raise ShapeError(
                f"RandomCrop size {ch}x{cw} is larger than the sample ({h}x{w}); "
                f"set pad_if_needed=True or scale the sample up first"
            )
        top = int(gen.integers(min(0, h - ch), max(0, h - ch) + 1))
        left = int(gen.integers(min(0, w - cw), max(0, w - cw) + 1))
        return crop(sample, top, left, ch, cw, min_visible=self.min_visible)


class CenterCrop(Transform):
    """Crop ``size = (height, width)`` from the centre (padding symmetrically if the sample is smaller)."""

    def __init__(self, size: Sequence[int]) -> None:
        self.size = _check_size(size, "CenterCrop size")

    def __call__(self, sample: Sample, rng: np.random.Generator | None = None) -> Sample:
        h, w = _spatial_size(sample)
        ch, cw = self.size
        return crop(sample, (h - ch) // 2, (w - cw) // 2, ch, cw)


class Resize(Transform):
    """Resize to a fixed ``size = (height, width)`` (see :func:`resize`)."""

    def __init__(self, size: Sequence[int], *, interpolation: Interpolation = "bilinear") -> None:
        self.size = _check_size(size, "Resize size")
        self.interpolation = interpolation

    def __call__(self, sample: Sample, rng: np.random.Generator | None = None) -> Sample:
        return resize(sample, self.size, interpolation=self.interpolation)


class ResizeKeepRatio(Transform):
    """Resize keeping the aspect ratio so that the long side is at most ``scale[0]`` and the short side at most
    ``scale[1]`` (mmdetection's ``Resize(scale=(1333, 800), keep_ratio=True)``, the COCO detection setting).

    The factor is ``f = min(long / max(H, W), short / min(H, W))`` and the size ``(int(H f + 0.5), int(W f + 0.5))``;
    boxes scale with the realised ``(W' / W, H' / H)`` (see :func:`resize`).
    """

    def __init__(self, scale: Sequence[int] = (1333, 800), *, interpolation: Interpolation = "bilinear") -> None:
        long_side, short_side = _check_size(scale, "ResizeKeepRatio scale")
        if long_side < short_side:
            raise ConfigError(
                f"ResizeKeepRatio scale must be [long side, short side] with long >= short, got {list(scale)!r}"
            )
        self.scale = (long_side, short_side)
        self.interpolation = interpolation

    def output_size(self, height: int, width: int) -> tuple[int, int]:
        factor = min(self.scale[0] / max(height, width), self.scale[1] / min(height, width))
        return max(1, int(height * factor + 0.5)), max(1, int(width * factor + 0.5))

    def __call__(self, sample: Sample, rng: np.random.Generator | None = None) -> Sample:
        h, w = _spatial_size(sample)
        return resize(sample, self.output_size(h, w), interpolation=self.interpolation)


class ColorJitter(_RandomTransform):
    """Random brightness/contrast/saturation/hue, the same draw for all RGB views of a sample.

    Factors are uniform in ``[1 - x, 1 + x]`` (hue in ``[-hue, hue]`` turns) and the four steps run in a random
    order, as in torchvision. Monodepth2 uses brightness=contrast=saturation=0.2, hue=0.1, p=0.5. Applied with
    probability ``p``.
    """

    def __init__(
        self,
        brightness: float = 0.0,
        contrast: float = 0.0,
        saturation: float = 0.0,
        hue: float = 0.0,
        *,
        p: float = 1.0,
        seed: int | None = None,
    ) -> None:
        super().__init__(seed)
        for name, value in (("brightness", brightness), ("contrast", contrast), ("saturation", saturation)):
            if not 0.0 <= value <= 1.0:
                raise ConfigError(f"ColorJitter {name} must be in [0, 1] (factor range [1 - x, 1 + x]), got {value}")
        if not 0.0 <= hue <= 0.5:
            raise ConfigError(f"ColorJitter hue must be in [0, 0.5] turns, got {hue}")
        if not 0.0 <= p <= 1.0:
            raise ConfigError(f"ColorJitter p must be in [0, 1], got {p}")
        self.brightness, self.contrast, self.saturation, self.hue, self.p = brightness, contrast, saturation, hue, p

    def __call__(self, sample: Sample, rng: np.random.Generator | None = None) -> Sample:
        gen = self._rng(rng)
        # Draw everything unconditionally so the stream consumed per sample does not depend on p.
        apply = gen.random() < self.p
        b, c, s = (float(gen.uniform(1.0 - x, 1.0 + x)) for x in (self.brightness, self.contrast, self.saturation))
        h = float(gen.uniform(-self.hue, self.hue))
        order = tuple(int(i) for i in gen.permutation(4))
        if not apply:
            return sample
        return jitter_color(sample, brightness=b, contrast=c, saturation=s, hue=h, order=order)


class BlockwiseLabels(Transform):
    """Replace ``semantic`` by its block-wise annotation at band limit ``nu_max`` (the spectral-analysis paper's Sec.
    3.3).

    A thin wrapper around :func:`freqdense.spectral.annotation.blockwise_annotation`: the label map is labelled on a
    grid of ``2 nu_max + 1`` points per axis (cycles per image of the map it receives) and every pixel takes its
    block's label. Put it after every geometric step (crops included) so the blocks align with the network input;
    train only, evaluation uses the pixel-wise labels. Every other key passes through unchanged. A sample without
    ``semantic`` is returned as is.

    Args:
        nu_max: band limit (``>= 0``); ``None`` is the full band (identity).
        method: ``"majority"`` (vote of the block's non-void pixels) or ``"nearest"`` (label at the grid point).
        num_classes: passed to the vote (default: inferred from the map).
        void: ``"fill"`` (void pixels take their block's label, the default) or ``"keep"`` (void pixels stay void).
    """

    def __init__(
        self,
        nu_max: int | None,
        method: Literal["majority", "nearest"] = "majority",
        *,
        num_classes: int | None = None,
        void: Literal["fill", "keep"] = "fill",
    ) -> None:
        from ..spectral.annotation import check_void_mode

        if nu_max is not None and (not isinstance(nu_max, (int, np.integer)) or isinstance(nu_max, bool) or nu_max < 0):
            raise ConfigError(f"BlockwiseLabels nu_max must be a non-negative int or None (full band), got {nu_max!r}")
        if method not in ("majority", "nearest"):
            raise ConfigError(f"BlockwiseLabels method must be 'majority' or 'nearest', got {method!r}")
        self.nu_max = None if nu_max is None else int(nu_max)
        self.method = method
        self.num_classes = num_classes
        self.void = check_void_mode(void)

    def __call__(self, sample: Sample, rng: np.random.Generator | None = None) -> Sample:
        if self.nu_max is None or sample.get("semantic") is None:
            return sample
        from ..spectral.annotation import blockwise_annotation

        out = dict(sample)
        out["semantic"] = blockwise_annotation(
            sample["semantic"],
            self.nu_max,
            method=self.method,
            ignore_index=IGNORE_INDEX,
            num_classes=self.num_classes,
            void=self.void,
        )
        return out


class ComputeHHA(Transform):
    """Compute ``sample["hha"]`` from the sample's depth and intrinsics on the fly (see :func:`compute_hha`).

    Deterministic. Put it before the geometric augmentation to match the usual offline pipeline (HHA encoded once
    on the full frame, then flipped/scaled/cropped like the image; ``build_transforms`` does this), or after it when
    the encoding must follow a depth that the augmentation changes (``CenterZoom(divide_depth=True)``). Cost: about
    0.4-1 s per 480x640 frame on one CPU thread; for full NYUv2 training cache it once with ``freqdense data hha``
    and load it (``hha="load"``).

    Args:
        depth_key: ``"auto"`` (``sensor_depth`` if present, else ``depth``), ``"depth"`` or ``"sensor_depth"``.
        quantize: round to 8-bit levels like cached HHA PNGs (default), else unrounded and clipped to [0, 1].
    """

    def __init__(self, depth_key: HHADepthKey = "auto", *, quantize: bool = True) -> None:
        if depth_key not in ("auto", "depth", "sensor_depth"):
            raise ConfigError(f"ComputeHHA depth_key must be 'auto', 'depth' or 'sensor_depth', got {depth_key!r}")
        self.depth_key = depth_key
        self.quantize = bool(quantize)

    def __call__(self, sample: Sample, rng: np.random.Generator | None = None) -> Sample:
        return compute_hha(sample, depth_key=self.depth_key, quantize=self.quantize)


# --------------------------------------------------------------------------------------------------------------
# Config boundary.
# --------------------------------------------------------------------------------------------------------------

_CONFIG_KEYS = (
    "hha",
    "resize",
    "resize_keep_ratio",
    "box_min_visible",
    "hflip",
    "zoom",
    "scale",
    "scale_choices",
    "crop",
    "color_jitter",
    "blockwise_labels",
    "seed",
)


def build_transforms(cfg: dict[str, Any] | None, *, train: bool) -> Compose:
    """Build a pipeline from a small config dict (the ``data.transforms`` section of an experiment).

    Keys (all optional), applied in this order:

    * ``hha: true | auto | depth | sensor_depth`` or ``{depth_key: ..., quantize: bool}`` - :class:`ComputeHHA`
      (train and eval), first, so the encoding is computed on the full frame and then augmented like the image;
      ``true`` = ``auto`` (``sensor_depth`` if the sample has it, else ``depth``);
    * ``resize: [h, w]`` - fixed resize (train and eval);
    * ``resize_keep_ratio: [long, short]`` - :class:`ResizeKeepRatio` (train and eval; COCO detection: [1333, 800]);
    * ``hflip: true | p`` - random horizontal flip (p = 0.5 for ``true``);
    * ``zoom: [s1, s2, ...]`` or ``{scales: [...], divide_depth: bool}`` - :class:`CenterZoom` (NYUD MTL);
    * ``scale: [min, max]`` - :class:`RandomScale` with a uniform range;
    * ``scale_choices: [s1, s2, ...]`` - :class:`RandomScale` with a discrete choice;
    * ``crop: [h, w]`` - :class:`RandomCrop` with padding;
    * ``color_jitter: x`` (brightness = contrast = saturation = x) or a dict of :class:`ColorJitter` kwargs;
    * ``blockwise_labels: nu_max`` or ``{nu_max: int, method: majority | nearest, void: fill | keep}`` -
      :class:`BlockwiseLabels`, last, so the blocks align with the crop (training on block-wise annotation, the
      spectral-analysis paper's Sec. 3.3); ``null`` = pixel-wise labels;
    * ``box_min_visible: f`` - boxes with less than the fraction ``f`` of their area inside a crop or zoom are
      dropped (default 0: only boxes left empty);
    * ``seed: int`` - salt of the pipeline's generator.

    With ``train=False`` only ``hha``, ``resize`` and ``resize_keep_ratio`` are applied (evaluation sees whole,
    un-augmented images and pixel-wise labels).

    Raises:
        ConfigError: unknown key (with close matches) or a malformed value (naming the key).

    Examples:
        >>> [type(t).__name__ for t in build_transforms({"hflip": True, "crop": [96, 128]}, train=True).transforms]
        ['RandomHorizontalFlip', 'RandomCrop']
    """
    cfg = dict(cfg or {})
    for key in cfg:
        if key not in _CONFIG_KEYS:
            close = difflib.get_close_matches(key, _CONFIG_KEYS, n=3)
            hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
            raise ConfigError(f"unknown transform key {key!r}.{hint} Valid keys: {', '.join(_CONFIG_KEYS)}.")
    seed = cfg.get("seed")
    if seed is not None and not isinstance(seed, int):
        raise ConfigError(f"transform key 'seed' must be an int, got {seed!r}")
    steps: list[Transform] = []
    hha = cfg.get("hha")
    if hha is not None and hha is not False:
        if isinstance(hha, dict):
            from .._registry import check_kwargs

            check_kwargs(ComputeHHA, hha, what="transform key 'hha'")
            steps.append(ComputeHHA(**hha))
        elif hha is True or hha in ("auto", "depth", "sensor_depth"):
            steps.append(ComputeHHA("auto" if hha is True else hha))
        else:
            raise ConfigError(
                f"transform key 'hha' must be true, 'auto', 'depth', 'sensor_depth' or a dict of ComputeHHA "
                f"arguments (depth_key, quantize), got {hha!r}"
            )
    if cfg.get("resize") is not None:
        steps.append(Resize(_check_size(cfg["resize"], "transform key 'resize'")))
    if cfg.get("resize_keep_ratio") is not None:
        steps.append(ResizeKeepRatio(_check_size(cfg["resize_keep_ratio"], "transform key 'resize_keep_ratio'")))
    min_visible = _check_fraction(cfg.get("box_min_visible", 0.0), "transform key 'box_min_visible'")
    if not train:
        return Compose(steps, seed=seed)
    flip = cfg.get("hflip")
    if flip is not None and flip is not False:
        p = 0.5 if flip is True else flip
        if not isinstance(p, (int, float)) or isinstance(p, bool) or not 0.0 <= p <= 1.0:
            raise ConfigError(f"transform key 'hflip' must be true/false or a probability in [0, 1], got {flip!r}")
        steps.append(RandomHorizontalFlip(float(p)))
    zoom = cfg.get("zoom")
    if zoom is not None:
        if isinstance(zoom, dict):
            from .._registry import check_kwargs

            check_kwargs(CenterZoom, zoom, what="transform key 'zoom'")
            steps.append(CenterZoom(**{"min_visible": min_visible, **zoom}))
        else:
            steps.append(CenterZoom(_check_scales(zoom, "transform key 'zoom'"), min_visible=min_visible))
    if cfg.get("scale") is not None:
        steps.append(RandomScale(None, scale_range=_check_range(cfg["scale"], "transform key 'scale'")))
    if cfg.get("scale_choices") is not None:
        steps.append(RandomScale(_check_scales(cfg["scale_choices"], "transform key 'scale_choices'")))
    if cfg.get("crop") is not None:
        steps.append(RandomCrop(_check_size(cfg["crop"], "transform key 'crop'"), min_visible=min_visible))
    jitter = cfg.get("color_jitter")
    if jitter is not None and jitter is not False and jitter != 0:
        if isinstance(jitter, dict):
            from .._registry import check_kwargs

            check_kwargs(ColorJitter, jitter, what="transform key 'color_jitter'")
            steps.append(ColorJitter(**jitter))
        elif isinstance(jitter, (int, float)) and not isinstance(jitter, bool):
            steps.append(ColorJitter(brightness=jitter, contrast=jitter, saturation=jitter))
        else:
            raise ConfigError(
                f"transform key 'color_jitter' must be a number (brightness = contrast = saturation) or a dict of "
                f"ColorJitter arguments, got {jitter!r}"
            )
    blockwise = cfg.get("blockwise_labels")
    if blockwise is not None:
        if isinstance(blockwise, dict):
            from .._registry import check_kwargs

            check_kwargs(BlockwiseLabels, blockwise, what="transform key 'blockwise_labels'")
            steps.append(BlockwiseLabels(**blockwise))
        else:
            steps.append(BlockwiseLabels(blockwise))
    return Compose(steps, seed=seed)


def _check_size(size: object, what: str) -> tuple[int, int]:
    ok = (
        isinstance(size, (list, tuple))
        and len(size) == 2
        and all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v > 0 for v in size)
    )
    if not ok:
        raise ConfigError(f"{what} must be [height, width] with positive integers, got {size!r}")
    return int(size[0]), int(size[1])  # type: ignore[index]


def _check_fraction(value: object, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= float(value) <= 1.0:
        raise ConfigError(f"{what} must be a fraction in [0, 1], got {value!r}")
    return float(value)


def _check_scales(scales: object, what: str) -> tuple[float, ...]:
    if (
        not isinstance(scales, (list, tuple))
        or not scales
        or not all(isinstance(s, (int, float)) and not isinstance(s, bool) and s > 0 for s in scales)
    ):
        raise ConfigError(f"{what} must be a non-empty list of positive numbers, got {scales!r}")
    return tuple(float(s) for s in scales)


def _check_range(bounds: object, what: str) -> tuple[float, float]:
    vals = _check_scales(bounds, what)
    if len(vals) != 2 or vals[0] > vals[1]:
        raise ConfigError(f"{what} must be [min, max] with 0 < min <= max, got {bounds!r}")
    return vals[0], vals[1]
