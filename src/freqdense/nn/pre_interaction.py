"""Pre-Interaction (PI) of FAFE: CSTrack's cross-correlation channel attention, single- and dual-input.

Fu et al., "Lifting the Veil of Frequency in Joint Segmentation and Depth Estimation", ACM MM 2021, §3.2, Eq. (1).
No official FAFE code exists; the paper derives PI from CSTrack's ``CCN`` (``lib/models/mot/cstrack.py``), whose
exact behaviour is in docs/reference_code.md#cstrack-ccn; the dual-input reading is
docs/reference_code.md#fafe-pre-interaction.

For inputs ``I1, I2`` of shape ``(B, C, H, W)``:

1. ``V_k = func_k(I_k)`` flattened to ``(B, C, N)``, ``func_k`` = conv3x3 (bias) -> InstanceNorm -> LeakyReLU(0.3)
   and an average pool to a fixed grid (``N = 6 * 10``); ``order`` picks pool->conv (CCN) or conv->pool (paper).
2. ``A_1 = w1 softmax(V1 V1^T) + (1 - w1) softmax(V1 V2^T)``, ``A_2 = w2 softmax(V2 V2^T) + (1 - w2) softmax(V2 V1^T)``:
   ``(B, C, C)`` row-softmaxed channel affinities, no ``1/sqrt(N)`` scaling, mixed *after* the softmax.
3. ``O_k = A_k I_k + I_k`` on the full-resolution, un-pooled input.

Single-input PI is ``I1 = I2 = x`` with separate ``func_1, func_2`` (exactly CCN); its parameter names are CCN's,
so a CSTrack CCN state dict loads with ``strict=True``.
"""

from __future__ import annotations

import logging
from typing import Literal, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from .._checks import check_shape
from ..errors import ConfigError, ShapeError

__all__ = ["DualPreInteraction", "PreInteraction", "PreInteractionOutput"]

logger = logging.getLogger(__name__)

Order = Literal["pool_conv", "conv_pool"]


class PreInteractionOutput(NamedTuple):
    """The two interacted streams, each ``(B, C, H, W)`` like the input(s).

    For single-input PI in FAFE: ``first`` feeds segmentation, ``second`` depth (CSTrack: detection, ReID).
    For dual-input PI after FD: ``first`` is the low-frequency stream, ``second`` the high-frequency one.
    """

    first: torch.Tensor
    second: torch.Tensor


def _branch(channels: int, negative_slope: float) -> nn.Sequential:
    # Index 0 is the conv so the keys are CCN's ``c_attention{1,2}.0.weight/bias``; IN has no parameters.
    return nn.Sequential(
        nn.Conv2d(channels, channels, 3, stride=1, padding=1, bias=True),
        nn.InstanceNorm2d(channels),
        nn.LeakyReLU(negative_slope),
    )


