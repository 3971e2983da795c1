"""Spatial-frequency maps and Gaussian low-pass filtering for images.

Chen et al., "Frequency-Aware Self-Supervised Monocular Depth Estimation", WACV 2023, Sec. 4.2, Eq. 6-9 and
Eq. 18-19; reference semantics from the official Freq-Aware-Depth code (docs/reference_code.md, "Auto-Blur" and
"Ambiguity extraction").

Conventions: ``u`` is the horizontal axis (width, last dim), ``v`` the vertical one, as in the official code
(the paper's ``(i, j)`` indexing leaves this open). One-sided differences follow Eq. 6-7,
``grad_u+(y, x) = I(y, x) - I(y, x + 1)`` and ``grad_u-(y, x) = I(y, x) - I(y, x - 1)``; a difference whose
neighbour lies outside the image is 0 (the official code's zero padding of the difference, which equals
replicate-padding the image). Channel handling defaults to the official code: absolute differences are summed
over channels before the L2 norm, so an RGB image in [0, 1] gives values in [0, 3 sqrt(2)].
"""

from __future__ import annotations

from typing import Literal, NamedTuple

import torch
import torch.nn.functional as F

from ..errors import ConfigError, ShapeError

__all__ = [
    "OneSidedDifferences",
    "one_sided_differences",
    "forward_gradient_magnitude",
    "two_sided_gradient_magnitude",
    "gaussian_kernel1d",
    "gaussian_kernel2d",
    "gaussian_blur2d",
]

ChannelMode = Literal["sum", "separate"]


class OneSidedDifferences(NamedTuple):
    """The four one-sided differences of Eq. 6-7, each ``(B, C, H, W)``."""

    u_plus: torch.Tensor  # I(y, x) - I(y, x + 1); 0 in the last column
    u_minus: torch.Tensor  # I(y, x) - I(y, x - 1); 0 in the first column
    v_plus: torch.Tensor  # I(y, x) - I(y + 1, x); 0 in the last row
    v_minus: torch.Tensor  # I(y, x) - I(y - 1, x); 0 in the first row


def _check_image(image: torch.Tensor, name: str) -> None:
    if not isinstance(image, torch.Tensor) or image.dim() != 4:
        got = tuple(image.shape) if isinstance(image, torch.Tensor) else type(image).__name__
        raise ShapeError(f"{name} must be a (B, C, H, W) tensor, got {got}; add a batch dimension with x[None]")
    if not image.is_floating_point():
        raise ShapeError(f"{name} must be floating point, got {image.dtype}; convert with image.float() / 255")


def one_sided_differences(image: torch.Tensor) -> OneSidedDifferences:
    """Eq. 6-7: one-sided horizontal and vertical differences, zero where the neighbour is outside the image.

    Args:
        image: ``(B, C, H, W)``.

    Returns:
        :class:`OneSidedDifferences`; ``u_minus`` is ``-u_plus`` shifted right by one pixel.
    """
    _check_image(image, "image")
    du = image[..., :, :-1] - image[..., :, 1:]  # I(x) - I(x + 1) for x = 0 .. W-2
    dv = image[..., :-1, :] - image[..., 1:, :]
    return OneSidedDifferences(
        u_plus=F.pad(du, (0, 1)),
        u_minus=F.pad(-du, (1, 0)),
        v_plus=F.pad(dv, (0, 0, 0, 1)),
        v_minus=F.pad(-dv, (0, 0, 1, 0)),
    )


