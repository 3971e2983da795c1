"""IndexNet as a guided member of the up-sampler family.

Lu et al., "Indices Matter: Learning to Index for Deep Image Matting", ICCV 2019. An *index block* reads the
encoder feature ``X`` (``hr``, before it is down-sampled) and predicts, for every 2x2 window, four logits
``L = f(X)`` (one per window position, shape ``(B, C_i, 4, H/2, W/2)``). Two index maps follow:

- decoder index ``D = shuffle(sigmoid(L))`` (``H x W``), which up-samples the decoder feature ``Y``:
  ``up(Y) = D * NN(Y)`` (NN: nearest 2x);
- encoder index ``E = shuffle(softmax_4(sigmoid(L)))`` (softmax over the 4 window positions), which pools
  ``X`` as ``pool(X) = 4 * avgpool_2x2(E * X)`` (:meth:`IndexNetUpsampler.downsample`).

``shuffle`` is the 2x pixel shuffle (window position ``2a + b`` goes to row ``2i + a``, column ``2j + b``).
Index blocks (``block``):

- ``holistic`` (HIN): one conv ``C -> 4``; ``C_i = 1``, the index is shared by all channels.
- ``depthwise_o2o`` (DIN, one-to-one): four depthwise convs ``C -> C`` (groups = C).
- ``depthwise_m2o`` (DIN, many-to-one): four full convs ``C_hr -> C_lr``.

``use_context`` widens the stride-2 conv from 2x2 to 4x4 (padding 1); ``nonlinear`` inserts BatchNorm + ReLU6 and
a 1x1 conv (``conv(k, stride 2) -> BN -> ReLU6 -> conv 1x1``; the holistic block's hidden width is ``2C``).

Default: ``depthwise_m2o``, linear, no context - the ``DepthwiseM2OIndexBlock(256)`` printed in the FADE (ECCV 2022)
SegFormer log whose result FADE and SAPA (NeurIPS 2022) report as "IndexNet" (their parameter column, +12.60M for
six 256-channel up-samplers, matches ``holistic`` nonlinear with context instead: 6 x 2,100,224). State-dict keys and
parameter counts are those of the official ``scripts/hlindex.py`` blocks (poppinace/indexnet_matting):
``indexnet.weight`` (holistic, linear), ``indexnet.{0,1,3}.*`` (holistic, nonlinear), ``indexnet{1..4}.{0,1,3}.*``
(depthwise). The depthwise index is per channel: the one-to-one block needs ``hr_channels == lr_channels``; the
many-to-one block maps ``C_hr -> C_lr`` (first conv ``C_hr -> C_lr``, nonlinear 1x1 ``C_lr -> C_lr``), which is the
official block when the two are equal.

Memory: ``D * NN(Y)`` is computed in the window layout ``sigmoid(L) * Y[:, :, None]`` and shuffled once, so
neither ``D`` nor ``NN(Y)`` is materialised at the output resolution.
"""

from __future__ import annotations

from typing import ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import nn

from ..._checks import check_shape
from ...errors import ConfigError
from ._base import Upsampler

__all__ = ["INDEX_BLOCKS", "IndexNetUpsampler"]

IndexBlock = Literal["holistic", "depthwise_o2o", "depthwise_m2o"]

#: The index-block types (paper: HIN, O2O DIN, M2O DIN).
INDEX_BLOCKS: tuple[str, ...] = ("holistic", "depthwise_o2o", "depthwise_m2o")


def _pad_even(x: torch.Tensor) -> torch.Tensor:
    """Replicate-pad the bottom/right of ``x`` to even height and width (the family's odd-size rule)."""
    pad_h, pad_w = x.shape[-2] % 2, x.shape[-1] % 2
    if pad_h or pad_w:
        x = F.pad(x, (0, pad_w, 0, pad_h), mode="replicate")
    return x