class _CrossCorrelation(nn.Module):
    """Shared parameters and maths of single- and dual-input PI (CCN names: ``w1, w2, c_attention1/2``)."""

    def __init__(self, channels: int, *, grid: tuple[int, int], order: Order, negative_slope: float) -> None:
        super().__init__()
        if channels < 1:
            raise ConfigError(f"{type(self).__name__}: channels must be >= 1, got {channels}")
        if order not in ("pool_conv", "conv_pool"):
            raise ConfigError(
                f"{type(self).__name__}: order must be 'pool_conv' (CSTrack CCN) or 'conv_pool' (FAFE text), "
                f"got {order!r}"
            )
        grid = tuple(int(g) for g in grid)
        if len(grid) != 2 or min(grid) < 1:
            raise ConfigError(f"{type(self).__name__}: grid must be two sizes >= 1 (H, W), got {grid}")
        self.channels = channels
        self.grid = grid
        self.order = order
        # Unconstrained scalars as in CCN (no sigmoid/clamp), initialised at 0.5.
        self.w1 = nn.Parameter(torch.full((1,), 0.5))
        self.w2 = nn.Parameter(torch.full((1,), 0.5))
        self.c_attention1 = _branch(channels, negative_slope)
        self.c_attention2 = _branch(channels, negative_slope)

    def _embed(self, x: torch.Tensor, branch: nn.Sequential) -> torch.Tensor:
        if self.order == "pool_conv":
            y = branch(F.adaptive_avg_pool2d(x, self.grid))
        else:
            y = F.adaptive_avg_pool2d(branch(x), self.grid)
        return y.flatten(2)

    def _attention(self, x1: torch.Tensor, x2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        v1 = self._embed(x1, self.c_attention1)
        v2 = self._embed(x2, self.c_attention2)
        cross = v1 @ v2.mT  # (B, C, C); the other cross matrix is its transpose
        a1 = self.w1 * torch.softmax(v1 @ v1.mT, dim=-1) + (1 - self.w1) * torch.softmax(cross, dim=-1)
        a2 = self.w2 * torch.softmax(v2 @ v2.mT, dim=-1) + (1 - self.w2) * torch.softmax(cross.mT, dim=-1)
        return a1, a2

    def _check(self, x: torch.Tensor, name: str) -> None:
        check_shape(x, "B C H W", name=name, C=self.channels)

    def extra_repr(self) -> str:
        return f"channels={self.channels}, grid={self.grid}, order={self.order!r}"


class PreInteraction(_CrossCorrelation):
    """Single-input PI = CSTrack CCN: one feature map in, two interacted streams out.

    Args:
        channels: ``C`` of the input.
        grid: fixed ``(H, W)`` pooling grid; CCN's ``AdaptiveAvgPool2d((6, 10))``.
        order: ``"pool_conv"`` (CCN, default; loads CCN weights with identical outputs) or ``"conv_pool"``
            (FAFE's text: conv, then pool; same parameters, more compute).
        negative_slope: LeakyReLU slope (CCN: 0.3).

    Parameters: ``2 (9 C^2 + C) + 2``.

    Examples:
        >>> pi = PreInteraction(8)
        >>> out = pi(torch.rand(2, 8, 12, 20))
        >>> out.first.shape, out.second.shape
        (torch.Size([2, 8, 12, 20]), torch.Size([2, 8, 12, 20]))
    """

    def __init__(
        self, channels: int, *, grid: tuple[int, int] = (6, 10), order: Order = "pool_conv", negative_slope: float = 0.3
    ) -> None:
        super().__init__(channels, grid=grid, order=order, negative_slope=negative_slope)

    def attention(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The two mixed ``(B, C, C)`` channel attentions ``(A_1, A_2)``; each row sums to 1 (while w in [0, 1])."""
        self._check(x, "PreInteraction input")
        return self._attention(x, x)

    def forward(self, x: torch.Tensor) -> PreInteractionOutput:
        """Interact ``x`` ``(B, C, H, W)`` with itself; returns ``(A_1 x + x, A_2 x + x)``."""
        a1, a2 = self.attention(x)
        flat = x.flatten(2)
        return PreInteractionOutput((a1 @ flat).view_as(x) + x, (a2 @ flat).view_as(x) + x)


class DualPreInteraction(_CrossCorrelation):
    """Dual-input PI (FAFE Eq. 1, docs/reference_code.md#fafe-pre-interaction): two maps of equal channels in, each
    attended with self/cross terms.

    Args and parameters as :class:`PreInteraction`; ``c_attention1`` embeds ``I1``, ``c_attention2`` embeds ``I2``.
    The two inputs may differ in spatial size (attention is ``C x C`` on the pooled grid).
    With ``I1 == I2`` this is exactly :class:`PreInteraction` with the same weights.

    Examples:
        >>> pi = DualPreInteraction(4)
        >>> low, high = pi(torch.rand(1, 4, 12, 20), torch.rand(1, 4, 12, 20))
        >>> low.shape
        torch.Size([1, 4, 12, 20])
    """

    def __init__(
        self, channels: int, *, grid: tuple[int, int] = (6, 10), order: Order = "pool_conv", negative_slope: float = 0.3
    ) -> None:
        super().__init__(channels, grid=grid, order=order, negative_slope=negative_slope)

    def attention(self, x1: torch.Tensor, x2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The two mixed ``(B, C, C)`` channel attentions ``(A_1, A_2)``."""
        self._check(x1, "DualPreInteraction input 1")
        self._check(x2, "DualPreInteraction input 2")
        if x1.shape[0] != x2.shape[0]:
            raise ShapeError(
                f"DualPreInteraction: inputs need the same batch size, got {tuple(x1.shape)} and {tuple(x2.shape)}"
            )
        return self._attention(x1, x2)

    def forward(self, x1: torch.Tensor, x2: torch.Tensor) -> PreInteractionOutput:
        """Returns ``(A_1 I1 + I1, A_2 I2 + I2)``, shapes of ``I1`` and ``I2``."""
        a1, a2 = self.attention(x1, x2)
        return PreInteractionOutput((a1 @ x1.flatten(2)).view_as(x1) + x1, (a2 @ x2.flatten(2)).view_as(x2) + x2)
