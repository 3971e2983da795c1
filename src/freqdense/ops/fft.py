"""2-D Fourier spectra helpers: integer frequency grids, frequency shells, spectra and shell profiles.

Frequencies are integers in cycles per image, ``k = fftfreq(N) * N`` (``-(N-1)//2 .. N//2`` in FFT order): an
``N x N`` map carries ``|k| <= N // 2`` and a grid of ``n = 2 nu + 1`` points carries ``|k| <= nu``
(docs/reference_code.md#spectral-definitions-in-the-paper). A *shell* groups 2-D frequencies by one scalar ``nu``:

- ``"square"`` (L-infinity): ``nu = max(|k_y|, |k_x|)``, the frequencies an ``n x n`` grid represents;
- ``"radial"`` (L2): ``nu = round(sqrt(k_y^2 + k_x^2))``.

Non-square maps (``units``): ``"index"`` keeps integer cycles per image on each axis (so the two axes have
different ranges); ``"shorter_side"`` rescales to cycles per shorter side, ``nu_axis = k_axis * min(H, W) / N_axis``
(a frequency in cycles per pixel times ``min(H, W)``), then rounds to the nearest integer shell. For square maps the
two agree. Spectra are computed in float32 or wider: half/bfloat16 inputs are upcast with autocast disabled.
"""

from __future__ import annotations

from typing import Literal

import torch

from ..errors import ConfigError, ShapeError

__all__ = [
    "fft_frequencies",
    "frequency_shells",
    "onesided_multiplicity",
    "spectrum2d",
    "power_spectrum2d",
    "shell_reduce",
    "power_profile",
]

Shells = Literal["square", "radial"]
Units = Literal["index", "shorter_side"]


