"""Content-aware reassembly of features (CARAFE, Wang et al., ICCV 2019) in plain PyTorch, with mmcv semantics.

``out[n, c, p] = sum_t x[n, c, floor(p / s) + t - k // 2] * K[n, g(c) * k^2 + t, p]`` over the ``k x k`` taps ``t``,
for every output pixel ``p`` of the ``s``-times larger grid, ``g(c) = c // (C / group)``
(docs/reference_code.md#carafe). Taps outside the input count as zero (mmcv's CUDA kernel skips them);
``padding_mode="reflect"`` instead reproduces the pure-torch fallback of the official FreqFusion file, which
differs from mmcv only in a border band of ``(k // 2) * s`` output pixels.

Three formulations, equal up to float rounding:

- ``carafe``: per input pixel ``(i, j)`` the ``s * s`` output pixels it owns read the same ``k x k`` window, so
  ``O[(i, j)] = K[(i, j)] @ X[(i, j)]`` with ``K[(i, j)]`` the (s^2, k^2) kernels of those pixels and ``X[(i, j)]``
  the (k^2, C) window of the padded input in channels-last layout: one small matrix product per pixel. On the CPU
  these run as batched GEMMs over bands of rows (``torch.bmm``; the windows are overlapping strided views of a
  row-unfolded input, never the C * k^2 unfolded tensor), each band's result is interleaved into the
  channels-first output while it is in cache, and the hand-written backward runs the transposed products the same
  way (``_GemmCarafe``). While compiling or exporting (``torch.compile``, ``torch.export``, the dynamo ONNX exporter),
  and on other devices, the tap-loop form ``_PhaseCarafe`` is used instead: ``k^2`` multiply-adds of shifted
  views at input resolution, whose loop does not depend on the image size.
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
from ..errors import ConfigError, ShapeError

__all__ = ["carafe", "carafe_reference", "carafe_unfold"]

PaddingMode = Literal["zeros", "reflect"]


def _validate(
    features: torch.Tensor, kernels: torch.Tensor, kernel_size: int, group: int, scale: int, padding_mode: str
) -> None:
    check_shape(features, "B C H W", name="features")
    check_shape(kernels, "B K H W", name="kernels")
    if kernel_size < 1 or kernel_size % 2 == 0:
        raise ConfigError(f"carafe: kernel_size must be odd and >= 1 (the window is centred), got {kernel_size}")
    if group < 1 or scale < 1:
        raise ConfigError(f"carafe: group and scale must be >= 1, got group={group}, scale={scale}")
    if padding_mode not in ("zeros", "reflect"):
        raise ConfigError(
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


#: Bytes of one band's product buffer per thread: a band of rows is multiplied and interleaved into the output
#: while it is in the L2 cache (on this project's CPU, 2 MiB L2 per core, 1 MiB bands ran the bench_carafe forward
#: 2.5x faster than one image-sized band; 4 MiB bands lost most of that gain).
_BAND_BYTES = 1 << 20


def _channel_blocks(channels: int, group: int, chunk: int) -> list[tuple[int, int, int]]:
    """``(group index, first channel, end channel)`` of every block of at most ``chunk`` channels of one group."""
    cg = channels // group
    return [(g, c0, min(c0 + chunk, (g + 1) * cg)) for g in range(group) for c0 in range(g * cg, (g + 1) * cg, chunk)]


def _band_rows(width: int, phases: int, channels: int, itemsize: int, rows: int) -> int:
    """Rows per band so that a band's (rows * width, phases, channels) product fits ``_BAND_BYTES`` per thread."""
    per_row = max(1, width * phases * channels * itemsize)
    return max(1, min(rows, _BAND_BYTES * max(1, torch.get_num_threads()) // per_row))


def _channels_last(x: torch.Tensor, c0: int, c1: int, pad: int) -> torch.Tensor:
    """Channels ``[c0, c1)`` of (B, C, H, W) ``x``, zero-padded by ``pad`` on every side, as a
    (B * (H + 2 pad) * (W + 2 pad), c1 - c0) matrix. Without padding one 2-D transpose per image (torch's blocked
    transpose path); with it, the interior is written by one copy and only the border is zeroed."""
    b, _, h, w = x.shape
    hp, wp, cw = h + 2 * pad, w + 2 * pad, c1 - c0
    out = x.new_empty(b, hp, wp, cw)
    if pad:
        for border in (
            out[:, :pad],
            out[:, hp - pad :],
            out[:, pad : hp - pad, :pad],
            out[:, pad : hp - pad, wp - pad :],
        ):
            border.zero_()
        out[:, pad : hp - pad, pad : wp - pad].copy_(x[:, c0:c1].permute(0, 2, 3, 1))
    else:
        for n in range(b):
            out[n].view(hp * wp, cw).copy_(x[n, c0:c1].reshape(cw, hp * wp).t())
    return out.view(-1, cw)


def _row_unfold(xb: torch.Tensor, buf: torch.Tensor, start: int, count: int, kernel_size: int, width: int) -> None:
    """``buf[t, dy] = xb[start + t + dy * width]`` for ``t < count``: the ``k`` rows of a window column side by side."""
    cw = xb.shape[1]
    src = xb.as_strided((count, kernel_size, cw), (cw, width * cw, 1), xb.storage_offset() + start * cw)
    buf[:count].copy_(src)


def _image_rows(r0: int, r1: int, hp: int, h: int) -> list[tuple[int, int, int]]:
    """Split flat padded rows ``[r0, r1)`` (image ``n`` owns rows ``n * hp ...``) into ``(n, first, end)`` runs of
    real output rows (the last ``hp - h`` rows of each image are padding)."""
    runs = []
    for n in range(r0 // hp, (r1 - 1) // hp + 1):
        i0, i1 = max(r0, n * hp), min(r1, n * hp + h)
        if i0 < i1:
            runs.append((n, i0 - n * hp, i1 - n * hp))
    return runs


class _GemmCarafe(torch.autograd.Function):
    """CARAFE as one small matrix product per input pixel, batched over bands of rows, with a hand-written backward.

    Layout: the padded input of image ``n`` has rows ``n * Hp ... n * Hp + Hp - 1`` of a flat (B * Hp * Wp, C)
    channels-last matrix ``xb``, so pixel ``q`` and tap ``(dy, dx)`` read ``xb[q + dy * Wp + dx]`` for every ``q``,
    across row and image ends alike (the products at the ``k - 1`` padding columns and rows are computed and
    dropped). ``xr[q, dy] = xb[q + dy * Wp]`` (a row unfold of one band) makes each pixel's window the (k^2, C)
    matrix ``xr[q : q + k]``, rows ordered ``(dx, dy)``: a strided view with a constant batch stride, so
    ``torch.bmm`` multiplies all pixels of a band at once, without a copy per pixel.

    ``x``: (B, C, Hp - 2 pad, Wp - 2 pad) input, zero-padded here by ``pad`` (or already padded, ``pad = 0``);
    ``kf``: (G, B * Hp * Wp, s^2, k^2) kernels, phase ``a * s + b``, tap ``dx * k + dy``, zero at padding positions.
    Returns (B, C, s H, s W).

    Backward, per band: ``dK[q] = G[q] @ X[q]^T`` (one bmm with the same windows), and ``dX`` in gather form so that
    no two products write the same place: for each ``dy``, input pixel ``u + dy * Wp`` collects
    ``sum_{dx, a b} K[u - dx, dy, dx, ab] G[u - dx, ab]``, a (1, k s^2) x (k s^2, C) product per pixel over a
    strided window of the channels-last output gradient ``G``.
    """

    @staticmethod
    def forward(  # noqa: ANN001
        ctx, x: torch.Tensor, kf: torch.Tensor, kernel_size: int, scale: int, group: int, chunk: int, pad: int
    ) -> torch.Tensor:
        k, s = kernel_size, scale
        b, c = x.shape[:2]
        hp, wp = x.shape[2] + 2 * pad, x.shape[3] + 2 * pad
        h, w, ss = hp - k + 1, wp - k + 1, s * s
        rows = max(0, (b - 1) * hp + h)  # flat rows holding outputs; the last image's padding rows are skipped
        out = x.new_empty(b, c, h * s, w * s)
        out6 = out.view(b, c, h, s, w, s)
        for g, c0, c1 in _channel_blocks(c, group, chunk):
            cw = c1 - c0
            xb = _channels_last(x, c0, c1, pad)
            band = _band_rows(wp, ss, cw, x.element_size(), rows)
            kf_g, out_blk = kf[g], out6[:, c0:c1]
            prod = x.new_empty(band * wp, ss, cw)
            phases = prod.view(band, wp, s, s, cw)[:, :w].permute(4, 0, 2, 1, 3)  # (C, rows, a, W, b) view
            xr = x.new_empty(band * wp, k, cw)
            windows = xr.as_strided((band * wp - (k - 1), k * k, cw), (k * cw, cw, 1), xr.storage_offset())
            for r0 in range(0, rows, band):
                r1 = min(r0 + band, rows)
                n = (r1 - r0) * wp - (k - 1)  # the last row's padding columns would read past the end
                _row_unfold(xb, xr, r0 * wp, n + k - 1, k, wp)
                torch.bmm(kf_g[r0 * wp : r0 * wp + n], windows[:n], out=prod[:n])
                for img, i0, i1 in _image_rows(r0, r1, hp, h):
                    out_blk[img, :, i0:i1].copy_(phases[:, img * hp + i0 - r0 : img * hp + i1 - r0])
        ctx.save_for_backward(x, kf)
        ctx.geometry = (k, s, group, chunk, pad)
        return out

    @staticmethod
    @once_differentiable
    def backward(
        ctx, grad_out: torch.Tensor
    ) -> tuple[torch.Tensor | None, torch.Tensor | None, None, None, None, None, None]:  # noqa: ANN001
        x, kf = ctx.saved_tensors
        k, s, group, chunk, pad = ctx.geometry
        need_x, need_k = ctx.needs_input_grad[:2]
        b, c = x.shape[:2]
        hp, wp = x.shape[2] + 2 * pad, x.shape[3] + 2 * pad
        h, w, ss = hp - k + 1, wp - k + 1, s * s
        rows, area = max(0, (b - 1) * hp + h), hp * wp
        grad_xp = x.new_empty(b, c, hp, wp) if need_x else None
        grad_kf = torch.zeros_like(kf) if need_k else None
        if need_x:
            # gather[g, dy, u, e * s^2 + ab] = K[g, u - (k - 1) + e, ab, tap (k - 1 - e, dy)], zero before the start.
            flipped = kf.view(group, -1, ss, k, k).permute(0, 4, 1, 2, 3).flip(-1)
            flipped = F.pad(flipped, (0, 0, 0, 0, k - 1, 0)).contiguous()
            st = flipped.stride()
            gather = flipped.as_strided((group, k, rows * wp, k, ss), (st[0], st[1], ss * k, ss * k + 1, k))
            gather = gather.reshape(group, k, rows * wp, 1, k * ss)
        go6 = grad_out.view(b, c, h, s, w, s)  # splitting dimensions is a view for any strides
        for g, c0, c1 in _channel_blocks(c, group, chunk):
            cw = c1 - c0
            # Channels-last output gradient with k - 1 leading pixels; every padding position is zeroed: its kernels
            # are zero, but 0 * (uninitialised NaN) would be NaN.
            gf = grad_out.new_empty(k - 1 + b * area, ss, cw)
            gf[: k - 1].zero_()
            body = gf[k - 1 :].view(b, hp, wp, ss, cw)
            body[:, :, w:].zero_()
            body[:, h:, :w].zero_()
            body_rows = body.view(b * hp, wp, s, s, cw)[:, :w]
            go_blk = go6[:, c0:c1].permute(0, 2, 4, 3, 5, 1)  # (B, H, W, a, b, C) view
            band = _band_rows(wp, ss, cw, x.element_size(), rows)
            if need_k:
                xb = _channels_last(x, c0, c1, pad)
                xr = x.new_empty(band * wp, k, cw)
                windows_t = xr.as_strided((band * wp - (k - 1), cw, k * k), (k * cw, 1, cw), xr.storage_offset())
                gk_g, first_block = grad_kf[g], c0 == g * (c // group)
            if need_x:
                gx = x.new_zeros(b * area, 1, cw)
                gather_g = gather[g]
            for r0 in range(0, rows, band):
                r1 = min(r0 + band, rows)
                for img, i0, i1 in _image_rows(r0, r1, hp, h):
                    body_rows[img * hp + i0 : img * hp + i1].copy_(go_blk[img, i0:i1])
                if need_k:
                    n = (r1 - r0) * wp - (k - 1)
                    _row_unfold(xb, xr, r0 * wp, n + k - 1, k, wp)
                    grads, dst = gf[k - 1 + r0 * wp : k - 1 + r0 * wp + n], gk_g[r0 * wp : r0 * wp + n]
                    if first_block:
                        torch.bmm(grads, windows_t[:n], out=dst)
                    else:  # later channel blocks of the same group add to the kernel gradient
                        dst.baddbmm_(grads, windows_t[:n])
                if need_x:
                    n = (r1 - r0) * wp
                    windows_g = gf.as_strided(
                        (n, k * ss, cw), (ss * cw, cw, 1), gf.storage_offset() + r0 * wp * ss * cw
                    )
                    for dy in range(k):
                        gx[(r0 + dy) * wp : (r1 + dy) * wp].baddbmm_(gather_g[dy, r0 * wp : r1 * wp], windows_g)
            if need_x:
                for img in range(b):
                    grad_xp[img, c0:c1].view(cw, area).copy_(gx[img * area : (img + 1) * area, 0].t())
        if grad_xp is not None and pad:  # the zero padding done here: its positions have no input to reach
            grad_xp = grad_xp[:, :, pad : hp - pad, pad : wp - pad]
        return grad_xp, grad_kf, None, None, None, None, None


def _use_gemm(features: torch.Tensor) -> bool:
    """The batched-GEMM engine runs on the CPU in eager mode; compiling, exporting and other devices take the tap
    loop, whose Python loop does not depend on the image size (a dynamic-shape graph stays valid)."""
    return features.device.type == "cpu" and not torch.compiler.is_compiling()


def _chunk_channels(chunk_channels: int | None, channels: int) -> int:
    if chunk_channels is None:
        return max(1, channels)
    if chunk_channels < 1:
        raise ConfigError(f"carafe: chunk_channels must be >= 1 or None (all channels at once), got {chunk_channels}")
    return max(1, min(channels, chunk_channels))


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

    On the CPU (eager) it runs batched per-pixel GEMMs (``_GemmCarafe``); while compiling or exporting, and on other
    devices, the tap loop (``_PhaseCarafe``). Both give the same values up to float rounding.

    Args:
        features: (B, C, H, W) input.
        kernels: (B, group * k^2, scale * H, scale * W) reassembly kernels at the output resolution; channel
            ``g * k^2 + ky * k + kx`` weights tap ``(ky - k // 2, kx - k // 2)`` for channel group ``g``.
            Usually normalised (``normalize_kernels``), but any values are accepted.
        kernel_size: odd window side ``k``.
        group: channel groups; group ``g`` holds the contiguous channels ``[g * C / group, (g + 1) * C / group)``.
        scale: integer up-sampling factor ``s`` (1 = same-resolution filtering).
        padding_mode: ``"zeros"`` (mmcv CARAFE) or ``"reflect"`` (official FreqFusion pure-torch fallback).
        chunk_channels: channels (per group) per pass; ``None`` = all (fewest ops). Smaller chunks bound the
            temporaries (the backward's channels-last copy of the output gradient is ``chunk`` channels wide);
            the result does not depend on it.

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
    if _use_gemm(features):
        # (B, G, dy, dx, H, a, W, b) -> (G, B, H, W, a, b, dx, dy), zero-padded to the (H + k - 1, W + k - 1) grid.
        kf = kernels.to(dtype).reshape(b, group, k, k, h, s, w, s).permute(1, 0, 4, 6, 5, 7, 3, 2)
        kf = F.pad(kf.reshape(group, b, h, w, s * s, k * k), (0, 0, 0, 0, 0, k - 1, 0, k - 1))
        kf = kf.reshape(group, -1, s * s, k * k)
        if padding_mode == "zeros":  # zero padding is written into the channels-last copy, not a padded tensor
            return _GemmCarafe.apply(features.to(dtype), kf, k, s, group, chunk, k // 2)
        return _GemmCarafe.apply(_pad(features.to(dtype), k // 2, padding_mode), kf, k, s, group, chunk, 0)
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
