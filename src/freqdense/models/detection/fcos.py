"""The FCOS head (Tian et al., "FCOS: Fully Convolutional One-Stage Object Detection", ICCV 2019, Sec. 3, Fig. 2).

Shared over all pyramid levels: a classification tower and a regression tower of ``stacked_convs`` x (3x3 conv,
GroupNorm(32), ReLU), then 3x3 convs for the ``num_classes`` sigmoid logits, the 4 distances ``(l, t, r, b)`` and
the centerness logit. Each level has a learnable scalar ``Scale`` (init 1) on the regression output.

The defaults are the *improved* FCOS of the FCOS repository (``fcos_imprv_R_50_FPN_1x``) and of mmdetection's
``fcos_r50-caffe_fpn_gn-head-center-normbbox-centeronreg-giou_1x_coco``: tower convs with bias, centerness on the
regression tower (``centerness_on_reg``), distances ``relu(scale * x) * stride`` (``norm_on_bbox``: the targets
are learnt in stride units), center sampling with radius 1.5 and the GIoU box loss. ``improved=False`` selects the
original paper / ``fcos_r50-caffe_fpn_gn-head_1x_coco`` head: no tower bias (mmdetection's ``conv_bias="auto"``
with GroupNorm), centerness on the classification tower, distances ``exp(scale * x)``, no center sampling and the
``-log(IoU)`` loss. Every flag can be set on its own.

Initialisation as both official codes: every conv weight ``N(0, 0.01)``, biases 0, the classification bias
``-log((1 - pi) / pi) = -4.595`` for the prior ``pi = 0.01`` (Lin et al., ICCV 2017, Sec. 4.1).

Unlike the official heads, the distances are always returned in image pixels (the official ``norm_on_bbox`` head
returns stride units while training and pixels at test time); IoU, GIoU and centerness are scale invariant, so the
losses and their gradients are the official ones.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal, NamedTuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from ...errors import ConfigError, ShapeError
from .targets import REGRESS_RANGES

__all__ = ["FCOSHead", "FCOSOutputs", "Scale"]

BoxLoss = Literal["giou", "iou"]


class FCOSOutputs(NamedTuple):
    """Per-level head outputs, finest level first.

    Attributes:
        cls_logits: ``(B, num_classes, H_l, W_l)`` classification logits.
        distances: ``(B, 4, H_l, W_l)`` non-negative ``(l, t, r, b)`` distances in image pixels.
        centerness: ``(B, 1, H_l, W_l)`` centerness logits.
        strides: stride of each level.
    """

    cls_logits: tuple[torch.Tensor, ...]
    distances: tuple[torch.Tensor, ...]
    centerness: tuple[torch.Tensor, ...]
    strides: tuple[int, ...]


class Scale(nn.Module):
    """A learnable scalar multiplier (FCOS's per-level ``Scale``, initialised to ``init``)."""

    def __init__(self, init: float = 1.0) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.tensor([float(init)]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale


def _tower(in_channels: int, channels: int, depth: int, num_groups: int | None, bias: bool) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i in range(depth):
        layers.append(nn.Conv2d(in_channels if i == 0 else channels, channels, 3, padding=1, bias=bias))
        if num_groups is not None:
            layers.append(nn.GroupNorm(num_groups, channels))
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class FCOSHead(nn.Module):
    """FCOS head shared over the pyramid levels.

    Args:
        num_classes: foreground classes (sigmoid outputs, no background channel).
        in_channels: channels of every neck output.
        feat_channels: tower width (256 in FCOS).
        stacked_convs: convs per tower (4 in FCOS).
        strides: stride of each input level (P3..P7: ``(8, 16, 32, 64, 128)``).
        num_groups: GroupNorm groups in the towers (32); ``None`` for no normalisation. Must divide
            ``feat_channels``.
        prior_prob: initial foreground probability of every classification output (0.01).
        improved: the default of the five flags below (``True``: the FCOS repository's improved variant).
        conv_bias: tower convs with bias (improved) or without (original with GroupNorm).
        centerness_on_reg: centerness predicted from the regression tower (improved) or the classification tower.
        norm_on_bbox: distances ``relu(scale * x) * stride`` (improved) or ``exp(scale * x)``.
        center_sampling: positive points only near box centres (improved; radius ``center_radius`` strides).
        box_loss: ``"giou"`` (improved) or ``"iou"`` (``-log IoU``).
        center_radius: center sampling radius in strides (1.5).
        regress_ranges: per-level ``(lo, hi)`` of ``max(l, t, r, b)`` (FCOS's five ranges by default).

    Attributes:
        cls_tower, reg_tower, cls_logits, bbox_pred, centerness, scales: the layers (``scales[l]`` for level ``l``).
    """

    def __init__(
        self,
        num_classes: int,
        in_channels: int = 256,
        *,
        feat_channels: int = 256,
        stacked_convs: int = 4,
        strides: Sequence[int] = (8, 16, 32, 64, 128),
        num_groups: int | None = 32,
        prior_prob: float = 0.01,
        improved: bool = True,
        conv_bias: bool | None = None,
        centerness_on_reg: bool | None = None,
        norm_on_bbox: bool | None = None,
        center_sampling: bool | None = None,
        box_loss: BoxLoss | None = None,
        center_radius: float = 1.5,
        regress_ranges: Sequence[Sequence[float]] | None = None,
    ) -> None:
        super().__init__()
        if int(num_classes) < 1 or int(in_channels) < 1 or int(feat_channels) < 1 or int(stacked_convs) < 0:
            raise ConfigError(
                f"FCOSHead needs num_classes, in_channels, feat_channels >= 1 and stacked_convs >= 0, got "
                f"{num_classes!r}, {in_channels!r}, {feat_channels!r}, {stacked_convs!r}"
            )
        if num_groups is not None and (int(num_groups) < 1 or int(feat_channels) % int(num_groups)):
            raise ConfigError(
                f"FCOSHead num_groups={num_groups!r} must divide feat_channels={feat_channels}; pick a divisor "
                "(e.g. num_groups=8 for 32 channels) or num_groups=None"
            )
        if not 0.0 < float(prior_prob) < 1.0:
            raise ConfigError(f"FCOSHead prior_prob must be in (0, 1), got {prior_prob!r}")
        self.strides = tuple(int(s) for s in strides)
        if not self.strides or min(self.strides) < 1:
            raise ConfigError(f"FCOSHead strides must be positive integers, got {tuple(strides)!r}")
        self.regress_ranges = tuple(
            (float(lo), float(hi)) for lo, hi in (REGRESS_RANGES if regress_ranges is None else regress_ranges)
        )
        if len(self.regress_ranges) != len(self.strides):
            raise ConfigError(
                f"FCOSHead has {len(self.strides)} strides but {len(self.regress_ranges)} regress ranges; give "
                "regress_ranges=((lo, hi), ...) with one pair per level"
            )
        if float(center_radius) <= 0:
            raise ConfigError(f"FCOSHead center_radius must be > 0, got {center_radius!r}")

        def pick(value: bool | None) -> bool:
            return bool(improved) if value is None else bool(value)

        self.num_classes = int(num_classes)
        self.conv_bias = pick(conv_bias) if num_groups is not None else True if conv_bias is None else bool(conv_bias)
        self.centerness_on_reg = pick(centerness_on_reg)
        self.norm_on_bbox = pick(norm_on_bbox)
        self.center_sampling = pick(center_sampling)
        self.box_loss: BoxLoss = box_loss if box_loss is not None else ("giou" if improved else "iou")
        if self.box_loss not in ("giou", "iou"):
            raise ConfigError(f"FCOSHead box_loss must be 'giou' or 'iou', got {box_loss!r}")
        self.center_radius = float(center_radius)
        self.prior_prob = float(prior_prob)

        c = int(feat_channels)
        groups = None if num_groups is None else int(num_groups)
        self.cls_tower = _tower(int(in_channels), c, int(stacked_convs), groups, self.conv_bias)
        self.reg_tower = _tower(int(in_channels), c, int(stacked_convs), groups, self.conv_bias)
        tower_out = c if int(stacked_convs) > 0 else int(in_channels)
        self.cls_logits = nn.Conv2d(tower_out, self.num_classes, 3, padding=1)
        self.bbox_pred = nn.Conv2d(tower_out, 4, 3, padding=1)
        self.centerness = nn.Conv2d(tower_out, 1, 3, padding=1)
        self.scales = nn.ModuleList(Scale(1.0) for _ in self.strides)
        self.in_channels = int(in_channels)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """N(0, 0.01) conv weights, zero biases, classification bias ``-log((1 - prior) / prior)``."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, std=0.01)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.GroupNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        nn.init.constant_(self.cls_logits.bias, -math.log((1 - self.prior_prob) / self.prior_prob))
        for s in self.scales:
            nn.init.ones_(s.scale)

    def forward(self, features: Sequence[torch.Tensor]) -> FCOSOutputs:
        """``len(strides)`` maps ``(B, in_channels, H_l, W_l)``, finest first -> :class:`FCOSOutputs`."""
        if len(features) != len(self.strides):
            raise ShapeError(
                f"FCOSHead expected {len(self.strides)} feature maps (strides {self.strides}), got {len(features)}; "
                "build the head with one stride per neck output"
            )
        cls_out, dist_out, ctr_out = [], [], []
        for level, (x, scale, stride) in enumerate(zip(features, self.scales, self.strides)):
            if x.dim() != 4 or x.shape[1] != self.in_channels:
                raise ShapeError(f"FCOSHead level {level} must be (B, {self.in_channels}, H, W), got {tuple(x.shape)}")
            cls_feat = self.cls_tower(x)
            reg_feat = self.reg_tower(x)
            cls_out.append(self.cls_logits(cls_feat))
            ctr_out.append(self.centerness(reg_feat if self.centerness_on_reg else cls_feat))
            raw = scale(self.bbox_pred(reg_feat))
            dist_out.append(F.relu(raw) * stride if self.norm_on_bbox else raw.exp())
        return FCOSOutputs(tuple(cls_out), tuple(dist_out), tuple(ctr_out), self.strides)
