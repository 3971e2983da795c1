"""The registered model ``segnext``: MSCAN encoder + light Hamburger head, plain or with FreqFusion.

Guo et al., "SegNeXt: Rethinking Convolutional Attention Design for Semantic Segmentation", NeurIPS 2022; the
FreqFusion variant is the one of Chen et al., "Frequency-aware Feature Fusion for Dense Image Prediction", TPAMI 2024
(``segnext.tiny.freqfusion.512x512.ade.160k.py``). The module tree equals mmseg's ``EncoderDecoder`` (``backbone.*``
= :class:`~freqdense.models.backbones.mscan.MSCAN`, ``decode_head.*`` =
:class:`~freqdense.models.decoders.ham_head.LightHamHead`), so the ``state_dict`` of an official mmseg checkpoint
loads strictly (``freqdense convert freqfusion``). Input RGB in [0, 1] (ImageNet normalisation inside, equal to
mmseg's ``img_norm_cfg``); output ``{"semantic": (B, num_classes, H, W)}`` logits, bilinearly resized
(``align_corners=False``) from stride 8 like mmseg's whole-image inference. See docs/models/segnext.md.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import ConfigError
from ._dense import check_image, register_normalization
from ._registry import register_model
from .backbones import create_backbone
from .decoders.ham_head import LightHamHead

__all__ = ["SEGNEXT_HEADS", "SegNeXt", "segnext"]

#: Head width (``channels`` = ``ham_channels``) and NMF rank ``MD_R`` of the official ADE20K configs, per encoder.
SEGNEXT_HEADS: dict[str, dict[str, int]] = {
    "mscan_t": {"channels": 256, "MD_R": 16},
    "mscan_s": {"channels": 256, "MD_R": 16},
    "mscan_b": {"channels": 512, "MD_R": 64},
    "mscan_l": {"channels": 1024, "MD_R": 64},
}


class SegNeXt(nn.Module):
    """Backbone -> :class:`LightHamHead` on the stages ``in_index`` -> logits at the input size.

    Args:
        backbone: an MSCAN (any freqdense backbone whose stages halve works) built with ``out_indices=in_index``.
        decode_head: the head, built with ``in_channels=backbone.out_channels``.
    """

    tasks = ("semantic",)

    def __init__(self, backbone: nn.Module, decode_head: LightHamHead) -> None:
        super().__init__()
        if tuple(backbone.out_channels) != decode_head.in_channels:
            raise ConfigError(
                f"SegNeXt: the head reads channels {decode_head.in_channels} but the backbone returns "
                f"{tuple(backbone.out_channels)}; build the head with in_channels=backbone.out_channels"
            )
        if getattr(backbone, "in_channels", 3) != 3:
            raise ConfigError("SegNeXt takes RGB images; build the backbone with in_channels=3")
        self.num_classes = decode_head.num_classes
        self.backbone = backbone
        self.decode_head = decode_head
        register_normalization(self)

    @property
    def nmf(self):
        """The head's NMF (``model.nmf.seed``: fixed evaluation bases, ``None`` = random; docs/models/segnext.md)."""
        return self.decode_head.nmf

    def forward(self, image: torch.Tensor, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """``(B, 3, H, W)`` RGB in [0, 1] -> ``{"semantic": (B, num_classes, H, W)}``; ``generator`` draws the NMF
        bases (default: see :class:`~freqdense.models.decoders.ham_head.NMF2D`)."""
        check_image(image)
        features = self.backbone((image - self.mean.to(image.dtype)) / self.std.to(image.dtype))
        logits = self.decode_head(features, generator)
        return {"semantic": F.interpolate(logits, size=image.shape[-2:], mode="bilinear", align_corners=False)}


@register_model
def segnext(
    *,
    backbone: str = "mscan_t",
    num_classes: int = 150,
    fusion: Literal["freqfusion", "none"] = "freqfusion",
    fusion_kwargs: dict[str, Any] | None = None,
    compress_ratio: int = 4,
    channels: int | None = None,
    ham_channels: int | None = None,
    ham_kwargs: Mapping[str, Any] | None = None,
    in_index: Sequence[int] = (1, 2, 3),
    dropout_ratio: float = 0.1,
    nmf_seed: int | None = 0,
    pretrained: str | None = None,
    backbone_kwargs: dict[str, Any] | None = None,
) -> SegNeXt:
    """SegNeXt-T/S/B/L (``backbone="mscan_t"`` ... ``"mscan_l"``), with the FreqFusion head by default.

    Args:
        backbone: registered backbone (``mscan_t``, ``mscan_s``, ``mscan_b``, ``mscan_l``).
        num_classes: classes (150 = ADE20K).
        fusion: ``"freqfusion"`` (``LightHamHeadFreqAware``, the FreqFusion paper's model) or ``"none"``
            (SegNeXt's ``LightHamHead``).
        fusion_kwargs: FreqFusion keywords over :data:`~freqdense.models.decoders.segformer_head.SEGNEXT_FUSION`.
        compress_ratio: FreqFusion ``compressed_channels = (C_hr + C_lr) // compress_ratio`` (4).
        channels, ham_channels: head widths (default per backbone, :data:`SEGNEXT_HEADS`: 256 / 256 / 512 / 1024).
        ham_kwargs: official NMF keys, default ``{"MD_R": 16}`` for T/S and ``{"MD_R": 64}`` for B/L (the ADE20K
            configs); keys given override.
        in_index: backbone stages the head reads (1, 2, 3 = strides 8, 16, 32).
        dropout_ratio: dropout before the classifier.
        nmf_seed: in evaluation, every sample's NMF starts from one fixed draw of bases from this seed
            (deterministic, batch-independent predictions; needed for ONNX export); ``None`` draws random bases at
            every forward from the global RNG, as the official code (see docs/models/segnext.md). Training always
            draws random bases.
        pretrained: local ImageNet ``mscan_*.pth`` for the backbone (never downloaded).
        backbone_kwargs: extra backbone keywords (``embed_dims``, ``depths``, ``mlp_ratios``, ``drop_path_rate``,
            ``use_checkpoint``); ``out_indices`` comes from ``in_index``.
    """
    kwargs = dict(backbone_kwargs or {})
    for key in ("pretrained", "out_indices"):
        if key in kwargs:
            raise ConfigError(
                f"segnext backbone_kwargs must not set {key!r}; pass pretrained= / in_index= to the model"
            )
    net = create_backbone(backbone, pretrained=pretrained, out_indices=tuple(in_index), **kwargs)
    defaults = SEGNEXT_HEADS.get(backbone, SEGNEXT_HEADS["mscan_t"])
    width = defaults["channels"] if channels is None else int(channels)
    head = LightHamHead(
        net.out_channels,
        width,
        width if ham_channels is None else int(ham_channels),
        num_classes,
        fusion=fusion,
        fusion_kwargs=fusion_kwargs,
        compress_ratio=compress_ratio,
        ham_kwargs={"MD_R": defaults["MD_R"], **dict(ham_kwargs or {})},
        dropout_ratio=dropout_ratio,
        nmf_seed=nmf_seed,
    )
    return SegNeXt(net, head)
