"""Multi-scale and flip inference (test-time augmentation) for single- and multi-input dense models.

For every scale ``s`` (and, with ``flip``, also for the horizontally mirrored inputs) all model inputs are resized
*together* to ``round(s * H), round(s * W)``, the model is run, every output map is resized back to the input size
(bilinear, ``align_corners=False`` unless ``align_corners=True``), un-mirrored, and the passes are averaged:

* ``semantic`` outputs (and ``semantic:<aux>``), ``average="probs"`` (default): the **softmax probabilities** are
  averaged and the result is returned as ``log(mean probability)``, i.e. logits whose softmax is the averaged
  probability (argmax, cross-entropy and softmax of downstream code see the averaged distribution). Probability
  averaging, as mmseg's ``aug_test`` and SA-Gate's evaluator, is insensitive to the per-pass logit scale, which
  differs between scales. ``average="logits"`` averages the raw logits instead, as the official FAFNet code's
  ``validate()`` does (with ``align_corners=True``); the argmax can differ from probability averaging near ties.
* every other (B, C, h, w) output (``depth``, ...): arithmetic mean of the resized maps.
* outputs that are not 4-D tensors are dropped.

Inputs are resampled by key (the sample contract, :mod:`freqdense.data.sample`): depth-like maps
(``depth``, ``sensor_depth``) and label maps with nearest neighbour (``nearest-exact``: depth must never be blended
across edges, and 0 = invalid must stay 0), everything else (RGB, HHA, ...) bilinearly with antialiasing when
shrinking, the same resampling as :func:`freqdense.data.transforms.resize`. A single pass (``scales=[1.0]``,
``flip=False``) returns the model's own outputs unchanged.

Mirroring flips every input map left-right; vector-valued outputs (flows) are not sign-corrected, so only scalar
maps (logits, depth) are meaningful after averaging.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..data.sample import DENSE_FLOAT_KEYS, LABEL_KEYS
from ..errors import ConfigError, ShapeError

__all__ = ["MultiScaleFlip", "check_tta", "is_single_pass", "resize_input"]

log = logging.getLogger(__name__)

#: How semantic outputs are averaged over the passes.
AVERAGES: tuple[str, ...] = ("probs", "logits")

#: Input keys resampled with nearest neighbour; all others bilinearly.
NEAREST_INPUT_KEYS: frozenset[str] = frozenset(DENSE_FLOAT_KEYS) | frozenset(LABEL_KEYS)


def check_tta(scales: Sequence[float], flip: bool) -> tuple[tuple[float, ...], bool]:
    """Validate multi-scale/flip settings (config ``eval.scales``, ``eval.flip``); returns them normalised."""
    if isinstance(scales, (str, bytes)) or not isinstance(scales, Sequence) or len(scales) == 0:
        raise ConfigError(f"eval.scales must be a non-empty list of positive numbers, got {scales!r}")
    out = []
    for s in scales:
        if isinstance(s, bool) or not isinstance(s, (int, float)) or not math.isfinite(s) or s <= 0:
            raise ConfigError(f"eval.scales must hold positive numbers, got {list(scales)!r}; e.g. [0.75, 1.0, 1.25]")
        out.append(float(s))
    if not isinstance(flip, bool):
        raise ConfigError(f"eval.flip must be true or false, got {flip!r}")
    return tuple(out), flip


def is_single_pass(scales: Sequence[float], flip: bool) -> bool:
    """True when the settings amount to plain inference (one pass at scale 1, no flip)."""
    return not flip and len(scales) == 1 and float(scales[0]) == 1.0


def resize_input(x: Tensor, size: tuple[int, int], *, key: str) -> Tensor:
    """Resize one batched model input (B, C, H, W) to ``size`` with the resampling its key calls for."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    if key in NEAREST_INPUT_KEYS or not x.is_floating_point():
        return F.interpolate(x.float(), size=size, mode="nearest-exact").to(x.dtype)
    shrink = size[0] < x.shape[-2] or size[1] < x.shape[-1]
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=shrink)


def _scaled_size(hw: tuple[int, int], scale: float) -> tuple[int, int]:
    return max(1, int(round(hw[0] * scale))), max(1, int(round(hw[1] * scale)))


