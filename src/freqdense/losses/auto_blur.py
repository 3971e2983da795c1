"""Module form of :func:`freqdense.ops.auto_blur` (Chen et al., WACV 2023, Sec. 4.4;
docs/reference_code.md#auto-blur)."""

from __future__ import annotations

import torch
import torch.nn as nn

from ..errors import ConfigError
from ..ops.blur import auto_blur

__all__ = ["AutoBlur"]


class AutoBlur(nn.Module):
    """Frequency-adaptive Gaussian blur of the loss images (no parameters; defaults of the official code).

    Args:
        hf_pixel_thresh: lambda (0.2).
        hf_area_percent: eta in percent (60).
        area_kernel: s (9, odd).
        blur_kernel: Gaussian size (11).
        blur_sigma: Gaussian sigma (5.0).

    Examples:
        >>> AutoBlur()(torch.rand(1, 3, 24, 80)).shape
        torch.Size([1, 3, 24, 80])
    """

    def __init__(
        self,
        hf_pixel_thresh: float = 0.2,
        hf_area_percent: float = 60,
        area_kernel: int = 9,
        blur_kernel: int = 11,
        blur_sigma: float = 5.0,
    ) -> None:
        super().__init__()
        if area_kernel < 1 or area_kernel % 2 == 0:
            raise ConfigError(f"AutoBlur area_kernel must be odd and positive (paper 9), got {area_kernel}")
        self.hf_pixel_thresh = hf_pixel_thresh
        self.hf_area_percent = hf_area_percent
        self.area_kernel = area_kernel
        self.blur_kernel = blur_kernel
        self.blur_sigma = blur_sigma

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """``(B, C, H, W)`` -> auto-blurred image of the same shape."""
        return auto_blur(
            image, self.hf_pixel_thresh, self.hf_area_percent, self.area_kernel, self.blur_kernel, self.blur_sigma
        )
