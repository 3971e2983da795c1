"""Content-aware reassembly of features (CARAFE, Wang et al., ICCV 2019) in plain PyTorch, with mmcv semantics.

``out[n, c, p] = sum_t x[n, c, floor(p / s) + t - k // 2] * K[n, g(c) * k^2 + t, p]`` over the ``k x k`` taps ``t``,
for every output pixel ``p`` of the ``s``-times larger grid, ``g(c) = c // (C / group)``
(specs/freqfusion_fam_rgbd.md §1.7). Taps outside the input count as zero (mmcv's CUDA kernel skips them);
``padding_mode="reflect"`` instead reproduces the pure-torch fallback of the official FreqFusion file, which
differs from mmcv only in a border band of ``(k // 2) * s`` output pixels.

Three formulations, equal up to float rounding:

- ``carafe``: accumulates the ``k^2`` taps one at a time into the output, broadcasting each shifted input over the
  ``s x s`` sub-pixel phases. Its working memory is the output plus a padded copy of the input: it never forms the
  ``C * k^2 x (sH x sW)`` unfolded tensor. Autograd keeps only views of those two tensors.
- ``carafe_unfold``: the official fallback's formulation (``F.unfold``, nearest up-sampling of the columns,
  multiply, sum): ``k^2`` times the output's memory. Kept as the benchmark baseline.
- ``carafe_reference``: a naive per-pixel loop, for tests on tiny tensors only.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F

from .._checks import check_shape
from ..errors import ShapeError

__all__ = ["carafe", "carafe_reference", "carafe_unfold"]

PaddingMode = Literal["zeros", "reflect"]


def _validate(
    features: torch.Tensor, kernels: torch.Tensor, kernel_size: int, group: int, scale: int, padding_mode: str
) -> None:
    check_shape(features, "B C H W", name="features")
    check_shape(kernels, "B K H W", name="kernels")
    if kernel_size < 1 or kernel_size % 2 == 0:
        raise ValueError(f"carafe: kernel_size must be odd and >= 1 (the window is centred), got {kernel_size}")
    if group < 1 or scale < 1:
        raise ValueError(f"carafe: group and scale must be >= 1, got group={group}, scale={scale}")
    if padding_mode not in ("zeros", "reflect"):
        raise ValueError(
            f"carafe: padding_mode must be 'zeros' (mmcv) or 'reflect' (official fallback), got {padding_mode!r}"
        )
    b, c, h, w = features.shape
    expected = (b, group * kernel_size * kernel_size, h * scale, w * scale)
    if tuple(kernels.shape) != expected:
        raise ShapeError(
            f"kernels must have shape (B, group * kernel_size^2, scale * H, scale * W) = {expected} for features "
            f"{tuple(features.shape)}, kernel_size={kernel_size}, group={group}, scale={scale}; "
            f"got {tuple(kernels.shape)}"
        )
    if c % group:
        raise ShapeError(f"features has C={c} channels, not divisible by group={group}; choose a group that divides C")
    radius = kernel_size // 2
    if padding_mode == "reflect" and (h <= radius or w <= radius):
        raise ShapeError(
            f"padding_mode='reflect' needs features larger than kernel_size // 2 = {radius} in H and W, got "
            f"{tuple(features.shape)}; use padding_mode='zeros' for such small maps"
        )


def _pad(x: torch.Tensor, radius: int, padding_mode: str) -> torch.Tensor:
    if radius == 0:
        return x
    return F.pad(x, (radius, radius, radius, radius), mode="constant" if padding_mode == "zeros" else "reflect")


def carafe(
    features: torch.Tensor,
    kernels: torch.Tensor,
    kernel_size: int,
    group: int = 1,
    scale: int = 2,
    *,
    padding_mode: PaddingMode = "zeros",
) -> torch.Tensor:
    """Reassemble ``features`` with per-output-pixel kernels (CARAFE), memory-lean, mmcv argument order.

    Args:
        features: (B, C, H, W) input.
        kernels: (B, group * k^2, scale * H, scale * W) reassembly kernels at the output resolution; channel
            ``g * k^2 + ky * k + kx`` weights tap ``(ky - k // 2, kx - k // 2)`` for channel group ``g``.
            Usually normalised (``normalize_kernels``), but any values are accepted.
        kernel_size: odd window side ``k``.
        group: channel groups; group ``g`` holds the contiguous channels ``[g * C / group, (g + 1) * C / group)``.
        scale: integer up-sampling factor ``s`` (1 = same-resolution filtering).
        padding_mode: ``"zeros"`` (mmcv CARAFE) or ``"reflect"`` (official FreqFusion pure-torch fallback).

    Returns:
        (B, C, scale * H, scale * W), in the promoted dtype of ``features`` and ``kernels`` (autocast-safe).

    Examples:
        >>> x = torch.arange(4.0).view(1, 1, 2, 2)
        >>> k = torch.zeros(1, 9, 4, 4); k[:, 4] = 1  # centre tap only: nearest up-sampling
        >>> carafe(x, k, 3, 1, 2)[0, 0]
        tensor([[0., 0., 1., 1.],
                [0., 0., 1., 1.],
                [2., 2., 3., 3.],
                [2., 2., 3., 3.]])
    """
    _validate(features, kernels, kernel_size, group, scale, padding_mode)
    b, c, h, w = features.shape
    k, s = kernel_size, scale
    dtype = torch.promote_types(features.dtype, kernels.dtype)
    x = _pad(features.to(dtype), k // 2, padding_mode).reshape(b, group, c // group, h + k - 1, w + k - 1)
    m = kernels.to(dtype).reshape(b, group, k * k, h, s, w, s)
    out = x.new_zeros(b, group, c // group, h, s, w, s)
    for t in range(k * k):
        dy, dx = divmod(t, k)
        # (B, G, C/G, H, 1, W, 1) x (B, G, 1, H, s, W, s): broadcasting replaces the nearest up-sampling of the input.
        out.addcmul_(x[:, :, :, dy : dy + h, None, dx : dx + w, None], m[:, :, None, t])
    return out.reshape(b, c, h * s, w * s)


def carafe_unfold(
    features: torch.Tensor,
    kernels: torch.Tensor,
    kernel_size: int,
    group: int = 1,
    scale: int = 2,
    *,
    padding_mode: PaddingMode = "zeros",
) -> torch.Tensor:
    """``carafe`` by the unfold formulation of the official fallback (materialises ``C * k^2 x sH x sW``).

    Same arguments and result as ``carafe``; kept as the benchmark baseline and as a second reference.
    """
    _validate(features, kernels, kernel_size, group, scale, padding_mode)
    b, c, h, w = features.shape
    k, s = kernel_size, scale
    dtype = torch.promote_types(features.dtype, kernels.dtype)
    cols = F.unfold(_pad(features.to(dtype), k // 2, padding_mode), k).reshape(b, group, c // group, k * k, h, w)
    cols = cols.repeat_interleave(s, dim=4).repeat_interleave(s, dim=5)
    m = kernels.to(dtype).reshape(b, group, 1, k * k, h * s, w * s)
    return (cols * m).sum(dim=3).reshape(b, c, h * s, w * s)


def carafe_reference(
    features: torch.Tensor,
    kernels: torch.Tensor,
    kernel_size: int,
    group: int = 1,
    scale: int = 2,
    *,
    padding_mode: PaddingMode = "zeros",
) -> torch.Tensor:
    """Naive per-output-pixel loop implementing the CARAFE sum literally (tests only; tiny tensors).

    Out-of-range taps are skipped (``"zeros"``) or mirrored without repeating the edge (``"reflect"``).
    """
    _validate(features, kernels, kernel_size, group, scale, padding_mode)
    b, c, h, w = features.shape
    k, s, r = kernel_size, scale, kernel_size // 2
    cg = c // group

    def source(i: int, n: int) -> int | None:
        if 0 <= i < n:
            return i
        if padding_mode == "zeros":
            return None
        return -i if i < 0 else 2 * (n - 1) - i

    dtype = torch.promote_types(features.dtype, kernels.dtype)
    out = torch.zeros(b, c, h * s, w * s, dtype=dtype, device=features.device)
    for py in range(h * s):
        for px in range(w * s):
            for ky in range(k):
                for kx in range(k):
                    iy, ix = source(py // s + ky - r, h), source(px // s + kx - r, w)
                    if iy is None or ix is None:
                        continue
                    for g in range(group):
                        weight = kernels[:, g * k * k + ky * k + kx, py, px].to(dtype)
                        out[:, g * cg : (g + 1) * cg, py, px] += (
                            features[:, g * cg : (g + 1) * cg, iy, ix] * weight[:, None]
                        )
    return out
