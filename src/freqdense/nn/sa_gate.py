"""Separation-and-Aggregation Gate (SA-Gate, Chen et al., ECCV 2020), the fusion block FAFNet compares against.

Official code: github.com/charlesCXK/RGBD_Semantic_Segmentation_PyTorch @ 32b3f86, ``model/SA-Gate.nyu/net_util.py``
(``FilterLayer``, ``FSP``, ``SAGate``); docs/reference_code.md#sa-gate. For RGB ``r`` and depth/HHA ``d``
features (B, C, H, W):

1. feature separation (channel re-calibration): ``r~ = r + SE_r(GAP(cat(d, r))) ⊙ d``,
   ``d~ = d + SE_d(GAP(cat(r, d))) ⊙ r`` with ``SE = Linear(2C, C/16) -> ReLU -> Linear(C/16, C) -> Sigmoid``;
2. aggregation: two 1x1 convs (2C -> 1, bias) on ``cat(r~, d~)`` give spatial logits, a softmax over the two
   gives ``a + b = 1``; ``merge = a ⊙ r + b ⊙ d`` (the *original* features);
3. bi-directional propagation: ``r' = ReLU((r + merge) / 2)``, ``d' = ReLU((d + merge) / 2)``.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from .._checks import check_shape
from ..errors import ConfigError, ShapeError

__all__ = ["SAGate", "SAGateOutput"]


class SAGateOutput(NamedTuple):
    """What :class:`SAGate` returns, all (B, C, H, W)."""

    rgb: torch.Tensor  #: next-stage RGB stream ``ReLU((r + merge) / 2)``
    depth: torch.Tensor  #: next-stage depth stream ``ReLU((d + merge) / 2)``
    fused: torch.Tensor  #: ``merge`` for the decoder


def _filter_layer(channels: int, reduction: int) -> nn.Sequential:
    hidden = max(1, channels // reduction)
    return nn.Sequential(
        nn.Linear(2 * channels, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, channels), nn.Sigmoid()
    )


class SAGate(nn.Module):
    """SA-Gate fusion block; returns ``(rgb', depth', merge)`` as :class:`SAGateOutput`.

    Args:
        channels: C, channels of each modality.
        reduction: squeeze ratio of the channel filters (hidden = C // reduction, at least 1).

    Attributes:
        filter_rgb, filter_depth: the SE filters (official ``fsp_rgb.filter.fc``, ``fsp_hha.filter.fc``).
        gate_rgb, gate_depth: the 1x1 gate convs (official ``gate_rgb``, ``gate_hha``).

    Examples:
        >>> gate = SAGate(32)
        >>> rgb, depth, merge = gate(torch.rand(1, 32, 8, 8), torch.rand(1, 32, 8, 8))
        >>> merge.shape
        torch.Size([1, 32, 8, 8])
    """

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        if int(channels) < 1 or int(reduction) < 1:
            raise ConfigError(f"SAGate needs channels >= 1 and reduction >= 1, got {channels!r}, {reduction!r}")
        self.channels = int(channels)
        self.filter_rgb = _filter_layer(self.channels, int(reduction))
        self.filter_depth = _filter_layer(self.channels, int(reduction))
        self.gate_rgb = nn.Conv2d(2 * self.channels, 1, 1, bias=True)
        self.gate_depth = nn.Conv2d(2 * self.channels, 1, 1, bias=True)

    def forward(self, rgb: torch.Tensor, depth: torch.Tensor) -> SAGateOutput:
        """Fuse same-size (B, C, H, W) ``rgb`` and ``depth`` features."""
        check_shape(rgb, "B C H W", name="rgb", C=self.channels)
        check_shape(depth, "B C H W", name="depth", C=self.channels)
        if rgb.shape != depth.shape:
            raise ShapeError(
                f"SAGate needs rgb {tuple(rgb.shape)} and depth {tuple(depth.shape)} features of the same shape"
            )
        pooled_rgb, pooled_depth = rgb.mean(dim=(2, 3)), depth.mean(dim=(2, 3))
        w_rgb = self.filter_rgb(torch.cat([pooled_depth, pooled_rgb], dim=1))[..., None, None]
        w_depth = self.filter_depth(torch.cat([pooled_rgb, pooled_depth], dim=1))[..., None, None]
        rec_rgb = rgb + w_rgb * depth
        rec_depth = depth + w_depth * rgb
        both = torch.cat([rec_rgb, rec_depth], dim=1)
        gates = torch.softmax(torch.cat([self.gate_rgb(both), self.gate_depth(both)], dim=1), dim=1)
        merge = gates[:, :1] * rgb + gates[:, 1:] * depth
        return SAGateOutput(torch.relu((rgb + merge) / 2), torch.relu((depth + merge) / 2), merge)

    def extra_repr(self) -> str:
        return f"channels={self.channels}"
