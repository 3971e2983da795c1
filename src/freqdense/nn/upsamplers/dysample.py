"""DySample as a member of the up-sampler family (Liu et al., "Learning to Upsample by Learning to Sample",
ICCV 2023).

DySample up-samples by point sampling: a 1x1 convolution predicts, for each of the ``s^2 = 4`` sub-pixels of every
low-resolution pixel and each of ``G`` channel groups, an offset ``O`` in low-resolution pixels; the sampling set is
``S = G_init + O`` and the output is ``grid_sample(X, S)`` (bilinear, border clamping,
``align_corners=False``). ``G_init`` is the "bilinear initialisation": sub-pixel ``(i, j)`` of pixel ``(y, x)``
starts at ``(y + (2i - 1) / 4, x + (2j - 1) / 4)``, so with ``O = 0`` DySample equals bilinear 2x up-sampling.

Offsets (the paper's final designs):

- static scope factor: ``O = 0.25 * linear(X)``;
- dynamic scope factor ("+"): ``O = 0.5 * sigmoid(linear_2(X)) * linear_1(X)``;
- ``style="lp"`` (linear, then pixel shuffle): the linear layer maps ``C -> 2 G s^2`` at low resolution;
- ``style="pl"`` (pixel shuffle, then linear; the "-S" variants): ``X`` is pixel-shuffled to ``C / s^2``
  channels at high resolution and the linear layer maps ``C / s^2 -> 2 G`` (``s^4`` times fewer weights).

Variants (paper names): DySample = lp, static; DySample+ = lp, dynamic; DySample-S = pl, static;
DySample-S+ = pl, dynamic. Keys and initialisation follow tiny-smart/dysample: ``offset`` (normal, std 0.001,
bias 0), ``scope`` (no bias, constant 0, so training starts from the static factor) and the persistent buffer
``init_pos`` (1, 2 G s^2, 1, 1), channel ``k * G s^2 + g s^2 + i s + j`` holding component ``k`` (0 = x, 1 = y) of
sub-pixel ``(i, j)`` of group ``g``. Channel group ``g`` samples the contiguous channels
``[g C / G, (g + 1) C / G)``. docs/methods/upsamplers.md.
"""

from __future__ import annotations

from typing import ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import nn

from ...errors import ConfigError
from ._base import Upsampler

__all__ = ["DySampleUpsampler"]

_SCALE = 2  # the family up-samples by 2


def _initial_positions(groups: int, scale: int = _SCALE) -> torch.Tensor:
    """``G_init - (cell centre)``: (1, 2 * groups * scale^2, 1, 1), x components first, then y."""
    steps = (torch.arange(scale, dtype=torch.float32) - (scale - 1) / 2) / scale  # s = 2: [-1/4, 1/4]
    x = steps.repeat(scale)  # sub-pixel i * s + j -> steps[j]
    y = steps.repeat_interleave(scale)  # -> steps[i]
    return torch.cat([x.repeat(groups), y.repeat(groups)]).view(1, -1, 1, 1)


