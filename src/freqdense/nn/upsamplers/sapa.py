"""SAPA as a member of the up-sampler family (Lu et al., "SAPA: Similarity-Aware Point Affiliation for Feature
Upsampling", NeurIPS 2022).

With the encoder feature ``y = hr`` (B, C_hr, 2h, 2w) and the decoder feature ``x = lr`` (B, C_lr, h, w), every
output point ``p`` compares its encoder point with the ``k x k`` decoder points around ``floor(p / 2)`` and
reassembles the decoder feature with the normalised similarities:

    w_t(p) = softmax_t( sim(y_p, x_{floor(p/2) + t}) ),        out_p = sum_t w_t(p) x_{floor(p/2) + t}

over the taps ``t`` of the centred ``k x k`` window. Both features are layer-normalised over channels first
(``LN_y``, ``LN_x``); the values ``x`` are the raw decoder feature. Variants (the similarity function):

- ``"I"`` (inner product): ``sim = LN_y(y)^T LN_x(x)``; needs ``C_hr == C_lr``; no weights but the norms' (the
  paper lists SAPA-I as parameter-free and the official code has no SAPA-I module; ``norm=False`` has none at all).
- ``"B"`` (low-rank bilinear, the official ``SAPA`` module and default): ``q = W_q LN_y(y) + b_q``,
  ``k = W_k LN_x(x) + b_k`` (``E`` channels each), ``sim = q^T k``.
- ``"G"`` (gated bilinear, the official ``SAPAExp(q_mode="gate")``): ``g = sigmoid(w_g^T LN_x(x) + b_g)`` at
  low resolution, ``q = NN_2(g) (W_qy LN_y(y) + b_qy) + (1 - NN_2(g)) NN_2(W_qx x + b_qx)`` (the decoder query
  reads the raw ``x``, as in the official code), ``k`` as in ``"B"``.

Window taps outside the decoder map behave like zero-padded keys and values, as the official CUDA kernels do:
their similarity is 0 (so they still take a share ``e^0 / Z`` of the softmax) and they add nothing to the sum.
There is no ``1 / sqrt(E)`` temperature.

Memory: the similarities are computed one window row at a time with the query regrouped as its four sub-pixel
phases over the low-resolution grid, (B, h, w, 4, E) against the row's ``k`` keys (B, h, w, E, k) - a view of the
padded key - so nothing of size ``k^2 x E`` at either resolution is built (the temporaries are the regrouped query
and the keys of one row, ``k / 4`` of the query's size); the only ``k^2``-sized tensor is the kernel itself
(B, k^2, 2h, 2w), as in the official ``sim`` op. The reassembly is :func:`freqdense.ops.reassemble.carafe` (the
official ``atn`` op is a CARAFE with the kernel in channels-last layout).

State-dict keys are the official ones: ``norm_y``, ``norm_x`` (``LayerNorm``, absent with ``norm=False``), then
``q``, ``k`` (``"B"``) or ``qy``, ``qx``, ``gate``, ``k`` (``"G"``), each an ``nn.Linear``.
"""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from ..._checks import check_shape
from ...errors import ConfigError, ShapeError
from ...ops.reassemble import carafe
from ._base import Upsampler

__all__ = ["SAPA_VARIANTS", "SAPAUpsampler", "sapa_similarity"]

#: Variant letter -> similarity function (the paper's names SAPA-I, SAPA-B, SAPA-G).
SAPA_VARIANTS: dict[str, str] = {"I": "inner product", "B": "bilinear", "G": "gated bilinear"}


