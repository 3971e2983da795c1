"""The interface every member of the feature-upsampler family implements.

``forward(hr, lr)`` is FreqFusion's signature: ``hr`` is the high-resolution feature (a guide for the methods that
use one), ``lr`` the feature to up-sample, nominally half of ``hr``'s size (floor or ceil per axis). It returns an
:class:`UpsamplerOutput` ``(hr_feat, lr_feat)``: ``lr_feat`` has ``lr``'s channels at ``hr``'s size, ``hr_feat`` is
``hr`` unchanged except for methods that also filter the guide. :class:`~freqdense.nn.FreqFusion` is a member as it
is (its output ``(mask, hr_feat, lr_feat)`` has the same two fields, ``hr_feat`` high-pass enhanced), so decoders
read the two fields by name and add (FPN) or concatenate (SegFormer head) them.

``upsample(lr)`` is plain 2x up-sampling for methods that need no guide; guided methods refuse it by name.

Odd sizes: a method whose kernels are defined for exactly 2x (every learned one) sees ``lr`` padded to
``ceil(H / 2) x ceil(W / 2)`` and ``hr`` padded to twice that (replicate padding at the bottom and right), and its
outputs are cropped back to ``H x W``. Interpolation-based methods resize straight to ``hr``'s size.
"""

from __future__ import annotations

from typing import ClassVar, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from ..._checks import check_shape
from ...errors import ConfigError, ShapeError

__all__ = ["Upsampler", "UpsamplerOutput", "double_size"]


class UpsamplerOutput(NamedTuple):
    """What a family member returns; decoders add or concatenate the two fields."""

    hr_feat: torch.Tensor
    """(B, C_hr, H, W): the high-resolution feature (``hr`` itself unless the method filters it)."""
    lr_feat: torch.Tensor
    """(B, C_lr, H, W): ``lr`` up-sampled to ``hr``'s size."""


def double_size(hr: torch.Tensor, lr: torch.Tensor) -> tuple[int, int]:
    """The LR size both inputs are padded to, ``ceil(H/2) x ceil(W/2)``; refuses an ``lr`` not half of ``hr``."""
    out = []
    for axis, big, small in (("height", hr.shape[-2], lr.shape[-2]), ("width", hr.shape[-1], lr.shape[-1])):
        if abs(2 * small - big) > 1:
            raise ShapeError(
                f"up-sampler inputs: lr {axis} must be half of hr's (floor or ceil), got hr {tuple(hr.shape)} and "
                f"lr {tuple(lr.shape)}; the family up-samples by 2 - use a backbone whose levels halve, or resize"
            )
        out.append((big + 1) // 2)
    return out[0], out[1]


class Upsampler(nn.Module):
    """Base class: shape checks, odd-size padding and the ``upsample`` shortcut; members implement ``_fuse``.

    Class attributes a member sets:
        name: registry name.
        guided: True when ``_fuse`` reads ``hr`` (then ``upsample(lr)`` is refused).
        exact_double: True when ``_fuse`` needs ``hr`` exactly twice ``lr`` (see the module docstring).
    """

    name: ClassVar[str] = "upsampler"
    guided: ClassVar[bool] = False
    exact_double: ClassVar[bool] = True

    def __init__(self, hr_channels: int, lr_channels: int) -> None:
        super().__init__()
        if int(hr_channels) < 1 or int(lr_channels) < 1:
            raise ConfigError(
                f"{self.name}: hr_channels and lr_channels must be >= 1, got {hr_channels!r}, {lr_channels!r}"
            )
        self.hr_channels = int(hr_channels)
        self.lr_channels = int(lr_channels)

    def _fuse(self, hr: torch.Tensor, lr: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Members: ``(hr_out, lr_up)`` for ``hr`` of exactly twice ``lr``'s size (or any size with
        ``exact_double=False``)."""
        raise NotImplementedError

    def forward(self, hr: torch.Tensor, lr: torch.Tensor) -> UpsamplerOutput:
        """``hr`` (B, C_hr, H, W), ``lr`` (B, C_lr, h, w) with ``h in {floor(H/2), ceil(H/2)}`` ->
        ``UpsamplerOutput(hr_feat (B, C_hr, H, W), lr_feat (B, C_lr, H, W))``."""
        check_shape(hr, "B C H W", name=f"{self.name} hr", C=self.hr_channels)
        check_shape(lr, "B C H W", name=f"{self.name} lr", C=self.lr_channels)
        if hr.shape[0] != lr.shape[0]:
            raise ShapeError(
                f"{self.name}: hr and lr must have the same batch size, got {tuple(hr.shape)} and {tuple(lr.shape)}"
            )
        if not self.exact_double:  # interpolation resizes to any size, as the decoders always allowed
            return UpsamplerOutput(*self._fuse(hr, lr))
        lh, lw = double_size(hr, lr)
        height, width = hr.shape[-2:]
        if (lh, lw) != tuple(lr.shape[-2:]):
            lr = F.pad(lr, (0, lw - lr.shape[-1], 0, lh - lr.shape[-2]), mode="replicate")
        if (2 * lh, 2 * lw) != (height, width):
            hr = F.pad(hr, (0, 2 * lw - width, 0, 2 * lh - height), mode="replicate")
        hr_out, lr_up = self._fuse(hr, lr)
        return UpsamplerOutput(hr_out[..., :height, :width], lr_up[..., :height, :width])

    def upsample(self, lr: torch.Tensor) -> torch.Tensor:
        """Plain 2x up-sampling of ``lr`` (B, C_lr, h, w) -> (B, C_lr, 2h, 2w); guided methods refuse."""
        if self.guided:
            raise ConfigError(
                f"{self.name} is guided by the high-resolution feature; call it as module(hr, lr), or pick an "
                "unguided up-sampler (bilinear, nearest, deconv, pixel_shuffle, carafe, dysample*)"
            )
        check_shape(lr, "B C H W", name=f"{self.name} lr", C=self.lr_channels)
        return self._upsample(lr)

    def _upsample(self, lr: torch.Tensor) -> torch.Tensor:
        """Unguided members: 2x up-sampling without a guide (the default uses ``_fuse`` with a dummy guide)."""
        b, _, h, w = lr.shape
        guide = lr.new_zeros(b, self.hr_channels, 2 * h, 2 * w)
        return self._fuse(guide, lr)[1]

    def extra_repr(self) -> str:
        return f"hr_channels={self.hr_channels}, lr_channels={self.lr_channels}"
