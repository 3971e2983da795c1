"""Auto-Blur: frequency-adaptive Gaussian blur of the images the photometric loss sees.

Chen et al., "Frequency-Aware Self-Supervised Monocular Depth Estimation", WACV 2023, Sec. 4.4, Eq. 18-21.
Semantics of the official code (xingyuuchen/freq-aware-depth @ b33ca8e, ``networks/auto_blur.py``), written down in
docs/reference_code.md#auto-blur: forward-difference gradient summed over channels, strict thresholds, a 9x9 box average
that counts the zero padding (so the 1-pixel image frame is never blurred), a reflect-padded 11x11 Gaussian with
sigma 5, and a per-pixel blend. Deviations: docs/methods/freq_aware_depth.md.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .._checks import check_shape
from ..errors import ConfigError, ShapeError
from .frequency import gaussian_blur2d, gaussian_kernel1d

__all__ = ["auto_blur", "auto_blur_weight"]


def _forward_gradient_norm(image: torch.Tensor) -> torch.Tensor:
    """``(B, 1, H, W)`` channel-summed forward-difference magnitude, equal to
    ``forward_gradient_magnitude(image)`` (same operations in the same order, one pass fewer over the image).

    The column / row without a forward neighbour gets a zero difference; ``sqrt`` of a square below the smallest
    normal float is taken at that float (as ``forward_gradient_magnitude`` does), which also keeps the gradient
    finite at zero.
    """
    b, _, h, w = image.shape
    gu = image.new_zeros(b, 1, h, w)
    gv = image.new_zeros(b, 1, h, w)
    torch.sum((image[..., :, :-1] - image[..., :, 1:]).abs_(), dim=1, keepdim=True, out=gu[..., :, :-1])
    torch.sum((image[..., :-1, :] - image[..., 1:, :]).abs_(), dim=1, keepdim=True, out=gv[..., :-1, :])
    sq = gu.mul_(gu).add_(gv.mul_(gv))
    positive = sq > 0
    return sq.clamp_min_(torch.finfo(sq.dtype).tiny).sqrt_().mul_(positive)


def _reflect_gaussian_blur(image: torch.Tensor, kernel_size: int, sigma: float) -> torch.Tensor:
    """``gaussian_blur2d(image, kernel_size, sigma, padding_mode="reflect")`` for ``(B, C, H, W)`` images.

    The same two 1-D convolutions (horizontal, then vertical) with the same kernel, run as depthwise convolutions on a
    channels-last tensor: on CPU that is one vectorised pass per direction instead of ``B * C`` single-channel
    convolutions (about 10x faster at (8, 3, 96, 320), one thread), and the sums are taken in the same order
    (tests/ops/test_auto_blur.py checks the two against each other). Only float32 on CPU takes this path.
    """
    c, (h, w) = image.shape[1], image.shape[-2:]
    half = kernel_size // 2
    if half >= h or half >= w:
        raise ShapeError(
            f"auto_blur: reflect padding of {half} px needs an image larger than that, got {h}x{w}; use a smaller "
            "blur_kernel"
        )
    if image.device.type != "cpu" or image.dtype != torch.float32:
        # The depthwise kernels of other devices / dtypes may sum in another order: keep the reference path.
        return gaussian_blur2d(image, kernel_size, sigma, padding_mode="reflect")
    g = gaussian_kernel1d(kernel_size, sigma, dtype=image.dtype, device=image.device)
    x = F.pad(image, (half, half, half, half), mode="reflect").contiguous(memory_format=torch.channels_last)
    x = F.conv2d(x, g.view(1, 1, 1, kernel_size).expand(c, 1, 1, kernel_size), groups=c)
    x = F.conv2d(x, g.view(1, 1, kernel_size, 1).expand(c, 1, kernel_size, 1), groups=c)
    return x.contiguous()


def auto_blur_weight(
    image: torch.Tensor,
    hf_pixel_thresh: float = 0.2,
    hf_area_percent: float = 60,
    area_kernel: int = 9,
) -> torch.Tensor:
    """Blend weight of Auto-Blur (Eq. 20-21): the share of high-frequency pixels around each pixel, where above eta.

    ``hf = [grad_+ > lambda]`` with ``grad_+`` the channel-summed forward-difference magnitude (Eq. 8);
    ``r = AvgPool_s(hf)`` (zero padding counted); ``w = r * [r > eta]`` with ``eta = hf_area_percent / 100``.

    Args:
        image: ``(B, C, H, W)`` RGB in [0, 1].
        hf_pixel_thresh: lambda, on the channel-summed gradient (range [0, 3 sqrt(2)] for RGB).
        hf_area_percent: eta in percent.
        area_kernel: s, odd size of the box window.

    Returns:
        ``(B, 1, H, W)`` weights in ``{0} U (eta, 1]``, no gradient.

    Examples:
        >>> auto_blur_weight(torch.full((1, 3, 16, 16), 0.5)).abs().sum().item()
        0.0
    """
    check_shape(image, "B C H W", name="image")
    if not image.is_floating_point():
        raise ShapeError(f"auto_blur image must be floating point, got {image.dtype}; convert with image.float() / 255")
    if not isinstance(area_kernel, int) or area_kernel < 1 or area_kernel % 2 == 0:
        raise ConfigError(f"auto_blur area_kernel must be an odd positive int (paper s = 9), got {area_kernel!r}")
    with torch.no_grad():
        hf = (_forward_gradient_norm(image) > hf_pixel_thresh).to(image.dtype)
        ratio = F.avg_pool2d(hf, area_kernel, stride=1, padding=area_kernel // 2, count_include_pad=True)
        return ratio * (ratio > hf_area_percent / 100.0)


def auto_blur(
    image: torch.Tensor,
    hf_pixel_thresh: float = 0.2,
    hf_area_percent: float = 60,
    area_kernel: int = 9,
    blur_kernel: int = 11,
    blur_sigma: float = 5.0,
) -> torch.Tensor:
    """Auto-Blur (Sec. 4.4): blur only where high-frequency pixels are dense, ``out = w * G(I) + (1 - w) * I``.

    Apply it to the images the loss sees (every frame, every scale), never to the network inputs. The weight
    ``w`` (:func:`auto_blur_weight`) carries no gradient; the output is differentiable in ``image``.

    Args:
        image: ``(B, C, H, W)`` RGB in [0, 1].
        hf_pixel_thresh: lambda (paper 0.2).
        hf_area_percent: eta in percent (paper 60).
        area_kernel: s, box window of the area ratio (paper 9).
        blur_kernel: Gaussian size (official code 11).
        blur_sigma: Gaussian sigma in pixels (official code 5.0).

    Returns:
        Tensor of the input's shape and dtype.

    Examples:
        >>> img = torch.linspace(0, 1, 32).repeat(1, 3, 32, 1)  # smooth ramp: nothing to blur
        >>> torch.equal(auto_blur(img), img)
        True
    """
    w = auto_blur_weight(image, hf_pixel_thresh, hf_area_percent, area_kernel)
    if not bool(w.any()):
        return image
    blurred = _reflect_gaussian_blur(image, blur_kernel, blur_sigma)
    return image + w * (blurred - image)
