"""The classical up-samplers of the family: bilinear, nearest, transposed convolution, pixel shuffle.

Bilinear and nearest resize ``lr`` straight to ``hr``'s size (``align_corners=False``), as the decoders always did.
The two learned ones follow mmcv's upsample bricks that the FPN / CARAFE papers' baselines use:

- ``deconv``: ``ConvTranspose2d(C, C, k, stride 2, padding (k-1)//2, output_padding (k-1)//2)``, ``k = 3``
  (mmdetection ``FPN_CARAFE``'s ``upsample_kernel``); key ``upsample_conv``.
- ``pixel_shuffle``: ``Conv2d(C, 4C, k, padding (k-1)//2)`` then ``PixelShuffle(2)`` (Shi et al., CVPR 2016; mmcv
  ``PixelShufflePack``, ``k = 3``); key ``upsample_conv``.
"""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from ...errors import ConfigError
from ._base import Upsampler

__all__ = ["BilinearUpsampler", "DeconvUpsampler", "NearestUpsampler", "PixelShuffleUpsampler"]


class BilinearUpsampler(Upsampler):
    """Bilinear interpolation of ``lr`` to ``hr``'s size (``align_corners=False``); no parameters."""

    name: ClassVar[str] = "bilinear"
    exact_double: ClassVar[bool] = False
    mode: ClassVar[str] = "bilinear"

    def _fuse(self, hr: torch.Tensor, lr: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return hr, self._resize(lr, hr.shape[-2:])

    def _upsample(self, lr: torch.Tensor) -> torch.Tensor:
        return self._resize(lr, (2 * lr.shape[-2], 2 * lr.shape[-1]))

    def _resize(self, x: torch.Tensor, size: tuple[int, int] | torch.Size) -> torch.Tensor:
        if tuple(x.shape[-2:]) == tuple(size):
            return x
        if self.mode == "nearest":
            return F.interpolate(x, size=tuple(size), mode="nearest")
        return F.interpolate(x, size=tuple(size), mode=self.mode, align_corners=False)


class NearestUpsampler(BilinearUpsampler):
    """Nearest-neighbour up-sampling of ``lr`` to ``hr``'s size; no parameters."""

    name: ClassVar[str] = "nearest"
    mode: ClassVar[str] = "nearest"


class DeconvUpsampler(Upsampler):
    """Transposed ``k x k`` convolution with stride 2, ``C_lr -> C_lr`` channels: ``C^2 k^2 + C`` parameters."""

    name: ClassVar[str] = "deconv"

    def __init__(self, hr_channels: int, lr_channels: int, *, kernel_size: int = 3) -> None:
        super().__init__(hr_channels, lr_channels)
        k = int(kernel_size)
        if k < 1 or k % 2 == 0:
            raise ConfigError(f"deconv: kernel_size must be odd and >= 1, got {kernel_size!r}")
        c = self.lr_channels
        self.upsample_conv = nn.ConvTranspose2d(c, c, k, stride=2, padding=(k - 1) // 2, output_padding=1)

    def _fuse(self, hr: torch.Tensor, lr: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return hr, self.upsample_conv(lr)

    def _upsample(self, lr: torch.Tensor) -> torch.Tensor:
        return self.upsample_conv(lr)


class PixelShuffleUpsampler(Upsampler):
    """``k x k`` convolution to ``4 C_lr`` channels, then ``PixelShuffle(2)``."""

    name: ClassVar[str] = "pixel_shuffle"

    def __init__(self, hr_channels: int, lr_channels: int, *, kernel_size: int = 3) -> None:
        super().__init__(hr_channels, lr_channels)
        k = int(kernel_size)
        if k < 1 or k % 2 == 0:
            raise ConfigError(f"pixel_shuffle: kernel_size must be odd and >= 1, got {kernel_size!r}")
        c = self.lr_channels
        self.upsample_conv = nn.Conv2d(c, 4 * c, k, padding=(k - 1) // 2)

    def _fuse(self, hr: torch.Tensor, lr: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return hr, self._upsample(lr)

    def _upsample(self, lr: torch.Tensor) -> torch.Tensor:
        return F.pixel_shuffle(self.upsample_conv(lr), 2)