class DySampleUpsampler(Upsampler):
    """DySample (Liu et al., ICCV 2023): learned sampling offsets, ``grid_sample`` of ``lr``; unguided.

    Args:
        hr_channels: channels of the guide (unused by DySample, kept for the family's signature).
        lr_channels: channels ``C`` of the feature to up-sample.
        style: ``"lp"`` (linear then pixel shuffle; DySample / DySample+) or ``"pl"`` (pixel shuffle then linear;
            DySample-S / DySample-S+, needs ``C`` divisible by 4).
        groups: offset groups ``G``; ``C`` must be divisible by it (official default 4).
        dyscope: dynamic scope factor (the "+" variants; adds the ``scope`` layer).

    Parameters: lp ``2 G s^2 (C + 1)`` (+ ``2 G s^2 C`` with ``dyscope``); pl ``2 G (C / s^2 + 1)``
    (+ ``2 G C / s^2``). ``C = 256``, ``G = 4``: 8,224 / 16,416 / 520 / 1,032.
    """

    name: ClassVar[str] = "dysample"
    guided: ClassVar[bool] = False
    exact_double: ClassVar[bool] = True

    def __init__(
        self,
        hr_channels: int,
        lr_channels: int,
        *,
        style: Literal["lp", "pl"] = "lp",
        groups: int = 4,
        dyscope: bool = False,
    ) -> None:
        super().__init__(hr_channels, lr_channels)
        if style not in ("lp", "pl"):
            raise ConfigError(
                f"dysample: style must be 'lp' (linear then pixel shuffle) or 'pl' (pixel shuffle then linear), "
                f"got {style!r}"
            )
        if isinstance(groups, bool) or not isinstance(groups, int) or groups < 1:
            raise ConfigError(f"dysample: groups must be an integer >= 1, got {groups!r}")
        c = self.lr_channels
        if c % groups:
            raise ConfigError(
                f"dysample: lr_channels={c} must be divisible by groups={groups}; pick groups dividing {c}"
            )
        s2 = _SCALE * _SCALE
        if style == "pl" and c % s2:
            raise ConfigError(
                f"dysample: style='pl' pixel-shuffles lr_channels={c} to C / {s2}, so it must be divisible by {s2}; "
                "use style='lp' or a channel count divisible by 4"
            )
        self.style = style
        self.groups = groups
        self.dyscope = bool(dyscope)
        in_ch, out_ch = (c, 2 * groups * s2) if style == "lp" else (c // s2, 2 * groups)
        self.offset = nn.Conv2d(in_ch, out_ch, 1)
        nn.init.normal_(self.offset.weight, std=0.001)
        nn.init.zeros_(self.offset.bias)
        if self.dyscope:
            self.scope = nn.Conv2d(in_ch, out_ch, 1, bias=False)
            nn.init.zeros_(self.scope.weight)
        self.register_buffer("init_pos", _initial_positions(groups))

    def _fuse(self, hr: torch.Tensor, lr: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return hr, self._upsample(lr)

    def _learned_offsets(self, lr: torch.Tensor) -> torch.Tensor:
        """``O`` at high resolution: (B, 2 G, 2h, 2w), x components of the groups first, in low-res pixels."""
        x = lr if self.style == "lp" else F.pixel_shuffle(lr, _SCALE)
        offset = self.offset(x)
        if self.dyscope:
            offset = offset * self.scope(x).sigmoid() * 0.5
        else:
            offset = offset * 0.25
        return F.pixel_shuffle(offset, _SCALE) if self.style == "lp" else offset

    def _upsample(self, lr: torch.Tensor) -> torch.Tensor:
        b, c, h, w = lr.shape
        g, s = self.groups, _SCALE
        # Sub-pixel (i, j) of every cell gets init_pos[i, j]: the buffer shuffled to one s x s tile, then tiled.
        init = F.pixel_shuffle(self.init_pos.to(lr.dtype), s).repeat(1, 1, h, w)
        offset = (self._learned_offsets(lr) + init).view(b, 2, g, s * h, s * w)
        # Sampling point = low-res cell centre (p // s + 1/2 along each axis, pixel units) + offset, mapped to
        # grid_sample's [-1, 1] with align_corners=False (-1 / +1 = the outer edges of the first / last pixel).
        cx = torch.div(torch.arange(s * w, device=lr.device), s, rounding_mode="floor").to(lr.dtype) + 0.5
        cy = torch.div(torch.arange(s * h, device=lr.device), s, rounding_mode="floor").to(lr.dtype) + 0.5
        gx = (offset[:, 0] + cx) * (2.0 / w) - 1.0
        gy = (offset[:, 1] + cy[:, None]) * (2.0 / h) - 1.0
        grid = torch.stack((gx, gy), dim=-1).reshape(b * g, s * h, s * w, 2)
        out = F.grid_sample(
            lr.reshape(b * g, c // g, h, w), grid, mode="bilinear", padding_mode="border", align_corners=False
        )
        return out.view(b, c, s * h, s * w)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, style={self.style!r}, groups={self.groups}, dyscope={self.dyscope}"
