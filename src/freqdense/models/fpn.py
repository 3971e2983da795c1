"""Encoder-decoder models with FPN or SegFormer-style decoders and a bilinear / FreqFusion upsampler.

Registered models:

- ``fpn``: backbone + :class:`~freqdense.models.decoders.FPNDecoder` ("add" fusion) + one small head per task;
  ``tasks=("semantic", "depth")`` makes it a multi-task model with a shared decoder, ``tasks=("depth",)`` a depth
  model (FreqFusion for depth estimation has not been reported in the paper or the official repository).
- ``segformer_head``: backbone + :class:`~freqdense.models.decoders.SegFormerHead` ("concat" fusion with the
  SegNeXt group interleaving).

Same contract as :class:`~freqdense.models.multitask.MultiTaskBaseline`: RGB in [0, 1] (normalised inside), output
``{"semantic": (B, num_classes, H, W) logits, "depth": (B, 1, H, W) metres}`` at the input size.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import torch
import torch.nn as nn
import torch.nn.functional as F

from .._checks import check_shape
from ..errors import ConfigError, ShapeError
from ._dense import activate_depth, check_depth_activation, register_normalization
from ._registry import register_model
from .backbones import create_backbone
from .decoders import FPNDecoder, Fusion, SegFormerHead
from .decoders._fusion import ConvBNReLU
from .multitask import DepthActivation, check_tasks

__all__ = ["EncoderDecoder", "fpn", "segformer_head"]


class EncoderDecoder(nn.Module):
    """Backbone -> decoder (one shared feature map) -> per-task head (3x3 conv-BN-ReLU, 1x1 conv) -> input size.

    Args:
        backbone: a freqdense backbone (``out_channels``; features finest first).
        decoder: maps the feature list to one ``(B, decoder.out_channels, h, w)`` map.
        tasks: subset of ``("semantic", "depth")``.
        num_classes: semantic classes.
        depth_activation: ``"none"``, ``"relu"``, ``"softplus"`` or ``"exp"`` on the upsampled depth.
    """

    def __init__(
        self,
        backbone: nn.Module,
        decoder: nn.Module,
        *,
        tasks: Sequence[str] = ("semantic",),
        num_classes: int = 19,
        depth_activation: DepthActivation = "none",
    ) -> None:
        super().__init__()
        self.tasks = check_tasks(tasks)
        if "semantic" in self.tasks and int(num_classes) < 1:
            raise ConfigError(f"num_classes must be >= 1, got {num_classes!r}")
        check_depth_activation(depth_activation)
        if getattr(backbone, "in_channels", 3) != 3:
            raise ConfigError("EncoderDecoder takes RGB images; build the backbone with in_channels=3")
        self.num_classes = int(num_classes)
        self.depth_activation = depth_activation
        self.backbone = backbone
        self.decoder = decoder
        c = decoder.out_channels
        outputs = {"semantic": self.num_classes, "depth": 1}
        self.heads = nn.ModuleDict(
            {t: nn.Sequential(ConvBNReLU(c, c, 3), nn.Conv2d(c, outputs[t], 1)) for t in self.tasks}
        )
        register_normalization(self)

    def forward(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        """``(B, 3, H, W)`` RGB in [0, 1] -> dict of per-task predictions at ``(H, W)``."""
        check_shape(image, "B C H W", name="image", C=3)
        if not image.is_floating_point():
            raise ShapeError(f"image must be float RGB in [0, 1], got dtype {image.dtype}; use image.float() / 255")
        size = image.shape[-2:]
        feature = self.decoder(self.backbone((image - self.mean) / self.std))
        out = {}
        for task, head in self.heads.items():
            y = F.interpolate(head(feature), size=size, mode="bilinear", align_corners=False)
            out[task] = activate_depth(y, self.depth_activation) if task == "depth" else y
        return out


def _backbone(name: str, backbone_kwargs: dict[str, Any] | None, pretrained: str | None) -> nn.Module:
    kwargs = dict(backbone_kwargs or {})
    if "pretrained" in kwargs:
        raise ConfigError("pass pretrained= to the model, not inside backbone_kwargs")
    return create_backbone(name, pretrained=pretrained, **kwargs)


@register_model
def fpn(
    *,
    backbone: str = "resnet18",
    tasks: Sequence[str] = ("semantic",),
    num_classes: int = 19,
    fusion: Fusion = "bilinear",
    fusion_kwargs: dict[str, Any] | None = None,
    decoder_channels: int = 128,
    compress_ratio: int = 8,
    merge: Literal["sum", "finest"] = "sum",
    depth_activation: DepthActivation = "none",
    pretrained: str | None = None,
    backbone_kwargs: dict[str, Any] | None = None,
) -> EncoderDecoder:
    """FPN model; ``fusion`` picks the top-down up-sampler (``"freqfusion"``: FreqFusion, "add" integration).

    Args:
        backbone: registered backbone name; its levels must have strides growing by 2 for the learned up-samplers.
        tasks: subset of ``("semantic", "depth")``: segmentation, depth, or both on a shared decoder.
        num_classes: semantic classes.
        fusion: up-sampler name (:data:`freqdense.nn.upsamplers.UPSAMPLERS`): ``"bilinear"``, ``"freqfusion"``,
            ``"carafe"``, ``"dysample"``, ``"sapa"``, ...
        fusion_kwargs: keywords of the up-sampler (e.g. FreqFusion's ``{feature_resample: true}``).
        decoder_channels: FPN width.
        compress_ratio: FreqFusion ``compressed_channels = 2 * decoder_channels // compress_ratio`` unless set in
            ``fusion_kwargs``.
        merge: ``"sum"`` (semantic-FPN merge) or ``"finest"``.
        depth_activation: see :class:`EncoderDecoder`.
        pretrained: local ImageNet weights for the backbone.
        backbone_kwargs: extra backbone keywords (e.g. ``{"base_width": 32}``).
    """
    net = _backbone(backbone, backbone_kwargs, pretrained)
    decoder = FPNDecoder(
        net.out_channels,
        decoder_channels,
        fusion=fusion,
        fusion_kwargs=fusion_kwargs,
        compress_ratio=compress_ratio,
        merge=merge,
    )
    return EncoderDecoder(net, decoder, tasks=tasks, num_classes=num_classes, depth_activation=depth_activation)


@register_model
def segformer_head(
    *,
    backbone: str = "resnet18",
    tasks: Sequence[str] = ("semantic",),
    num_classes: int = 19,
    fusion: Fusion = "bilinear",
    fusion_kwargs: dict[str, Any] | None = None,
    decoder_channels: int = 128,
    compress_ratio: int = 4,
    groups: int = 4,
    integration: Literal["projected", "segnext"] = "projected",
    depth_activation: DepthActivation = "none",
    pretrained: str | None = None,
    backbone_kwargs: dict[str, Any] | None = None,
) -> EncoderDecoder:
    """SegFormer-style all-MLP decoder; ``fusion="freqfusion"`` uses the SegNeXt concat + group-interleave scheme.

    Args: as :func:`fpn`, plus ``groups`` (interleaving groups, 4 in SegNeXt); ``compress_ratio`` gives
    ``compressed_channels = (C_hr + C_lr) // compress_ratio`` per step (4 in SegNeXt); ``integration="segnext"``
    fuses the raw backbone stages with the official SegNeXt FreqFusion settings (see ``SegFormerHead``).
    """
    net = _backbone(backbone, backbone_kwargs, pretrained)
    decoder = SegFormerHead(
        net.out_channels,
        decoder_channels,
        fusion=fusion,
        fusion_kwargs=fusion_kwargs,
        compress_ratio=compress_ratio,
        groups=groups,
        integration=integration,
    )
    return EncoderDecoder(net, decoder, tasks=tasks, num_classes=num_classes, depth_activation=depth_activation)
