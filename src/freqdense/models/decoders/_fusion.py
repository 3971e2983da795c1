"""Shared pieces of the FPN and SegFormer-style decoders: conv-BN-ReLU, the lazy FreqFusion import, size matching.

``FreqFusion`` (``freqdense.nn.freq_fusion``) fuses a level with one of half its size (floor or ceil per axis; it
pads odd sizes itself), so backbones whose levels do not halve (dilated ResNets) are refused with a hint.
"""

from __future__ import annotations

from typing import Any, Literal

import torch
import torch.nn as nn
import torch.nn.functional as F

from ...errors import ConfigError

__all__ = ["ConvBNReLU", "Fusion", "FUSIONS", "build_freqfusion", "freqfusion_step", "upsample_like"]

Fusion = Literal["bilinear", "freqfusion"]
FUSIONS = ("bilinear", "freqfusion")


class ConvBNReLU(nn.Sequential):
    """``k x k`` convolution (no bias) + BatchNorm + ReLU."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3) -> None:
        super().__init__(
            nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )


def check_fusion(fusion: str) -> str:
    if fusion not in FUSIONS:
        raise ConfigError(f"fusion must be one of {FUSIONS}, got {fusion!r}")
    return fusion


def build_freqfusion(hr_channels: int, lr_channels: int, fusion_kwargs: dict[str, Any] | None) -> nn.Module:
    """``FreqFusion(hr_channels, lr_channels, **fusion_kwargs)``, imported lazily from ``freqdense.nn.freq_fusion``."""
    try:
        from ...nn.freq_fusion import FreqFusion
    except ImportError as err:  # pragma: no cover - only while the module is missing
        raise ConfigError(
            "fusion='freqfusion' needs freqdense.nn.freq_fusion.FreqFusion, which could not be imported "
            f"({err}); use fusion='bilinear' or install a freqdense version that ships it"
        ) from err
    return FreqFusion(int(hr_channels), int(lr_channels), **dict(fusion_kwargs or {}))


def upsample_like(x: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """Bilinear (``align_corners=False``) resize of ``x`` to ``ref``'s spatial size (no-op when equal)."""
    if x.shape[-2:] == ref.shape[-2:]:
        return x
    return F.interpolate(x, size=ref.shape[-2:], mode="bilinear", align_corners=False)


def freqfusion_step(
    module: nn.Module, hr: torch.Tensor, lr: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Run ``module(hr, lr)`` after checking ``lr`` is half of ``hr`` (up to rounding); returns (mask, hr, lr_up)."""
    h, w = hr.shape[-2:]
    th, tw = 2 * lr.shape[-2], 2 * lr.shape[-1]
    if abs(th - h) > 1 or abs(tw - w) > 1:
        raise ConfigError(
            f"FreqFusion fuses a level with twice the resolution of the coarser one; got fine {tuple(hr.shape[-2:])} "
            f"and coarse {tuple(lr.shape[-2:])}. Use a backbone whose levels have strides growing by 2 "
            "(e.g. ResNet with output_stride=32) or fusion='bilinear'"
        )
    mask, hr_out, lr_up = module(hr, lr)  # FreqFusion pads odd sizes itself and crops back to hr's size
    return mask, hr_out, lr_up
