"""A2U (affinity-aware up-sampling) as a guided member of the up-sampler family.

Dai et al., "Learning Affinity-Aware Upsampling for Deep Image Matting", CVPR 2021. The up-sampling kernels are
predicted from the encoder feature ``X`` (``hr``, C channels, ``H x W``) through a low-rank bilinear (affinity)
form and applied to the decoder feature ``Y`` (``lr``) by CARAFE-style reassembly (the paper's kernel generation,
its Fig. 2, with rank ``d = 1``; ``U``/``V`` shared across channels as in the official matting model):

- ``u = conv1x1(adapool_k(X))``, ``v = conv1x1(adapool_k(X))``: two ``k x k`` encoding kernels (``k = 6``), one per
  image (``share=True``) or one per channel (``share=False``);
- ``U = LReLU(GN(u *_2 X))``, ``V = LReLU(GN(v *_2 X))``: each channel of ``X`` filtered by the kernel at stride 2
  (padding ``(k - 1) // 2``), ``(B, C, H/2, W/2)``;
- affinity ``a = sum_c U_c V_c / sqrt(C)`` (B, 1, H/2, W/2);
- up-sampling logits ``P = shuffle(a * p_up)``, ``p_up = conv1x1(avgpool(X))`` of ``4 s^2 g`` values per image,
  shuffled 2x to ``(B, s^2 g, H, W)``; kernels ``K = softmax_taps(sigmoid(P))`` (sigmoid only when ``s = 1``);
- ``lr_up = CARAFE(Y, K, s, group=g, scale 2)`` (``s = 3``, zero padding, exactly the official ``biupsample_naive``
  CUDA kernel), computed by :func:`freqdense.ops.reassemble.carafe`.

The official module also predicts ``4 s^2 g`` *down-sampling* weights ``p_down`` (``bconv_DP``) for the encoder's
learned pooling: ``K_down = softmax_taps(a * p_down)`` over a ``2s x 2s`` window at stride 2
(:meth:`A2UUpsampler.downsample`, the official ``bidownsample_naive``). Up-sampling never uses it, so it is off by
default (``downsampler=False``: every parameter is trained by ``forward``; the count the SAPA tables use);
``downsampler=True`` adds it (the official module, and the count of the FADE tables).

With ``downsampler=True`` the state-dict keys and parameter count equal the official ``InterChannelUpDown``
(dongdong93/a2u_matting, ``scripts/BilinearModel.py``): ``bnu.0.*``, ``bnv.0.*`` (GroupNorm(32, C)),
``bconv_UP.1.*``, ``bconv_DP.1.*``, ``bconv_U.1.*``, ``bconv_V.1.*``; without it, the same less ``bconv_DP``.
For ``group > 1`` the official channel layout is kept: the softmax runs over taps in a tap-major ``(s^2, g)``
layout while the reassembly reads kernels group-major ``(g, s^2)``.

Memory: the stride-2 ``k x k`` filtering is ``k^2`` multiply-adds of unit-stride slices of the 2x2 phase split
of ``X`` (no unfold, a hand-written backward), and the reassembly never builds the ``(B, C s^2, H, W)`` unfolded
tensor. ``adapool_k`` is two averaging-matrix products (equal to ``AdaptiveAvgPool2d``, whose ONNX export refuses
sizes that ``k`` does not divide), so the module exports to ONNX at any input size.
"""

from __future__ import annotations

import math
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd.function import once_differentiable

from ..._checks import check_shape
from ...errors import ConfigError
from ...ops.reassemble import carafe, carafe_unfold
from ._base import Upsampler

__all__ = ["A2UUpsampler"]


def _pool_matrix(n: int, size: int, like: torch.Tensor) -> torch.Tensor:
    """(size, n) averaging matrix of ``AdaptiveAvgPool`` along one axis: bin ``i`` covers
    ``[floor(i n / size), ceil((i + 1) n / size))``."""
    i = torch.arange(size, device=like.device)
    start = torch.div(i * n, size, rounding_mode="floor")
    end = torch.div((i + 1) * n + size - 1, size, rounding_mode="floor")
    j = torch.arange(n, device=like.device)
    inside = (j[None, :] >= start[:, None]) & (j[None, :] < end[:, None])
    return inside.to(like.dtype) / (end - start).to(like.dtype)[:, None]


