"""Content-aware reassembly of features (CARAFE, Wang et al., ICCV 2019) in plain PyTorch, with mmcv semantics.

``out[n, c, p] = sum_t x[n, c, floor(p / s) + t - k // 2] * K[n, g(c) * k^2 + t, p]`` over the ``k x k`` taps ``t``,
for every output pixel ``p`` of the ``s``-times larger grid, ``g(c) = c // (C / group)``
(docs/reference_code.md#carafe). Taps outside the input count as zero (mmcv's CUDA kernel skips them);
``padding_mode="reflect"`` instead reproduces the pure-torch fallback of the official FreqFusion file, which
differs from mmcv only in a border band of ``(k // 2) * s`` output pixels.

Three formulations, equal up to float rounding:

- ``carafe``: splits the output into the ``s x s`` sub-pixel phases, so every tap is read at input resolution:
  ``out[s i + a, s j + b] = sum_t K[t, s i + a, s j + b] x_pad[i + dy_t, j + dx_t]``, i.e. ``k^2`` multiply-adds
  of shifted views of the padded input (broadcast over the phases) into a phase-major accumulator, interleaved
  into the output once at the end. Working memory: the output twice, a padded copy of the input and the kernels in
  phase layout; the backward (hand-written, same loop) keeps only the last two.
- ``carafe_unfold``: the official fallback's formulation (``F.unfold``, nearest up-sampling of the columns,
  multiply, sum): ``k^2`` times the output's memory. Kept as the benchmark baseline.
- ``carafe_reference``: a naive per-pixel loop, for tests on tiny tensors only.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable

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


class _PhaseCarafe(torch.autograd.Function):
    """Tap accumulation at input resolution over all sub-pixel phases at once, with a hand-written backward.

    ``xp``: (B, G, C/G, H + 2r, W + 2r) padded input; ``kp``: (B, G, k^2, s * s, H, W) kernels in phase layout.
    Returns (B, G, C/G, s * s, H, W), phase-major. Each tap is one ``addcmul_`` of a shifted view of ``xp``,
    broadcast over the ``s * s`` phases, into a contiguous accumulator, so the innermost dimension is the image
    width (vectorised) rather than the phase (size s). Autograd would record one node per tap and materialise a
    zero-filled copy of ``xp`` for every sliced gradient; the explicit backward runs the same loop instead.
    """

    @staticmethod
    def forward(ctx, xp: torch.Tensor, kp: torch.Tensor, kernel_size: int, chunk: int) -> torch.Tensor:  # noqa: ANN001
        b, g, cg = xp.shape[:3]
        phases, h, w = kp.shape[3:]
        out = xp.new_empty(b, g, cg, phases, h, w)
        xs = xp[:, :, :, None]  # (B, G, C/G, 1, H + 2r, W + 2r): broadcast over the phases
        taps = kp[:, :, :, None]  # (B, G, k^2, 1, s * s, H, W): broadcast over the channels
        for c0 in range(0, cg, chunk):
            xc, acc = xs[:, :, c0 : c0 + chunk], out[:, :, c0 : c0 + chunk]
            torch.mul(xc[..., :h, :w], taps[:, :, 0], out=acc)
            for t in range(1, kernel_size * kernel_size):
                dy, dx = divmod(t, kernel_size)
                acc.addcmul_(xc[..., dy : dy + h, dx : dx + w], taps[:, :, t])
        ctx.save_for_backward(xp, kp)
        ctx.kernel_size, ctx.chunk = kernel_size, chunk
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None, None, None]:  # noqa: ANN001
        xp, kp = ctx.saved_tensors
        k, chunk = ctx.kernel_size, ctx.chunk
        need_x, need_k = ctx.needs_input_grad[:2]
        cg = xp.shape[2]
        h, w = kp.shape[-2:]
        grad_xp = torch.zeros_like(xp) if need_x else None
        grad_kp = torch.zeros_like(kp) if need_k else None
        grad_out = grad_out.contiguous()
        for c0 in range(0, cg, chunk):
            xc, gc = xp[:, :, c0 : c0 + chunk], grad_out[:, :, c0 : c0 + chunk]
            prod = torch.empty_like(gc)
            for t in range(k * k):
                dy, dx = divmod(t, k)
                if grad_xp is not None:  # transposed reassembly: each tap's weighted gradient back to its source
                    torch.mul(gc, kp[:, :, t, None], out=prod)
                    grad_xp[:, :, c0 : c0 + chunk, dy : dy + h, dx : dx + w] += prod.sum(dim=3)
                if grad_kp is not None:  # d out / d K[t] = the shifted input, summed over the channels
                    torch.mul(gc, xc[:, :, :, None, dy : dy + h, dx : dx + w], out=prod)
                    grad_kp[:, :, t] += prod.sum(dim=2)
        return grad_xp, grad_kp, None, None


def _chunk_channels(chunk_channels: int | None, channels: int) -> int:
    if chunk_channels is None:
        return channels
    if chunk_channels < 1:
        raise ValueError(f"carafe: chunk_channels must be >= 1 or None (all channels at once), got {chunk_channels}")
    return min(channels, chunk_channels)


def carafe(
    features: torch.Tensor,
    kernels: torch.Tensor,
    kernel_size: int,
    group: int = 1,
    scale: int = 2,
    *,
    padding_mode: PaddingMode = "zeros",
    chunk_channels: int | None = None,
) -> torch.Tensor:
    """Reassemble ``features`` with per-output-pixel kernels (CARAFE), fast and memory-lean, mmcv argument order.

    Args:
        features: (B, C, H, W) input.
        kernels: (B, group * k^2, scale * H, scale * W) reassembly kernels at the output resolution; channel
            ``g * k^2 + ky * k + kx`` weights tap ``(ky - k // 2, kx - k // 2)`` for channel group ``g``.
            Usually normalised (``normalize_kernels``), but any values are accepted.
        kernel_size: odd window side ``k``.
        group: channel groups; group ``g`` holds the contiguous channels ``[g * C / group, (g + 1) * C / group)``.
        scale: integer up-sampling factor ``s`` (1 = same-resolution filtering).
        padding_mode: ``"zeros"`` (mmcv CARAFE) or ``"reflect"`` (official FreqFusion pure-torch fallback).
        chunk_channels: channels (per group) per pass over the taps; ``None`` = all (fewest ops, fastest on a
            loaded CPU). Smaller chunks bound the backward's temporaries; the result does not depend on it.

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
    chunk = _chunk_channels(chunk_channels, c // group)
    dtype = torch.promote_types(features.dtype, kernels.dtype)
    xp = _pad(features.to(dtype), k // 2, padding_mode).reshape(b, group, c // group, h + k - 1, w + k - 1)
    # Phase layout (B, G, k^2, s * s, H, W): output pixel (s i + a, s j + a2) of phase a * s + a2 sits at (i, j).
    kp = kernels.to(dtype).reshape(b, group, k * k, h, s, w, s).permute(0, 1, 2, 4, 6, 3, 5)
    kp = kp.reshape(b, group, k * k, s * s, h, w)
    out = _PhaseCarafe.apply(xp, kp, k, chunk).view(b, group, c // group, s, s, h, w)
    return out.permute(0, 1, 2, 5, 3, 6, 4).reshape(b, c, h * s, w * s)


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
