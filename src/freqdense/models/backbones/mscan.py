"""MSCAN, the convolutional-attention encoder of SegNeXt, in plain torch with the official state-dict keys.

Guo et al., "SegNeXt: Rethinking Convolutional Attention Design for Semantic Segmentation", NeurIPS 2022 (official
code: github.com/Visual-Attention-Network/SegNeXt, ``mmseg/models/backbones/mscan.py``; the FreqFusion repository
ships the same module). Four stages at strides 4, 8, 16, 32:

- stage 1 embeds with the stem ``proj`` = 3x3/2 conv (C/2) - BN - GELU - 3x3/2 conv (C) - BN; stages 2-4 with an
  overlapping 3x3/2 conv + BN (``patch_embed{i}.proj`` / ``.norm``);
- each block is ``x + s1 * Attn(BN(x))`` then ``x + s2 * MLP(BN(x))`` with learnable per-channel layer scales
  ``s1, s2`` (``layer_scale_1/2``, initialised to 0.01) and stochastic depth;
- the attention (paper Eq. 1-2) is ``proj_2(MSCA(GELU(proj_1(x)))) + x`` with the multi-scale convolutional attention
  ``MSCA(u) = conv3(d + sum_{k in 7, 11, 21} dw_{k x 1}(dw_{1 x k}(d))) * u``, ``d = dw_{5x5}(u)`` (all depth-wise);
- the MLP is 1x1 conv - 3x3 depth-wise conv - GELU - 1x1 conv;
- every stage ends with a LayerNorm over channels (``norm{i}``).

Module names equal the official ones, so a state dict of the official ``MSCAN`` (an ImageNet ``mscan_*.pth`` after
dropping its ``head.*`` classifier, or the ``backbone.*`` part of an mmseg SegNeXt checkpoint) loads strictly.
The official SyncBN becomes ``nn.BatchNorm2d`` (same keys and statistics; convert it with
``nn.SyncBatchNorm.convert_sync_batchnorm`` for multi-GPU training).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn as nn
from torch.utils.checkpoint import checkpoint

from ..._checks import check_shape
from ...errors import ConfigError
from ._base import register_backbone
from ._pretrained import load_pretrained

__all__ = [
    "MSCAN",
    "MSCAN_VARIANTS",
    "MSCABlock",
    "MultiScaleConvAttention",
    "mscan_b",
    "mscan_l",
    "mscan_s",
    "mscan_t",
]

NormLayer = Callable[[int], nn.Module]

#: Official MSCAN variants (``local_configs/segnext/*/segnext.*.512x512.ade.160k.py`` of the SegNeXt repository):
#: embedding widths, blocks per stage, MLP expansion ratios and the stochastic-depth rate of the ADE20K configs.
MSCAN_VARIANTS: dict[str, dict[str, Any]] = {
    "mscan_t": {"embed_dims": (32, 64, 160, 256), "depths": (3, 3, 5, 2), "mlp_ratios": (8, 8, 4, 4), "drop_path": 0.1},
    "mscan_s": {
        "embed_dims": (64, 128, 320, 512),
        "depths": (2, 2, 4, 2),
        "mlp_ratios": (8, 8, 4, 4),
        "drop_path": 0.1,
    },
    "mscan_b": {
        "embed_dims": (64, 128, 320, 512),
        "depths": (3, 3, 12, 3),
        "mlp_ratios": (8, 8, 4, 4),
        "drop_path": 0.1,
    },
    "mscan_l": {
        "embed_dims": (64, 128, 320, 512),
        "depths": (3, 5, 27, 3),
        "mlp_ratios": (8, 8, 4, 4),
        "drop_path": 0.3,
    },
}


class DropPath(nn.Module):
    """Stochastic depth (Huang et al., ECCV 2016): in training, zero a sample's residual branch with probability
    ``p`` and scale the kept ones by ``1 / (1 - p)``; identity in eval."""

    def __init__(self, p: float = 0.0) -> None:
        super().__init__()
        self.p = float(p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = 1.0 - self.p
        mask = x.new_empty((x.shape[0],) + (1,) * (x.dim() - 1)).bernoulli_(keep)
        return x * mask / keep

    def extra_repr(self) -> str:
        return f"p={self.p}"


class _DepthwiseConv(nn.Module):
    """3x3 depth-wise conv with bias; the extra ``dwconv`` level reproduces the official key ``mlp.dwconv.dwconv``."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.dwconv = nn.Conv2d(channels, channels, 3, padding=1, groups=channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dwconv(x)


