"""Losses as function + module pairs: photometric reprojection (Monodepth2), Auto-Blur and Ambiguity-Masking
(frequency-aware self-supervised depth), edge-aware smoothness, FCOS detection (focal, GIoU, centerness)."""

from __future__ import annotations

from .ambiguity_mask import AmbiguityMask, ambiguity_mask, warp_with_grid
from .auto_blur import AutoBlur
from .consistency import LocalConsistencyLoss, consistency_edge_mask, local_consistency_loss
from .detection import GIoULoss, SigmoidFocalLoss, centerness_loss, giou_loss, iou_loss, sigmoid_focal_loss
from .photometric import (
    LossImages,
    MinReprojection,
    PhotometricLoss,
    PhotometricLossOutput,
    min_reprojection,
    photometric_error,
    ssim,
)
from .smoothness import EdgeAwareSmoothness, smoothness_loss

__all__ = [
    "GIoULoss",
    "SigmoidFocalLoss",
    "centerness_loss",
    "giou_loss",
    "iou_loss",
    "sigmoid_focal_loss",
    "AmbiguityMask",
    "AutoBlur",
    "LocalConsistencyLoss",
    "consistency_edge_mask",
    "local_consistency_loss",
    "EdgeAwareSmoothness",
    "LossImages",
    "MinReprojection",
    "PhotometricLoss",
    "PhotometricLossOutput",
    "ambiguity_mask",
    "min_reprojection",
    "photometric_error",
    "smoothness_loss",
    "ssim",
    "warp_with_grid",
]
