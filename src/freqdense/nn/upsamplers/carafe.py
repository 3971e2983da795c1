"""CARAFE as a member of the up-sampler family (Wang et al., "CARAFE: Content-Aware ReAssembly of FEatures",
ICCV 2019), with the keys, defaults and initialisation of mmcv's ``CARAFEPack``.

Kernel prediction module: a 1x1 ``channel_compressor`` (``C -> C_m``), a ``k_enc x k_enc``
``content_encoder`` (``C_m -> G k_up^2 s^2``), pixel shuffle to the ``s``-times larger grid and a softmax over the
``k_up^2`` taps of each group. Content-aware reassembly:
``X'[p] = sum_{|dy|, |dx| <= k_up // 2} W_p[dy, dx] X[floor(p / s) + (dy, dx)]``, taps outside the map counting
as zero (mmcv's kernel). The reassembly is :func:`freqdense.ops.reassemble.carafe`, which never builds the
unfolded ``C k_up^2`` tensor at the output resolution. docs/methods/upsamplers.md.
"""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from ...errors import ConfigError
from ...ops.filters import normalize_kernels
from ...ops.reassemble import carafe
from ._base import Upsampler

__all__ = ["CARAFEUpsampler"]

_SCALE = 2  # the family up-samples by 2


def _positive_int(value: object, option: str, *, odd: bool = False) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1 or (odd and value % 2 == 0):
        need = "an odd integer >= 1 (the window is centred)" if odd else "an integer >= 1"
        raise ConfigError(f"carafe: {option} must be {need}, got {value!r}")
    return value


class CARAFEUpsampler(Upsampler):
    """CARAFE 2x up-sampling of ``lr`` with content-predicted ``k_up x k_up`` kernels (mmcv ``CARAFEPack``); unguided.

    Args:
        hr_channels: channels of the guide (unused by CARAFE, kept for the family's signature).
        lr_channels: channels ``C`` of the feature to up-sample.
        up_kernel: reassembly kernel side ``k_up`` (odd; paper and mmcv default 5).
        up_group: kernel groups ``G``; group ``g`` reassembles channels ``[g C / G, (g + 1) C / G)``.
        encoder_kernel: content-encoder kernel side ``k_enc`` (odd; default 3).
        encoder_dilation: content-encoder dilation (default 1).
        compressed_channels: ``C_m`` of the channel compressor (default 64).

    Parameters: ``(C + 1) C_m + (C_m k_enc^2 + 1) G k_up^2 s^2``; 74,148 for ``C = 256`` with the defaults.
    """

    name: ClassVar[str] = "carafe"
    guided: ClassVar[bool] = False
    exact_double: ClassVar[bool] = True

    def __init__(
        self,
        hr_channels: int,
        lr_channels: int,
        *,
        up_kernel: int = 5,
        up_group: int = 1,
        encoder_kernel: int = 3,
        encoder_dilation: int = 1,
        compressed_channels: int = 64,
    ) -> None:
        super().__init__(hr_channels, lr_channels)
        self.up_kernel = _positive_int(up_kernel, "up_kernel", odd=True)
        self.up_group = _positive_int(up_group, "up_group")
        self.encoder_kernel = _positive_int(encoder_kernel, "encoder_kernel", odd=True)
        self.encoder_dilation = _positive_int(encoder_dilation, "encoder_dilation")
        self.compressed_channels = _positive_int(compressed_channels, "compressed_channels")
        if self.lr_channels % self.up_group:
            raise ConfigError(
                f"carafe: lr_channels={self.lr_channels} must be divisible by up_group={up_group}; pick a group "
                f"count dividing {self.lr_channels}"
            )
        self.channel_compressor = nn.Conv2d(self.lr_channels, self.compressed_channels, 1)
        self.content_encoder = nn.Conv2d(
            self.compressed_channels,
            self.up_group * self.up_kernel**2 * _SCALE**2,
            self.encoder_kernel,
            padding=(self.encoder_kernel - 1) * self.encoder_dilation // 2,
            dilation=self.encoder_dilation,
        )
        nn.init.xavier_uniform_(self.channel_compressor.weight)
        nn.init.zeros_(self.channel_compressor.bias)
        nn.init.normal_(self.content_encoder.weight, std=0.001)
        nn.init.zeros_(self.content_encoder.bias)

    def kernels(self, lr: torch.Tensor) -> torch.Tensor:
        """Normalised reassembly kernels (B, G k_up^2, 2h, 2w) for ``lr`` (B, C, h, w): channel ``g k^2 + t``."""
        logits = F.pixel_shuffle(self.content_encoder(self.channel_compressor(lr)), _SCALE)
        return normalize_kernels(logits, self.up_kernel, group=self.up_group)

    def _fuse(self, hr: torch.Tensor, lr: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return hr, self._upsample(lr)

    def _upsample(self, lr: torch.Tensor) -> torch.Tensor:
        return carafe(lr, self.kernels(lr), self.up_kernel, self.up_group, _SCALE)

    def extra_repr(self) -> str:
        return (
            f"{super().extra_repr()}, up_kernel={self.up_kernel}, up_group={self.up_group}, "
            f"encoder_kernel={self.encoder_kernel}, encoder_dilation={self.encoder_dilation}, "
            f"compressed_channels={self.compressed_channels}"
        )