class MultiScaleFlip(nn.Module):
    """Wrap a dense model so that each call averages its outputs over scales and horizontal flips.

    Args:
        model: ``model(*inputs) -> dict[str, Tensor]``.
        input_keys: the sample key of each positional input (config ``task.inputs``); decides the resampling.
        scales: resize factors (1.0 = the given size).
        flip: also run every scale on mirrored inputs.
        average: ``"probs"`` (softmax probabilities of semantic outputs) or ``"logits"`` (raw logits).
        align_corners: ``align_corners`` of the bilinear resize of the outputs back to the input size.

    Examples:
        >>> net = nn.Conv2d(3, 4, 3, padding=1)
        >>> tta = MultiScaleFlip(lambda x: {"semantic": net(x)}, ["image"], scales=[0.5, 1.0], flip=True)
        >>> tta(torch.rand(1, 3, 8, 8))["semantic"].shape
        torch.Size([1, 4, 8, 8])
    """

    def __init__(
        self,
        model: Any,
        input_keys: Sequence[str],
        *,
        scales: Sequence[float] = (1.0,),
        flip: bool = False,
        average: str = "probs",
        align_corners: bool = False,
    ) -> None:
        super().__init__()
        self.model = model
        self.input_keys = tuple(input_keys)
        self.scales, self.flip = check_tta(scales, flip)
        if average not in AVERAGES:
            raise ConfigError(f"eval.average must be one of {AVERAGES}, got {average!r}")
        if not isinstance(align_corners, bool):
            raise ConfigError(f"eval.align_corners must be true or false, got {align_corners!r}")
        self.average, self.align_corners = average, align_corners

    def forward(self, *inputs: Tensor) -> dict[str, Tensor]:
        if len(inputs) != len(self.input_keys):
            raise ShapeError(
                f"MultiScaleFlip got {len(inputs)} inputs but input_keys names {len(self.input_keys)} "
                f"({list(self.input_keys)}); pass one tensor per key"
            )
        for key, x in zip(self.input_keys, inputs):
            if not isinstance(x, Tensor) or x.dim() != 4:
                raise ShapeError(f"model input {key!r} must be a (B, C, H, W) tensor, got {_describe(x)}")
        hw = tuple(inputs[0].shape[-2:])
        sizes = {key: tuple(x.shape[-2:]) for key, x in zip(self.input_keys, inputs)}
        if len(set(sizes.values())) > 1:
            raise ShapeError(f"model inputs disagree in size {sizes}; multi-scale inference resizes them together")
        if is_single_pass(self.scales, self.flip):
            return self.model(*inputs)
        sums: dict[str, Tensor] = {}
        passes = 0
        for scale in self.scales:
            size = _scaled_size(hw, scale)
            scaled = [resize_input(x, size, key=key) for key, x in zip(self.input_keys, inputs)]
            for mirrored in (False, True) if self.flip else (False,):
                args = [torch.flip(x, dims=(-1,)) for x in scaled] if mirrored else scaled
                out = self.model(*args)
                if not isinstance(out, Mapping):
                    raise ShapeError(f"multi-scale inference needs a model returning a dict, got {type(out).__name__}")
                for name, value in out.items():
                    if not isinstance(value, Tensor) or value.dim() != 4:
                        continue
                    value = value.float()
                    if mirrored:
                        value = torch.flip(value, dims=(-1,))
                    if tuple(value.shape[-2:]) != hw:
                        value = F.interpolate(value, size=hw, mode="bilinear", align_corners=self.align_corners)
                    if _is_semantic(name) and self.average == "probs":
                        value = torch.softmax(value, dim=1)
                    sums[name] = value if name not in sums else sums[name] + value
                passes += 1
        result: dict[str, Tensor] = {}
        for name, total in sums.items():
            mean = total / passes
            probs = _is_semantic(name) and self.average == "probs"
            result[name] = torch.log(mean.clamp_min(torch.finfo(mean.dtype).tiny)) if probs else mean
        return result

    def extra_repr(self) -> str:
        return (
            f"input_keys={list(self.input_keys)}, scales={list(self.scales)}, flip={self.flip}, "
            f"average={self.average!r}, align_corners={self.align_corners}"
        )


def _is_semantic(name: str) -> bool:
    return name.partition(":")[0] == "semantic"


def _describe(x: object) -> str:
    return f"shape {tuple(x.shape)}" if isinstance(x, Tensor) else type(x).__name__