def _positive_int(value: object, option: str, hint: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ConfigError(f"sapa: {option} must be an integer >= 1 ({hint}), got {value!r}")
    return value


def _phase_logits(query: torch.Tensor, key: torch.Tensor, kernel_size: int) -> torch.Tensor:
    """Similarities in phase layout (B, h, w, 4, k^2): ``[b, i, j, 2a + c, t]`` is output pixel (2i + a, 2j + c)."""
    b, h, w, e = key.shape
    k, r = kernel_size, kernel_size // 2
    padded = F.pad(key, (0, 0, r, r, r, r))  # zero keys outside the map: similarity 0
    phases = query.reshape(b, h, 2, w, 2, e).permute(0, 1, 3, 2, 4, 5).reshape(b, h, w, 4, e)
    # One window row at a time: the k keys of row dy for every low-res pixel, (B, h, w, E, k), is a view of the
    # padded key; the four phases against them is one small matrix product per low-res pixel.
    rows = [torch.matmul(phases, padded[:, dy : dy + h].unfold(2, k, 1)) for dy in range(k)]
    return torch.cat(rows, dim=-1)


def _to_output_layout(phased: torch.Tensor) -> torch.Tensor:
    """(B, h, w, 4, T) phase layout -> (B, T, 2h, 2w)."""
    b, h, w, _, taps = phased.shape
    return phased.reshape(b, h, w, 2, 2, taps).permute(0, 5, 1, 3, 2, 4).reshape(b, taps, 2 * h, 2 * w)


def sapa_similarity(query: torch.Tensor, key: torch.Tensor, kernel_size: int) -> torch.Tensor:
    """Windowed similarity logits of SAPA (the official ``sim`` op), channels-last inputs.

    Args:
        query: (B, 2h, 2w, E) high-resolution embeddings.
        key: (B, h, w, E) low-resolution embeddings.
        kernel_size: odd window side ``k``.

    Returns:
        (B, k^2, 2h, 2w) with ``out[:, dy * k + dx, p] = query[p] . key[floor(p / 2) + (dy - k // 2, dx - k // 2)]``,
        0 where the tap falls outside ``key``.
    """
    check_shape(query, "B H W E", name="sapa_similarity query")
    check_shape(key, "B h w E", name="sapa_similarity key")
    b, h, w, e = key.shape
    if tuple(query.shape) != (b, 2 * h, 2 * w, e):
        raise ShapeError(
            f"sapa_similarity: query must be (B, 2h, 2w, E) = {(b, 2 * h, 2 * w, e)} for key {tuple(key.shape)} "
            f"(channels last, exactly twice the key's size), got {tuple(query.shape)}"
        )
    if not isinstance(kernel_size, int) or kernel_size < 1 or kernel_size % 2 == 0:
        raise ConfigError(f"sapa_similarity: kernel_size must be an odd integer >= 1, got {kernel_size!r}")
    return _to_output_layout(_phase_logits(query, key, kernel_size))


class SAPAUpsampler(Upsampler):
    """SAPA (NeurIPS 2022): softmax of encoder-decoder similarities in a ``k x k`` window reassembles ``lr``.

    Args:
        hr_channels: channels of the encoder (guide) feature ``hr`` (``dim_y`` in the official code).
        lr_channels: channels of the decoder feature ``lr`` (``dim_x``).
        variant: ``"I"``, ``"B"`` (default, the official ``SAPA``) or ``"G"`` (see the module docstring).
        up_kernel_size: window side ``k`` (official 5).
        embedding_dim: ``E`` of the query/key embeddings of ``"B"`` and ``"G"`` (official default 64; the
            official SegFormer runs used 32); ``"I"`` has none, leave it unset there.
        qkv_bias: biases of the embeddings (official True).
        norm: LayerNorm of both features before the similarity (official True).

    Parameters (``"B"``, ``C_hr = C_lr = C``): ``4 C + 2 (C + 1) E``; 33,920 at ``C = 256``, ``E = 64``.
    """

    name: ClassVar[str] = "sapa"
    guided: ClassVar[bool] = True
    exact_double: ClassVar[bool] = True

    def __init__(
        self,
        hr_channels: int,
        lr_channels: int,
        *,
        variant: str = "B",
        up_kernel_size: int = 5,
        embedding_dim: int | None = None,
        qkv_bias: bool = True,
        norm: bool = True,
    ) -> None:
        super().__init__(hr_channels, lr_channels)
        if variant not in SAPA_VARIANTS:
            raise ConfigError(
                f"sapa: variant must be one of {', '.join(map(repr, SAPA_VARIANTS))} (SAPA-I inner product, SAPA-B "
                f"bilinear, SAPA-G gated bilinear), got {variant!r}"
            )
        k = up_kernel_size
        if not isinstance(k, int) or isinstance(k, bool) or k < 1 or k % 2 == 0:
            raise ConfigError(f"sapa: up_kernel_size must be an odd integer >= 1 (a centred window), got {k!r}")
        self.variant = variant
        self.up_kernel_size = k
        cy, cx = self.hr_channels, self.lr_channels
        if variant == "I":
            if embedding_dim is not None:
                raise ConfigError(
                    f"sapa: variant 'I' compares the normalised features directly and has no embedding_dim; drop "
                    f"embedding_dim={embedding_dim!r} or use variant 'B' / 'G'"
                )
            if cy != cx:
                raise ConfigError(
                    f"sapa: variant 'I' takes inner products of hr and lr features, so it needs hr_channels == "
                    f"lr_channels, got {cy} and {cx}; use variant 'B' or 'G' (learned embeddings)"
                )
            self.embedding_dim = cy
        else:
            e = 64 if embedding_dim is None else embedding_dim
            self.embedding_dim = _positive_int(e, "embedding_dim", "official 64")
        self.norm = bool(norm)
        if self.norm:
            self.norm_y = nn.LayerNorm(cy)
            self.norm_x = nn.LayerNorm(cx)
        e, bias = self.embedding_dim, bool(qkv_bias)
        if variant == "B":
            self.q = nn.Linear(cy, e, bias=bias)
        elif variant == "G":
            self.qy = nn.Linear(cy, e, bias=bias)
            self.qx = nn.Linear(cx, e, bias=bias)
            self.gate = nn.Linear(cx, 1, bias=bias)
        if variant != "I":
            self.k = nn.Linear(cx, e, bias=bias)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """The official initialisation: truncated-normal (std 0.02) linear weights, zero biases, unit norms."""
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.trunc_normal_(module.weight, std=0.02)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.LayerNorm):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def embeddings(self, hr: torch.Tensor, lr: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Query (B, 2h, 2w, E) and key (B, h, w, E), channels last, for ``hr`` exactly twice ``lr``'s size."""
        y = hr.permute(0, 2, 3, 1)
        x = lr.permute(0, 2, 3, 1)
        y_n = self.norm_y(y) if self.norm else y
        x_n = self.norm_x(x) if self.norm else x
        if self.variant == "I":
            return y_n, x_n
        key = self.k(x_n)
        if self.variant == "B":
            return self.q(y_n), key
        b, h, w, _ = x.shape
        e = self.embedding_dim
        gate = torch.sigmoid(self.gate(x_n))[:, :, None, :, None, :]  # (B, h, 1, w, 1, 1): NN_2 by broadcasting
        from_lr = self.qx(x)[:, :, None, :, None, :]
        from_hr = self.qy(y_n).reshape(b, h, 2, w, 2, e)
        return (from_lr + gate * (from_hr - from_lr)).reshape(b, 2 * h, 2 * w, e), key

    def kernels(self, hr: torch.Tensor, lr: torch.Tensor) -> torch.Tensor:
        """Normalised reassembly kernels (B, k^2, 2h, 2w) (softmax over the window)."""
        query, key = self.embeddings(hr, lr)
        return _to_output_layout(torch.softmax(_phase_logits(query, key, self.up_kernel_size), dim=-1))

    def _fuse(self, hr: torch.Tensor, lr: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return hr, carafe(lr, self.kernels(hr, lr), self.up_kernel_size, 1, 2)

    def extra_repr(self) -> str:
        return (
            f"{super().extra_repr()}, variant={self.variant!r}, up_kernel_size={self.up_kernel_size}, "
            f"embedding_dim={self.embedding_dim}, norm={self.norm}"
        )