def _norm2(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    # sqrt with a zero (not NaN) gradient where both components vanish (e.g. flat regions, the corner pixel).
    sq = a * a + b * b
    return torch.where(sq > 0, sq.clamp_min(torch.finfo(sq.dtype).tiny).sqrt(), torch.zeros_like(sq))


def _reduce_channels(g: torch.Tensor, channels: ChannelMode) -> torch.Tensor:
    if channels == "sum":
        return g.abs().sum(dim=1, keepdim=True)
    if channels == "separate":
        return g
    raise ConfigError(f"channels must be 'sum' or 'separate', got {channels!r}")


def forward_gradient_magnitude(image: torch.Tensor, *, channels: ChannelMode = "sum") -> torch.Tensor:
    """Eq. 8: ``grad_+ = ||(grad_u+, grad_v+)||_2`` from forward differences (used by Auto-Blur).

    Args:
        image: ``(B, C, H, W)``, e.g. RGB in [0, 1].
        channels: ``"sum"`` (official code): ``g_u = sum_c |grad_u+|``, ``g_v = sum_c |grad_v+|``, then
            ``sqrt(g_u^2 + g_v^2)`` -> ``(B, 1, H, W)``; ``"separate"``: the norm per channel -> ``(B, C, H, W)``.

    Returns:
        Non-negative map; the last column uses only the vertical term and the last row only the horizontal one.

    Example:
        >>> img = torch.zeros(1, 3, 2, 3); img[..., 2] = 1.0
        >>> forward_gradient_magnitude(img)[0, 0]
        tensor([[0., 3., 0.],
                [0., 3., 0.]])
    """
    d = one_sided_differences(image)
    return _norm2(_reduce_channels(d.u_plus, channels), _reduce_channels(d.v_plus, channels))


def two_sided_gradient_magnitude(
    image: torch.Tensor,
    *,
    mode: Literal["mean_abs", "central"] = "mean_abs",
    channels: ChannelMode = "sum",
) -> torch.Tensor:
    """Eq. 9: the two-sided frequency map (used by Ambiguity-Masking).

    Args:
        image: ``(B, C, H, W)``.
        mode: ``"mean_abs"`` (official code): ``G_u = (|grad_u+| + |grad_u-|) / 2`` per channel; ``"central"``
            (Eq. 9 as printed): ``G_u = |grad_u+ - grad_u-| / 2 = |I(x - 1) - I(x + 1)| / 2``. They agree on
            monotone ramps and differ at local extrema, where ``"central"`` is smaller.
        channels: ``"sum"`` (official code, sum over channels before the norm) or ``"separate"``.

    Returns:
        ``(B, 1, H, W)`` (``channels="sum"``) or ``(B, C, H, W)``; ``sqrt(G_u^2 + G_v^2)``.
    """
    d = one_sided_differences(image)
    if mode == "mean_abs":
        gu = 0.5 * (d.u_plus.abs() + d.u_minus.abs())
        gv = 0.5 * (d.v_plus.abs() + d.v_minus.abs())
    elif mode == "central":
        gu = 0.5 * (d.u_plus - d.u_minus)
        gv = 0.5 * (d.v_plus - d.v_minus)
    else:
        raise ConfigError(f"mode must be 'mean_abs' or 'central', got {mode!r}")
    return _norm2(_reduce_channels(gu, channels), _reduce_channels(gv, channels))


def _pair(value: int | float | tuple, name: str) -> tuple:
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise ConfigError(f"{name} must be a number or a (y, x) pair, got {value!r}")
        return tuple(value)
    return (value, value)


def gaussian_kernel1d(
    kernel_size: int, sigma: float, *, dtype: torch.dtype = torch.float32, device: torch.device | str | None = None
) -> torch.Tensor:
    """Normalised 1-D Gaussian on positions ``-(k-1)/2 .. (k-1)/2``: ``exp(-t^2 / (2 sigma^2)) / sum``.

    This is torchvision's ``GaussianBlur`` kernel (docs/reference_code.md#auto-blur): the paper's Eq. 19 prefactor
    cancels in the normalisation.

    Args:
        kernel_size: odd, positive.
        sigma: standard deviation in pixels, ``> 0``.

    Returns:
        ``(kernel_size,)`` tensor summing to 1.

    Example:
        >>> k = gaussian_kernel1d(11, 5.0)
        >>> round(float(k[0]), 4), round(float(k[5]), 4)
        (0.0663, 0.1094)
    """
    if not isinstance(kernel_size, int) or kernel_size < 1 or kernel_size % 2 == 0:
        raise ConfigError(f"gaussian kernel_size must be an odd positive int, got {kernel_size!r}")
    if not sigma > 0:
        raise ConfigError(f"gaussian sigma must be > 0, got {sigma!r}")
    half = (kernel_size - 1) / 2
    t = torch.linspace(-half, half, kernel_size, dtype=torch.float64, device=device)
    pdf = torch.exp(-0.5 * (t / float(sigma)) ** 2)
    return (pdf / pdf.sum()).to(dtype)


def gaussian_kernel2d(
    kernel_size: int | tuple[int, int],
    sigma: float | tuple[float, float],
    *,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """``(k_y, k_x)`` outer product of two :func:`gaussian_kernel1d` (``(y, x)`` pairs allowed); sums to 1."""
    (ky, kx), (sy, sx) = _pair(kernel_size, "kernel_size"), _pair(sigma, "sigma")
    gy = gaussian_kernel1d(ky, sy, dtype=torch.float64, device=device)
    gx = gaussian_kernel1d(kx, sx, dtype=torch.float64, device=device)
    return torch.outer(gy, gx).to(dtype)


def gaussian_blur2d(
    image: torch.Tensor,
    kernel_size: int | tuple[int, int] = 11,
    sigma: float | tuple[float, float] = 5.0,
    *,
    padding_mode: Literal["reflect", "replicate", "zeros", "circular"] = "reflect",
) -> torch.Tensor:
    """Depthwise Gaussian blur, exactly separable: one horizontal and one vertical 1-D convolution.

    Defaults reproduce Auto-Blur's ``torchvision.transforms.GaussianBlur(11, sigma=5.0)``: kernel 11, sigma 5,
    reflect padding of ``k // 2`` pixels (no edge repeat, like ``numpy.pad(mode="reflect")`` and
    ``scipy.ndimage``'s ``mode="mirror"``), output of the input's shape and dtype. The paper's Fig. 5 example
    uses zero borders (``padding_mode="zeros"``).

    Args:
        image: ``(..., H, W)`` floating tensor, e.g. ``(B, 3, H, W)``; each channel is blurred on its own.
        kernel_size: odd size, or ``(k_y, k_x)``.
        sigma: standard deviation in pixels, or ``(sigma_y, sigma_x)``.
        padding_mode: border handling.

    Returns:
        Blurred tensor, same shape and dtype.
    """
    if not isinstance(image, torch.Tensor) or image.dim() < 2:
        raise ShapeError("gaussian_blur2d input must be a tensor of shape (..., H, W), e.g. (B, 3, H, W)")
    if not image.is_floating_point():
        raise ShapeError(f"gaussian_blur2d input must be floating point, got {image.dtype}; use image.float()")
    if padding_mode not in ("reflect", "replicate", "zeros", "circular"):
        raise ConfigError(f"padding_mode must be reflect, replicate, zeros or circular, got {padding_mode!r}")
    (ky, kx), (sy, sx) = _pair(kernel_size, "kernel_size"), _pair(sigma, "sigma")
    gy = gaussian_kernel1d(ky, sy, dtype=image.dtype, device=image.device)
    gx = gaussian_kernel1d(kx, sx, dtype=image.dtype, device=image.device)
    h, w = image.shape[-2:]
    py, px = ky // 2, kx // 2
    if padding_mode == "reflect" and (py >= h or px >= w):
        raise ShapeError(
            f"gaussian_blur2d: reflect padding of ({py}, {px}) px needs an image larger than that, got {h}x{w}; "
            "use a smaller kernel_size or padding_mode='replicate'"
        )
    x = image.reshape(-1, 1, h, w)
    pad = (px, px, py, py)
    x = F.pad(x, pad) if padding_mode == "zeros" else F.pad(x, pad, mode=padding_mode)
    x = F.conv2d(x, gx.view(1, 1, 1, kx))
    x = F.conv2d(x, gy.view(1, 1, ky, 1))
    return x.reshape(image.shape)
