"""Feature Re-calibration (FR) of FAFE: SE attention on one task's band, added to the other task's same band.

Fu et al., "Lifting the Veil of Frequency in Joint Segmentation and Depth Estimation", ACM MM 2021, §3.2, Fig. 5
(no official code). For each band ``b`` in {low, high}:

    F_d^b' = F_d^b + SE_{s->d}^b(F_s^b),    F_s^b' = F_s^b + SE_{d->s}^b(F_d^b)

with ``SE(x) = x * sigmoid(fc_2(relu(fc_1(GAP(x)))))`` (Hu et al., CVPR 2018; reduction 16, biases as in the
original SENet). Four independent SE blocks. Both updates read the *input* features (simultaneous update). How the
re-calibrated low and high features are merged into the paper's single ``F_T^fr`` is left to the architecture
(FAFE-PAD-Net / FAFE-MTI-Net integration is separate work).
"""

from __future__ import annotations

import logging
from typing import NamedTuple

import torch
from torch import nn

from .._checks import check_shape
from ..errors import ConfigError, ShapeError

__all__ = ["FeatureRecalibration", "RecalibrationOutput", "SqueezeExcitation"]

logger = logging.getLogger(__name__)


class RecalibrationOutput(NamedTuple):
    """Re-calibrated band features, each ``(B, C, H, W)``."""

    seg_low: torch.Tensor
    seg_high: torch.Tensor
    depth_low: torch.Tensor
    depth_high: torch.Tensor


class SqueezeExcitation(nn.Module):
    """SE block: ``x * sigmoid(W_2 relu(W_1 GAP(x) + b_1) + b_2)``, hidden size ``max(1, C // reduction)``.

    Examples:
        >>> se = SqueezeExcitation(32)
        >>> se(torch.rand(2, 32, 5, 7)).shape
        torch.Size([2, 32, 5, 7])
    """

    def __init__(self, channels: int, *, reduction: int = 16) -> None:
        super().__init__()
        if channels < 1 or reduction < 1:
            raise ConfigError(f"SqueezeExcitation: channels and reduction must be >= 1, got {channels}, {reduction}")
        hidden = max(1, channels // reduction)
        self.fc1 = nn.Linear(channels, hidden)
        self.fc2 = nn.Linear(hidden, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, H, W)`` -> channel-reweighted ``(B, C, H, W)``."""
        gate = torch.sigmoid(self.fc2(torch.relu(self.fc1(x.mean(dim=(2, 3))))))
        return x * gate[:, :, None, None]


class FeatureRecalibration(nn.Module):
    """FAFE FR unit over the low/high features of the segmentation and depth tasks.

    Args:
        channels: ``C`` of all four band features.
        reduction: SE reduction ratio (SENet default 16).

    Examples:
        >>> fr = FeatureRecalibration(16)
        >>> f = [torch.rand(1, 16, 6, 8) for _ in range(4)]
        >>> fr(*f).depth_low.shape
        torch.Size([1, 16, 6, 8])
    """

    def __init__(self, channels: int, *, reduction: int = 16) -> None:
        super().__init__()
        self.channels = channels
        self.seg_to_depth_low = SqueezeExcitation(channels, reduction=reduction)
        self.seg_to_depth_high = SqueezeExcitation(channels, reduction=reduction)
        self.depth_to_seg_low = SqueezeExcitation(channels, reduction=reduction)
        self.depth_to_seg_high = SqueezeExcitation(channels, reduction=reduction)

    def forward(
        self, seg_low: torch.Tensor, seg_high: torch.Tensor, depth_low: torch.Tensor, depth_high: torch.Tensor
    ) -> RecalibrationOutput:
        """Each input ``(B, C, H, W)`` (same shape within a band); returns the four re-calibrated features."""
        for name, t in (
            ("seg_low", seg_low),
            ("seg_high", seg_high),
            ("depth_low", depth_low),
            ("depth_high", depth_high),
        ):
            check_shape(t, "B C H W", name=f"FeatureRecalibration {name}", C=self.channels)
        if seg_low.shape != depth_low.shape or seg_high.shape != depth_high.shape:
            raise ShapeError(
                "FeatureRecalibration: the two tasks' features of a band must have the same shape, got "
                f"low {tuple(seg_low.shape)} vs {tuple(depth_low.shape)}, high {tuple(seg_high.shape)} vs "
                f"{tuple(depth_high.shape)}; resize one task's features first"
            )
        return RecalibrationOutput(
            seg_low=seg_low + self.depth_to_seg_low(depth_low),
            seg_high=seg_high + self.depth_to_seg_high(depth_high),
            depth_low=depth_low + self.seg_to_depth_low(seg_low),
            depth_high=depth_high + self.seg_to_depth_high(seg_high),
        )