class IndexNetUpsampler(Upsampler):
    """IndexNet up-sampling ``lr_up = shuffle(sigmoid(f(hr))) * NN(lr)`` with a learned index block ``f``.

    Args:
        hr_channels: channels of the guide ``hr`` (the encoder feature the index is learned from).
        lr_channels: channels of ``lr``; must equal ``hr_channels`` for ``depthwise_o2o``.
        block: ``"holistic"``, ``"depthwise_o2o"`` or ``"depthwise_m2o"`` (default, as compared in FADE / SAPA).
        nonlinear: conv -> BatchNorm -> ReLU6 -> 1x1 conv instead of a single conv.
        use_context: 4x4 stride-2 kernels (padding 1) instead of 2x2.
    """

    name: ClassVar[str] = "indexnet"
    guided: ClassVar[bool] = True
    exact_double: ClassVar[bool] = True

    def __init__(
        self,
        hr_channels: int,
        lr_channels: int,
        *,
        block: IndexBlock = "depthwise_m2o",
        nonlinear: bool = False,
        use_context: bool = False,
    ) -> None:
        super().__init__(hr_channels, lr_channels)
        if block not in INDEX_BLOCKS:
            raise ConfigError(f"indexnet: block must be one of {', '.join(INDEX_BLOCKS)}, got {block!r}")
        for key, value in (("nonlinear", nonlinear), ("use_context", use_context)):
            if not isinstance(value, bool):
                raise ConfigError(f"indexnet: {key} must be true or false, got {value!r}")
        c = self.hr_channels
        if block == "depthwise_o2o" and self.lr_channels != c:
            raise ConfigError(
                f"indexnet: block='depthwise_o2o' filters each channel into its own index, so lr_channels must "
                f"equal hr_channels, got hr_channels={c}, lr_channels={self.lr_channels}; use "
                "block='depthwise_m2o' or 'holistic', or project both features to the same width"
            )
        self.block = block
        self.nonlinear = nonlinear
        self.use_context = use_context
        k, pad = (4, 1) if use_context else (2, 0)
        if block == "holistic":
            if nonlinear:
                self.indexnet = nn.Sequential(
                    nn.Conv2d(c, 2 * c, k, stride=2, padding=pad, bias=False),
                    nn.BatchNorm2d(2 * c),
                    nn.ReLU6(inplace=True),
                    nn.Conv2d(2 * c, 4, 1, bias=False),
                )
            else:
                self.indexnet = nn.Conv2d(c, 4, k, stride=2, padding=pad, bias=False)
        else:
            groups = c if block == "depthwise_o2o" else 1
            for i in range(1, 5):
                self.add_module(f"indexnet{i}", self._branch(c, self.lr_channels, k, pad, groups, nonlinear))

    @staticmethod
    def _branch(c_in: int, c_out: int, k: int, pad: int, groups: int, nonlinear: bool) -> nn.Sequential:
        """One window position's index branch of a depthwise block (``C_hr -> C_lr`` at half resolution)."""
        layers: list[nn.Module] = [nn.Conv2d(c_in, c_out, k, stride=2, padding=pad, groups=groups, bias=False)]
        if nonlinear:
            layers += [
                nn.BatchNorm2d(c_out),
                nn.ReLU6(inplace=True),
                nn.Conv2d(c_out, c_out, 1, groups=groups, bias=False),
            ]
        return nn.Sequential(*layers)

    def _logits(self, x: torch.Tensor) -> torch.Tensor:
        """Index logits ``L`` in window layout (B, C_i, 4, H/2, W/2) for ``x`` of even size; ``C_i = 1`` for
        the holistic block. Position ``2a + b`` of the window is row ``2i + a``, column ``2j + b``."""
        if self.block == "holistic":
            return self.indexnet(x).unsqueeze(1)
        return torch.stack([self.indexnet1(x), self.indexnet2(x), self.indexnet3(x), self.indexnet4(x)], dim=2)

    def _fuse(self, hr: torch.Tensor, lr: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        gate = torch.sigmoid(self._logits(hr))  # (B, C_i, 4, h, w): the decoder index before the shuffle
        b, c, h, w = lr.shape
        up = gate * lr.unsqueeze(2)  # == D * NN(lr), still in window layout
        return hr, F.pixel_shuffle(up.reshape(b, 4 * c, h, w), 2)

    def index_maps(self, hr: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The official block's outputs ``(E, D)`` for ``hr`` (B, C_hr, H, W): encoder and decoder index maps,
        each (B, C_i, H, W) with ``C_i = 1`` (holistic) or ``C_lr`` (depthwise). Odd sizes are padded
        (replicate) and cropped back."""
        check_shape(hr, "B C H W", name=f"{self.name} hr", C=self.hr_channels)
        height, width = hr.shape[-2:]
        x = _pad_even(hr)
        gate = torch.sigmoid(self._logits(x))
        b, ci = gate.shape[:2]
        h, w = gate.shape[-2:]
        enc = F.pixel_shuffle(torch.softmax(gate, dim=2).reshape(b, 4 * ci, h, w), 2)
        dec = F.pixel_shuffle(gate.reshape(b, 4 * ci, h, w), 2)
        return enc[..., :height, :width], dec[..., :height, :width]

    def downsample(self, x: torch.Tensor) -> torch.Tensor:
        """IndexNet's learned pooling of the encoder feature: ``4 * avgpool_2x2(E * x)``, i.e. each 2x2 window
        summed with the softmax-normalised encoder index as weights.

        ``x`` (B, C_hr, H, W) -> (B, C_hr, ceil(H/2), ceil(W/2)); odd sizes are replicate-padded first.
        """
        check_shape(x, "B C H W", name=f"{self.name} downsample input", C=self.hr_channels)
        if self.block != "holistic" and self.lr_channels != self.hr_channels:
            raise ConfigError(
                f"indexnet: downsample weights each channel of x by its own index, but this {self.block} block "
                f"predicts {self.lr_channels} index channels for {self.hr_channels} input channels; build it with "
                "lr_channels == hr_channels (as the official encoder does) or use block='holistic'"
            )
        x = _pad_even(x)
        weights = torch.softmax(torch.sigmoid(self._logits(x)), dim=2)  # (B, C_i, 4, h, w)
        b, c, hh, ww = x.shape
        windows = F.pixel_unshuffle(x, 2).view(b, c, 4, hh // 2, ww // 2)
        return (weights * windows).sum(dim=2)

    def extra_repr(self) -> str:
        return (
            f"{super().extra_repr()}, block={self.block!r}, nonlinear={self.nonlinear}, use_context={self.use_context}"
        )
