"""Axis-aligned box operations in plain torch: format conversion, area, IoU / GIoU, NMS, clipping.

Boxes are ``(..., 4)`` float tensors in continuous pixel coordinates. ``"xyxy"`` is ``(x1, y1, x2, y2)`` with
``x2 >= x1`` and ``y2 >= y1`` (width ``x2 - x1``, no ``+ 1``); ``"xywh"`` is ``(x1, y1, w, h)``; ``"cxcywh"`` is
``(cx, cy, w, h)``. A box with ``x2 < x1`` or ``y2 < y1`` counts as empty (area 0).

IoU is ``|A ∩ B| / |A ∪ B|``; the generalized IoU of Rezatofighi et al., "Generalized Intersection over Union: A
Metric and A Loss for Bounding Box Regression" (CVPR 2019), Alg. 1, is ``GIoU = IoU - |C \\ (A ∪ B)| / |C|`` with
``C`` the smallest box enclosing both, so ``GIoU ∈ (-1, 1]``. 0/0 (two empty boxes) is defined as 0 in both.

``nms`` is the greedy non-maximum suppression of the R-CNN family: visit boxes by decreasing score (ties: lower
index first), keep a box unless a kept box overlaps it with IoU ``> iou_threshold``. ``batched_nms`` runs it per
class, so boxes of different classes never suppress each other.
"""

from __future__ import annotations

from typing import Literal

import torch

from .._checks import check_shape
from ..errors import ConfigError, ShapeError

__all__ = [
    "BoxFormat",
    "batched_nms",
    "box_area",
    "box_convert",
    "box_iou",
    "boxes_to_distances",
    "clip_boxes",
    "distances_to_boxes",
    "generalized_box_iou",
    "nms",
    "remove_small_boxes",
]

BoxFormat = Literal["xyxy", "xywh", "cxcywh"]
_FORMATS = ("xyxy", "xywh", "cxcywh")


def _check_boxes(boxes: object, name: str) -> torch.Tensor:
    if not isinstance(boxes, torch.Tensor):
        raise ShapeError(f"{name} must be a torch.Tensor of shape (..., 4), got {type(boxes).__name__}")
    if boxes.dim() < 1 or boxes.shape[-1] != 4:
        raise ShapeError(f"{name} must have shape (..., 4) (one box per row), got {tuple(boxes.shape)}")
    if not boxes.is_floating_point():
        raise ShapeError(f"{name} must be a floating-point tensor, got {boxes.dtype}; convert with .float()")
    return boxes


def box_convert(boxes: torch.Tensor, in_fmt: BoxFormat, out_fmt: BoxFormat) -> torch.Tensor:
    """Convert ``(..., 4)`` boxes between ``"xyxy"``, ``"xywh"`` and ``"cxcywh"``."""
    for key, fmt in (("in_fmt", in_fmt), ("out_fmt", out_fmt)):
        if fmt not in _FORMATS:
            raise ConfigError(f"box_convert {key} must be one of {_FORMATS}, got {fmt!r}")
    _check_boxes(boxes, "boxes")
    if in_fmt == out_fmt:
        return boxes.clone()
    a, b, c, d = boxes.unbind(-1)
    if in_fmt == "xywh":
        x1, y1, x2, y2 = a, b, a + c, b + d
    elif in_fmt == "cxcywh":
        x1, y1, x2, y2 = a - 0.5 * c, b - 0.5 * d, a + 0.5 * c, b + 0.5 * d
    else:
        x1, y1, x2, y2 = a, b, c, d
    if out_fmt == "xyxy":
        return torch.stack((x1, y1, x2, y2), dim=-1)
    if out_fmt == "xywh":
        return torch.stack((x1, y1, x2 - x1, y2 - y1), dim=-1)
    return torch.stack((0.5 * (x1 + x2), 0.5 * (y1 + y2), x2 - x1, y2 - y1), dim=-1)


def box_area(boxes: torch.Tensor) -> torch.Tensor:
    """Area of ``(..., 4)`` xyxy boxes; inverted boxes (``x2 < x1`` or ``y2 < y1``) have area 0."""
    _check_boxes(boxes, "boxes")
    return (boxes[..., 2] - boxes[..., 0]).clamp(min=0) * (boxes[..., 3] - boxes[..., 1]).clamp(min=0)


def _safe_ratio(num: torch.Tensor, den: torch.Tensor, eps: float) -> torch.Tensor:
    """``num / den`` with ``den`` floored at ``eps`` (``eps > 0``) or 0/0 := 0 (``eps == 0``); finite gradients."""
    if eps > 0:
        return num / den.clamp(min=eps)
    return torch.where(den > 0, num, torch.zeros_like(num)) / torch.where(den > 0, den, torch.ones_like(den))


