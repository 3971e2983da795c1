"""Boundary F-score for semantic segmentation (BF score, Csurka et al. BMVC 2013; Perazzi et al. CVPR 2016).

For every class ``c``:

- boundary pixels of a label map are the pixels of class ``c`` with at least one 4-neighbour inside the image that
  has another label. For the ground truth, neighbours labelled ``ignore_index`` do not create boundaries, and
  boundary pixels (of either map) lying on ignored pixels are not counted;
- a predicted boundary pixel is *matched* if a ground-truth boundary pixel of the same class lies within Euclidean
  distance ``tolerance_px`` (a disk), and vice versa;
- precision ``P_c = matched_pred / pred``, recall ``R_c = matched_gt / gt`` and ``F_c = 2 P R / (P + R)``
  (0 when ``P + R = 0``).

Counts are summed over all images before the ratios (summable state, so merging ranks is addition); Csurka et al.
average per-image scores instead. ``boundary_f`` averages ``F_c`` over the classes with any boundary pixel in the
ground truth or the prediction.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F

from ..errors import ConfigError, ShapeError
from ._base import Metric, refuse_non_finite

__all__ = ["BoundaryFScore", "label_boundaries"]


def label_boundaries(labels: torch.Tensor, ignore_index: int | None = None) -> torch.Tensor:
    """Inner boundaries of a label map: ``(B, H, W)`` ints -> ``(B, H, W)`` bool.

    A pixel is a boundary pixel if one of its 4-neighbours inside the image has a different label that is not
    ``ignore_index``. Pixels labelled ``ignore_index`` are never boundary pixels.
    """
    lab = labels.long()
    out = torch.zeros_like(lab, dtype=torch.bool)
    for dim, step in ((1, 1), (1, -1), (2, 1), (2, -1)):
        n = lab.shape[dim]
        if n < 2:
            continue
        a = lab.narrow(dim, 0, n - 1) if step == 1 else lab.narrow(dim, 1, n - 1)  # pixel
        b = lab.narrow(dim, 1, n - 1) if step == 1 else lab.narrow(dim, 0, n - 1)  # its neighbour
        diff = a != b
        if ignore_index is not None:
            diff &= b != ignore_index
        target = out.narrow(dim, 0, n - 1) if step == 1 else out.narrow(dim, 1, n - 1)
        target |= diff
    if ignore_index is not None:
        out &= lab != ignore_index
    return out


def _disk(radius: int, device: torch.device) -> torch.Tensor:
    r = torch.arange(-radius, radius + 1, device=device, dtype=torch.float32)
    return ((r[:, None] ** 2 + r[None, :] ** 2) <= radius**2 + 1e-6).float()[None, None]


class BoundaryFScore(Metric):
    """Per-class boundary precision / recall / F-score accumulator.

    Args:
        num_classes: number of classes.
        tolerance_px: matching distance in pixels (Euclidean, disk); 0 requires the exact pixel.
        ignore_index: ground-truth value excluded from the counts.
        class_names: names for the per-class keys ``boundary_f/<name>``.

    Example:
        >>> m = BoundaryFScore(2, tolerance_px=1)
        >>> gt = torch.tensor([[[0, 0, 1, 1]]]); pred = torch.tensor([[[0, 1, 1, 1]]])
        >>> m.update(pred, gt); m.compute()["boundary_f"]
        1.0
    """

    _state_names = ("counts",)

    def __init__(
        self,
        num_classes: int,
        *,
        tolerance_px: int = 2,
        ignore_index: int | None = 255,
        class_names: Sequence[str] | None = None,
    ) -> None:
        if not isinstance(num_classes, int) or num_classes < 1:
            raise ConfigError(f"BoundaryFScore num_classes must be a positive int, got {num_classes!r}")
        if int(tolerance_px) < 0:
            raise ConfigError(f"BoundaryFScore tolerance_px must be >= 0, got {tolerance_px!r}")
        if class_names is not None and len(class_names) != num_classes:
            raise ConfigError(f"BoundaryFScore got {len(class_names)} class_names for num_classes={num_classes}")
        self.num_classes = num_classes
        self.tolerance_px = int(tolerance_px)
        self.ignore_index = ignore_index
        self.class_names = [str(n) for n in class_names] if class_names is not None else None
        self.counts: torch.Tensor
        self.reset()

    def _config(self) -> dict[str, Any]:
        return {"num_classes": self.num_classes, "tolerance_px": self.tolerance_px, "ignore_index": self.ignore_index}

    def _empty_state(self) -> dict[str, torch.Tensor]:
        # columns: predicted boundary pixels, matched predicted, ground-truth boundary pixels, matched ground truth
        device = self.counts.device if hasattr(self, "counts") else torch.device("cpu")
        return {"counts": torch.zeros(self.num_classes, 4, dtype=torch.int64, device=device)}

    @torch.no_grad()
    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        """Accumulate a batch: ``pred`` logits ``(B, C, H, W)`` or ids ``(B, H, W)``, ``target`` ids ``(B, H, W)``."""
        if target.is_floating_point() or target.dim() != 3:
            raise ShapeError(f"target must be (B, H, W) integer class ids, got {tuple(target.shape)} {target.dtype}")
        if pred.dim() == 4:
            if pred.shape[1] != self.num_classes:
                raise ShapeError(f"logits pred {tuple(pred.shape)} must have {self.num_classes} channels")
            if pred.shape[:1] + pred.shape[2:] == target.shape:
                counted = torch.ones_like(target, dtype=torch.bool)
                if self.ignore_index is not None:
                    counted = target != self.ignore_index
                refuse_non_finite((~torch.isfinite(pred)).any(dim=1) & counted.to(pred.device), "pred logits")
            pred = pred.argmax(1)
        if pred.shape != target.shape or pred.is_floating_point():
            raise ShapeError(
                f"pred {tuple(pred.shape)} must be integer ids of the target's shape {tuple(target.shape)} (or "
                "logits (B, C, H, W)); resize the prediction to the label size first"
            )
        target = target.long()
        pred = pred.to(target.device).long()
        valid = (
            target != self.ignore_index if self.ignore_index is not None else torch.ones_like(target, dtype=torch.bool)
        )
        pred_b = label_boundaries(pred) & valid
        gt_b = label_boundaries(target, self.ignore_index)
        disk = _disk(self.tolerance_px, target.device)
        pad = self.tolerance_px
        present = torch.unique(torch.cat([pred[valid], target[valid]]))
        counts = torch.zeros_like(self.counts, device=target.device)
        for c in present.tolist():
            if not 0 <= c < self.num_classes:
                raise ShapeError(f"class id {c} outside [0, {self.num_classes}) in pred or target")
            pb = (pred_b & (pred == c)).float()[:, None]
            gb = (gt_b & (target == c)).float()[:, None]
            near_gt = F.conv2d(gb, disk, padding=pad) > 0.5
            near_pred = F.conv2d(pb, disk, padding=pad) > 0.5
            counts[c, 0] = int(pb.sum())
            counts[c, 1] = int((pb.bool() & near_gt).sum())
            counts[c, 2] = int(gb.sum())
            counts[c, 3] = int((gb.bool() & near_pred).sum())
        self.counts = self.counts.to(counts.device)
        self.counts += counts

    def per_class(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(precision, recall, f)`` per class, float64; NaN for classes without boundary pixels anywhere."""
        c = self.counts.detach().cpu().double()
        pt, pm, gt, gm = c.unbind(1)
        absent = (pt == 0) & (gt == 0)
        precision = torch.where(pt > 0, pm / pt.clamp_min(1), torch.zeros_like(pt))
        recall = torch.where(gt > 0, gm / gt.clamp_min(1), torch.zeros_like(gt))
        s = precision + recall
        f = torch.where(s > 0, 2 * precision * recall / s.clamp_min(1e-12), torch.zeros_like(s))
        nan = torch.full_like(f, math.nan)
        return torch.where(absent, nan, precision), torch.where(absent, nan, recall), torch.where(absent, nan, f)

    def compute(self) -> dict[str, float]:
        """``boundary_f``, ``boundary_precision``, ``boundary_recall`` (means over present classes) and
        ``boundary_f/<name>`` per class."""
        precision, recall, f = self.per_class()

        def mean(v: torch.Tensor) -> float:
            v = v[~torch.isnan(v)]
            return float(v.mean()) if v.numel() else math.nan

        out = {"boundary_f": mean(f), "boundary_precision": mean(precision), "boundary_recall": mean(recall)}
        names = self.class_names or [str(i) for i in range(self.num_classes)]
        for name, value in zip(names, f.tolist()):
            out[f"boundary_f/{name}"] = float(value)
        return out
