"""Shared pieces of the FPN and SegFormer-style decoders: conv-BN-ReLU, the up-sampler family, size matching.

A decoder's ``fusion`` names any member of :mod:`freqdense.nn.upsamplers` (bilinear, nearest, deconv, pixel_shuffle,
carafe, indexnet, a2u, fade, sapa, dysample*, freqfusion). Every member fuses a level with one of half its size (floor
or ceil per axis), so backbones whose levels do not halve (dilated ResNets) are refused with a hint.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from ...errors import ConfigError
from ...nn.upsamplers import UPSAMPLERS, build_upsampler, check_upsampler

__all__ = ["ConvBNReLU", "Fusion", "FUSIONS", "build_fusion", "fusion_step", "upsample_like"]

#: A member name of the up-sampler family (``FUSIONS``).
Fusion = str
FUSIONS: tuple[str, ...] = UPSAMPLERS


class ConvBNReLU(nn.Sequential):
    """``k x k`` convolution (no bias) + BatchNorm + ReLU."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3) -> None:
        super().__init__(
            nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )


def check_fusion(fusion: str) -> str:
    """``fusion`` if it names a member of the up-sampler family, else a ConfigError listing the family."""
    try:
        return check_upsampler(fusion)
    except ConfigError as err:
        raise ConfigError(f"decoder fusion: {err}") from None


def build_fusion(
    fusion: str,
    hr_channels: int,
    lr_channels: int,
    fusion_kwargs: dict[str, Any] | None,
    *,
    compressed_channels: int | None = None,
) -> nn.Module:
    """Build up-sampler ``fusion`` for one decoder step; ``compressed_channels`` is the decoder's default for
    FreqFusion (keys in ``fusion_kwargs`` win), ignored by the other members."""
    kwargs = dict(fusion_kwargs or {})
    if fusion == "freqfusion" and compressed_channels is not None:
        kwargs = {"compressed_channels": max(1, int(compressed_channels)), **kwargs}
    return build_upsampler(fusion, hr_channels, lr_channels, **kwargs)


def upsample_like(x: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """Bilinear (``align_corners=False``) resize of ``x`` to ``ref``'s spatial size (no-op when equal)."""
    if x.shape[-2:] == ref.shape[-2:]:
        return x
    return F.interpolate(x, size=ref.shape[-2:], mode="bilinear", align_corners=False)


def fusion_step(module: nn.Module, hr: torch.Tensor, lr: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Run ``module(hr, lr)``, first checking ``lr`` is half of ``hr`` (up to rounding) for the members that need it
    (bilinear and nearest resize to any size, e.g. between the equal-size levels of a dilated backbone)."""
    h, w = hr.shape[-2:]
    th, tw = 2 * lr.shape[-2], 2 * lr.shape[-1]
    if getattr(module, "exact_double", True) and (abs(th - h) > 1 or abs(tw - w) > 1):
        name = getattr(module, "name", type(module).__name__)
        raise ConfigError(
            f"the {name} up-sampler fuses a level with twice the resolution of the coarser one; got fine "
            f"{tuple(hr.shape[-2:])} and coarse {tuple(lr.shape[-2:])}. Use a backbone whose levels have strides "
            "growing by 2 (e.g. ResNet with output_stride=32) or fusion='bilinear'"
        )
    return module(hr, lr)