class Mlp(nn.Module):
    """``fc1`` (1x1) -> ``dwconv`` (3x3 depth-wise) -> GELU -> dropout -> ``fc2`` (1x1) -> dropout."""

    def __init__(self, channels: int, hidden: int, drop: float = 0.0) -> None:
        super().__init__()
        self.fc1 = nn.Conv2d(channels, hidden, 1)
        self.dwconv = _DepthwiseConv(hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Conv2d(hidden, channels, 1)
        self.drop = nn.Dropout(drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.drop(self.act(self.dwconv(self.fc1(x))))
        return self.drop(self.fc2(x))


class MultiScaleConvAttention(nn.Module):
    """MSCA (SegNeXt Eq. 1): a 5x5 depth-wise conv ``d``, three strip branches (1xk then kx1 depth-wise, k = 7, 11,
    21) added to ``d``, a 1x1 channel mixer, used as attention weights on the input. Official name
    ``AttentionModule``; keys ``conv0``, ``conv{0,1,2}_{1,2}``, ``conv3``."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        c = channels
        self.conv0 = nn.Conv2d(c, c, 5, padding=2, groups=c)
        for i, k in enumerate((7, 11, 21)):
            setattr(self, f"conv{i}_1", nn.Conv2d(c, c, (1, k), padding=(0, k // 2), groups=c))
            setattr(self, f"conv{i}_2", nn.Conv2d(c, c, (k, 1), padding=(k // 2, 0), groups=c))
        self.conv3 = nn.Conv2d(c, c, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        base = self.conv0(x)
        attn = base
        for i in range(3):
            attn = attn + getattr(self, f"conv{i}_2")(getattr(self, f"conv{i}_1")(base))
        return self.conv3(attn) * x


class SpatialAttention(nn.Module):
    """``proj_1`` (1x1) -> GELU -> MSCA (``spatial_gating_unit``) -> ``proj_2`` (1x1), plus the input (Eq. 2)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.proj_1 = nn.Conv2d(channels, channels, 1)
        self.activation = nn.GELU()
        self.spatial_gating_unit = MultiScaleConvAttention(channels)
        self.proj_2 = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj_2(self.spatial_gating_unit(self.activation(self.proj_1(x)))) + x


class MSCABlock(nn.Module):
    """One MSCAN block (official ``Block``): two pre-norm residual branches with layer scale and stochastic depth."""

    def __init__(
        self,
        channels: int,
        mlp_ratio: float,
        *,
        drop: float = 0.0,
        drop_path: float = 0.0,
        norm_layer: NormLayer = nn.BatchNorm2d,
        layer_scale_init: float = 1e-2,
    ) -> None:
        super().__init__()
        self.norm1 = norm_layer(channels)
        self.attn = SpatialAttention(channels)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.norm2 = norm_layer(channels)
        self.mlp = Mlp(channels, int(channels * mlp_ratio), drop)
        self.layer_scale_1 = nn.Parameter(torch.full((channels,), float(layer_scale_init)))
        self.layer_scale_2 = nn.Parameter(torch.full((channels,), float(layer_scale_init)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_path(self.layer_scale_1[:, None, None] * self.attn(self.norm1(x)))
        return x + self.drop_path(self.layer_scale_2[:, None, None] * self.mlp(self.norm2(x)))


class _StemConv(nn.Module):
    """Stage-1 embedding, stride 4: ``proj`` = 3x3/2 conv - BN - GELU - 3x3/2 conv - BN (keys ``proj.0/1/3/4``)."""

    def __init__(self, in_channels: int, channels: int, norm_layer: NormLayer) -> None:
        super().__init__()
        half = channels // 2
        self.proj = nn.Sequential(
            nn.Conv2d(in_channels, half, 3, stride=2, padding=1),
            norm_layer(half),
            nn.GELU(),
            nn.Conv2d(half, channels, 3, stride=2, padding=1),
            norm_layer(channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x)


class _PatchEmbed(nn.Module):
    """Stages 2-4 embedding (official ``OverlapPatchEmbed``): 3x3 stride-2 conv (``proj``) + BN (``norm``)."""

    def __init__(self, in_channels: int, channels: int, norm_layer: NormLayer) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_channels, channels, 3, stride=2, padding=1)
        self.norm = norm_layer(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.proj(x))


class MSCAN(nn.Module):
    """Multi-scale convolutional attention network (SegNeXt encoder) returning a list of stage outputs.

    Args:
        embed_dims: channels of the four stages.
        depths: blocks per stage.
        mlp_ratios: MLP hidden width / channels per stage.
        drop_rate: dropout inside the MLPs (0 in every official config).
        drop_path_rate: stochastic-depth rate, linearly increasing over all blocks from 0 to this value.
        out_indices: stages to return, 0..3 (strides 4, 8, 16, 32). Every stage up to the last requested one is
            built and run; SegNeXt's decoder reads stages 1..3.
        in_channels: input channels (3 for RGB).
        norm_layer: normalisation factory for the convolutional parts (BatchNorm2d; official SyncBN).
        use_checkpoint: recompute every block in the backward pass (``torch.utils.checkpoint``) to save memory, as
            the FreqFusion SegNeXt config does; outputs are unchanged.

    Attributes:
        out_channels, strides, first_conv, checkpoint_ignore_prefixes: the :class:`~._base.Backbone` contract
        (ImageNet ``mscan_*.pth`` files carry a ``head.*`` classifier that is dropped on loading).
    """

    def __init__(
        self,
        embed_dims: Sequence[int] = (32, 64, 160, 256),
        depths: Sequence[int] = (3, 3, 5, 2),
        mlp_ratios: Sequence[float] = (8, 8, 4, 4),
        *,
        drop_rate: float = 0.0,
        drop_path_rate: float = 0.1,
        out_indices: Sequence[int] = (0, 1, 2, 3),
        in_channels: int = 3,
        norm_layer: NormLayer = nn.BatchNorm2d,
        use_checkpoint: bool = False,
    ) -> None:
        super().__init__()
        dims = tuple(int(c) for c in embed_dims)
        depths = tuple(int(d) for d in depths)
        ratios = tuple(float(r) for r in mlp_ratios)
        if not (len(dims) == len(depths) == len(ratios) == 4):
            raise ConfigError(
                f"MSCAN needs 4 stages: embed_dims, depths and mlp_ratios of length 4, got {dims}, {depths}, {ratios}"
            )
        if min(dims) < 2 or dims[0] % 2 or min(depths) < 1 or min(ratios) <= 0:
            raise ConfigError(
                f"MSCAN embed_dims must be >= 2 (the first even: the stem halves it), depths >= 1 and mlp_ratios > 0; "
                f"got {dims}, {depths}, {ratios}"
            )
        out_indices = tuple(int(i) for i in out_indices)
        if (
            not out_indices
            or sorted(set(out_indices)) != list(out_indices)
            or not all(0 <= i <= 3 for i in out_indices)
        ):
            raise ConfigError(
                f"MSCAN out_indices must be a non-empty increasing subset of (0, 1, 2, 3), got {out_indices}"
            )
        if not 0.0 <= float(drop_path_rate) < 1.0 or not 0.0 <= float(drop_rate) < 1.0:
            raise ConfigError(
                f"MSCAN drop_path_rate and drop_rate must be in [0, 1), got {drop_path_rate}, {drop_rate}"
            )
        if int(in_channels) < 1:
            raise ConfigError(f"MSCAN in_channels must be >= 1, got {in_channels!r}")
        self.in_channels = int(in_channels)
        self.embed_dims, self.depths, self.mlp_ratios = dims, depths, ratios
        self.out_indices = out_indices
        self.use_checkpoint = bool(use_checkpoint)
        self.num_stages = max(out_indices) + 1
        self.first_conv = "patch_embed1.proj.0.weight"
        self.out_channels = tuple(dims[i] for i in out_indices)
        self.strides = tuple(2 ** (i + 2) for i in out_indices)
        self.checkpoint_ignore_prefixes = ("head.",) + tuple(
            f"{name}{i + 1}." for i in range(self.num_stages, 4) for name in ("patch_embed", "block", "norm")
        )
        total = sum(depths)  # stochastic depth grows linearly over the blocks (Python floats: meta-device safe)
        rates = [float(drop_path_rate) * k / max(total - 1, 1) for k in range(total)]
        start = 0
        for i in range(self.num_stages):
            embed: nn.Module = (
                _StemConv(self.in_channels, dims[0], norm_layer)
                if i == 0
                else _PatchEmbed(dims[i - 1], dims[i], norm_layer)
            )
            blocks = nn.ModuleList(
                MSCABlock(dims[i], ratios[i], drop=drop_rate, drop_path=rates[start + j], norm_layer=norm_layer)
                for j in range(depths[i])
            )
            start += depths[i]
            setattr(self, f"patch_embed{i + 1}", embed)
            setattr(self, f"block{i + 1}", blocks)
            setattr(self, f"norm{i + 1}", nn.LayerNorm(dims[i]))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """The official initialisation without a pretrained file: convs ``N(0, 2 / fan_out)`` with
        ``fan_out = k_h k_w C_out / groups`` and zero bias, LayerNorm and BatchNorm weight 1, bias 0."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels // m.groups
                nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / fan_out))
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, (nn.LayerNorm, nn.BatchNorm2d, nn.GroupNorm)):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """``(B, in_channels, H, W)`` -> the requested stages, ``(B, embed_dims[i], ~H / 2**(i+2), ~W / 2**(i+2))``."""
        check_shape(x, "B C H W", name="MSCAN input", C=self.in_channels)
        outs = []
        for i in range(self.num_stages):
            x = getattr(self, f"patch_embed{i + 1}")(x)
            for block in getattr(self, f"block{i + 1}"):
                if self.use_checkpoint and torch.is_grad_enabled():
                    x = checkpoint(block, x, use_reentrant=False)
                else:
                    x = block(x)
            # LayerNorm over channels at every pixel (the official code normalises the (B, HW, C) tokens).
            x = getattr(self, f"norm{i + 1}")(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2).contiguous()
            outs.append(x)
        return [outs[i] for i in self.out_indices]


def _build(
    name: str,
    pretrained: str | None,
    embed_dims: Sequence[int] | None,
    depths: Sequence[int] | None,
    mlp_ratios: Sequence[float] | None,
    drop_path_rate: float | None,
    **kwargs: Any,
) -> MSCAN:
    variant = MSCAN_VARIANTS[name]
    model = MSCAN(
        variant["embed_dims"] if embed_dims is None else embed_dims,
        variant["depths"] if depths is None else depths,
        variant["mlp_ratios"] if mlp_ratios is None else mlp_ratios,
        drop_path_rate=variant["drop_path"] if drop_path_rate is None else drop_path_rate,
        **kwargs,
    )
    if pretrained is not None:
        load_pretrained(model, pretrained)
    return model


def _factory(name: str, doc: str) -> Callable[..., MSCAN]:
    def factory(
        *,
        pretrained: str | None = None,
        out_indices: Sequence[int] = (0, 1, 2, 3),
        in_channels: int = 3,
        embed_dims: Sequence[int] | None = None,
        depths: Sequence[int] | None = None,
        mlp_ratios: Sequence[float] | None = None,
        drop_path_rate: float | None = None,
        drop_rate: float = 0.0,
        norm_layer: NormLayer = nn.BatchNorm2d,
        use_checkpoint: bool = False,
    ) -> MSCAN:
        return _build(
            name,
            pretrained,
            embed_dims,
            depths,
            mlp_ratios,
            drop_path_rate,
            out_indices=out_indices,
            in_channels=in_channels,
            drop_rate=drop_rate,
            norm_layer=norm_layer,
            use_checkpoint=use_checkpoint,
        )

    factory.__name__ = factory.__qualname__ = name
    v = MSCAN_VARIANTS[name]
    factory.__doc__ = (
        f"{doc} (embed_dims {v['embed_dims']}, depths {v['depths']}, mlp_ratios {v['mlp_ratios']}, drop_path_rate "
        f"{v['drop_path']}). ``embed_dims`` / ``depths`` / ``mlp_ratios`` override the variant (small test models, "
        "checkpoints of other widths); ``pretrained`` is a local ImageNet ``mscan_*.pth`` / .safetensors file, never "
        "downloaded."
    )
    return register_backbone(factory)


mscan_t = _factory("mscan_t", "MSCAN-T, the SegNeXt-T encoder")
mscan_s = _factory("mscan_s", "MSCAN-S, the SegNeXt-S encoder")
mscan_b = _factory("mscan_b", "MSCAN-B, the SegNeXt-B encoder")
mscan_l = _factory("mscan_l", "MSCAN-L, the SegNeXt-L encoder")
