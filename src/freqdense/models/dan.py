"""DAN, the spectral-analysis paper's second model: a **reconstruction** of the Deep Aggregation Net.

Kuo et al., "Deep Aggregation Net for Land Cover Classification" (CVPR Workshops 2018, DeepGlobe) describe a network
that "extracts and combines multi-layer features", after Deep Layer Aggregation; its exact layers are not public.
The spectral-analysis paper (AAAI 2020, Sec. 3.2) gives its size: a ResNet-101 encoder with ASPP identical to DeepLab
v3+'s (95.6 GFLOPs, 60.1 M parameters) and a decoder of **11.1 GFLOPs and 0.4 M parameters** at 513 x 513 with the
decoder on the 129 grid. This module rebuilds a decoder of that kind fitted to those two numbers; it is not the
authors' network. Fitted (``count_model_flops("dan", accounting="paper", num_classes=7)``): 11.20 GFLOPs, 0.412 M
parameters (docs/models/dan.md).

Decoder (:class:`DANDecoder`), from the encoder levels layer1, layer2, layer3 (strides 4, 8, 16) and the ASPP
output (stride 32 in the paper accounting, 16 at output stride 16):

1. *extract*: every level -> 1x1 conv (``extract_channels``, 32) + BN + ReLU;
2. *aggregate* (iterative deep aggregation, deepest first): ``a = extract(ASPP)``; for layer3, layer2, layer1:
   ``a = node(cat(resize(a), extract(level)))`` with an aggregation node = 1x1 conv (``node_channels``, 128) + BN +
   ReLU (Deep Layer Aggregation's node: a 1x1 conv over the concatenation);
3. *head* at the layer1 level: two 3x3 convs (``head_channels``, 128) + BN + ReLU with dropout 0.5 / 0.1, and a 1x1
   classifier (as DeepLab v3+'s decoder); logits are resized bilinearly to the input size.

Decoder geometry: level ``i`` runs at the size ``ceil``-halving the finest input's size ``log2(stride_i / stride_0)``
times gives (129 -> 65 -> 33 -> 17 at 513, what the ResNet itself produces), so feature truncation
(``decoder_grid=n``, :func:`freqdense.spectral.truncate_decoder`) shrinks the whole pyramid with the grid
(``n = 65``: 65 / 33 / 17 / 9) and the decoder cost scales with the grid's area, as the paper's Table 4 FPI x mIoU
totals imply (106.9 / 98.1 / 96.2 G). Resizing is bilinear with ``align_corners=True``, exact subsampling on these
``2^k + 1`` grids.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import torch
import torch.nn as nn
import torch.nn.functional as F

from .._checks import check_shape
from ..errors import ConfigError, ShapeError
from ._dense import register_normalization
from ._registry import register_model
from .deeplabv3plus import _ASPP_RATES, ASPP, Accounting, build_dilated_encoder

__all__ = ["DAN", "DANDecoder", "dan"]

#: Encoder levels the decoder aggregates: ResNet layer1..layer3 (the ASPP output is the fourth level).
_LEVELS = (1, 2, 3)


def _conv_bn_relu(cin: int, cout: int, kernel: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, kernel, padding=kernel // 2, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


def _halvings(size: int, times: int) -> int:
    for _ in range(times):
        size = (size + 1) // 2  # a stride-2 3x3 / 7x7 conv with "same" padding: ceil(n / 2)
    return size


def _resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    if tuple(x.shape[-2:]) == size:
        return x
    return F.interpolate(x, size=size, mode="bilinear", align_corners=True)


class DANDecoder(nn.Module):
    """Multi-level aggregation decoder of the DAN reconstruction (see the module docstring).

    Args:
        in_channels: channels of the levels, finest first, the ASPP output last (``(256, 512, 1024, 256)``).
        strides: their strides (``(4, 8, 16, 32)``); each ratio to the first must be a power of two.
        num_classes: output classes.
        extract_channels: width of the per-level 1x1 extraction (32).
        node_channels: width of the 1x1 aggregation nodes (128).
        head_channels: width of the two 3x3 head convs (128).

    ``forward(aspp_out, *levels)``: the ASPP output and the levels finest first (``layer1, layer2, layer3``), each
    ``(B, C_i, H_i, W_i)`` -> ``(B, num_classes, H_0, W_0)`` logits on the finest input's grid. Inputs that are not
    at their pyramid size (e.g. all resized to one grid by a :class:`~freqdense.spectral.TruncatedDecoder`) are
    resized to it first.
    """

    def __init__(
        self,
        in_channels: Sequence[int],
        strides: Sequence[int],
        num_classes: int,
        *,
        extract_channels: int = 32,
        node_channels: int = 128,
        head_channels: int = 128,
    ) -> None:
        super().__init__()
        in_channels, strides = tuple(int(c) for c in in_channels), tuple(int(s) for s in strides)
        if len(in_channels) != len(strides) or len(in_channels) < 2:
            raise ConfigError(
                f"DANDecoder needs one stride per input level and at least two levels, got in_channels={in_channels} "
                f"and strides={strides}"
            )
        self.halvings: tuple[int, ...] = ()
        for s in strides:
            ratio, rest = divmod(s, strides[0])
            if rest or ratio < 1 or ratio & (ratio - 1):
                raise ConfigError(f"DANDecoder strides must be the finest stride times powers of two, got {strides}")
            self.halvings += (ratio.bit_length() - 1,)
        if list(self.halvings) != sorted(self.halvings):
            raise ConfigError(f"DANDecoder strides must not decrease from the finest level to the ASPP, got {strides}")
        for name, width in (("extract", extract_channels), ("node", node_channels), ("head", head_channels)):
            if int(width) < 1:
                raise ConfigError(f"{name}_channels must be >= 1, got {width!r}")
        self.extract = nn.ModuleList(nn.Sequential(*_conv_bn_relu(c, extract_channels, 1)) for c in in_channels)
        nodes = []
        for i in range(len(in_channels) - 1):
            deeper = extract_channels if i == len(in_channels) - 2 else node_channels
            nodes.append(nn.Sequential(*_conv_bn_relu(deeper + extract_channels, node_channels, 1)))
        self.nodes = nn.ModuleList(nodes)  # nodes[i] aggregates into level i
        self.head = nn.Sequential(
            *_conv_bn_relu(node_channels, head_channels, 3),
            nn.Dropout(0.5),
            *_conv_bn_relu(head_channels, head_channels, 3),
            nn.Dropout(0.1),
            nn.Conv2d(head_channels, num_classes, 1),
        )

    def level_sizes(self, finest: tuple[int, int]) -> list[tuple[int, int]]:
        """Grid of every level for a finest level of size ``finest`` (``(129, 129)`` -> 129, 65, 33, 17)."""
        return [(_halvings(finest[0], k), _halvings(finest[1], k)) for k in self.halvings]

    def forward(self, aspp_out: torch.Tensor, *levels: torch.Tensor) -> torch.Tensor:
        feats = [*levels, aspp_out]
        if len(feats) != len(self.extract):
            raise ShapeError(
                f"DANDecoder expects the ASPP output and {len(self.extract) - 1} encoder levels, got {len(feats)} "
                "tensors in all; call decoder(aspp_out, layer1, layer2, layer3)"
            )
        sizes = self.level_sizes(tuple(feats[0].shape[-2:]))
        extracted = [conv(_resize(f, s)) for conv, f, s in zip(self.extract, feats, sizes)]
        agg = extracted[-1]
        for i in reversed(range(len(self.nodes))):
            agg = self.nodes[i](torch.cat([_resize(agg, sizes[i]), extracted[i]], dim=1))
        return self.head(agg)

    def accounting_plan(self) -> list[tuple[nn.Conv2d, str | None, tuple[nn.Conv2d | int, ...]]]:
        """The paper accounting's view of this decoder (:func:`freqdense.models.flops.pruned_flops`): the
        extractions (the channels entering the decoder) and the classifier keep their width, the aggregation nodes
        and the head's 3x3 convs lose the decoder rate, by analogy with DeepLab v3+ (whose 48-channel projection
        and ASPP input stay full width, Table 2)."""
        plan: list[tuple[nn.Conv2d, str | None, tuple[nn.Conv2d | int, ...]]] = []
        extract = [seq[0] for seq in self.extract]
        for conv in extract:
            plan.append((conv, None, (conv.in_channels,)))
        deeper: nn.Conv2d = extract[-1]
        for i in reversed(range(len(self.nodes))):
            node = self.nodes[i][0]
            plan.append((node, "decoder", (deeper, extract[i])))
            deeper = node
        conv_a, conv_b, classifier = self.head[0], self.head[4], self.head[8]
        plan += [(conv_a, "decoder", (deeper,)), (conv_b, "decoder", (conv_a,)), (classifier, None, (conv_b,))]
        return plan


class DAN(nn.Module):
    """Backbone (layer1..layer4) + :class:`~freqdense.models.deeplabv3plus.ASPP` + :class:`DANDecoder`.

    Args:
        backbone: a freqdense ResNet built with ``out_indices=(1, 2, 3, 4)``.
        num_classes: output classes.
        aspp_rates: ASPP dilations.
        decoder: the decoder (``decoder(aspp_out, layer1, layer2, layer3)`` -> logits).
        accounting: ``"paper"`` marks the model for :mod:`freqdense.models.flops` (ImageNet classifier counted in the
            encoder parameters, encoder FLOPs on the paper's counter).

    Input ``(B, 3, H, W)`` RGB in [0, 1] (ImageNet normalisation inside); output ``{"semantic": (B, K, H, W)}``.
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
        self.aspp = ASPP(backbone.out_channels[-1], aspp_rates)
        self.decoder = decoder
        register_normalization(self)
        for name, m in self.named_modules():
            if name.startswith("backbone"):
                continue
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    @property
    def encoder_modules(self) -> tuple[str, ...]:
        """Children the paper counts as the encoder (backbone incl. ASPP), as DeepLab v3+."""
        return ("backbone", "aspp")

    @property
    def encoder_output_modules(self) -> tuple[str, ...]:
        """Encoder layers whose filters are decoder input channels (pruning scope,
        :func:`freqdense.pruning.encoder_decoder_scopes`): the ASPP projection. The ResNet levels reach the decoder
        through residual sums, whose channels no single conv owns."""
        return ("aspp.conv1",)

    def forward(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        """Logits at the input size (see the class docstring)."""
        check_shape(image, "B C H W", name="image", C=3)
        if not image.is_floating_point():
            raise ShapeError(f"image must be float RGB in [0, 1], got dtype {image.dtype}; use image.float() / 255")
        *levels, high = self.backbone((image - self.mean) / self.std)
        logits = self.decoder(self.aspp(high), *levels)
        return {"semantic": F.interpolate(logits, size=image.shape[-2:], mode="bilinear", align_corners=True)}


@register_model
def dan(
    *,
    backbone: Literal["resnet50", "resnet101"] = "resnet101",
    output_stride: Literal[8, 16, 32] | None = None,
    num_classes: int = 21,
    decoder_grid: int | None = None,
    grid_mode: Literal["bilinear_align_corners", "area", "bilinear_antialias"] = "bilinear_align_corners",
    multi_grid: Sequence[int] | None = (1, 2, 4),
    aspp_rates: Sequence[int] | None = None,
    extract_channels: int = 32,
    node_channels: int = 128,
    head_channels: int = 128,
    accounting: Accounting = "standard",
    pretrained: str | None = None,
    backbone_kwargs: dict[str, Any] | None = None,
) -> DAN:
    """DAN (Deep Aggregation Net), a **reconstruction** fitted to the spectral-analysis paper's counts (decoder
    11.1 GFLOPs / 0.4 M parameters at 513 on the 129 grid; encoder = DeepLab v3+'s ResNet-101 + ASPP).

    Args:
        backbone: ``"resnet50"`` or ``"resnet101"``.
        output_stride: 16 (default) or 8; 32 keeps layer4's stride (the ``"paper"`` accounting).
        num_classes: output classes (21 PASCAL VOC, 19 Cityscapes, 7 DeepGlobe).
        decoder_grid: run the decoder with its finest level on an ``n x n`` grid (feature truncation, paper Sec. 3.2;
            129 = untruncated at 513, 65 / 33 truncated); the deeper levels shrink with it.
        grid_mode: resizing of the decoder inputs onto the grid (see :func:`freqdense.spectral.resize_to_grid`).
        multi_grid: layer4 dilation multipliers at output stride 8/16 (as ``deeplabv3plus``).
        aspp_rates: ASPP dilations (default by output stride, as ``deeplabv3plus``).
        extract_channels, node_channels, head_channels: decoder widths (32 / 128 / 128 give the paper's budget).
        accounting: ``"standard"`` or ``"paper"`` (output stride 32, no multi-grid; see docs/models/dan.md).
        pretrained: local torchvision-format ImageNet file for the backbone (never downloaded).
        backbone_kwargs: extra backbone keywords (e.g. ``{"base_width": 8}`` for small tests).
    """
    net, output_stride = build_dilated_encoder(
        "dan",
        backbone,
        num_classes=num_classes,
        output_stride=output_stride,
        multi_grid=multi_grid,
        accounting=accounting,
        pretrained=pretrained,
        backbone_kwargs=backbone_kwargs,
        out_indices=(*_LEVELS, 4),
    )
    decoder = DANDecoder(
        (*net.out_channels[:-1], 256),
        net.strides,
        int(num_classes),
        extract_channels=int(extract_channels),
        node_channels=int(node_channels),
        head_channels=int(head_channels),
    )
    model = DAN(
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
