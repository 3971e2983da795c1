"""ResNet-18/34/50/101 feature extractors in plain torch, with torchvision's state-dict key layout.

He et al., "Deep Residual Learning for Image Recognition", CVPR 2016. The module names (``conv1``, ``bn1``,
``layer1``..``layer4``, blocks with ``conv1..3``/``bn1..3`` and ``downsample.0/.1``) equal torchvision's, so
torchvision ImageNet files load with :func:`load_pretrained`; the classifier (``fc``) is never built.
Dilated variants follow torchvision's ``replace_stride_with_dilation``; see docs/models/backbones.md.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal

import torch
import torch.nn as nn

from ..._checks import check_shape
from ...errors import ConfigError
from ._base import register_backbone
from ._pretrained import load_pretrained

__all__ = ["BasicBlock", "Bottleneck", "ResNet", "resnet18", "resnet34", "resnet50", "resnet101"]

NormLayer = Callable[[int], nn.Module]


def _conv3x3(cin: int, cout: int, stride: int = 1, dilation: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=dilation, dilation=dilation, bias=False)


def _conv1x1(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with an identity (or 1x1 projection) shortcut; ``expansion = 1``.

    Unlike torchvision (which refuses ``dilation > 1`` here), both 3x3 convs use ``dilation``, so ResNet-18/34
    support output strides 8 and 16.
    """

    expansion = 1

    def __init__(
        self,
        inplanes: int,
        planes: int,
        stride: int = 1,
        downsample: nn.Module | None = None,
        dilation: int = 1,
        norm_layer: NormLayer = nn.BatchNorm2d,
    ) -> None:
        super().__init__()
        self.conv1 = _conv3x3(inplanes, planes, stride, dilation)
        self.bn1 = norm_layer(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = _conv3x3(planes, planes, 1, dilation)
        self.bn2 = norm_layer(planes)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (carries stride and dilation, the "ResNet v1.5" placement), 1x1 expand; ``expansion = 4``."""

    expansion = 4

    def __init__(
        self,
        inplanes: int,
        planes: int,
        stride: int = 1,
        downsample: nn.Module | None = None,
        dilation: int = 1,
        norm_layer: NormLayer = nn.BatchNorm2d,
    ) -> None:
        super().__init__()
        self.conv1 = _conv1x1(inplanes, planes)
        self.bn1 = norm_layer(planes)
        self.conv2 = _conv3x3(planes, planes, stride, dilation)
        self.bn2 = norm_layer(planes)
        self.conv3 = _conv1x1(planes, planes * self.expansion)
        self.bn3 = norm_layer(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


def make_res_layer(
    block: type[BasicBlock] | type[Bottleneck],
    inplanes: int,
    planes: int,
    blocks: int,
    *,
    stride: int = 1,
    dilation: int = 1,
    first_dilation: int | None = None,
    norm_layer: NormLayer = nn.BatchNorm2d,
) -> nn.Sequential:
    """A stage of ``blocks`` residual blocks; the first carries ``stride`` and a projection shortcut if needed.

    ``first_dilation`` (default ``dilation``) is the first block's dilation: torchvision gives the first block of a
    stage whose stride was replaced by dilation the *previous* stage's dilation.
    """
    downsample = None
    if stride != 1 or inplanes != planes * block.expansion:
        out = planes * block.expansion
        downsample = nn.Sequential(_conv1x1(inplanes, out, stride), norm_layer(out))
    first = dilation if first_dilation is None else first_dilation
    layers = [block(inplanes, planes, stride, downsample, first, norm_layer)]
    layers += [block(planes * block.expansion, planes, 1, None, dilation, norm_layer) for _ in range(1, blocks)]
    return nn.Sequential(*layers)


class ResNet(nn.Module):
    """ResNet trunk returning a list of intermediate feature maps (no pooling head, no ``fc``).

    Args:
        block: ``BasicBlock`` (ResNet-18/34) or ``Bottleneck`` (ResNet-50/101).
        layers: number of blocks in layer1..layer4.
        output_stride: 32 (plain), 16 (layer4 dilated by 2) or 8 (layer3 by 2, layer4 by 4).
        out_indices: which features to return: 0 = stem after ReLU (stride 2), 1..4 = layer1..layer4 (strides
            4, 8, 16, 32 at output stride 32). Stages after the last requested one are not built.
        base_width: stem channels; stage ``i`` has ``base_width * 2**(i-1)`` planes (64 = torchvision widths).
        in_channels: input channels (3 for RGB; 1 for depth, 6 for stacked frames, ...).
        norm_layer: normalisation layer factory called with the channel count.
        deep_stem: the "v1c" stem (Bag of Tricks, He et al. CVPR 2019; the ``resnet101_v1c`` of SA-Gate and the
            official FAFNet code): ``conv1`` = 3x3/2 (``base_width``) - BN - ReLU - 3x3 (``base_width``) - BN - ReLU
            - 3x3 (``2 base_width``), keys ``conv1.0/.1/.3/.4/.6``, then ``bn1`` (``2 base_width``), ReLU and the
            max-pool; layer1 takes ``2 base_width`` channels (128). torchvision ImageNet files do not fit it.
    """

    def __init__(
        self,
        block: type[BasicBlock] | type[Bottleneck],
        layers: Sequence[int],
        *,
        output_stride: Literal[8, 16, 32] = 32,
        out_indices: Sequence[int] = (1, 2, 3, 4),
        base_width: int = 64,
        in_channels: int = 3,
        norm_layer: NormLayer = nn.BatchNorm2d,
        deep_stem: bool = False,
    ) -> None:
        super().__init__()
        if output_stride not in (8, 16, 32):
            raise ConfigError(f"ResNet output_stride must be 8, 16 or 32, got {output_stride!r}")
        out_indices = tuple(int(i) for i in out_indices)
        valid = all(0 <= i <= 4 for i in out_indices) and sorted(set(out_indices)) == list(out_indices)
        if not out_indices or not valid:
            raise ConfigError(
                f"ResNet out_indices must be a non-empty increasing subset of (0, 1, 2, 3, 4), got {out_indices!r}"
            )
        if int(base_width) < 1 or int(in_channels) < 1:
            raise ConfigError(f"ResNet base_width and in_channels must be >= 1, got {base_width!r}, {in_channels!r}")
        if len(layers) != 4:
            raise ConfigError(f"ResNet needs 4 stage depths, got {list(layers)!r}")

        self.in_channels = int(in_channels)
        self.out_indices = out_indices
        self.output_stride = output_stride
        self.deep_stem = bool(deep_stem)
        self.first_conv = "conv1.0.weight" if self.deep_stem else "conv1.weight"
        last = max(out_indices)

        stem_out = 2 * base_width if self.deep_stem else base_width
        if self.deep_stem:
            self.conv1: nn.Module = nn.Sequential(
                _conv3x3(in_channels, base_width, 2),
                norm_layer(base_width),
                nn.ReLU(inplace=True),
                _conv3x3(base_width, base_width),
                norm_layer(base_width),
                nn.ReLU(inplace=True),
                _conv3x3(base_width, stem_out),
            )
        else:
            self.conv1 = nn.Conv2d(in_channels, base_width, 7, stride=2, padding=3, bias=False)
        self.bn1 = norm_layer(stem_out)
        self.relu = nn.ReLU(inplace=True)
        channels = [stem_out]
        strides = [2]
        if last >= 1:
            self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        # torchvision's replace_stride_with_dilation for layer2..4
        dilate = {32: (False, False, False), 16: (False, False, True), 8: (False, True, True)}[output_stride]
        inplanes, dilation, stride_now = stem_out, 1, 4
        for i in range(1, last + 1):
            planes = base_width * 2 ** (i - 1)
            stride = 1 if i == 1 else 2
            previous = dilation
            if i >= 2 and dilate[i - 2]:
                dilation, stride = dilation * stride, 1
            stride_now *= stride
            layer = make_res_layer(
                block,
                inplanes,
                planes,
                layers[i - 1],
                stride=stride,
                dilation=dilation,
                first_dilation=previous,
                norm_layer=norm_layer,
            )
            self.add_module(f"layer{i}", layer)
            inplanes = planes * block.expansion
            channels.append(inplanes)
            strides.append(stride_now)
        self.out_channels = tuple(channels[i] for i in out_indices)
        self.strides = tuple(strides[i] for i in out_indices)
        self.checkpoint_ignore_prefixes = tuple(f"layer{i}." for i in range(last + 1, 5))

        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Return the requested features, ``(B, out_channels[k], ~H / strides[k], ~W / strides[k])`` each."""
        check_shape(x, "B C H W", name="ResNet input", C=self.in_channels)
        x = self.relu(self.bn1(self.conv1(x)))
        feats = [x]
        last = max(self.out_indices)
        if last >= 1:
            x = self.maxpool(x)
            for i in range(1, last + 1):
                x = getattr(self, f"layer{i}")(x)
                feats.append(x)
        return [feats[i] for i in self.out_indices]


def _build(
    block: type[BasicBlock] | type[Bottleneck],
    layers: tuple[int, int, int, int],
    pretrained: str | None,
    **kwargs: object,
) -> ResNet:
    model = ResNet(block, layers, **kwargs)  # type: ignore[arg-type]
    if pretrained is not None and model.deep_stem:
        raise ConfigError(
            f"pretrained={pretrained!r} with deep_stem=True: torchvision ImageNet files have the 7x7 stem; build "
            "without pretrained and load a v1c (deep stem) state dict yourself, or use deep_stem=False"
        )
    if pretrained is not None:
        load_pretrained(model, pretrained)
    return model


@register_backbone
def resnet18(
    *,
    pretrained: str | None = None,
    output_stride: Literal[8, 16, 32] = 32,
    out_indices: Sequence[int] = (1, 2, 3, 4),
    base_width: int = 64,
    in_channels: int = 3,
    norm_layer: NormLayer = nn.BatchNorm2d,
    deep_stem: bool = False,
) -> ResNet:
    """ResNet-18 (BasicBlock, 2-2-2-2). ``pretrained`` is a local torchvision-format file, never downloaded."""
    return _build(
        BasicBlock,
        (2, 2, 2, 2),
        pretrained,
        output_stride=output_stride,
        out_indices=out_indices,
        base_width=base_width,
        in_channels=in_channels,
        norm_layer=norm_layer,
        deep_stem=deep_stem,
    )


@register_backbone
def resnet34(
    *,
    pretrained: str | None = None,
    output_stride: Literal[8, 16, 32] = 32,
    out_indices: Sequence[int] = (1, 2, 3, 4),
    base_width: int = 64,
    in_channels: int = 3,
    norm_layer: NormLayer = nn.BatchNorm2d,
    deep_stem: bool = False,
) -> ResNet:
    """ResNet-34 (BasicBlock, 3-4-6-3). ``pretrained`` is a local torchvision-format file, never downloaded."""
    return _build(
        BasicBlock,
        (3, 4, 6, 3),
        pretrained,
        output_stride=output_stride,
        out_indices=out_indices,
        base_width=base_width,
        in_channels=in_channels,
        norm_layer=norm_layer,
        deep_stem=deep_stem,
    )


@register_backbone
def resnet50(
    *,
    pretrained: str | None = None,
    output_stride: Literal[8, 16, 32] = 32,
    out_indices: Sequence[int] = (1, 2, 3, 4),
    base_width: int = 64,
    in_channels: int = 3,
    norm_layer: NormLayer = nn.BatchNorm2d,
    deep_stem: bool = False,
) -> ResNet:
    """ResNet-50 (Bottleneck, 3-4-6-3). ``pretrained`` is a local torchvision-format file, never downloaded."""
    return _build(
        Bottleneck,
        (3, 4, 6, 3),
        pretrained,
        output_stride=output_stride,
        out_indices=out_indices,
        base_width=base_width,
        in_channels=in_channels,
        norm_layer=norm_layer,
        deep_stem=deep_stem,
    )


@register_backbone
def resnet101(
    *,
    pretrained: str | None = None,
    output_stride: Literal[8, 16, 32] = 32,
    out_indices: Sequence[int] = (1, 2, 3, 4),
    base_width: int = 64,
    in_channels: int = 3,
    norm_layer: NormLayer = nn.BatchNorm2d,
    deep_stem: bool = False,
) -> ResNet:
    """ResNet-101 (Bottleneck, 3-4-23-3). ``pretrained`` is a local torchvision-format file, never downloaded."""
    return _build(
        Bottleneck,
        (3, 4, 23, 3),
        pretrained,
        output_stride=output_stride,
        out_indices=out_indices,
        base_width=base_width,
        in_channels=in_channels,
        norm_layer=norm_layer,
        deep_stem=deep_stem,
    )
