"""Flow Alignment Module (semantic flow, SFNet, Li et al. ECCV 2020; reused by FAFNet, Eq. 10-13).

A coarse feature map is warped *and* upsampled in one bilinear sampling step onto the grid of a fine map, along a
2-channel "semantic flow" predicted from both maps. Semantics follow SFNet's ``AlignedModule`` exactly
(docs/reference_code.md#fam-forward):

1. ``l = down_l(low)``, ``hd = up(down_h(high))`` (1x1 convs without bias; bilinear, ``align_corners=True``);
2. ``flow = flow_make(cat([hd, l]))``: a k x k conv without bias, 2 output channels (x then y), *high first*;
3. the *original, unreduced* ``high`` is sampled at ``linspace(-1, 1) grid + flow / (w, h)`` with
   ``grid_sample(bilinear, zeros padding, align_corners)``.

With ``align_corners=True`` (SFNet, default) a zero flow is bilinear ``align_corners=True`` upsampling. FAFNet's
official code uses the same grid with ``align_corners=False`` (docs/reference_code.md#fafnet-official-code): zero flow
is then *not* an identity (the map is stretched by w/(w-1) about the centre, border pixels half-blend with the zero
padding); choose it only for parity with FAFNet checkpoints.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .._checks import check_shape
from ..errors import ConfigError, ShapeError

__all__ = ["FlowAlignment", "flow_warp"]


def flow_warp(feature: torch.Tensor, flow: torch.Tensor, *, align_corners: bool = True) -> torch.Tensor:
    """Sample ``feature`` on the output grid of ``flow`` displaced by ``flow`` (SFNet ``flow_warp``).

    The base grid is ``x = linspace(-1, 1, w)``, ``y = linspace(-1, 1, h)`` (FAFNet Eq. 11) and the flow is
    divided by ``(w, h)`` of the *output* before being added (Eq. 12), so with ``align_corners=True`` one flow unit
    moves the sampling point by ``(W_in - 1) / (2 w)`` input pixels. Bilinear, zero padding (Eq. 13).

    Args:
        feature: (B, C, H_in, W_in) map to sample.
        flow: (B, 2, h, w) offsets, channel 0 along x (width), channel 1 along y (height).
        align_corners: ``True`` as SFNet, ``False`` as FAFNet's official code.

    Returns:
        (B, C, h, w) warped feature.
    """
    check_shape(feature, "B C H W", name="feature")
    check_shape(flow, "B C H W", name="flow", C=2)
    if flow.shape[0] != feature.shape[0]:
        raise ShapeError(
            f"flow has batch {flow.shape[0]} but feature has batch {feature.shape[0]}; pass one flow per feature map"
        )
    batch, _, out_h, out_w = flow.shape
    xs = torch.linspace(-1.0, 1.0, out_w, dtype=flow.dtype, device=flow.device)
    ys = torch.linspace(-1.0, 1.0, out_h, dtype=flow.dtype, device=flow.device)
    base = torch.stack([xs.view(1, out_w).expand(out_h, out_w), ys.view(out_h, 1).expand(out_h, out_w)], dim=-1)
    norm = torch.tensor([out_w, out_h], dtype=flow.dtype, device=flow.device)
    grid = base.unsqueeze(0) + flow.permute(0, 2, 3, 1) / norm
    return F.grid_sample(
        feature, grid.to(feature.dtype), mode="bilinear", padding_mode="zeros", align_corners=align_corners
    )


class FlowAlignment(nn.Module):
    """SFNet Flow Alignment Module: warp-upsample a coarse map onto a fine map along a learned semantic flow.

    Parameter names and shapes match SFNet's ``AlignedModule(inplane, outplane)``: ``down_h.weight``,
    ``down_l.weight`` (outplane, inplane, 1, 1) and ``flow_make.weight`` (2, 2 outplane, k, k), all without bias,
    so its state dicts load with ``strict=True`` (70,144 parameters for (256, 128)). Init is PyTorch's default,
    as in SFNet. The caller adds the result to the fine feature (``f = low + fam(low, high)``).

    Args:
        in_channels: channels of both inputs (SFNet ``inplane``).
        reduced_channels: channels after the 1x1 reductions (SFNet ``outplane``, usually ``in_channels // 2``).
        kernel_size: odd kernel of ``flow_make``; padding ``kernel_size // 2`` (SFNet hard-codes padding 1, which
            equals this for its only used value, 3).
        align_corners: ``True`` = SFNet (zero flow is bilinear upsampling); ``False`` = FAFNet's official code.

    Examples:
        >>> fam = FlowAlignment(8, 4)
        >>> fam(torch.rand(1, 8, 16, 16), torch.rand(1, 8, 8, 8)).shape
        torch.Size([1, 8, 16, 16])
    """

    def __init__(
        self, in_channels: int, reduced_channels: int, kernel_size: int = 3, *, align_corners: bool = True
    ) -> None:
        super().__init__()
        if kernel_size % 2 != 1:
            raise ConfigError(f"FlowAlignment kernel_size must be odd to keep the size, got {kernel_size}; use 3")
        self.align_corners = align_corners
        self.down_h = nn.Conv2d(in_channels, reduced_channels, 1, bias=False)
        self.down_l = nn.Conv2d(in_channels, reduced_channels, 1, bias=False)
        self.flow_make = nn.Conv2d(2 * reduced_channels, 2, kernel_size, padding=kernel_size // 2, bias=False)

    def compute_flow(self, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
        """(B, 2, h, w) semantic flow at the fine resolution (FAFNet Eq. 10)."""
        check_shape(low, "B C H W", name="low", C=self.down_l.in_channels)
        check_shape(high, "B C H W", name="high", C=self.down_h.in_channels)
        reduced_low = self.down_l(low)
        reduced_high = F.interpolate(self.down_h(high), size=low.shape[-2:], mode="bilinear", align_corners=True)
        return self.flow_make(torch.cat([reduced_high, reduced_low], dim=1))

    def forward(self, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
        """Warp ``high`` (B, C, H/s, W/s) onto the grid of ``low`` (B, C, H, W); returns (B, C, H, W)."""
        return flow_warp(high, self.compute_flow(low, high), align_corners=self.align_corners)

    def extra_repr(self) -> str:
        return f"align_corners={self.align_corners}"