def fft_frequencies(n: int, *, onesided: bool = False, device: torch.device | str | None = None) -> torch.Tensor:
    """Integer frequencies (cycles per image) of an ``n``-point FFT, in FFT order.

    Args:
        n: signal length.
        onesided: the ``rfft`` frequencies ``0 .. n // 2`` instead of ``fftfreq(n) * n``.
        device: device of the result.

    Returns:
        ``(n,)`` (or ``(n // 2 + 1,)``) int64 tensor.

    Example:
        >>> fft_frequencies(5).tolist(), fft_frequencies(4).tolist()
        ([0, 1, 2, -2, -1], [0, 1, -2, -1])
    """
    if n < 1:
        raise ShapeError(f"fft_frequencies: n must be >= 1, got {n}")
    k = torch.arange(n // 2 + 1 if onesided else n, device=device)
    return k if onesided else torch.where(k < (n + 1) // 2, k, k - n)


def _check_choice(value: str, allowed: tuple[str, ...], name: str) -> None:
    if value not in allowed:
        raise ConfigError(f"{name} must be one of {', '.join(repr(a) for a in allowed)}, got {value!r}")


def frequency_shells(
    size: tuple[int, int],
    *,
    shells: Shells = "square",
    units: Units = "index",
    onesided: bool = False,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Shell index ``nu`` of every 2-D frequency of an ``H x W`` map (see the module docstring).

    Args:
        size: ``(H, W)`` of the spatial map.
        shells: ``"square"`` (L-infinity, default) or ``"radial"`` (L2, rounded).
        units: ``"index"`` (cycles per image per axis) or ``"shorter_side"`` (cycles per shorter side).
        onesided: layout of ``torch.fft.rfft2`` (``W // 2 + 1`` columns) instead of ``fft2``.
        device: device of the result.

    Returns:
        ``(H, W)`` or ``(H, W // 2 + 1)`` int64 shell indices, ``0 .. max``.

    Example:
        >>> frequency_shells((3, 3)).tolist()
        [[0, 1, 1], [1, 1, 1], [1, 1, 1]]
    """
    _check_choice(shells, ("square", "radial"), "shells")
    _check_choice(units, ("index", "shorter_side"), "units")
    h, w = int(size[0]), int(size[1])
    ky = fft_frequencies(h, device=device).to(torch.float64).abs()
    kx = fft_frequencies(w, onesided=onesided, device=device).to(torch.float64).abs()
    if units == "shorter_side":
        short = min(h, w)
        ky, kx = ky * (short / h), kx * (short / w)
    ky, kx = ky[:, None], kx[None, :]
    r = torch.maximum(ky, kx) if shells == "square" else torch.sqrt(ky * ky + kx * kx)
    # Half-up rounding of non-negative values; integer radii (the "index"/"square" case) pass unchanged.
    return torch.floor(r + 0.5).to(torch.int64)


def onesided_multiplicity(w: int, *, dtype: torch.dtype = torch.float64, device: torch.device | str | None = None):
    """How many full-spectrum frequencies each ``rfft`` column stands for (1 for ``k_x = 0`` and even-``W``
    Nyquist, else 2: the column ``k_x`` and its Hermitian partner ``-k_x``).

    Returns:
        ``(W // 2 + 1,)`` tensor.
    """
    m = torch.full((w // 2 + 1,), 2.0, dtype=dtype, device=device)
    m[0] = 1.0
    if w % 2 == 0:
        m[-1] = 1.0
    return m


def _spectral_dtype(x: torch.Tensor, dtype: torch.dtype | None) -> torch.dtype:
    if dtype is not None:
        return dtype
    return x.dtype if x.dtype in (torch.float32, torch.float64) else torch.float32


def spectrum2d(
    x: torch.Tensor,
    *,
    norm: Literal["backward", "ortho", "forward"] = "backward",
    onesided: bool = False,
    dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """2-D DFT over the last two dimensions, computed in float32 or wider (autocast-safe).

    Args:
        x: ``(..., H, W)`` real tensor (half/bfloat16 inputs are upcast to float32).
        norm: ``torch.fft`` normalisation; ``"backward"`` is the plain sum ``sum_t x(t) e^{-2 pi i k t / N}``.
        onesided: return ``rfft2`` (``W // 2 + 1`` columns).
        dtype: real compute dtype (default: float32, or float64 for float64 input).

    Returns:
        Complex tensor ``(..., H, W)`` or ``(..., H, W // 2 + 1)``.
    """
    if x.dim() < 2:
        raise ShapeError(f"spectrum2d input must have shape (..., H, W), got {tuple(x.shape)}")
    if x.is_complex():
        raise ShapeError("spectrum2d expects a real tensor; use torch.fft.fft2 for complex input")
    with torch.autocast(device_type=x.device.type, enabled=False):
        x = x.to(_spectral_dtype(x, dtype))
        return torch.fft.rfft2(x, norm=norm) if onesided else torch.fft.fft2(x, norm=norm)


def power_spectrum2d(x: torch.Tensor, *, dtype: torch.dtype | None = None) -> torch.Tensor:
    """``|F x|^2`` with the unitary DFT (``norm="ortho"``), so ``power.sum((-2, -1)) == (x ** 2).sum((-2, -1))``.

    Returns:
        ``(..., H, W)`` real tensor in FFT order (``torch.fft.fftshift`` centres the zero frequency).
    """
    spec = spectrum2d(x, norm="ortho", dtype=dtype)
    return spec.real.square() + spec.imag.square()


def shell_reduce(
    values: torch.Tensor,
    shell_index: torch.Tensor,
    *,
    num_shells: int | None = None,
    weights: torch.Tensor | None = None,
    reduce: Literal["sum", "mean"] = "sum",
) -> torch.Tensor:
    """Sum (or mean) ``values`` over each frequency shell; differentiable (``index_add``).

    Args:
        values: ``(..., H, W')`` real values per frequency.
        shell_index: ``(H, W')`` int64 shells from :func:`frequency_shells`.
        num_shells: output length (default ``shell_index.max() + 1``).
        weights: optional ``(H, W')`` or broadcastable multiplicities (e.g. :func:`onesided_multiplicity`).
        reduce: ``"sum"`` or ``"mean"`` (weighted mean over the frequencies of each shell; empty shells give 0).

    Returns:
        ``(..., S)`` tensor.
    """
    _check_choice(reduce, ("sum", "mean"), "reduce")
    if values.shape[-2:] != shell_index.shape:
        raise ShapeError(
            f"shell_reduce: values {tuple(values.shape)} and shell_index {tuple(shell_index.shape)} differ in the "
            "last two dims; build the shells with the same size and onesided flag"
        )
    s = int(shell_index.max()) + 1 if num_shells is None else int(num_shells)
    flat_idx = shell_index.reshape(-1).to(values.device)
    w = None
    if weights is not None:
        w_map = torch.broadcast_to(weights.to(values), shell_index.shape)
        values = values * w_map
        w = w_map.reshape(-1)
    lead = values.shape[:-2]
    flat = values.reshape(*lead, -1)
    out = torch.zeros(*lead, s, dtype=values.dtype, device=values.device).index_add(-1, flat_idx, flat)
    if reduce == "sum":
        return out
    ones = torch.ones_like(flat_idx, dtype=values.dtype) if w is None else w
    count = torch.zeros(s, dtype=values.dtype, device=values.device).index_add(0, flat_idx, ones)
    return out / count.clamp_min(torch.finfo(values.dtype).tiny) * (count > 0)


def power_profile(x: torch.Tensor, *, shells: Shells = "radial", units: Units = "index") -> torch.Tensor:
    """Shell-mean of the unitary power spectrum of ``x``: flat for white noise, peaked at a sinusoid's frequency.

    Args:
        x: ``(..., H, W)`` real tensor.
        shells: shell geometry (default ``"radial"``).
        units: non-square convention (see the module docstring).

    Returns:
        ``(..., S)`` mean power per shell.
    """
    power = power_spectrum2d(x)
    idx = frequency_shells(tuple(x.shape[-2:]), shells=shells, units=units, device=x.device)
    return shell_reduce(power, idx, reduce="mean")
