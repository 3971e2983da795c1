"""DeepLab v3+ (Chen et al., ECCV 2018) with ResNet-50/101, as used by the spectral-analysis paper (AAAI 2020).

Layout and layer names follow jfzhang95/pytorch-deeplab-xception, the implementation whose decoder matches the
paper's counts (docs/reference_code.md#deeplab-v3-of-jfzhang95): ResNet trunk (layer1 = low-level feature, layer4 =
high-level feature), ASPP (1x1 + three 3x3 atrous + image pooling, 256 channels each, 1x1 projection, dropout 0.5),
and the decoder (1x1 256 -> 48 projection of the low-level feature, ASPP output resized to its size and
concatenated, two 3x3 convs with 256 channels and dropout 0.5 / 0.1, 1x1 classifier), logits resized bilinearly
(``align_corners=True``) to the input size.

Feature truncation (paper Sec. 3.2, docs/reference_code.md#feature-truncation) wraps ``model.decoder`` with
:func:`freqdense.spectral.truncate_decoder`, so the whole decoder (projection included) runs on the ``decoder_grid``
(129, 65 or 33 for a 513 input). ``accounting="paper"`` builds the configuration whose counts match the paper's
Table 2 (layer4 keeps its stride, output stride 32; see docs/models/deeplabv3plus.md and
:mod:`freqdense.models.flops`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import torch
import torch.nn as nn
import torch.nn.functional as F

from .._checks import check_shape
from ..errors import ConfigError, ShapeError
from ..nn.upsamplers import build_upsampler
from ._dense import register_normalization
from ._registry import register_model
from .backbones import create_backbone
from .decoders._fusion import check_fusion

__all__ = ["ASPP", "DeepLabV3Plus", "DeepLabV3PlusDecoder", "Fusion", "Accounting", "deeplabv3plus"]

Fusion = str  # a member of the up-sampler family (freqdense.nn.upsamplers.UPSAMPLERS)
Accounting = Literal["standard", "paper"]

#: ASPP atrous rates per output stride (DeepLab v3 rule: rates scale inversely with the stride).
_ASPP_RATES = {8: (12, 24, 36), 16: (6, 12, 18), 32: (3, 6, 9)}


def _conv_bn_relu(cin: int, cout: int, kernel: int, dilation: int = 1) -> list[nn.Module]:
    pad = 0 if kernel == 1 else dilation
    return [
        nn.Conv2d(cin, cout, kernel, padding=pad, dilation=dilation, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    ]


class _ASPPBranch(nn.Module):
    """``atrous_conv`` (1x1 or 3x3 dilated, no bias) -> ``bn`` -> ReLU (jfzhang95 ``_ASPPModule``)."""

    def __init__(self, cin: int, cout: int, kernel: int, dilation: int) -> None:
        super().__init__()
        conv, bn, relu = _conv_bn_relu(cin, cout, kernel, dilation)
        self.atrous_conv, self.bn, self.relu = conv, bn, relu

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.bn(self.atrous_conv(x)))


class ASPP(nn.Module):
    """Atrous spatial pyramid pooling (DeepLab v3, Sec. 3.3).

    Args:
        in_channels: channels of the high-level feature (2048 for ResNet-50/101).
        rates: dilations of the three 3x3 branches ((6, 12, 18) at output stride 16, (12, 24, 36) at 8).
        channels: width of every branch and of the output (256).
        dropout: dropout after the projection (0.5 as jfzhang95).

    ``forward(x)``: ``(B, in_channels, h, w)`` -> ``(B, channels, h, w)``. The image-pooling branch has BatchNorm
    on a 1x1 map, so training needs a batch of at least 2 (as the reference).
    """

    def __init__(
        self, in_channels: int, rates: Sequence[int] = (6, 12, 18), channels: int = 256, dropout: float = 0.5
    ) -> None:
        super().__init__()
        if len(rates) != 3:
            raise ConfigError(f"ASPP needs three atrous rates, got {tuple(rates)!r}")
        self.rates = tuple(int(r) for r in rates)
        self.aspp1 = _ASPPBranch(in_channels, channels, 1, 1)
        self.aspp2 = _ASPPBranch(in_channels, channels, 3, self.rates[0])
        self.aspp3 = _ASPPBranch(in_channels, channels, 3, self.rates[1])
        self.aspp4 = _ASPPBranch(in_channels, channels, 3, self.rates[2])
        self.global_avg_pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), *_conv_bn_relu(in_channels, channels, 1))
        self.conv1 = nn.Conv2d(5 * channels, channels, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.relu = nn.ReLU(inplace=True)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = F.interpolate(self.global_avg_pool(x), size=x.shape[-2:], mode="bilinear", align_corners=True)
        y = torch.cat([self.aspp1(x), self.aspp2(x), self.aspp3(x), self.aspp4(x), pooled], dim=1)
        return self.dropout(self.relu(self.bn1(self.conv1(y))))


class DeepLabV3PlusDecoder(nn.Module):
    """The DeepLab v3+ decoder of jfzhang95 (same section), 1.309 M parameters for 21 classes.

    Args:
        low_channels: channels of the low-level (layer1) feature (256 for ResNet-50/101).
        num_classes: output classes.
        aspp_channels: channels of the ASPP output (256).
        low_proj_channels: width of the low-level projection (48).
        channels: width of the two 3x3 convolutions (256).
        fusion: how the ASPP output reaches the low-level resolution. ``"bilinear"``: bilinear resize
            (``align_corners=True``), as the paper. Any other member of the up-sampler family
            (:data:`freqdense.nn.upsamplers.UPSAMPLERS`, e.g. ``"freqfusion"``): bilinear to half the low-level size,
            then one 2x step of that up-sampler (hr = projected low-level feature, lr = ASPP output); its
            ``(hr_feat, lr_feat)`` outputs are concatenated in the decoder's order ``[lr, hr]`` (the "concat"
            integration, docs/reference_code.md#freqfusion-integrations-upstream), so the convolutions after it are
            unchanged. For odd low-level sizes the lr size is ``ceil(H / 2)`` and the up-sampler pads and crops.
        fusion_kwargs: extra keywords for the up-sampler (e.g. FreqFusion's ``compressed_channels``).

    ``forward(aspp_out, low_level)``: ``(B, aspp_channels, h, w)``, ``(B, low_channels, H, W)`` ->
    ``(B, num_classes, H, W)`` logits at the low-level resolution.
    """

    def __init__(
        self,
        low_channels: int,
        num_classes: int,
        *,
        aspp_channels: int = 256,
        low_proj_channels: int = 48,
        channels: int = 256,
        fusion: Fusion = "bilinear",
        fusion_kwargs: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.fusion_mode = check_fusion(fusion)
        self.conv1 = nn.Conv2d(low_channels, low_proj_channels, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(low_proj_channels)
        self.relu = nn.ReLU(inplace=True)
        if fusion != "bilinear":
            self.fusion = build_upsampler(fusion, low_proj_channels, aspp_channels, **dict(fusion_kwargs or {}))
        elif fusion_kwargs:
            raise ConfigError("fusion_kwargs do not apply to fusion='bilinear'; remove them or set the fusion")
        self.last_conv = nn.Sequential(
            *_conv_bn_relu(aspp_channels + low_proj_channels, channels, 3),
            nn.Dropout(0.5),
            *_conv_bn_relu(channels, channels, 3),
            nn.Dropout(0.1),
            nn.Conv2d(channels, num_classes, 1),
        )

    def forward(self, aspp_out: torch.Tensor, low_level: torch.Tensor) -> torch.Tensor:
        low = self.relu(self.bn1(self.conv1(low_level)))
        if self.fusion_mode != "bilinear":
            high, low = self._fuse(aspp_out, low)
        else:
            high = F.interpolate(aspp_out, size=low.shape[-2:], mode="bilinear", align_corners=True)
        return self.last_conv(torch.cat([high, low], dim=1))

    def accounting_plan(self) -> list[tuple[nn.Conv2d, str | None, tuple[nn.Conv2d | int, ...]]]:
        """The paper accounting's view of this decoder (:func:`freqdense.models.flops.pruned_flops`): the
        48-channel projection and the ASPP channels keep their width, the two 3x3 convs lose the decoder rate,
        the classifier keeps its outputs (Table 2's constant 24 / 30 G truncation savings)."""
        first, second, classifier = self.last_conv[0], self.last_conv[4], self.last_conv[8]
        aspp_channels = first.in_channels - self.conv1.out_channels
        return [
            (self.conv1, None, (self.conv1.in_channels,)),
            (first, "decoder", (aspp_channels, self.conv1)),
            (second, "decoder", (first,)),
            (classifier, None, (second,)),
        ]

    def _fuse(self, aspp_out: torch.Tensor, low: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h, w = low.shape[-2:]
        lr = F.interpolate(aspp_out, size=((h + 1) // 2, (w + 1) // 2), mode="bilinear", align_corners=True)
        out = self.fusion(low, lr)  # odd sizes: the up-sampler pads to 2x and crops back itself
        return out.lr_feat, out.hr_feat


def _apply_multi_grid(layer4: nn.Sequential, base: int, grid: Sequence[int]) -> None:
    """jfzhang95's multi-grid unit: block ``i`` of layer4 gets dilation ``base * grid[i]`` (Deeplab v3 Sec. 3.2)."""
    if len(grid) != len(layer4):
        raise ConfigError(f"multi_grid needs {len(layer4)} entries (one per layer4 block), got {tuple(grid)!r}")
    for block, g in zip(layer4, grid):
        conv = block.conv2
        d = int(base * g)
        conv.dilation, conv.padding = (d, d), (d, d)


class DeepLabV3Plus(nn.Module):
    """Backbone (``low`` = layer1, ``high`` = layer4 features) + :class:`ASPP` + :class:`DeepLabV3PlusDecoder`.

    Args:
        backbone: a freqdense ResNet built with ``out_indices=(1, 4)``.
        num_classes: output classes.
        aspp_rates: ASPP dilations.
        decoder: the decoder module (``decoder(aspp_out, low_level)`` -> logits).
        accounting: ``"paper"`` marks the model for :func:`freqdense.models.flops.count_flops` to count the
            unused ImageNet classifier of a torchvision ResNet object in the encoder parameters (60.1 M).

    Input ``(B, 3, H, W)`` RGB in [0, 1] (ImageNet normalisation inside, buffers ``mean``/``std``); output
    ``{"semantic": (B, num_classes, H, W)}`` logits at the input size.
    """

    tasks = ("semantic",)

    def __init__(
        self,
        backbone: nn.Module,
        num_classes: int,
        *,
        aspp_rates: Sequence[int],
        decoder: nn.Module,
        accounting: Accounting = "standard",
    ) -> None:
        super().__init__()
        self.num_classes = int(num_classes)
        self.accounting = accounting
        self.backbone = backbone
        low_ch, high_ch = backbone.out_channels
        self.aspp = ASPP(high_ch, aspp_rates)
        self.decoder = decoder
        register_normalization(self)
        for name, m in self.named_modules():
            if name.startswith("backbone"):
                continue
            if isinstance(m, nn.Conv2d) and not name.startswith("decoder.fusion"):
                nn.init.kaiming_normal_(m.weight)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    @property
    def encoder_modules(self) -> tuple[str, ...]:
        """Names of the children the paper counts as the encoder (backbone incl. ASPP)."""
        return ("backbone", "aspp")

    @property
    def encoder_output_modules(self) -> tuple[str, ...]:
        """Encoder layers whose filters are the decoder's input channels (pruning scope, see
        :func:`freqdense.pruning.encoder_decoder_scopes`)."""
        return ("aspp.conv1",)

    def forward(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        """Logits at the input size (see the class docstring)."""
        check_shape(image, "B C H W", name="image", C=3)
        if not image.is_floating_point():
            raise ShapeError(f"image must be float RGB in [0, 1], got dtype {image.dtype}; use image.float() / 255")
        low, high = self.backbone((image - self.mean) / self.std)
        logits = self.decoder(self.aspp(high), low)
        return {"semantic": F.interpolate(logits, size=image.shape[-2:], mode="bilinear", align_corners=True)}


def build_dilated_encoder(
    model_name: str,
    backbone: str,
    *,
    num_classes: int,
    output_stride: int | None,
    multi_grid: Sequence[int] | None,
    accounting: str,
    pretrained: Any,
    backbone_kwargs: dict[str, Any] | None,
    out_indices: tuple[int, ...],
) -> tuple[nn.Module, int]:
    """Validate the encoder options shared by ``deeplabv3plus`` and ``dan`` and build the dilated ResNet.

    ``accounting="paper"`` forces output stride 32 without multi-grid; the default stride is 16. Returns the
    backbone (multi-grid applied to layer4 below stride 32) and the resolved output stride.
    """
    if backbone not in ("resnet50", "resnet101"):
        raise ConfigError(f"{model_name} backbone must be 'resnet50' or 'resnet101', got {backbone!r}")
    if accounting not in ("standard", "paper"):
        raise ConfigError(f"accounting must be 'standard' or 'paper', got {accounting!r}")
    if accounting == "paper":
        if output_stride not in (None, 32):
            raise ConfigError(
                f"accounting='paper' uses output stride 32 (layer4 keeps its stride), got "
                f"output_stride={output_stride}; drop output_stride or use accounting='standard'"
            )
        output_stride, multi_grid = 32, None
    output_stride = 16 if output_stride is None else int(output_stride)
    if output_stride not in _ASPP_RATES:
        raise ConfigError(f"output_stride must be 8, 16 or 32, got {output_stride!r}")
    if int(num_classes) < 1:
        raise ConfigError(f"num_classes must be >= 1, got {num_classes!r}")
    kwargs = dict(backbone_kwargs or {})
    for key in ("pretrained", "output_stride", "out_indices"):
        if key in kwargs:
            raise ConfigError(f"backbone_kwargs must not set {key!r}; {model_name} sets it (pass it to the model)")
    net = create_backbone(
        backbone, pretrained=pretrained, output_stride=output_stride, out_indices=out_indices, **kwargs
    )
    if multi_grid is not None and output_stride < 32:
        _apply_multi_grid(net.layer4, 32 // output_stride, multi_grid)
    return net, output_stride


@register_model
def deeplabv3plus(
    *,
    backbone: Literal["resnet50", "resnet101"] = "resnet101",
    output_stride: Literal[8, 16, 32] | None = None,
    num_classes: int = 21,
    decoder_grid: int | None = None,
    grid_mode: Literal["bilinear_align_corners", "area", "bilinear_antialias"] = "bilinear_align_corners",
    fusion: Fusion = "bilinear",
    fusion_kwargs: dict[str, Any] | None = None,
    multi_grid: Sequence[int] | None = (1, 2, 4),
    aspp_rates: Sequence[int] | None = None,
    accounting: Accounting = "standard",
    pretrained: str | None = None,
    backbone_kwargs: dict[str, Any] | None = None,
) -> DeepLabV3Plus:
    """DeepLab v3+ with a dilated ResNet (jfzhang95 layout; the spectral-analysis paper's segmentation model).

    Args:
        backbone: ``"resnet50"`` or ``"resnet101"``.
        output_stride: 16 (default) or 8; 32 keeps layer4's stride (the ``"paper"`` accounting).
        num_classes: output classes (21 PASCAL VOC, 19 Cityscapes, 7 DeepGlobe).
        decoder_grid: run the whole decoder on an ``n x n`` grid (feature truncation, paper Sec. 3.2; 129 = the
            untruncated size at 513 with output stride 4 low-level features, 65 or 33 truncated). ``None``: the
            decoder runs at the low-level feature's size.
        grid_mode: feature resizing onto the grid (see :func:`freqdense.spectral.resize_to_grid`).
        fusion: upsampling of the ASPP output, ``"bilinear"`` or an up-sampler name (see
            :class:`DeepLabV3PlusDecoder`).
        fusion_kwargs: keywords for the up-sampler.
        multi_grid: layer4 dilation multipliers at output stride 8/16 (jfzhang95: (1, 2, 4)); ``None`` keeps the
            torchvision dilations. Not applied at output stride 32.
        aspp_rates: ASPP dilations (default by output stride: 8 -> 12/24/36, 16 -> 6/12/18, 32 -> 3/6/9).
        accounting: ``"standard"``, or ``"paper"``: the configuration that reproduces the spectral-analysis paper's
        Table 2 counts
            (output stride 32, no multi-grid; the FLOPs counter adds the unused ImageNet classifier's 2.05 M
            parameters to the encoder). See docs/models/deeplabv3plus.md.
        pretrained: local torchvision-format ImageNet file for the backbone (never downloaded).
        backbone_kwargs: extra backbone keywords (e.g. ``{"base_width": 16}`` for small tests).
    """
    net, output_stride = build_dilated_encoder(
        "deeplabv3plus",
        backbone,
        num_classes=num_classes,
        output_stride=output_stride,
        multi_grid=multi_grid,
        accounting=accounting,
        pretrained=pretrained,
        backbone_kwargs=backbone_kwargs,
        out_indices=(1, 4),
    )
    decoder = DeepLabV3PlusDecoder(net.out_channels[0], int(num_classes), fusion=fusion, fusion_kwargs=fusion_kwargs)
    model = DeepLabV3Plus(
        net,
        num_classes,
        aspp_rates=_ASPP_RATES[output_stride] if aspp_rates is None else aspp_rates,
        decoder=decoder,
        accounting=accounting,
    )
    if decoder_grid is not None:
        from ..spectral.truncation import truncate_decoder

        if int(decoder_grid) < 1:
            raise ConfigError(f"decoder_grid must be a positive grid size (e.g. 65), got {decoder_grid!r}")
        truncate_decoder(model, int(decoder_grid), mode=grid_mode)
    return model
