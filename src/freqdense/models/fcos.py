"""The registered detection model ``fcos``: FCOS (Tian et al., "FCOS: Fully Convolutional One-Stage Object
Detection", ICCV 2019) on a freqdense backbone and the FreqFusion FPN neck (Chen et al., "Frequency-aware Feature
Fusion for Dense Image Prediction", TPAMI 2024), taking RGB in [0, 1] like every freqdense model.

A thin wrapper of :func:`freqdense.models.detection.fcos_detector` (see :mod:`freqdense.models.detection.detector`
for the head, targets, losses and post-processing) that adds what the engine needs: ImageNet mean / std
normalisation inside (buffers ``mean`` / ``std``, read by predict and export), a local ``pretrained`` backbone
file, and mmdetection's backbone freezing for the COCO schedule (``frozen_stages`` as mmdetection's ResNet counts
it: -1 nothing, 0 the stem, ``n`` the stem and ``layer1`` .. ``layer<n>`` get no gradient and stay in eval mode;
``norm_eval``: every BatchNorm of the backbone stays in eval
mode, with frozen affine parameters, as ``norm_cfg=dict(type='BN', requires_grad=False), norm_eval=True``).

The model returns :class:`~freqdense.models.detection.FCOSOutputs` (per-level raw maps), not a dict: the task
``detection`` computes the losses and decodes the boxes (:class:`freqdense.tasks.detection.DetectionTask`).
"""

from __future__ import annotations

from typing import Any

import torch.nn as nn

from ..errors import ConfigError
from ._registry import register_model
from .detection import FCOSDetector, FCOSHead, fcos_detector

__all__ = ["FCOS", "fcos"]


class FCOS(FCOSDetector):
    """:class:`FCOSDetector` with input normalisation and optional backbone freezing (see the module docstring).

    Args:
        backbone, neck, head: as :class:`FCOSDetector`.
        frozen_stages: -1 = nothing frozen; 0 freezes the stem (``conv1``, ``bn1``); ``n >= 1`` the stem and
            ``layer1`` .. ``layer<n>`` of a ResNet (mmdetection's ``frozen_stages``; its COCO configs use 1).
        norm_eval: keep the backbone's BatchNorm layers in eval mode with frozen weights.
    """

    def __init__(
        self, backbone: nn.Module, neck: nn.Module, head: FCOSHead, *, frozen_stages: int = -1, norm_eval: bool = False
    ) -> None:
        super().__init__(backbone, neck, head, normalize=True)
        if isinstance(frozen_stages, bool) or not isinstance(frozen_stages, int) or not -1 <= frozen_stages <= 4:
            raise ConfigError(f"fcos frozen_stages must be an integer in [-1, 4] (-1: none), got {frozen_stages!r}")
        self.frozen_stages = frozen_stages
        self.norm_eval = bool(norm_eval)
        for module in self._frozen_modules():
            for p in module.parameters():
                p.requires_grad_(False)
        if self.norm_eval:
            for module in self.backbone.modules():
                if isinstance(module, nn.modules.batchnorm._BatchNorm):
                    for p in module.parameters():
                        p.requires_grad_(False)
        self.train(True)

    def _frozen_modules(self) -> list[nn.Module]:
        if self.frozen_stages < 0:
            return []
        names = ["conv1", "bn1"] + [f"layer{i}" for i in range(1, self.frozen_stages + 1)]
        missing = [n for n in names if not hasattr(self.backbone, n)]
        if missing:
            raise ConfigError(
                f"fcos frozen_stages={self.frozen_stages} needs a ResNet-style backbone with {names}; "
                f"{type(self.backbone).__name__} lacks {missing}. Use frozen_stages: -1"
            )
        return [getattr(self.backbone, n) for n in names]

    def train(self, mode: bool = True) -> FCOS:
        super().train(mode)
        if mode:
            for module in self._frozen_modules():
                module.eval()
            if getattr(self, "norm_eval", False):
                for module in self.backbone.modules():
                    if isinstance(module, nn.modules.batchnorm._BatchNorm):
                        module.eval()
        return self


@register_model
def fcos(
    *,
    num_classes: int = 80,
    backbone: str = "resnet50",
    neck_fusion: str = "freqfusion",
    fusion_kwargs: dict[str, Any] | None = None,
    compress_ratio: int = 8,
    neck_out_channels: int = 256,
    num_outs: int = 5,
    start_level: int = 1,
    pretrained: str | None = None,
    backbone_kwargs: dict[str, Any] | None = None,
    head_kwargs: dict[str, Any] | None = None,
    frozen_stages: int = -1,
    norm_eval: bool = False,
) -> FCOS:
    """FCOS detector (registered as ``fcos``); RGB in [0, 1] in, per-level head maps out.

    Args:
        num_classes: foreground classes (COCO: 80; synthetic scenes: 6 thing classes).
        backbone: registered backbone name (``resnet18`` .. ``resnet101``).
        neck_fusion: the neck's top-down up-sampler: ``"freqfusion"`` (official FreqFusion detection settings) or
            any member of :data:`freqdense.nn.upsamplers.UPSAMPLERS` (``"bilinear"``: the plain-FPN control).
        fusion_kwargs: up-sampler keywords (FreqFusion default: the official detection settings).
        compress_ratio: FreqFusion ``compressed_channels = 2 * neck_out_channels // compress_ratio`` (8).
        neck_out_channels: FPN width, also the head's tower width (256).
        num_outs: neck outputs (5: P3..P7).
        start_level: first backbone level used (1: C3 of a ResNet).
        pretrained: local ImageNet weights of the backbone (torchvision format); never downloaded.
        backbone_kwargs: extra backbone keywords (e.g. ``{"base_width": 32}``).
        head_kwargs: extra :class:`~freqdense.models.detection.FCOSHead` keywords (``improved``, ``num_groups``,
            ``stacked_convs``, ``center_sampling``, ...).
        frozen_stages, norm_eval: backbone freezing (see :class:`FCOS`; mmdetection's COCO configs: 1 and true).
    """
    kwargs = dict(backbone_kwargs or {})
    if "pretrained" in kwargs:
        raise ConfigError("pass pretrained= to the fcos model, not inside backbone_kwargs")
    if pretrained is not None:
        kwargs["pretrained"] = pretrained
    neck_kwargs: dict[str, Any] = {"compress_ratio": compress_ratio}
    if fusion_kwargs is not None:
        neck_kwargs["fusion_kwargs"] = fusion_kwargs
    det = fcos_detector(
        int(num_classes),
        backbone,
        neck_fusion=neck_fusion,
        neck_out_channels=neck_out_channels,
        num_outs=num_outs,
        start_level=start_level,
        backbone_kwargs=kwargs,
        neck_kwargs=neck_kwargs,
        head_kwargs=head_kwargs,
    )
    return FCOS(det.backbone, det.neck, det.head, frozen_stages=frozen_stages, norm_eval=norm_eval)
