"""Frequency Disentanglement (FD) of FAFE: per-task low/high branches weighted in the DCT domain.

Fu et al., "Lifting the Veil of Frequency in Joint Segmentation and Depth Estimation", ACM MM 2021, §3.2,
Eq. (2)-(3), Fig. 3-4 (no official code; docs/reference_code.md#fafe-fd-and-the-consistency-loss):

    F^low  = IDCT(DCT(conv_1(F)) * W^low),   F^high = IDCT(DCT(conv_2(F)) * W^high)

followed by dual-input Pre-Interaction on ``(F^low, F^high)``. The DCT is the orthonormal DCT-II of
:mod:`freqdense.ops.dct` (the paper's Eq. 2 is unnormalised; the scale is absorbed by ``W``). ``W^low`` and
``W^high`` are learnable ``(H, W)`` matrices shared by all channels.

Initialisation (the paper does not give one): with normalised frequencies ``nu_u = u / H``, ``nu_v = v / W``
(1 = Nyquist), ``W^low = 1`` where ``sqrt(nu_u^2 + nu_v^2) < cutoff`` and 0 elsewhere, ``W^high = 1 - W^low``;
the two masks partition the spectrum.

Other resolutions: a coefficient ``u`` of an ``H``-point DCT is ``u / (2H)`` cycles per pixel, so weights learnt
at ``(H, W)`` are resampled to ``(H', W')`` by linear interpolation at source index ``u' H / H'`` (clamped at the
top), separably in both axes. This keeps the frequency per *pixel* fixed (the right invariant for features of a
fully convolutional network at a fixed stride), and because interpolation weights sum to 1, ``W^low + W^high = 1``
is preserved exactly.
"""

from __future__ import annotations

import logging
from typing import NamedTuple

import torch
from torch import nn

from .._checks import check_shape
from ..errors import ConfigError, ShapeError
from ..ops.dct import dct2d, idct2d
from .pre_interaction import DualPreInteraction, Order

__all__ = ["FrequencyDisentanglement", "FrequencyOutput", "frequency_masks", "resample_spectral_weights"]

logger = logging.getLogger(__name__)


class FrequencyOutput(NamedTuple):
    """Low- and high-frequency features of one task, each ``(B, C_out, H, W)``."""

    low: torch.Tensor
    high: torch.Tensor


def frequency_masks(size: tuple[int, int], *, cutoff: float = 0.5) -> FrequencyOutput:
    """Binary low-pass / high-pass DCT masks: low where ``sqrt((u/H)^2 + (v/W)^2) < cutoff``, high = 1 - low.

    Args:
        size: ``(H, W)`` of the spectrum.
        cutoff: radius in normalised frequency (1 = Nyquist along an axis), ``0 < cutoff``.

    Returns:
        ``(low, high)``, float32 ``(H, W)`` masks of 0/1 that sum to 1 everywhere.

    Examples:
        >>> low, high = frequency_masks((4, 4))
        >>> low
        tensor([[1., 1., 0., 0.],
                [1., 1., 0., 0.],
                [0., 0., 0., 0.],
                [0., 0., 0., 0.]])
    """
    h, w = size
    nu_u = torch.arange(h, dtype=torch.float64) / h
    nu_v = torch.arange(w, dtype=torch.float64) / w
    radius = torch.sqrt(nu_u[:, None] ** 2 + nu_v[None, :] ** 2)
    low = (radius < cutoff).to(torch.float32)
    return FrequencyOutput(low, 1.0 - low)


