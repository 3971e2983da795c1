"""Dense-detection losses: sigmoid focal loss, IoU / GIoU box losses and the FCOS centerness BCE.

* Focal loss, Lin et al., "Focal Loss for Dense Object Detection" (ICCV 2017), Eq. 5 with the alpha-balanced form
  of Sec. 3.2: ``FL(p_t) = -alpha_t (1 - p_t)^gamma log(p_t)`` with ``p_t = p`` for a positive target and
  ``1 - p`` otherwise, ``alpha_t = alpha`` / ``1 - alpha``; defaults ``alpha = 0.25, gamma = 2``. Computed from
  logits as ``alpha_t (1 - p_t)^gamma BCE(x, t)``, which also accepts soft targets in ``[0, 1]``.
* GIoU loss, Rezatofighi et al., "Generalized Intersection over Union" (CVPR 2019), Alg. 2: ``1 - GIoU``, in
  ``[0, 2)``: 0 for identical boxes, ``> 1`` for disjoint ones.
* IoU loss, Yu et al., "UnitBox" (ACM MM 2016) and FCOS's default: ``-log(IoU)`` (IoU floored at ``eps``).
* Centerness loss, Tian et al., "FCOS: Fully Convolutional One-Stage Object Detection" (ICCV 2019), Sec. 3.3:
  binary cross-entropy between the predicted centerness logit and the target centerness in ``[0, 1]``.

Every function takes ``reduction`` ``"none" | "sum" | "mean"``; FCOS sums and divides by its own normaliser
(:meth:`freqdense.models.detection.FCOSDetector.loss`). Box losses take an optional per-box ``weight``.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import ConfigError, ShapeError
from ..ops.boxes import box_iou, generalized_box_iou

__all__ = [
    "GIoULoss",
    "SigmoidFocalLoss",
    "centerness_loss",
    "giou_loss",
    "iou_loss",
    "sigmoid_focal_loss",
]

Reduction = Literal["none", "sum", "mean"]


def _reduce(loss: torch.Tensor, reduction: str) -> torch.Tensor:
    if reduction == "none":
        return loss
    if reduction == "sum":
        return loss.sum()
    if reduction == "mean":
        return loss.mean() if loss.numel() else loss.sum()
    raise ConfigError(f"reduction must be 'none', 'sum' or 'mean', got {reduction!r}")


def sigmoid_focal_loss(
    logits: torch.Tensor,
    targets: torch.Tensor,
    *,
    alpha: float | None = 0.25,
    gamma: float = 2.0,
    reduction: Reduction = "sum",
) -> torch.Tensor:
    """Sigmoid focal loss (Lin et al., ICCV 2017, Eq. 5), element-wise over ``logits``.

    Args:
        logits: raw scores, any shape (FCOS: ``(points, classes)``).
        targets: same shape, 1 for the positive class of a point, 0 elsewhere (soft values in ``[0, 1]`` allowed).
        alpha: weight of positives (``1 - alpha`` for negatives); ``None`` disables the balancing.
        gamma: focusing exponent (0 gives the alpha-balanced binary cross-entropy).
        reduction: ``"none"``, ``"sum"`` (default) or ``"mean"``.
    """
    if logits.shape != targets.shape:
        raise ShapeError(
            f"sigmoid_focal_loss targets must have the logits' shape {tuple(logits.shape)}, got "
            f"{tuple(targets.shape)}; one-hot encode class labels first"
        )
    if alpha is not None and not 0.0 <= float(alpha) <= 1.0:
        raise ConfigError(f"sigmoid_focal_loss alpha must be in [0, 1] or None, got {alpha!r}")
    if float(gamma) < 0:
        raise ConfigError(f"sigmoid_focal_loss gamma must be >= 0, got {gamma!r}")
    targets = targets.to(logits.dtype)
    p = torch.sigmoid(logits)
    bce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    p_t = p * targets + (1 - p) * (1 - targets)
    loss = bce * (1 - p_t).pow(gamma) if gamma != 0 else bce
    if alpha is not None:
        loss = (alpha * targets + (1 - alpha) * (1 - targets)) * loss
    return _reduce(loss, reduction)


def _box_loss_inputs(pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None, name: str) -> None:
    if pred.shape != target.shape or pred.dim() < 1 or pred.shape[-1] != 4:
        raise ShapeError(
            f"{name} needs pred and target xyxy boxes of one shape (..., 4), got {tuple(pred.shape)} and "
            f"{tuple(target.shape)}"
        )
    if weight is not None and weight.shape != pred.shape[:-1]:
        raise ShapeError(
            f"{name} weight must have shape {tuple(pred.shape[:-1])} (one per box), got {tuple(weight.shape)}"
        )


def giou_loss(
    pred: torch.Tensor,
    target: torch.Tensor,
    weight: torch.Tensor | None = None,
    *,
    reduction: Reduction = "sum",
    eps: float = 1e-6,
) -> torch.Tensor:
    """``1 - GIoU(pred, target)`` per box (Rezatofighi et al., CVPR 2019, Alg. 2), times ``weight``.

    Args:
        pred, target: xyxy boxes of one shape ``(..., 4)``.
        weight: optional ``(...)`` per-box weight (FCOS: the centerness target).
        reduction: ``"none"``, ``"sum"`` (default) or ``"mean"``.
        eps: floor of the union and enclosing areas (keeps gradients finite for empty boxes).
    """
    _box_loss_inputs(pred, target, weight, "giou_loss")
    loss = 1 - generalized_box_iou(pred, target, aligned=True, eps=eps)
    return _reduce(loss if weight is None else loss * weight, reduction)


def iou_loss(
    pred: torch.Tensor,
    target: torch.Tensor,
    weight: torch.Tensor | None = None,
    *,
    reduction: Reduction = "sum",
    eps: float = 1e-6,
) -> torch.Tensor:
    """``-log(max(IoU, eps))`` per box (UnitBox; FCOS's default box loss), times ``weight``."""
    _box_loss_inputs(pred, target, weight, "iou_loss")
    loss = -box_iou(pred, target, aligned=True, eps=eps).clamp(min=eps).log()
    return _reduce(loss if weight is None else loss * weight, reduction)


def centerness_loss(logits: torch.Tensor, targets: torch.Tensor, *, reduction: Reduction = "sum") -> torch.Tensor:
    """Binary cross-entropy of centerness logits against targets in ``[0, 1]`` (FCOS, Sec. 3.3)."""
    if logits.shape != targets.shape:
        raise ShapeError(
            f"centerness_loss targets must have the logits' shape {tuple(logits.shape)}, got {tuple(targets.shape)}"
        )
    loss = F.binary_cross_entropy_with_logits(logits, targets.to(logits.dtype), reduction="none")
    return _reduce(loss, reduction)


class SigmoidFocalLoss(nn.Module):
    """Module form of :func:`sigmoid_focal_loss` (``alpha = 0.25, gamma = 2`` as Lin et al. and FCOS)."""

    def __init__(self, alpha: float | None = 0.25, gamma: float = 2.0, reduction: Reduction = "sum") -> None:
        super().__init__()
        _reduce(torch.zeros(0), reduction)  # validates the name
        if alpha is not None and not 0.0 <= float(alpha) <= 1.0:
            raise ConfigError(f"SigmoidFocalLoss alpha must be in [0, 1] or None, got {alpha!r}")
        if float(gamma) < 0:
            raise ConfigError(f"SigmoidFocalLoss gamma must be >= 0, got {gamma!r}")
        self.alpha, self.gamma, self.reduction = alpha, float(gamma), reduction

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return sigmoid_focal_loss(logits, targets, alpha=self.alpha, gamma=self.gamma, reduction=self.reduction)


class GIoULoss(nn.Module):
    """Module form of :func:`giou_loss`."""

    def __init__(self, reduction: Reduction = "sum", eps: float = 1e-6) -> None:
        super().__init__()
        _reduce(torch.zeros(0), reduction)
        self.reduction, self.eps = reduction, float(eps)

    def forward(self, pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
        return giou_loss(pred, target, weight, reduction=self.reduction, eps=self.eps)