def _pair(a: torch.Tensor, b: torch.Tensor, aligned: bool) -> tuple[torch.Tensor, torch.Tensor]:
    _check_boxes(a, "boxes1")
    _check_boxes(b, "boxes2")
    if aligned:
        if a.shape != b.shape:
            raise ShapeError(
                f"aligned IoU needs boxes1 and boxes2 of the same shape, got {tuple(a.shape)} and {tuple(b.shape)}"
            )
        return a, b
    if a.dim() != 2 or b.dim() != 2:
        raise ShapeError(
            f"pairwise IoU needs boxes1 (N, 4) and boxes2 (M, 4), got {tuple(a.shape)} and {tuple(b.shape)}; "
            "pass aligned=True for element-wise IoU of equal-shaped tensors"
        )
    return a[:, None, :], b[None, :, :]


def _iou_parts(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    wh = (torch.minimum(a[..., 2:], b[..., 2:]) - torch.maximum(a[..., :2], b[..., :2])).clamp(min=0)
    inter = wh[..., 0] * wh[..., 1]
    union = box_area(a) + box_area(b) - inter
    return inter, union


def box_iou(boxes1: torch.Tensor, boxes2: torch.Tensor, *, aligned: bool = False, eps: float = 0.0) -> torch.Tensor:
    """Intersection over union of xyxy boxes.

    Args:
        boxes1, boxes2: ``(N, 4)`` and ``(M, 4)``; with ``aligned=True`` any equal shapes ``(..., 4)``.
        aligned: element-wise IoU of corresponding boxes instead of the ``(N, M)`` pairwise matrix.
        eps: floor of the union (``eps > 0``, as losses use it); 0 gives exact ratios with 0/0 := 0.

    Returns:
        ``(N, M)`` (pairwise) or ``boxes1.shape[:-1]`` (aligned) IoU in ``[0, 1]``.
    """
    a, b = _pair(boxes1, boxes2, aligned)
    inter, union = _iou_parts(a, b)
    return _safe_ratio(inter, union, eps)


def generalized_box_iou(
    boxes1: torch.Tensor, boxes2: torch.Tensor, *, aligned: bool = False, eps: float = 0.0
) -> torch.Tensor:
    """Generalized IoU (Rezatofighi et al., CVPR 2019): ``IoU - (|C| - |A ∪ B|) / |C|``, ``C`` the enclosing box.

    Same arguments and shapes as :func:`box_iou`; values in ``(-1, 1]`` (1 only for identical non-empty boxes,
    ``-> -1`` for tiny boxes far apart). ``eps`` floors the union and the enclosing area.
    """
    a, b = _pair(boxes1, boxes2, aligned)
    inter, union = _iou_parts(a, b)
    iou = _safe_ratio(inter, union, eps)
    wh = (torch.maximum(a[..., 2:], b[..., 2:]) - torch.minimum(a[..., :2], b[..., :2])).clamp(min=0)
    enclosing = wh[..., 0] * wh[..., 1]
    union = union.clamp(min=eps) if eps > 0 else union
    return iou - _safe_ratio(enclosing - union, enclosing, eps)


def _check_nms_inputs(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> None:
    check_shape(boxes, "N four", name="nms boxes", four=4)
    check_shape(scores, "N", name="nms scores", N=boxes.shape[0])
    if not boxes.is_floating_point() or not scores.is_floating_point():
        raise ShapeError(f"nms boxes and scores must be floating point, got {boxes.dtype} and {scores.dtype}")
    if not 0.0 <= float(iou_threshold) <= 1.0:
        raise ConfigError(f"nms iou_threshold must be in [0, 1], got {iou_threshold!r}")
    if not (torch.isfinite(boxes).all() and torch.isfinite(scores).all()):
        raise ShapeError("nms boxes and scores must be finite (NaN/inf found); check the model's outputs and weights")


def nms(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """Greedy non-maximum suppression.

    Args:
        boxes: ``(N, 4)`` xyxy.
        scores: ``(N,)``.
        iou_threshold: a box is dropped when its IoU with a higher-scored kept box is ``> iou_threshold``.

    Returns:
        int64 indices of the kept boxes, by decreasing score (equal scores: lower index first).
    """
    _check_nms_inputs(boxes, scores, iou_threshold)
    if boxes.shape[0] == 0:
        return torch.zeros(0, dtype=torch.long, device=boxes.device)
    order = torch.sort(scores.detach(), descending=True, stable=True).indices
    sorted_boxes = boxes.detach()[order]
    n = sorted_boxes.shape[0]
    removed = torch.zeros(n, dtype=torch.bool)  # on the CPU: the greedy loop reads it element by element
    kept: list[int] = []
    for i in range(n):
        if removed[i]:
            continue
        kept.append(i)
        if i + 1 < n:
            removed[i + 1 :] |= (box_iou(sorted_boxes[i : i + 1], sorted_boxes[i + 1 :])[0] > iou_threshold).cpu()
    return order[torch.tensor(kept, dtype=torch.long, device=boxes.device)]


def batched_nms(boxes: torch.Tensor, scores: torch.Tensor, labels: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """:func:`nms` applied to each class separately; indices of all kept boxes by decreasing score.

    Args:
        boxes: ``(N, 4)`` xyxy.
        scores: ``(N,)``.
        labels: ``(N,)`` integer class of each box.
        iou_threshold: as in :func:`nms`.
    """
    _check_nms_inputs(boxes, scores, iou_threshold)
    check_shape(labels, "N", name="batched_nms labels", N=boxes.shape[0])
    if labels.is_floating_point():
        raise ShapeError(f"batched_nms labels must be an integer tensor, got {labels.dtype}")
    if boxes.shape[0] == 0:
        return torch.zeros(0, dtype=torch.long, device=boxes.device)
    kept = []
    for label in torch.unique(labels):
        idx = torch.nonzero(labels == label).flatten()
        kept.append(idx[nms(boxes[idx], scores[idx], iou_threshold)])
    keep = torch.cat(kept)
    # merge the classes by score; ties keep the lower original index first, as nms does
    keep = keep.sort().values
    return keep[torch.sort(scores.detach()[keep], descending=True, stable=True).indices]


def clip_boxes(boxes: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Clamp xyxy boxes into an image of ``size = (height, width)``: ``x ∈ [0, W]``, ``y ∈ [0, H]``."""
    _check_boxes(boxes, "boxes")
    if len(size) != 2 or min(int(size[0]), int(size[1])) < 0:
        raise ConfigError(f"clip_boxes size must be (height, width) with non-negative values, got {size!r}")
    h, w = float(size[0]), float(size[1])
    x = boxes[..., 0::2].clamp(min=0.0, max=w)
    y = boxes[..., 1::2].clamp(min=0.0, max=h)
    return torch.stack((x[..., 0], y[..., 0], x[..., 1], y[..., 1]), dim=-1)


def remove_small_boxes(boxes: torch.Tensor, min_size: float) -> torch.Tensor:
    """Indices of the ``(N, 4)`` xyxy boxes whose width and height are both ``>= min_size``."""
    check_shape(boxes, "N four", name="boxes", four=4)
    keep = ((boxes[:, 2] - boxes[:, 0]) >= min_size) & ((boxes[:, 3] - boxes[:, 1]) >= min_size)
    return torch.nonzero(keep).flatten()


def distances_to_boxes(points: torch.Tensor, distances: torch.Tensor) -> torch.Tensor:
    """FCOS decoding: points ``(..., 2)`` as ``(x, y)`` and distances ``(l, t, r, b)`` -> xyxy boxes.

    ``box = (x - l, y - t, x + r, y + b)`` (Tian et al., ICCV 2019, Eq. 1 inverted).
    """
    if points.shape[-1] != 2 or distances.shape[-1] != 4 or points.shape[:-1] != distances.shape[:-1]:
        raise ShapeError(
            f"distances_to_boxes needs points (..., 2) and distances (..., 4) with equal leading dims, got "
            f"{tuple(points.shape)} and {tuple(distances.shape)}"
        )
    x, y = points.unbind(-1)
    left, top, right, bottom = distances.unbind(-1)
    return torch.stack((x - left, y - top, x + right, y + bottom), dim=-1)


def boxes_to_distances(points: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
    """FCOS regression targets (Tian et al., ICCV 2019, Eq. 1): ``l = x - x1, t = y - y1, r = x2 - x, b = y2 - y``.

    Args:
        points: ``(..., 2)`` as ``(x, y)``.
        boxes: xyxy, broadcastable against ``points`` (e.g. points ``(P, 1, 2)`` with boxes ``(1, G, 4)``).
    """
    if points.shape[-1] != 2 or boxes.shape[-1] != 4:
        raise ShapeError(
            f"boxes_to_distances needs points (..., 2) and boxes (..., 4), got {tuple(points.shape)} and "
            f"{tuple(boxes.shape)}"
        )
    x, y = points[..., 0], points[..., 1]
    return torch.stack((x - boxes[..., 0], y - boxes[..., 1], boxes[..., 2] - x, boxes[..., 3] - y), dim=-1)
