"""Detection FPN neck with FreqFusion in every top-down step, P6 -> P5 included (Chen et al., TPAMI 2024).

The layout of the official mmdetection neck ``FreqFusionCARAFEFPN`` (a ``FPN_CARAFE`` whose upsamplers are replaced
by FreqFusion), as the Faster/Mask R-CNN and Panoptic FPN configs of "Frequency-aware Feature Fusion for Dense
Image Prediction" build it (ResNet-50: ``in_channels=(256, 512, 1024, 2048)``, ``out_channels=256``,
``num_outs=5``, no norm, no activation):

1. lateral 1x1 convs (with bias) map ``C2..C5`` to ``L2..L5``; the extra level ``L6`` is a 3x3 stride-2 conv of
   ``C5`` (further extra levels: of the previous one);
2. top-down from the coarsest: ``mask, hr, lr = FreqFusion(hr=L_{i-1}, lr=L_i); L_{i-1} = hr + lr``, so with five
   levels there are **four** FreqFusion modules, the first fusing ``L5`` with ``L6``;
3. a 3x3 conv (with bias) per level gives the outputs ``P2..P6`` (finest first).

The official FreqFusion settings (``compressed_channels = 2 * out_channels // 8``, ``feature_resample=True`` with
4 groups, Hamming windows, the standalone ``sim_concat`` offsets) are :data:`OFFICIAL_DETECTION_FUSION`; the Panoptic
FPN config adds ``feature_resample_norm=False`` (:data:`OFFICIAL_PANOPTIC_FUSION`). The FreqFusion modules then hold
4 x 104,690 = 418,760 and 4 x 104,434 = 417,736 parameters. ``fusion="bilinear"`` puts a bilinear upsampling
(``L_{i-1} + up(L_i)``) in the same place, for an ablation with identical convs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn as nn

from ...errors import ConfigError, ShapeError
from ._fusion import Fusion, build_fusion, check_fusion, fusion_step

__all__ = ["OFFICIAL_DETECTION_FUSION", "OFFICIAL_PANOPTIC_FUSION", "FreqFusionFPNNeck"]

#: FreqFusion keywords of the official Faster/Mask R-CNN configs (``*_fpn_1x_coco_freqfusion.py``).
OFFICIAL_DETECTION_FUSION: dict[str, Any] = {
    "lowpass_kernel": 5,
    "highpass_kernel": 3,
    "feature_resample": True,
    "feature_resample_group": 4,
    "semi_conv": True,
    "comp_feat_upsample": True,
    "hamming_window": True,
    "feature_resample_norm": True,
}
#: The Panoptic FPN config (``panoptic_fpn_r50_fpn_1x_coco_freqfusion.py``): no GroupNorm in the offset sampler.
OFFICIAL_PANOPTIC_FUSION: dict[str, Any] = {**OFFICIAL_DETECTION_FUSION, "feature_resample_norm": False}


class FreqFusionFPNNeck(nn.Module):
    """Multi-output FPN neck (``P2..P6``) whose top-down upsampler is FreqFusion or any member of the family.

    Args:
        in_channels: channels of the backbone levels, finest first (ResNet-50: ``(256, 512, 1024, 2048)``).
        out_channels: FPN width (256 in the official configs).
        num_outs: number of outputs; ``num_outs - len(in_channels)`` extra levels are made by 3x3 stride-2 convs.
        fusion: ``"freqfusion"`` (default) or another up-sampler name (:data:`freqdense.nn.upsamplers.UPSAMPLERS`).
        fusion_kwargs: up-sampler keywords; for FreqFusion default :data:`OFFICIAL_DETECTION_FUSION`, and
            ``compressed_channels`` defaults to ``2 * out_channels // compress_ratio``.
        compress_ratio: 8 in the official configs (64 compressed channels for 256).
        start_level: first backbone level used (mmdetection's ``start_level``): 0 for the R-CNN configs (C2..C5),
            1 for FCOS / RetinaNet (C3..C5, then the extra levels P6, P7). ``in_channels`` lists every backbone
            level; the features passed to ``forward`` are all levels, finest first.

    Attributes:
        lateral_convs: ``len(in_channels) + extra`` convs (1x1 for backbone levels, 3x3 stride 2 for extras).
        fusions: ``num_outs - 1`` up-samplers, ``fusions[i]`` fusing level ``i`` with level ``i + 1``
            (parameter-free for bilinear and nearest).
        fpn_convs: one 3x3 conv per output.
    """

    def __init__(
        self,
        in_channels: Sequence[int],
        out_channels: int = 256,
        num_outs: int = 5,
        *,
        fusion: Fusion = "freqfusion",
        fusion_kwargs: dict[str, Any] | None = None,
        compress_ratio: int = 8,
        start_level: int = 0,
    ) -> None:
        super().__init__()
        self.in_channels = tuple(int(c) for c in in_channels)
        if len(self.in_channels) < 1 or min(self.in_channels) < 1:
            raise ConfigError(f"FreqFusionFPNNeck needs >= 1 level with positive channels, got {tuple(in_channels)!r}")
        if not 0 <= int(start_level) < len(self.in_channels):
            raise ConfigError(
                f"FreqFusionFPNNeck start_level must be in [0, {len(self.in_channels) - 1}] for "
                f"{len(self.in_channels)} backbone levels, got {start_level!r}"
            )
        self.start_level = int(start_level)
        used = self.in_channels[self.start_level :]
        if int(num_outs) < max(2, len(used)):
            raise ConfigError(
                f"FreqFusionFPNNeck num_outs must be >= max(2, number of used levels) = {max(2, len(used))}, "
                f"got {num_outs!r}"
            )
        if int(out_channels) < 1 or int(compress_ratio) < 1:
            raise ConfigError(f"out_channels and compress_ratio must be >= 1, got {out_channels!r}, {compress_ratio!r}")
        self.fusion = check_fusion(fusion)
        self.out_channels = c = int(out_channels)
        self.num_outs = int(num_outs)
        extra = self.num_outs - len(used)
        self.lateral_convs = nn.ModuleList(nn.Conv2d(ci, c, 1) for ci in used)
        for i in range(extra):
            self.lateral_convs.append(nn.Conv2d(used[-1] if i == 0 else c, c, 3, stride=2, padding=1))
        if fusion_kwargs is None and self.fusion == "freqfusion":
            fusion_kwargs = OFFICIAL_DETECTION_FUSION
        self.fusions = nn.ModuleList(
            build_fusion(self.fusion, c, c, fusion_kwargs, compressed_channels=2 * c // int(compress_ratio))
            for _ in range(self.num_outs - 1)
        )
        self.fpn_convs = nn.ModuleList(nn.Conv2d(c, c, 3, padding=1) for _ in range(self.num_outs))

    def forward(self, features: Sequence[torch.Tensor]) -> tuple[torch.Tensor, ...]:
        """``[(B, C_k, H_k, W_k)]`` finest first -> ``num_outs`` maps ``(B, out_channels, H_k, W_k)``."""
        got = tuple(f.shape[1] if f.dim() == 4 else None for f in features)
        if got != self.in_channels:
            raise ShapeError(
                f"FreqFusionFPNNeck expected {len(self.in_channels)} feature maps with channels {self.in_channels}, "
                f"got {got}; build it with in_channels=backbone.out_channels"
            )
        features = list(features)[self.start_level :]
        n_in = len(features)
        laterals = [conv(f) for conv, f in zip(self.lateral_convs[:n_in], features)]
        for i, conv in enumerate(self.lateral_convs[n_in:]):
            laterals.append(conv(features[-1] if i == 0 else laterals[-1]))
        for i in range(len(laterals) - 1, 0, -1):
            out = fusion_step(self.fusions[i - 1], laterals[i - 1], laterals[i])
            laterals[i - 1] = out.hr_feat + out.lr_feat
        return tuple(conv(x) for conv, x in zip(self.fpn_convs, laterals))
