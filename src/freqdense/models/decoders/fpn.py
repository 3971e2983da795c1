"""FPN decoder whose top-down upsampling is any member of the up-sampler family (FreqFusion: "add" integration).

Structure (Lin et al. 2017 + the semantic-FPN merge of Kirillov et al. 2019):

1. lateral 1x1 convs bring every backbone level to ``channels``;
2. top-down, coarse to fine: ``out = U(hr=L_i, lr=P_{i+1}); P_i = out.hr_feat + out.lr_feat`` for up-sampler
   ``U = fusion`` (bilinear: ``P_i = L_i + up(P_{i+1})``). With ``fusion="freqfusion"`` this is the official mmdet neck
   ``FreqFusionCARAFEFPN`` (docs/reference_code.md#freqfusion-integrations-upstream): the module low-pass upsamples the
   coarse feature and high-pass enhances the lateral one, the add happens here;
3. a 3x3 conv-BN-ReLU per level;
4. ``merge="sum"``: every level bilinearly resized to the finest and summed, then a 3x3 conv-BN-ReLU
   (semantic-FPN style); ``merge="finest"``: the finest level only.

The output is one ``(B, channels, H_0, W_0)`` map at the finest backbone stride; task heads sit on top.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import torch
import torch.nn as nn

from ...errors import ConfigError, ShapeError
from ._fusion import ConvBNReLU, Fusion, build_fusion, check_fusion, fusion_step, upsample_like

__all__ = ["FPNDecoder"]


class FPNDecoder(nn.Module):
    """Feature pyramid decoder with a switchable top-down upsampler.

    Args:
        in_channels: channels of the backbone levels, finest first (``backbone.out_channels``).
        channels: FPN width.
        fusion: up-sampler name (:data:`freqdense.nn.upsamplers.UPSAMPLERS`), default ``"bilinear"``
            (``align_corners=False``).
        fusion_kwargs: keywords for every up-sampler ``U(channels, channels, ...)``; for FreqFusion
            ``compressed_channels`` defaults to ``2 * channels // compress_ratio`` (the mmdet neck's rule).
        compress_ratio: see ``fusion_kwargs`` (8 in the official FPN configs: 64 for 256 channels).
        merge: ``"sum"`` (semantic-FPN merge of all levels) or ``"finest"``.

    Attributes:
        fusions: ``nn.ModuleList`` of the ``len(in_channels) - 1`` up-samplers, ``fusions[i]`` fusing level ``i``
            with level ``i + 1`` (parameter-free for bilinear and nearest).
        out_channels: ``channels``.
    """

    def __init__(
        self,
        in_channels: Sequence[int],
        channels: int = 128,
        *,
        fusion: Fusion = "bilinear",
        fusion_kwargs: dict[str, Any] | None = None,
        compress_ratio: int = 8,
        merge: Literal["sum", "finest"] = "sum",
    ) -> None:
        super().__init__()
        self.in_channels = tuple(int(c) for c in in_channels)
        if len(self.in_channels) < 2 or min(self.in_channels) < 1:
            raise ConfigError(f"FPNDecoder needs >= 2 levels with positive channels, got {tuple(in_channels)!r}")
        if int(channels) < 1 or int(compress_ratio) < 1:
            raise ConfigError(
                f"FPNDecoder channels and compress_ratio must be >= 1, got {channels!r}, {compress_ratio!r}"
            )
        if merge not in ("sum", "finest"):
            raise ConfigError(f"FPNDecoder merge must be 'sum' or 'finest', got {merge!r}")
        self.fusion = check_fusion(fusion)
        self.merge = merge
        self.out_channels = c = int(channels)
        self.lateral = nn.ModuleList(nn.Conv2d(ci, c, 1) for ci in self.in_channels)
        n = len(self.in_channels)
        self.fusions = nn.ModuleList(
            build_fusion(self.fusion, c, c, fusion_kwargs, compressed_channels=2 * c // int(compress_ratio))
            for _ in range(n - 1)
        )
        self.output = nn.ModuleList(ConvBNReLU(c, c, 3) for _ in range(n if merge == "sum" else 1))
        self.fuse = ConvBNReLU(c, c, 3) if merge == "sum" else nn.Identity()

    def forward(self, features: Sequence[torch.Tensor]) -> torch.Tensor:
        """``[(B, C_k, H_k, W_k)]`` finest first -> ``(B, channels, H_0, W_0)``."""
        got = tuple(f.shape[1] if f.dim() == 4 else None for f in features)
        if got != self.in_channels:
            raise ShapeError(
                f"FPNDecoder expected {len(self.in_channels)} feature maps with channels {self.in_channels}, got "
                f"{got}; build it with in_channels=backbone.out_channels"
            )
        laterals = [conv(f) for conv, f in zip(self.lateral, features)]
        pyramid = [laterals[-1]]
        for i in range(len(laterals) - 2, -1, -1):
            out = fusion_step(self.fusions[i], laterals[i], pyramid[0])
            pyramid.insert(0, out.hr_feat + out.lr_feat)
        if self.merge == "finest":
            return self.output[0](pyramid[0])
        outs = [conv(p) for conv, p in zip(self.output, pyramid)]
        merged = outs[0]
        for o in outs[1:]:
            merged = merged + upsample_like(o, outs[0])
        return self.fuse(merged)