class _AdaptiveAvgPool(nn.Module):
    """``AdaptiveAvgPool2d((size, size))`` as matrix products (ONNX-exportable at any input size)."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = int(size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.size == 1:
            return x.mean(dim=(-2, -1), keepdim=True)
        rows = _pool_matrix(x.shape[-2], self.size, x)
        cols = _pool_matrix(x.shape[-1], self.size, x)
        return torch.matmul(torch.matmul(rows, x), cols.transpose(0, 1))

    def extra_repr(self) -> str:
        return f"output_size=({self.size}, {self.size})"


def _pad_even(x: torch.Tensor) -> torch.Tensor:
    """Replicate-pad the bottom/right of ``x`` to even height and width (the family's odd-size rule)."""
    pad_h, pad_w = x.shape[-2] % 2, x.shape[-1] % 2
    if pad_h or pad_w:
        x = F.pad(x, (0, pad_w, 0, pad_h), mode="replicate")
    return x


def _positive_int(value: object, option: str, *, odd: bool = False) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1 or (odd and value % 2 == 0):
        need = "an odd integer >= 1 (the window is centred)" if odd else "an integer >= 1"
        raise ConfigError(f"a2u: {option} must be {need}, got {value!r}")
    return value


def _tracing() -> bool:
    """True under the TorchScript tracer (``torch.onnx.export(..., dynamo=False)``), which cannot see into the
    custom autograd functions; the plain-op formulations are used there instead."""
    return torch.jit.is_tracing() or torch.onnx.is_in_onnx_export()


def _phases(x: torch.Tensor, pad: int) -> torch.Tensor:
    """Zero-pad ``x`` (B, C, H, W) by ``pad`` on every side (the result must be even-sized) and split it into its
    2x2 sub-pixel phases: (B, C, 4, (H + 2 pad) / 2, (W + 2 pad) / 2), phase ``2 py + px`` holding rows
    ``py::2`` and columns ``px::2``."""
    xp = F.pad(x, (pad, pad, pad, pad)) if pad else x
    b, c, hp, wp = xp.shape
    return F.pixel_unshuffle(xp, 2).view(b, c, 4, hp // 2, wp // 2)


def _tap_table(kernel_size: int) -> tuple[tuple[int, int, int], ...]:
    """(phase, row shift, column shift) in the phase layout of each tap ``(ty, tx)`` of a stride-2 window."""
    return tuple(((ty % 2) * 2 + tx % 2, ty // 2, tx // 2) for ty in range(kernel_size) for tx in range(kernel_size))


class _ScalarTaps(torch.autograd.Function):
    """``out[n, c, i, j] = sum_t w[n, c or 0, t] * xq[n, c, phase_t, i + dy_t, j + dx_t]`` - a stride-2 ``k x k``
    filter whose taps are per image (``w``: (N, 1, k^2)) or per image and channel ((N, C, k^2)), read from the
    phase layout so that every tap is a unit-stride slice. The backward is the same loop (autograd would record
    one node per tap and zero-fill a full copy of ``xq`` for every sliced gradient)."""

    @staticmethod
    def forward(ctx, xq: torch.Tensor, weights: torch.Tensor, taps: tuple, h: int, w: int) -> torch.Tensor:  # noqa: ANN001
        out = xq.new_zeros(xq.shape[0], xq.shape[1], h, w)
        wv = weights[..., None, None]
        for t, (ph, dy, dx) in enumerate(taps):
            out.addcmul_(xq[:, :, ph, dy : dy + h, dx : dx + w], wv[:, :, t])
        ctx.save_for_backward(xq, weights)
        ctx.taps = taps
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None, None, None, None]:  # noqa: ANN001
        xq, weights = ctx.saved_tensors
        need_x, need_w = ctx.needs_input_grad[:2]
        h, w = grad.shape[-2:]
        grad = grad.contiguous()
        grad_x = torch.zeros_like(xq) if need_x else None
        grad_w = torch.empty_like(weights) if need_w else None
        wv = weights[..., None, None]
        per_image = weights.shape[1] == 1
        for t, (ph, dy, dx) in enumerate(ctx.taps):
            if grad_x is not None:
                grad_x[:, :, ph, dy : dy + h, dx : dx + w].addcmul_(grad, wv[:, :, t])
            if grad_w is not None:
                dot = (grad * xq[:, :, ph, dy : dy + h, dx : dx + w]).sum(dim=(-2, -1))  # (N, C)
                grad_w[:, :, t] = dot.sum(dim=1, keepdim=True) if per_image else dot
        return grad_x, grad_w, None, None, None


def _filter_stride2(xq: torch.Tensor, weights: torch.Tensor, kernel_size: int, h: int, w: int) -> torch.Tensor:
    """Stride-2 ``k x k`` filtering (cross-correlation, as ``F.conv2d``) of each channel of the phase-split input
    ``xq`` (:func:`_phases`) with per-image or per-channel taps ``weights`` (B, 1 | C, k^2) -> (B, C, h, w)."""
    taps = _tap_table(kernel_size)
    if not _tracing():
        return _ScalarTaps.apply(xq, weights, taps, h, w)
    out = None
    for t, (ph, dy, dx) in enumerate(taps):
        term = xq[:, :, ph, dy : dy + h, dx : dx + w] * weights[:, :, t, None, None]
        out = term if out is None else out + term
    return out


def _reassemble(x: torch.Tensor, kernels: torch.Tensor, kernel_size: int, group: int, scale: int) -> torch.Tensor:
    """CARAFE with zero padding: the memory-lean :func:`carafe`, or its unfold form under the TorchScript tracer."""
    if _tracing():
        return carafe_unfold(x, kernels, kernel_size, group, scale)
    return carafe(x, kernels, kernel_size, group, scale)


class A2UUpsampler(Upsampler):
    """A2U: CARAFE reassembly of ``lr`` with kernels from a low-rank affinity of ``hr`` (Dai et al., CVPR 2021).

    Args:
        hr_channels: channels ``C`` of the guide ``hr``.
        lr_channels: channels of ``lr``; a multiple of ``group``.
        up_kernel_size: reassembly window ``s`` (odd; official 3).
        encode_kernel_size: side ``k`` of the encoding kernels ``u``, ``v`` (official 6).
        group: kernel groups ``g`` (official 1).
        share: one encoding kernel per image (official matting default) or one per channel.
        downsampler: add the official down-sampling branch ``bconv_DP`` (used by :meth:`downsample` only).
        norm_groups: GroupNorm groups (must divide ``C``); default 32 as the official, or ``gcd(32, C)`` when 32
            does not divide ``C``.
    """

    name: ClassVar[str] = "a2u"
    guided: ClassVar[bool] = True
    exact_double: ClassVar[bool] = True

    def __init__(
        self,
        hr_channels: int,
        lr_channels: int,
        *,
        up_kernel_size: int = 3,
        encode_kernel_size: int = 6,
        group: int = 1,
        share: bool = True,
        downsampler: bool = False,
        norm_groups: int | None = None,
    ) -> None:
        super().__init__(hr_channels, lr_channels)
        for key, value in (("share", share), ("downsampler", downsampler)):
            if not isinstance(value, bool):
                raise ConfigError(f"a2u: {key} must be true or false, got {value!r}")
        s = _positive_int(up_kernel_size, "up_kernel_size", odd=True)
        k = _positive_int(encode_kernel_size, "encode_kernel_size")
        g = _positive_int(group, "group")
        c = self.hr_channels
        ng = math.gcd(32, c) if norm_groups is None else _positive_int(norm_groups, "norm_groups")
        if self.lr_channels % g:
            raise ConfigError(
                f"a2u: lr_channels={self.lr_channels} must be divisible by group={group}; pick a group count "
                f"dividing {self.lr_channels}"
            )
        if c % ng:
            raise ConfigError(
                f"a2u: GroupNorm needs hr_channels={c} divisible by norm_groups={norm_groups!r} (official 32); "
                "pass norm_groups=<a divisor of hr_channels>"
            )
        self.up_kernel_size, self.encode_kernel_size, self.group = s, k, g
        self.share, self.norm_groups = share, ng
        outs = (2 * s) ** 2 * g  # 4 s^2 g: s^2 g kernel channels for each of the 4 sub-pixel positions
        self.bnu = nn.Sequential(nn.GroupNorm(ng, c), nn.LeakyReLU())
        self.bnv = nn.Sequential(nn.GroupNorm(ng, c), nn.LeakyReLU())
        self.bconv_UP = nn.Sequential(_AdaptiveAvgPool(1), nn.Conv2d(c, outs, 1))
        self.bconv_DP = nn.Sequential(_AdaptiveAvgPool(1), nn.Conv2d(c, outs, 1)) if downsampler else None
        rank_out = 1 if share else c
        self.bconv_U = nn.Sequential(_AdaptiveAvgPool(k), nn.Conv2d(c, rank_out, 1))
        self.bconv_V = nn.Sequential(_AdaptiveAvgPool(k), nn.Conv2d(c, rank_out, 1))

    def _affinity(self, x: torch.Tensor) -> torch.Tensor:
        """``a = sum_c U_c V_c / sqrt(C)`` (B, 1, H/2, W/2) for ``x`` (B, C, H, W) of even size."""
        k = self.encode_kernel_size
        b, c, hh, ww = x.shape
        xq = _phases(x, (k - 1) // 2)
        u = self.bconv_U(x).flatten(-2)  # (B, 1 | C, k^2)
        v = self.bconv_V(x).flatten(-2)
        big_u = self.bnu(_filter_stride2(xq, u, k, hh // 2, ww // 2))
        big_v = self.bnv(_filter_stride2(xq, v, k, hh // 2, ww // 2))
        return (big_u * big_v).sum(dim=1, keepdim=True) / math.sqrt(c)

    def _normalise(self, logits: torch.Tensor, taps: int, sigmoid: bool) -> torch.Tensor:
        """Softmax over the ``taps`` of the official tap-major ``(taps, g)`` channel layout (after a sigmoid for
        the up-sampling kernels; a lone sigmoid for a 1x1 up-sampling window)."""
        b, _, h, w = logits.shape
        grouped = logits.view(b, taps, self.group, h, w)
        if sigmoid:
            grouped = torch.sigmoid(grouped)
            if taps == 1:
                return grouped.view(b, -1, h, w)
        return torch.softmax(grouped, dim=1).view(b, -1, h, w)

    def _up_kernels(self, x: torch.Tensor) -> torch.Tensor:
        s = self.up_kernel_size
        logits = F.pixel_shuffle(self._affinity(x) * self.bconv_UP(x), 2)  # (B, s^2 g, H, W)
        return self._normalise(logits, s * s, sigmoid=True)

    def kernels(self, hr: torch.Tensor) -> torch.Tensor:
        """The up-sampling kernels ``K`` (B, s^2 g, H, W) for ``hr`` (B, C_hr, H, W), in the channel order the
        reassembly reads (:func:`freqdense.ops.reassemble.carafe`). Odd sizes are padded (replicate) and cropped
        back, as in ``forward``."""
        check_shape(hr, "B C H W", name=f"{self.name} hr", C=self.hr_channels)
        height, width = hr.shape[-2:]
        return self._up_kernels(_pad_even(hr))[..., :height, :width]

    def _fuse(self, hr: torch.Tensor, lr: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        masks = self._up_kernels(hr)
        return hr, _reassemble(lr, masks, self.up_kernel_size, self.group, 2)

    def downsample(self, x: torch.Tensor) -> torch.Tensor:
        """A2U's learned pooling of the encoder feature ``x`` (B, C_hr, H, W) -> (B, C_hr, ceil(H/2), ceil(W/2)).

        ``out[c, i, j] = sum_{m, n < 2s} K_down[g(c), m, n, i, j] * x[c, 2i + m - (s - 1), 2j + n - (s - 1)]``
        with zeros outside ``x`` (the official ``bidownsample_naive``); odd sizes are replicate-padded first.
        """
        if self.bconv_DP is None:
            raise ConfigError("a2u: downsample needs the down-sampling branch; build it with downsampler=True")
        check_shape(x, "B C H W", name=f"{self.name} downsample input", C=self.hr_channels)
        if self.hr_channels % self.group:
            raise ConfigError(
                f"a2u: downsample reassembles hr_channels={self.hr_channels} in group={self.group} groups; "
                "pick a group that divides both channel counts"
            )
        x = _pad_even(x)
        s, g = self.up_kernel_size, self.group
        big = 2 * s
        masks = self._normalise(self._affinity(x) * self.bconv_DP(x), big * big, sigmoid=False)
        b, c, hh, ww = x.shape
        h, w = hh // 2, ww // 2
        # Tap (m, n) = (2 qi + py, 2 qj + px) of the 2s x 2s window reads phase (py, px) of x at offset
        # (qi - (s - 1) / 2, qj - (s - 1) / 2): four s x s CARAFE reassemblies at scale 1, one per phase.
        per_phase = masks.view(b, g, s, 2, s, 2, h, w).permute(0, 3, 5, 1, 2, 4, 6, 7).reshape(b, 4, g * s * s, h, w)
        xq = F.pixel_unshuffle(x, 2).view(b, c, 4, h, w)
        out = _reassemble(xq[:, :, 0], per_phase[:, 0], s, g, 1)
        for p in range(1, 4):
            out = out + _reassemble(xq[:, :, p], per_phase[:, p], s, g, 1)
        return out

    def extra_repr(self) -> str:
        return (
            f"{super().extra_repr()}, up_kernel_size={self.up_kernel_size}, "
            f"encode_kernel_size={self.encode_kernel_size}, group={self.group}, share={self.share}, "
            f"downsampler={self.bconv_DP is not None}"
        )
