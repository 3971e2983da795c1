"""Attention Cross Fusion Module (ACFM, FAFNet §3.3, Eq. 4-9).

Both modalities share one global descriptor ``G = GAP(cat(rgb, depth))`` (Eq. 4, 2C channels); one MLP per
modality turns it into a sigmoid channel-attention vector (Eq. 5); each modality is re-weighted channel-wise
(Eq. 6-7) and added to the *other* modality's original input (cross addition, Eq. 8-9).

The MLP is ``Linear(2C, C/r) -> ReLU -> Linear(C/r, C) -> Sigmoid`` as in the official code's ``FilterLayer``
(r = 16); the paper only says "a fully connected layer ... squeezes the channel number".
``mode="fafnet"`` reproduces the official code (docs/reference_code.md#fafnet-official-code): both outputs are
``L ⊙ (rgb + depth)``.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from .._checks import check_shape
from ..errors import ConfigError, ShapeError

__all__ = ["AttentionCrossFusion"]

_MODES = ("paper", "fafnet")


def _channel_mlp(channels: int, reduction: int) -> nn.Sequential:
    hidden = max(1, channels // reduction)
    return nn.Sequential(
        nn.Linear(2 * channels, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, channels), nn.Sigmoid()
    )


class AttentionCrossFusion(nn.Module):
    """ACFM: channel attention from the concatenated modalities, then cross addition.

    ``mode="paper"`` (default), Eq. 8-9::

        rgb_fused   = L_rgb ⊙ rgb + depth
        depth_fused = L_depth ⊙ depth + rgb

    ``mode="fafnet"`` (official ``FSP`` pair ``fsp1``/``fsp2``)::

        rgb_fused = L_rgb ⊙ (rgb + depth),  depth_fused = L_depth ⊙ (rgb + depth)

    Args:
        channels: C, channels of each modality.
        reduction: MLP squeeze ratio (hidden = C // reduction, at least 1).
        mode: ``"paper"`` or ``"fafnet"``.

    Examples:
        >>> acfm = AttentionCrossFusion(32)
        >>> rgb_fused, depth_fused = acfm(torch.rand(2, 32, 8, 8), torch.rand(2, 32, 8, 8))
        >>> rgb_fused.shape
        torch.Size([2, 32, 8, 8])
    """

    def __init__(self, channels: int, reduction: int = 16, *, mode: str = "paper") -> None:
        super().__init__()
        if mode not in _MODES:
            raise ConfigError(f"AttentionCrossFusion mode must be one of {_MODES}, got {mode!r}")
        if channels < 1 or reduction < 1:
            raise ConfigError(
                f"AttentionCrossFusion needs channels >= 1 and reduction >= 1, got {channels}, {reduction}"
            )
        self.channels = channels
        self.mode = mode
        self.mlp_rgb = _channel_mlp(channels, reduction)
        self.mlp_depth = _channel_mlp(channels, reduction)

    def attention(self, rgb: torch.Tensor, depth: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(L_rgb, L_depth), each (B, C, 1, 1) in (0, 1) (Eq. 4-5)."""
        check_shape(rgb, "B C H W", name="rgb", C=self.channels)
        check_shape(depth, "B C H W", name="depth", C=self.channels)
        if rgb.shape != depth.shape:
            raise ShapeError(
                f"rgb {tuple(rgb.shape)} and depth {tuple(depth.shape)} features must match; align/resize them first"
            )
        descriptor = torch.cat([rgb, depth], dim=1).mean(dim=(2, 3))
        return self.mlp_rgb(descriptor)[..., None, None], self.mlp_depth(descriptor)[..., None, None]

    def forward(self, rgb: torch.Tensor, depth: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Fuse (B, C, H, W) rgb and depth features; returns ``(rgb_fused, depth_fused)``."""
        att_rgb, att_depth = self.attention(rgb, depth)
        if self.mode == "fafnet":
            total = rgb + depth
            return att_rgb * total, att_depth * total
        return att_rgb * rgb + depth, att_depth * depth + rgb

    @staticmethod
    def convert_fafnet_state_dict(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Rename an official ``RGBDAlignModule``'s ``fsp1/fsp2.filter.fc.{0,2}`` keys to ours.

        ``fsp1`` produces the RGB branch, ``fsp2`` the depth branch; ``flow_make*`` keys are dropped (they belong
        to :class:`~freqdense.nn.FlowAlignment`-style warps, not to the ACFM).
        """
        out = {}
        for key, value in state_dict.items():
            for src, dst in (("fsp1.filter.fc.", "mlp_rgb."), ("fsp2.filter.fc.", "mlp_depth.")):
                if key.startswith(src):
                    out[dst + key[len(src) :]] = value
        return out

    def extra_repr(self) -> str:
        return f"channels={self.channels}, mode={self.mode!r}"
