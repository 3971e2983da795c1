"""FCOS points, target assignment and centerness (Tian et al., "FCOS: Fully Convolutional One-Stage Object
Detection", ICCV 2019, Sec. 3.1-3.3), with the center sampling of the FCOS repository's improved variant.

**Points.** Feature cell ``(i, j)`` of a level with stride ``s`` is the image point
``(x, y) = (s * j + s // 2, s * i + s // 2)``: the FCOS repository's ``compute_locations`` and mmdetection's
``MlvlPointGenerator(offset=0.5)`` (``s * (j + 0.5)``, equal for the even strides 8..128). Per level the points are
listed row-major (``y`` outer), the order of a ``(B, C, H, W) -> (B, H * W, C)`` flatten.

**Assignment** (per image, every point against every ground-truth box):

1. regression target ``(l, t, r, b) = (x - x1, y - y1, x2 - x, y2 - y)`` (Eq. 1);
2. a point is *inside* a box when ``min(l, t, r, b) > 0``; with center sampling, when it lies strictly inside the
   box intersected with the square of half-side ``radius * s`` around the box centre (radius 1.5);
3. the box is *in range* for the level when ``lo <= max(l, t, r, b) <= hi`` for the level's regress range
   (default ``(-1, 64), (64, 128), (128, 256), (256, 512), (512, INF)``, Sec. 3.2);
4. among the boxes a point is inside and in range of, the one of minimal area wins (the "ambiguous sample" rule,
   Sec. 3.2; equal areas: the lower box index); a point without such a box is background.

Labels use mmdetection's convention: ``0 .. num_classes - 1`` foreground, ``num_classes`` background.

**Centerness** (Eq. 3): ``sqrt(min(l, r) / max(l, r) * min(t, b) / max(t, b))``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch

from ...errors import ConfigError, ShapeError
from ...ops.boxes import box_area, boxes_to_distances

__all__ = [
    "INF",
    "REGRESS_RANGES",
    "FCOSTargets",
    "assign_targets",
    "centerness_target",
    "fcos_targets",
    "level_points",
]

#: The "infinite" upper bound of the last regress range (the value FCOS and mmdetection use).
INF = 1e8
#: FCOS's regress ranges for P3..P7 (strides 8..128), in image pixels.
REGRESS_RANGES: tuple[tuple[float, float], ...] = ((-1, 64), (64, 128), (128, 256), (256, 512), (512, INF))


class FCOSTargets(NamedTuple):
    """Targets of a batch, all levels concatenated (level order, row-major within a level).

    Attributes:
        labels: ``(B, P)`` int64, ``num_classes`` for background.
        distances: ``(B, P, 4)`` ``(l, t, r, b)`` in image pixels (zeros at background points).
        gt_index: ``(B, P)`` int64 index of the assigned box in the image's target list, -1 for background.
    """

    labels: torch.Tensor
    distances: torch.Tensor
    gt_index: torch.Tensor


def level_points(
    sizes: Sequence[tuple[int, int]],
    strides: Sequence[int],
    *,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> list[torch.Tensor]:
    """The ``(H * W, 2)`` ``(x, y)`` points of each level: ``(s * j + s // 2, s * i + s // 2)``, row-major."""
    if len(sizes) != len(strides):
        raise ConfigError(f"level_points got {len(sizes)} feature sizes but {len(strides)} strides; give one per level")
    points = []
    for (h, w), s in zip(sizes, strides):
        s = int(s)
        if s < 1:
            raise ConfigError(f"level_points strides must be positive integers, got {tuple(strides)!r}")
        ys = torch.arange(int(h), dtype=dtype, device=device) * s + s // 2
        xs = torch.arange(int(w), dtype=dtype, device=device) * s + s // 2
        yy, xx = torch.meshgrid(ys, xs, indexing="ij")
        points.append(torch.stack((xx.reshape(-1), yy.reshape(-1)), dim=-1))
    return points


def centerness_target(distances: torch.Tensor) -> torch.Tensor:
    """FCOS Eq. 3 for ``(..., 4)`` ``(l, t, r, b)`` distances (all positive): a value in ``(0, 1]``."""
    if distances.dim() < 1 or distances.shape[-1] != 4:
        raise ShapeError(f"centerness_target needs (..., 4) (l, t, r, b) distances, got {tuple(distances.shape)}")
    lr = distances[..., 0::2]
    tb = distances[..., 1::2]
    ratio = (lr.min(dim=-1).values / lr.max(dim=-1).values) * (tb.min(dim=-1).values / tb.max(dim=-1).values)
    return ratio.sqrt()


def _check_ranges(regress_ranges: Sequence[Sequence[float]], levels: int) -> torch.Tensor:
    ranges = torch.as_tensor([[float(lo), float(hi)] for lo, hi in regress_ranges], dtype=torch.float64)
    if ranges.shape[0] != levels:
        raise ConfigError(
            f"FCOS needs one regress range per level: {levels} levels but {ranges.shape[0]} ranges; pass "
            "regress_ranges with as many (lo, hi) pairs as the neck has outputs"
        )
    return ranges


def assign_targets(
    points: Sequence[torch.Tensor],
    strides: Sequence[int],
    boxes: torch.Tensor,
    labels: torch.Tensor,
    num_classes: int,
    *,
    regress_ranges: Sequence[Sequence[float]] = REGRESS_RANGES,
    center_sampling: bool = True,
    center_radius: float = 1.5,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """FCOS targets of one image.

    Args:
        points: per level ``(P_l, 2)`` points from :func:`level_points`.
        strides: stride of each level.
        boxes: ``(G, 4)`` xyxy ground-truth boxes in image pixels (``G`` may be 0).
        labels: ``(G,)`` int64 class indices in ``[0, num_classes)``.
        num_classes: number of foreground classes (the background label).
        regress_ranges: ``(lo, hi)`` of ``max(l, t, r, b)`` per level.
        center_sampling: positive region = box ∩ square of half-side ``center_radius * stride`` at the box centre.
        center_radius: 1.5 in the FCOS repository and mmdetection.

    Returns:
        ``labels (P,)``, ``distances (P, 4)`` and ``gt_index (P,)`` over all levels (see :class:`FCOSTargets`).
    """
    if len(points) != len(strides):
        raise ConfigError(f"assign_targets got {len(points)} point levels but {len(strides)} strides")
    ranges = _check_ranges(regress_ranges, len(points))
    if boxes.dim() != 2 or boxes.shape[-1] != 4 or not boxes.is_floating_point():
        raise ShapeError(f"target boxes must be a float (G, 4) xyxy tensor, got {tuple(boxes.shape)} {boxes.dtype}")
    if labels.shape != boxes.shape[:1] or labels.is_floating_point():
        raise ShapeError(
            f"target labels must be an integer (G,) tensor matching {boxes.shape[0]} boxes, got "
            f"{tuple(labels.shape)} {labels.dtype}"
        )
    if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= num_classes):
        raise ShapeError(
            f"target labels must lie in [0, {num_classes}) (num_classes={num_classes}), got values "
            f"{sorted(set(labels.tolist()))[:10]}"
        )
    all_points = torch.cat(list(points), dim=0)
    dtype, device = all_points.dtype, all_points.device
    n_points, n_gt = all_points.shape[0], boxes.shape[0]
    if n_gt == 0:
        return (
            torch.full((n_points,), num_classes, dtype=torch.long, device=device),
            all_points.new_zeros(n_points, 4),
            torch.full((n_points,), -1, dtype=torch.long, device=device),
        )
    boxes = boxes.to(dtype)
    per_level = [p.shape[0] for p in points]
    stride = torch.cat([all_points.new_full((n, 1), float(s)) for n, s in zip(per_level, strides)])  # (P, 1)
    lo_hi = torch.cat([ranges[k].to(dtype=dtype, device=device).expand(n, 2) for k, n in enumerate(per_level)])

    distances = boxes_to_distances(all_points[:, None, :], boxes[None, :, :])  # (P, G, 4)
    if center_sampling:
        centre = 0.5 * (boxes[:, :2] + boxes[:, 2:])  # (G, 2)
        half = stride * float(center_radius)  # (P, 1)
        region = torch.cat(
            (
                torch.maximum(centre[None] - half[..., None], boxes[None, :, :2]),
                torch.minimum(centre[None] + half[..., None], boxes[None, :, 2:]),
            ),
            dim=-1,
        )  # (P, G, 4)
        inside = boxes_to_distances(all_points[:, None, :], region).min(dim=-1).values > 0
    else:
        inside = distances.min(dim=-1).values > 0
    reach = distances.max(dim=-1).values
    in_range = (reach >= lo_hi[:, :1]) & (reach <= lo_hi[:, 1:])

    area = box_area(boxes)[None].expand(n_points, n_gt)
    area = torch.where(inside & in_range, area, torch.full_like(area, float("inf")))
    min_area, gt_index = area.min(dim=1)  # ties: the first (lowest) box index
    background = torch.isinf(min_area)
    target_labels = labels.to(device)[gt_index].masked_fill(background, num_classes)
    target_dist = distances[torch.arange(n_points, device=device), gt_index]
    target_dist = target_dist.masked_fill(background[:, None], 0.0)
    return target_labels, target_dist, gt_index.masked_fill(background, -1)


def fcos_targets(
    points: Sequence[torch.Tensor],
    strides: Sequence[int],
    targets: Sequence[dict[str, torch.Tensor]],
    num_classes: int,
    **kwargs: object,
) -> FCOSTargets:
    """:func:`assign_targets` for every image of a batch; ``targets[i]`` has ``"boxes"`` and ``"labels"``."""
    results = []
    for i, target in enumerate(targets):
        if not isinstance(target, dict) or "boxes" not in target or "labels" not in target:
            raise ShapeError(f"targets[{i}] must be a dict with 'boxes' (G, 4) xyxy and 'labels' (G,) int64")
        results.append(
            assign_targets(points, strides, target["boxes"], target["labels"], num_classes, **kwargs)  # type: ignore[arg-type]
        )
    labels, distances, gt_index = (torch.stack(t) for t in zip(*results))
    return FCOSTargets(labels, distances, gt_index)
