"""Supervised depth: a robust regression loss on valid pixels, Eigen-style depth metrics."""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from ..data.sample import Sample, depth_valid_mask
from ..metrics import DepthMetrics

__all__ = ["DepthEstimation", "depth_loss"]

DepthLoss = Literal["l1", "smooth_l1", "l2", "silog"]


def depth_loss(pred: Tensor, target: Tensor, valid: Tensor, kind: DepthLoss = "l1") -> Tensor:
    """Mean loss over valid pixels (L1 is the MTL-PyTorch / FAFE choice); zero when no pixel is valid.

    ``silog`` is the scale-invariant log loss of Eigen et al. (lambda = 0.85, on log depth).
    """
    p, t = pred[valid].float(), target[valid].float()
    if p.numel() == 0:
        return pred.sum() * 0.0
    if kind == "l1":
        return (p - t).abs().mean()
    if kind == "smooth_l1":
        return F.smooth_l1_loss(p, t)
    if kind == "l2":
        return ((p - t) ** 2).mean()
    if kind == "silog":
        d = torch.log(p.clamp_min(1e-3)) - torch.log(t)
        return torch.sqrt((d**2).mean() - 0.85 * d.mean() ** 2 + 1e-8)
    raise ValueError(f"unknown depth loss {kind!r}")


class DepthEstimation:
    """Depth regression on ``batch["depth"]`` (metres) with ``batch["depth_valid"]``."""

    key = "depth"

    def __init__(
        self,
        *,
        loss: DepthLoss = "l1",
        min_depth: float = 1e-3,
        max_depth: float = 10.0,
        crop: str | None = None,
        median_scaling: bool = False,
        aggregation: Literal["pixel", "image"] = "pixel",
    ) -> None:
        self.loss_kind = loss
        self.metric_kwargs = dict(
            min_depth=min_depth, max_depth=max_depth, crop=crop, median_scaling=median_scaling, aggregation=aggregation
        )

    @staticmethod
    def _prepare(prediction: Tensor, batch: Sample) -> tuple[Tensor, Tensor, Tensor]:
        target = batch["depth"]
        valid = batch.get("depth_valid")
        if valid is None:
            valid = depth_valid_mask(target)
        if tuple(prediction.shape[-2:]) != tuple(target.shape[-2:]):
            prediction = F.interpolate(prediction, size=target.shape[-2:], mode="bilinear", align_corners=False)
        return prediction, target, valid

    def loss(self, prediction: Tensor, batch: Sample) -> Tensor:
        prediction, target, valid = self._prepare(prediction, batch)
        return depth_loss(prediction, target, valid, self.loss_kind)

    def make_metric(self) -> DepthMetrics:
        return DepthMetrics(**self.metric_kwargs)

    def update_metric(self, metric: DepthMetrics, prediction: Tensor, batch: Sample) -> None:
        prediction, target, valid = self._prepare(prediction, batch)
        metric.update(prediction.float(), target, valid)
