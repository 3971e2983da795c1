"""Window and kernel-normalisation helpers for content-aware reassembly (FreqFusion, Chen et al., TPAMI 2024).

``hamming2d`` is the separable symmetric Hamming window ``outer(h, h)`` with ``h = np.hamming(k)``
(``0.54 - 0.46 cos(2 pi n / (k - 1))``); FreqFusion multiplies its predicted kernels by it to bias them towards the
centre tap. ``normalize_kernels`` is FreqFusion's ``kernel_normalizer``: softmax over the ``k^2`` taps of each
group, times the window, renormalised to sum 1 (docs/reference_code.md#kernel-normalisation).
"""

from __future__ import annotations

import torch

from .._checks import check_shape
from ..errors import ShapeError

__all__ = ["hamming2d", "normalize_kernels"]


def hamming2d(
    kernel_size: int, *, dtype: torch.dtype = torch.float32, device: torch.device | str | None = None
) -> torch.Tensor:
    """Separable symmetric 2-D Hamming window ``outer(h, h)``, ``h = np.hamming(kernel_size)``.

    Args:
        kernel_size: window side ``k`` (``k = 1`` gives ``[[1.0]]``).
        dtype: output dtype; the window is computed in float64 and rounded once.
        device: output device.

    Returns:
        (k, k) window; ``hamming2d(3)`` has 1 at the centre, 0.08 at edge centres and 0.0064 at the corners.

    Examples:
        >>> hamming2d(3)[1]
        tensor([0.0800, 1.0000, 0.0800])
    """
    if kernel_size < 1:
        raise ValueError(f"hamming2d: kernel_size must be >= 1, got {kernel_size}")
    h = torch.hamming_window(kernel_size, periodic=False, dtype=torch.float64, device=device)
    return torch.outer(h, h).to(dtype)


def normalize_kernels(
    logits: torch.Tensor, kernel_size: int, *, window: torch.Tensor | None = None, group: int = 1
) -> torch.Tensor:
    """Turn per-pixel kernel logits into normalised reassembly kernels (FreqFusion's ``kernel_normalizer``).

    ``K = softmax_taps(logits) * w / sum_taps(softmax_taps(logits) * w)`` per pixel and group. The channel index is
    ``g * k^2 + ky * k + kx`` (the layout ``carafe`` expects). Without a window (or with the all-ones window of
    ``hamming_window=False``) this is the plain softmax.

    Args:
        logits: (B, group * k^2, H, W) kernel logits.
        kernel_size: odd kernel side ``k``.
        window: optional (k, k) window (any shape with k^2 elements, or a single element), e.g. ``hamming2d(k)``.
        group: number of kernel groups in the channel dimension.

    Returns:
        (B, group * k^2, H, W) non-negative kernels summing to 1 over the ``k^2`` taps of each group.

    Examples:
        >>> k = normalize_kernels(torch.zeros(1, 9, 2, 2), 3)
        >>> torch.allclose(k, torch.full_like(k, 1 / 9))
        True
    """
    check_shape(logits, "B C H W", name="logits")
    taps = kernel_size * kernel_size
    b, c, h, w = logits.shape
    if c != group * taps:
        raise ShapeError(
            f"logits must have group * kernel_size^2 = {group * taps} channels for kernel_size={kernel_size}, "
            f"group={group}, got shape {tuple(logits.shape)}"
        )
    kernels = logits.reshape(b, group, taps, h, w).softmax(dim=2)
    if window is not None:
        # The window is cast to the kernels' dtype so half/bfloat16 kernels stay in their dtype (autocast-safe).
        win = window.to(dtype=kernels.dtype, device=kernels.device)
        if win.numel() not in (1, taps):
            raise ShapeError(
                f"window must have kernel_size^2 = {taps} elements (or 1), got shape {tuple(window.shape)}"
            )
        win = win.reshape(1, 1, -1, 1, 1)
        kernels = kernels * win
        kernels = kernels / kernels.sum(dim=2, keepdim=True)
    return kernels.reshape(b, c, h, w)
