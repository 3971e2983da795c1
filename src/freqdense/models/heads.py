"""Dense prediction heads over multi-scale backbone features.

``HRNetHead`` is the HRNetV2 representation head used per task by Multi-Task-Learning-PyTorch
(``HighResolutionHead``; docs/reference_code.md#hrnet): upsample every branch to the finest one, concatenate,
1x1 conv + BN + ReLU, 1x1 conv to the outputs. ``HRNetFuse`` is the same without the final conv (PAD-Net's
``HighResolutionFuse``). Module names (``last_layer.0/1/3``) match the reference, so its heads load by key.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import ConfigError, ShapeError

__all__ = ["HRNetFuse", "HRNetHead", "concat_upsampled"]


def concat_upsampled(features: Sequence[torch.Tensor], in_channels: Sequence[int]) -> torch.Tensor:
    """Bilinearly upsample (``align_corners=False``) every feature to the first one's size and concatenate.

    Args:
        features: ``[(B, C_k, H_k, W_k)]``, finest first.
        in_channels: expected ``C_k`` of each feature.

    Returns:
        ``(B, sum(C_k), H_0, W_0)``.
    """
    if not torch.compiler.is_compiling():
        got = tuple(f.shape[1] if f.dim() == 4 else None for f in features)
        if len(features) != len(in_channels) or got != tuple(in_channels):
            raise ShapeError(
                f"head input: expected {len(in_channels)} feature maps (B, C, H, W) with channels "
                f"{tuple(in_channels)}, got channels {got}; build the head with in_channels=backbone.out_channels"
            )
    size = features[0].shape[-2:]
    ups = [features[0]] + [F.interpolate(f, size=size, mode="bilinear", align_corners=False) for f in features[1:]]
    return torch.cat(ups, dim=1)


class HRNetFuse(nn.Module):
    """Concatenate upsampled branches, then 1x1 conv (bias) + BN (momentum 0.1) + ReLU; keeps ``sum(C)`` channels.

    Args:
        in_channels: channels of the input features, finest first (e.g. ``backbone.out_channels``).
    """

    def __init__(self, in_channels: Sequence[int]) -> None:
        super().__init__()
        self.in_channels = tuple(int(c) for c in in_channels)
        if not self.in_channels or min(self.in_channels) < 1:
            raise ConfigError(f"HRNetFuse needs positive in_channels, got {tuple(in_channels)!r}")
        c = sum(self.in_channels)
        self.out_channels = c
        self.last_layer = nn.Sequential(nn.Conv2d(c, c, 1), nn.BatchNorm2d(c, momentum=0.1), nn.ReLU(inplace=True))

    def forward(self, features: Sequence[torch.Tensor]) -> torch.Tensor:
        """``[(B, C_k, H_k, W_k)]`` -> ``(B, sum(C_k), H_0, W_0)``."""
        return self.last_layer(concat_upsampled(features, self.in_channels))


class HRNetHead(nn.Module):
    """HRNetV2 head: :class:`HRNetFuse` followed by a 1x1 conv (bias) to ``num_outputs`` channels.

    Args:
        in_channels: channels of the input features, finest first (works with any multi-scale backbone).
        num_outputs: output channels (classes for segmentation, 1 for depth).

    The output stays at the finest input resolution; callers upsample to the image size.
    """

    def __init__(self, in_channels: Sequence[int], num_outputs: int) -> None:
        super().__init__()
        if int(num_outputs) < 1:
            raise ConfigError(f"HRNetHead num_outputs must be >= 1, got {num_outputs!r}")
        fuse = HRNetFuse(in_channels)
        self.in_channels = fuse.in_channels
        self.num_outputs = int(num_outputs)
        c = fuse.out_channels
        self.last_layer = nn.Sequential(*fuse.last_layer, nn.Conv2d(c, self.num_outputs, 1))

    def forward(self, features: Sequence[torch.Tensor]) -> torch.Tensor:
        """``[(B, C_k, H_k, W_k)]`` -> ``(B, num_outputs, H_0, W_0)``."""
        return self.last_layer(concat_upsampled(features, self.in_channels))
