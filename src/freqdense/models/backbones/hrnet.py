"""HRNet backbones (HRNetV2 layouts) in plain torch, key-compatible with the official HRNet release.

Wang et al., "Deep High-Resolution Representation Learning for Visual Recognition", TPAMI 2020. Layouts follow
the stage configs used by Multi-Task-Learning-PyTorch (``models/model_info/*.yml``) and HRNet-Image-Classification;
see docs/models/backbones.md and docs/reference_code.md#hrnet. The network keeps four parallel
branches (strides 4, 8, 16, 32) and repeatedly exchanges information between them ("fuse layers").
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..._checks import check_shape
from ...errors import ConfigError
from ._base import register_backbone
from ._pretrained import load_pretrained
from .resnet import BasicBlock, Bottleneck, make_res_layer

__all__ = [
    "HRNet",
    "HRNetSpec",
    "HRNetStage",
    "HighResolutionModule",
    "hrnet_w18",
    "hrnet_w18_small",
    "hrnet_w48",
]

#: Official HRNet BatchNorm momentum (PyTorch convention: weight of the new batch statistic).
BN_MOMENTUM = 0.01


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, momentum=BN_MOMENTUM)


def _conv3x3(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)


@dataclass(frozen=True)
class HRNetStage:
    """One multi-branch stage: ``num_modules`` HighResolutionModules of BasicBlocks."""

    num_modules: int
    num_blocks: tuple[int, ...]
    num_channels: tuple[int, ...]


@dataclass(frozen=True)
class HRNetSpec:
    """Full layout: stage 1 = ``stem_blocks`` Bottlenecks (64 planes -> 256 ch), then stages 2, 3, 4."""

    stem_blocks: int
    stages: tuple[HRNetStage, HRNetStage, HRNetStage]


def _v2(width: int, blocks: int, modules: tuple[int, int, int], stem_blocks: int) -> HRNetSpec:
    ch = (width, 2 * width, 4 * width, 8 * width)
    return HRNetSpec(
        stem_blocks,
        tuple(HRNetStage(m, (blocks,) * (i + 2), ch[: i + 2]) for i, m in enumerate(modules)),  # type: ignore[arg-type]
    )


#: HRNet-W18-Small-v2 (what Multi-Task-Learning-PyTorch calls ``hrnet_w18``).
HRNET_W18_SMALL = _v2(18, blocks=2, modules=(1, 3, 2), stem_blocks=2)
#: HRNetV2-W18 (full).
HRNET_W18 = _v2(18, blocks=4, modules=(1, 4, 3), stem_blocks=4)
#: HRNetV2-W48.
HRNET_W48 = _v2(48, blocks=4, modules=(1, 4, 3), stem_blocks=4)


class HighResolutionModule(nn.Module):
    """Parallel branches of BasicBlocks followed by all-to-all fusion (official ``HighResolutionModule``).

    Fusion into branch ``i`` sums, over branches ``j``: the identity (``j == i``); for ``j > i`` a 1x1 conv + BN
    then bilinear upsampling (``align_corners=False``) to branch ``i``'s size; for ``j < i`` a chain of ``i - j``
    3x3 stride-2 conv + BN, with ReLU after all but the last. Each sum then goes through ReLU.
    The input list is never modified.
    """

    def __init__(self, num_blocks: tuple[int, ...], num_channels: tuple[int, ...]) -> None:
        super().__init__()
        if len(num_blocks) != len(num_channels):
            raise ConfigError(f"HRNet module: {len(num_blocks)} block counts for {len(num_channels)} branches")
        self.num_channels = tuple(num_channels)
        norm = partial(nn.BatchNorm2d, momentum=BN_MOMENTUM)
        self.branches = nn.ModuleList(
            make_res_layer(BasicBlock, c, c, n, norm_layer=norm) for n, c in zip(num_blocks, num_channels)
        )
        fuse = []
        for i, ci in enumerate(num_channels):
            row = []
            for j, cj in enumerate(num_channels):
                if j > i:
                    row.append(nn.Sequential(nn.Conv2d(cj, ci, 1, bias=False), _bn(ci)))
                elif j == i:
                    row.append(nn.Identity())
                else:
                    steps = []
                    for k in range(i - j):
                        if k == i - j - 1:
                            steps.append(nn.Sequential(_conv3x3(cj, ci, 2), _bn(ci)))
                        else:
                            steps.append(nn.Sequential(_conv3x3(cj, cj, 2), _bn(cj), nn.ReLU(inplace=True)))
                    row.append(nn.Sequential(*steps))
            fuse.append(nn.ModuleList(row))
        self.fuse_layers = nn.ModuleList(fuse)

    def forward(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        xs = [branch(x) for branch, x in zip(self.branches, xs)]
        out = []
        for i, row in enumerate(self.fuse_layers):
            size = xs[i].shape[-2:]
            y = None
            for j, (layer, x) in enumerate(zip(row, xs)):
                z = layer(x)
                if j > i:
                    z = F.interpolate(z, size=size, mode="bilinear", align_corners=False)
                y = z if y is None else y + z
            out.append(F.relu(y))
        return out


def _transition(pre: tuple[int, ...], cur: tuple[int, ...]) -> nn.ModuleList:
    """Official ``_make_transition_layer``: adapt existing branches, add new ones from the lowest-resolution one."""
    layers: list[nn.Module] = []
    for i, c in enumerate(cur):
        if i < len(pre):
            if c != pre[i]:
                layers.append(nn.Sequential(_conv3x3(pre[i], c), _bn(c), nn.ReLU(inplace=True)))
            else:
                layers.append(nn.Identity())
        else:
            steps = []
            for k in range(i + 1 - len(pre)):
                cin = pre[-1]
                cout = c if k == i - len(pre) else cin
                steps.append(nn.Sequential(_conv3x3(cin, cout, 2), _bn(cout), nn.ReLU(inplace=True)))
            layers.append(nn.Sequential(*steps))
    return nn.ModuleList(layers)


class HRNet(nn.Module):
    """HRNet trunk returning the four stage-4 branch outputs (strides 4, 8, 16, 32); no classification head.

    Args:
        spec: the layout (:data:`HRNET_W18_SMALL`, :data:`HRNET_W18`, :data:`HRNET_W48` or your own).
        in_channels: input channels (3 for RGB).

    Convolutions are initialised N(0, 0.001) and BN to (1, 0), as the reference does before loading ImageNet
    weights. Any input size works (odd sizes give ``ceil`` branch sizes; the fuse upsampling targets exact sizes).
    """

    def __init__(self, spec: HRNetSpec, *, in_channels: int = 3) -> None:
        super().__init__()
        if int(in_channels) < 1:
            raise ConfigError(f"HRNet in_channels must be >= 1, got {in_channels!r}")
        self.in_channels = int(in_channels)
        self.first_conv = "conv1.weight"
        self.checkpoint_ignore_prefixes: tuple[str, ...] = ()
        self.spec = spec
        self.conv1 = _conv3x3(in_channels, 64, 2)
        self.bn1 = _bn(64)
        self.conv2 = _conv3x3(64, 64, 2)
        self.bn2 = _bn(64)
        self.relu = nn.ReLU(inplace=True)
        self.layer1 = make_res_layer(
            Bottleneck, 64, 64, spec.stem_blocks, norm_layer=partial(nn.BatchNorm2d, momentum=BN_MOMENTUM)
        )
        pre: tuple[int, ...] = (64 * Bottleneck.expansion,)
        for s, stage in enumerate(spec.stages, start=2):
            self.add_module(f"transition{s - 1}", _transition(pre, stage.num_channels))
            modules = [HighResolutionModule(stage.num_blocks, stage.num_channels) for _ in range(stage.num_modules)]
            self.add_module(f"stage{s}", nn.Sequential(*modules))
            pre = stage.num_channels
        self.out_channels = tuple(pre)
        self.strides = tuple(4 * 2**i for i in range(len(pre)))

        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, std=0.001)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Return ``[(B, C_k, ~H / s_k, ~W / s_k)]`` for ``C_k = out_channels[k]``, ``s_k = strides[k]``."""
        check_shape(x, "B C H W", name="HRNet input", C=self.in_channels)
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.relu(self.bn2(self.conv2(x)))
        xs = [self.layer1(x)]
        for s in range(2, 2 + len(self.spec.stages)):
            transition = getattr(self, f"transition{s - 1}")
            xs = [t(xs[i] if i < len(xs) else xs[-1]) for i, t in enumerate(transition)]
            xs = getattr(self, f"stage{s}")(xs)
        return xs


def _build(spec: HRNetSpec, pretrained: str | None, in_channels: int) -> HRNet:
    model = HRNet(spec, in_channels=in_channels)
    if pretrained is not None:
        load_pretrained(model, pretrained)
    return model


@register_backbone
def hrnet_w18_small(*, pretrained: str | None = None, in_channels: int = 3) -> HRNet:
    """HRNet-W18-Small-v2 (3.861 M parameters; ``hrnet_w18_small_model_v2.pth`` format)."""
    return _build(HRNET_W18_SMALL, pretrained, in_channels)


@register_backbone
def hrnet_w18(*, pretrained: str | None = None, in_channels: int = 3) -> HRNet:
    """HRNetV2-W18 (9.562 M parameters; ``hrnetv2_w18_imagenet_pretrained.pth`` format)."""
    return _build(HRNET_W18, pretrained, in_channels)


@register_backbone
def hrnet_w48(*, pretrained: str | None = None, in_channels: int = 3) -> HRNet:
    """HRNetV2-W48 (65.325 M parameters; ``hrnetv2_w48_imagenet_pretrained.pth`` format)."""
    return _build(HRNET_W48, pretrained, in_channels)
