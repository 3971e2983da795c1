"""UPerNet head whose top-down upsampling is a Flow Alignment Module (SFNet ``UperNetAlignHead``; FAFNet's decoder).

Li et al., "Semantic Flow for Fast and Accurate Scene Parsing", ECCV 2020 (github.com/lxtGH/SFSegNets @ ba475ba,
``network/sfnet_resnet.py``; docs/reference_code.md#sfnet-head-upernetalignhead), used unchanged as FAFNet's decoder
(FAFNet paper §3.1, official ``UperNetAlignHead(2048, fpn_dim=256)``). Structure, for backbone levels ``C_1..C_n``
finest first:

1. pyramid pooling on ``C_n``: average pooling to 1x1, 2x2, 3x3, 6x6, 1x1 conv-BN-ReLU each, bilinear back,
   concatenated with ``C_n``, 3x3 conv-BN-ReLU -> ``P_n`` (``channels``);
2. top-down, ``i = n-1 .. 1``: ``L_i = lateral_i(C_i)`` (1x1 conv-BN-ReLU), ``f = L_i + FAM_i(L_i, f)`` (the
   coarse ``f`` warp-upsampled onto ``L_i`` along a learned semantic flow), ``P_i = output_i(f)`` (3x3 conv-BN-ReLU);
   ``fam=False``: ``f = L_i + up(f)`` (bilinear, ``align_corners=True``), i.e. plain UPerNet, and what a FAM with a
   zero flow computes when ``align_corners=True``;
3. ``P_1..P_n`` bilinearly resized to ``P_1`` (``align_corners=True``), concatenated, 3x3 conv-BN-ReLU, 1x1
   classifier.

Differences from SFNet (weights are not interchangeable): the 1x1 laterals have no bias before their BN; the PPM
bottleneck is a 3x3 conv-BN-ReLU without dropout.

``layout="fafnet"`` builds the head of the official FAFNet code instead (``UperNetAlignHead`` in
``models/fafnet_alignD.py``; 7,698,728 parameters for ResNet-101 levels, 40 classes): pyramid-pooling branches
conv-BN *without* ReLU, concatenated *before* ``C_n``, a 1x1 (not 3x3) bottleneck conv-BN-ReLU followed by
``Dropout2d(0.1)``, and 1x1 laterals *with* a bias. Its module indices equal the official ones (``ppm.stages.i.1``
conv, ``.2`` BN; ``ppm.bottleneck.0/.1``; ``lateral.i.0/.1``), see :mod:`freqdense.models.convert.fafnet`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, NamedTuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from ...errors import ConfigError, ShapeError
from ...nn.flow_align import FlowAlignment, flow_warp
from ._fusion import ConvBNReLU

__all__ = ["HEAD_LAYOUTS", "PyramidPooling", "UPerAlignHead", "UPerAlignOutput"]

HeadLayout = Literal["freqdense", "fafnet"]
#: ``"freqdense"``: SFNet's head as described above; ``"fafnet"``: the official FAFNet code's variant.
HEAD_LAYOUTS = ("freqdense", "fafnet")


class UPerAlignOutput(NamedTuple):
    """What :class:`UPerAlignHead` returns."""

    logits: torch.Tensor  #: (B, num_classes, H_1, W_1) at the finest level's resolution
    #: raw FAM flows, ``flows[i]`` (B, 2, H_{i+1}, W_{i+1}) aligning level i+2's map onto level i+1 (finest first;
    #: empty with ``fam=False``). Unit: :func:`freqdense.nn.rgbd_fuse.flow_to_pixels`, in pixels of that level.
    flows: tuple[torch.Tensor, ...]


def _resize(x: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=True)


class PyramidPooling(nn.Module):
    """PSPNet pyramid pooling (Zhao et al. 2017) as UPerNet's top level: ``(B, C_in, h, w) -> (B, channels, h, w)``.

    The 1x1 branch has BatchNorm on a 1x1 map, so training needs a batch of at least 2.

    ``layout="freqdense"``: branches pool - 1x1 conv-BN-ReLU, ``cat([x, branches])``, 3x3 conv-BN-ReLU.
    ``layout="fafnet"`` (official FAFNet ``PSPModule``): branches pool - 1x1 conv - BN (no ReLU),
    ``cat([branches, x])``, 1x1 conv-BN-ReLU, ``Dropout2d(0.1)``.
    """

    def __init__(
        self,
        in_channels: int,
        channels: int,
        pool_scales: Sequence[int] = (1, 2, 3, 6),
        *,
        layout: HeadLayout = "freqdense",
    ) -> None:
        super().__init__()
        self.pool_scales = tuple(int(s) for s in pool_scales)
        if not self.pool_scales or min(self.pool_scales) < 1:
            raise ConfigError(f"pool_scales must be positive sizes, got {tuple(pool_scales)!r}")
        if layout not in HEAD_LAYOUTS:
            raise ConfigError(f"PyramidPooling layout must be one of {HEAD_LAYOUTS}, got {layout!r}")
        self.layout = layout
        concat = in_channels + len(self.pool_scales) * channels
        if layout == "fafnet":
            self.stages = nn.ModuleList(
                nn.Sequential(
                    nn.AdaptiveAvgPool2d(s), nn.Conv2d(in_channels, channels, 1, bias=False), nn.BatchNorm2d(channels)
                )
                for s in self.pool_scales
            )
            self.bottleneck: nn.Sequential = nn.Sequential(
                nn.Conv2d(concat, channels, 1, bias=False),
                nn.BatchNorm2d(channels),
                nn.ReLU(inplace=True),
                nn.Dropout2d(0.1),
            )
        else:
            self.stages = nn.ModuleList(
                nn.Sequential(nn.AdaptiveAvgPool2d(s), ConvBNReLU(in_channels, channels, 1)) for s in self.pool_scales
            )
            self.bottleneck = ConvBNReLU(concat, channels, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[-2:]
        branches = [_resize(stage(x), size) for stage in self.stages]
        parts = [*branches, x] if self.layout == "fafnet" else [x, *branches]
        return self.bottleneck(torch.cat(parts, dim=1))

    def extra_repr(self) -> str:
        return f"pool_scales={self.pool_scales}, layout={self.layout!r}"


class UPerAlignHead(nn.Module):
    """UPerNet + FAM top-down head (SFNet ``UperNetAlignHead``), logits at the finest level's resolution.

    Args:
        in_channels: channels of the levels, finest first (e.g. the 4 fused RGB-D stage features).
        num_classes: output classes.
        channels: FPN width (SFNet/FAFNet: 256 for ResNet-50/101, 128 for ResNet-18).
        pool_scales: pyramid pooling output sizes on the coarsest level.
        fam: FAM alignment in the top-down path; ``False`` = bilinear upsampling (plain UPerNet).
        align_corners: FAM warp convention (``True`` SFNet; ``False`` official FAFNet code).
        fam_reduction: FAM 1x1 reductions to ``channels // fam_reduction`` (SFNet: 2).
        layout: ``"freqdense"`` (default, as above) or ``"fafnet"``: the official FAFNet code's head (pyramid
            pooling as :class:`PyramidPooling` ``layout="fafnet"``, laterals with a conv bias).

    ``forward(features)`` returns :class:`UPerAlignOutput`. Feature sizes may be equal between neighbours (a
    dilated backbone): the FAM is then a same-size warp.
    """

    def __init__(
        self,
        in_channels: Sequence[int],
        num_classes: int,
        channels: int = 256,
        *,
        pool_scales: Sequence[int] = (1, 2, 3, 6),
        fam: bool = True,
        align_corners: bool = True,
        fam_reduction: int = 2,
        layout: HeadLayout = "freqdense",
    ) -> None:
        super().__init__()
        if layout not in HEAD_LAYOUTS:
            raise ConfigError(f"UPerAlignHead layout must be one of {HEAD_LAYOUTS}, got {layout!r}")
        self.layout = layout
        self.in_channels = tuple(int(c) for c in in_channels)
        if len(self.in_channels) < 2 or min(self.in_channels) < 1:
            raise ConfigError(f"UPerAlignHead needs >= 2 levels with positive channels, got {tuple(in_channels)!r}")
        if int(channels) < 2 or int(num_classes) < 1 or not 1 <= int(fam_reduction) <= int(channels):
            raise ConfigError(
                f"UPerAlignHead needs channels >= 2, num_classes >= 1 and 1 <= fam_reduction <= channels, got "
                f"{channels!r}, {num_classes!r}, {fam_reduction!r}"
            )
        c = self.channels = int(channels)
        self.align_corners = bool(align_corners)
        self.ppm = PyramidPooling(self.in_channels[-1], c, pool_scales, layout=layout)
        if layout == "fafnet":
            self.lateral = nn.ModuleList(
                nn.Sequential(nn.Conv2d(ci, c, 1), nn.BatchNorm2d(c), nn.ReLU(inplace=True))
                for ci in self.in_channels[:-1]
            )
        else:
            self.lateral = nn.ModuleList(ConvBNReLU(ci, c, 1) for ci in self.in_channels[:-1])
        self.output = nn.ModuleList(ConvBNReLU(c, c, 3) for _ in self.in_channels[:-1])
        self.fams = nn.ModuleList(
            FlowAlignment(c, c // int(fam_reduction), align_corners=self.align_corners)
            for _ in (self.in_channels[:-1] if fam else ())
        )
        self.fuse = ConvBNReLU(len(self.in_channels) * c, c, 3)
        self.classifier = nn.Conv2d(c, int(num_classes), 1)

    @property
    def fam(self) -> bool:
        return len(self.fams) > 0

    def forward(self, features: Sequence[torch.Tensor]) -> UPerAlignOutput:
        """``features`` finest first, ``(B, in_channels[i], H_i, W_i)``."""
        if len(features) != len(self.in_channels):
            raise ShapeError(f"UPerAlignHead expects {len(self.in_channels)} feature maps, got {len(features)}")
        f = self.ppm(features[-1])
        levels = [f]
        flows: list[torch.Tensor] = []
        for i in reversed(range(len(features) - 1)):
            lateral = self.lateral[i](features[i])
            if self.fams:
                flow = self.fams[i].compute_flow(lateral, f)
                flows.append(flow)
                f = lateral + flow_warp(f, flow, align_corners=self.align_corners)
            else:
                f = lateral + _resize(f, lateral.shape[-2:])
            levels.append(self.output[i](f))
        levels.reverse()
        size = levels[0].shape[-2:]
        logits = self.classifier(self.fuse(torch.cat([_resize(p, size) for p in levels], dim=1)))
        return UPerAlignOutput(logits, tuple(reversed(flows)))

    def extra_repr(self) -> str:
        return f"channels={self.channels}, fam={self.fam}, align_corners={self.align_corners}, layout={self.layout!r}"