def _interp_matrix(n_out: int, n_in: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    # Row i holds linear-interpolation weights at source position i * n_in / n_out (same cycles per pixel).
    pos = (torch.arange(n_out, dtype=torch.float64, device=device) * (n_in / n_out)).clamp(max=n_in - 1)
    lo = pos.floor().long()
    hi = (lo + 1).clamp(max=n_in - 1)
    frac = pos - lo
    mat = torch.zeros(n_out, n_in, dtype=torch.float64, device=device)
    rows = torch.arange(n_out, device=device)
    mat[rows, lo] += 1 - frac
    mat[rows, hi] += frac
    return mat.to(dtype)


def resample_spectral_weights(weight: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Resample a ``(H, W)`` DCT weight matrix to ``size`` keeping each weight at the same cycles per pixel.

    Args:
        weight: ``(H, W)`` weights indexed by DCT frequency ``(u, v)``.
        size: target ``(H', W')``.

    Returns:
        ``(H', W')`` weights, ``R_H weight R_W^T`` with linear-interpolation matrices whose rows sum to 1
        (so constants, and ``low + high = 1``, are preserved); differentiable w.r.t. ``weight``.

    Examples:
        >>> resample_spectral_weights(torch.tensor([[1.0, 0.0]]), (1, 4))
        tensor([[1.0000, 0.5000, 0.0000, 0.0000]])
    """
    check_shape(weight, "H W", name="spectral weight")
    h, w = weight.shape
    if (h, w) == tuple(size):
        return weight
    r_h = _interp_matrix(size[0], h, weight.dtype, weight.device)
    r_w = _interp_matrix(size[1], w, weight.dtype, weight.device)
    return r_h @ weight @ r_w.mT


class FrequencyDisentanglement(nn.Module):
    """FAFE FD for one task (Eq. 3), optionally followed by dual-input PI on ``(low, high)``.

    Args:
        in_channels: channels of the task feature ``F_T``.
        out_channels: channels of each branch (default ``in_channels``).
        size: ``(H, W)`` of the training-resolution feature map; the weight matrices have this shape.
        kernel_size: kernel of the two branch convolutions (plain conv with bias, "same" padding; the paper only
            says "convolution layers").
        cutoff: radius of the low-pass initialisation (see :func:`frequency_masks`).
        interaction: apply :class:`~freqdense.nn.DualPreInteraction` to ``(low, high)`` (paper: yes).
        pi_grid, pi_order: options of that PI.
        resample: at a resolution other than ``size``, resample the weights (``True``) or raise ``ShapeError``.

    Examples:
        >>> fd = FrequencyDisentanglement(8, 4, size=(12, 16))
        >>> low, high = fd(torch.rand(2, 8, 12, 16))
        >>> low.shape
        torch.Size([2, 4, 12, 16])
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int | None = None,
        *,
        size: tuple[int, int],
        kernel_size: int = 3,
        cutoff: float = 0.5,
        interaction: bool = True,
        pi_grid: tuple[int, int] = (6, 10),
        pi_order: Order = "pool_conv",
        resample: bool = True,
    ) -> None:
        super().__init__()
        out_channels = in_channels if out_channels is None else out_channels
        size = tuple(int(s) for s in size)
        if len(size) != 2 or min(size) < 1:
            raise ConfigError(f"FrequencyDisentanglement: size must be (H, W) with sizes >= 1, got {size}")
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ConfigError(f"FrequencyDisentanglement: kernel_size must be odd and >= 1, got {kernel_size}")
        if not cutoff > 0:
            raise ConfigError(f"FrequencyDisentanglement: cutoff must be > 0 (normalised frequency), got {cutoff}")
        self.size = size
        self.resample = resample
        self.conv_low = nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2)
        self.conv_high = nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2)
        low, high = frequency_masks(size, cutoff=cutoff)
        self.weight_low = nn.Parameter(low)
        self.weight_high = nn.Parameter(high)
        self.interaction = DualPreInteraction(out_channels, grid=pi_grid, order=pi_order) if interaction else None

    def spectral_weights(self, size: tuple[int, int]) -> FrequencyOutput:
        """``(W^low, W^high)`` for a feature map of ``size`` (resampled if it differs from the training size)."""
        size = tuple(size)
        if size != self.size and not self.resample:
            raise ShapeError(
                f"FrequencyDisentanglement: input is {size[0]}x{size[1]} but the weights are {self.size[0]}x"
                f"{self.size[1]}; feed the training resolution or construct with resample=True"
            )
        return FrequencyOutput(
            resample_spectral_weights(self.weight_low, size), resample_spectral_weights(self.weight_high, size)
        )

    def split(self, x: torch.Tensor) -> FrequencyOutput:
        """Eq. (3) only (no PI): ``(IDCT(DCT(conv_1 x) W^low), IDCT(DCT(conv_2 x) W^high))``."""
        check_shape(x, "B C H W", name="FrequencyDisentanglement input", C=self.conv_low.in_channels)
        w_low, w_high = self.spectral_weights(tuple(x.shape[-2:]))
        low = idct2d(dct2d(self.conv_low(x)) * w_low.to(x.dtype))
        high = idct2d(dct2d(self.conv_high(x)) * w_high.to(x.dtype))
        return FrequencyOutput(low, high)

    def forward(self, x: torch.Tensor) -> FrequencyOutput:
        """``x`` ``(B, C_in, H, W)`` -> ``(F^low, F^high)`` each ``(B, C_out, H, W)``, after PI if enabled."""
        low, high = self.split(x)
        if self.interaction is None:
            return FrequencyOutput(low, high)
        return FrequencyOutput(*self.interaction(low, high))

    def extra_repr(self) -> str:
        return f"size={self.size}, resample={self.resample}"
