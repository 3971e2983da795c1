"""FADE as a member of the up-sampler family (Lu et al., "FADE: Fusing the Assets of Decoder and Encoder for
Task-Agnostic Upsampling", ECCV 2022; extended in IJCV 2024 as "FADE: A Task-Agnostic Upsampling Operator for
Encoder-Decoder Architectures").

With the encoder feature ``hr`` (B, C_hr, 2h, 2w) and the decoder feature ``lr`` (B, C_lr, h, w):

1. semi-shift convolution (the kernel generator): both features are compressed by 1x1 convolutions to ``E``
   channels (``E_en = W_en hr + b_en``, ``E_de = W_de lr``, no bias on the decoder side) and one shared ``k x k``
   convolution ``phi`` (weights and bias) is applied to each; the decoder response is copied to its four
   sub-pixels: ``Z = phi(E_en) + NN_2(phi(E_de))``. This equals the paper's semi-shift convolution (a stride-2
   window sliding over the encoder feature with half-pixel shifts, sharing weights with the window on the decoder
   feature; note ``phi``'s bias counts twice, as in the official code);
2. kernel normalisation: ``K = softmax(Z)`` over the ``k_up^2`` channels;
3. CARAFE reassembly of ``lr`` with ``K`` (window ``k_up``, zero outside the map):
   ``U[p] = sum_t K[t, p] lr[floor(p / 2) + t]`` (:func:`freqdense.ops.reassemble.carafe`);
4. gating: ``G = NN_2(sigmoid(W_g lr + b_g))`` (one channel) and the output ``G * hr + (1 - G) * U``.

FADE-Lite (``lite=True``) compresses straight to ``k_up^2`` channels and makes ``phi`` depthwise.

Family output: ``hr_out = hr`` unchanged and ``lr_up`` = FADE's output (the gated mix when the gate is on, else
``U``). FADE's official integrations use it in place of the up-sampling op (the SegFormer head of the official
repository replaces each ``resize`` by ``FADE(finer, coarser)``), so a decoder that adds ``hr_out + lr_up`` (FPN
``P_i = L_i + up(P_{i+1})``) computes ``L_i + FADE(L_i, P_{i+1})`` - FADE in place of the up-sampling - and a
decoder that concatenates gets ``[hr, FADE(hr, lr)]``. The gate mixes ``hr`` into the output, so it needs
``C_hr == C_lr``; without it the module is the official gate-free ``SemiShiftUp``.

State-dict keys are those of the official ``FADE`` / ``FADELite`` / ``SemiShiftUp`` (IJCV release,
``FADE_L2H.py``): ``gate_generator.conv.{weight,bias}`` (gate only), ``ker_generator.compressor_en.{weight,bias}``,
``ker_generator.compressor_de.weight``, ``ker_generator.content_encoder.{weight,bias}``. The ECCV release
(``FADE_H2L.py``) computes the same function with other names; :func:`fade_state_dict_from_eccv` renames them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

import torch
from torch import nn

from ...errors import ConfigError
from ...ops.reassemble import carafe
from ._base import Upsampler

__all__ = ["FADEUpsampler", "fade_state_dict_from_eccv"]

#: ECCV-release key suffix -> IJCV-release (this module's) key suffix; the tensors are the same.
_ECCV_KEYS: dict[str, str] = {
    "kernel_generator.conv1_en.weight": "ker_generator.compressor_en.weight",
    "kernel_generator.conv1_en.bias": "ker_generator.compressor_en.bias",
    "kernel_generator.conv1_de.weight": "ker_generator.compressor_de.weight",
    "kernel_generator.conv2_kernels": "ker_generator.content_encoder.weight",
    "kernel_generator.conv2_bias": "ker_generator.content_encoder.bias",
}


def fade_state_dict_from_eccv(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename the keys of an ECCV-release FADE state dict (``FADE_H2L.py``: ``kernel_generator.conv1_en``,
    ``conv1_de``, ``conv2_kernels``, ``conv2_bias``) to this module's keys; other keys (and any prefix before the
    FADE module's own keys) are kept. The two releases compute the same function with the same tensors."""
    out: dict[str, torch.Tensor] = {}
    for key, value in state_dict.items():
        for old, new in _ECCV_KEYS.items():
            if key == old or key.endswith("." + old):
                key = key[: len(key) - len(old)] + new
                break
        out[key] = value
    return out


def _odd(value: object, option: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1 or value % 2 == 0:
        raise ConfigError(f"fade: {option} must be an odd integer >= 1 (a centred window), got {value!r}")
    return value


def _add_nearest(big: torch.Tensor, small: torch.Tensor) -> torch.Tensor:
    """``big + NN_2(small)`` for ``big`` (B, C, 2h, 2w) and ``small`` (B, C, h, w), without the up-sampled copy."""
    b, c, h, w = small.shape
    return (big.reshape(b, c, h, 2, w, 2) + small[:, :, :, None, :, None]).reshape(b, c, 2 * h, 2 * w)


class _GateGenerator(nn.Module):
    """1x1 convolution of the decoder feature to one gate logit (key ``conv``)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, 1, 1)


class _SemiShift(nn.Module):
    """The kernel generator's weights: two 1x1 compressors and the shared content encoder ``phi``."""

    def __init__(self, hr_channels: int, lr_channels: int, width: int, kernels: int, kernel_size: int, lite: bool):
        super().__init__()
        self.compressor_en = nn.Conv2d(hr_channels, width, 1)
        self.compressor_de = nn.Conv2d(lr_channels, width, 1, bias=False)
        self.content_encoder = nn.Conv2d(
            width, kernels, kernel_size, padding=kernel_size // 2, groups=kernels if lite else 1
        )


class FADEUpsampler(Upsampler):
    """FADE (ECCV 2022): semi-shift kernels from encoder and decoder, CARAFE reassembly, decoder-driven gate.

    Args:
        hr_channels: channels of the encoder (guide) feature ``hr``.
        lr_channels: channels of the decoder feature ``lr`` (up-sampled).
        up_kernel_size: reassembly window ``k_up`` (official 5).
        embedding_dim: compressed width ``E`` of the semi-shift convolution (official 64); FADE-Lite has none
            (it compresses to ``k_up^2`` channels), so leave it unset there.
        kernel_size: window of the content encoder ``phi`` (official 3).
        lite: FADE-Lite (depthwise ``phi`` on ``k_up^2`` compressed channels).
        gate: the gate mixing ``hr`` into the output; ``None`` (default) = on when ``hr_channels == lr_channels``
            (official ``FADE``), off otherwise (official ``SemiShiftUp``). ``True`` with different channel counts
            is refused.

    Parameters (gate on, ``E = 64``, ``k_up = 5``, ``C_hr = C_lr = C``): ``129 C + 14490``; 47,514 at ``C = 256``
    (the official module's count). FADE-Lite: ``51 C + 276``.
    """

    name: ClassVar[str] = "fade"
    guided: ClassVar[bool] = True
    exact_double: ClassVar[bool] = True

    def __init__(
        self,
        hr_channels: int,
        lr_channels: int,
        *,
        up_kernel_size: int = 5,
        embedding_dim: int | None = None,
        kernel_size: int = 3,
        lite: bool = False,
        gate: bool | None = None,
    ) -> None:
        super().__init__(hr_channels, lr_channels)
        self.up_kernel_size = _odd(up_kernel_size, "up_kernel_size")
        self.kernel_size = _odd(kernel_size, "kernel_size")
        self.lite = bool(lite)
        kernels = self.up_kernel_size**2
        if self.lite:
            if embedding_dim is not None:
                raise ConfigError(
                    f"fade: FADE-Lite (lite=True) compresses to up_kernel_size^2 = {kernels} channels and has no "
                    f"embedding_dim; drop embedding_dim={embedding_dim!r} or set lite=False"
                )
            width = kernels
        else:
            width = 64 if embedding_dim is None else embedding_dim
            if not isinstance(width, int) or isinstance(width, bool) or width < 1:
                raise ConfigError(f"fade: embedding_dim must be an integer >= 1 (official 64), got {embedding_dim!r}")
        self.embedding_dim = width
        same = self.hr_channels == self.lr_channels
        if gate and not same:
            raise ConfigError(
                f"fade: the gate mixes hr into the output (G * hr + (1 - G) * up(lr)), so it needs hr_channels == "
                f"lr_channels, got {self.hr_channels} and {self.lr_channels}; set gate=False (official SemiShiftUp) "
                "or project both features to one width"
            )
        self.gated = same if gate is None else bool(gate)
        if self.gated:
            self.gate_generator = _GateGenerator(self.lr_channels)
        self.ker_generator = _SemiShift(self.hr_channels, self.lr_channels, width, kernels, self.kernel_size, self.lite)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """The official initialisation: Xavier-uniform weights, zero biases."""
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.xavier_uniform_(module.weight)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)

    def kernels(self, hr: torch.Tensor, lr: torch.Tensor) -> torch.Tensor:
        """Normalised reassembly kernels ``K`` (B, k_up^2, 2h, 2w) for ``hr`` exactly twice ``lr``'s size."""
        gen = self.ker_generator
        phi = gen.content_encoder
        logits = _add_nearest(phi(gen.compressor_en(hr)), phi(gen.compressor_de(lr)))
        return torch.softmax(logits, dim=1)

    def _fuse(self, hr: torch.Tensor, lr: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        up = carafe(lr, self.kernels(hr, lr), self.up_kernel_size, 1, 2)
        if not self.gated:
            return hr, up
        gate = torch.sigmoid(self.gate_generator.conv(lr))  # (B, 1, h, w); NN_2 after the sigmoid is the same
        b, c, h, w = lr.shape
        mixed = up.reshape(b, c, h, 2, w, 2) + gate[:, :, :, None, :, None] * (hr - up).reshape(b, c, h, 2, w, 2)
        return hr, mixed.reshape(b, c, 2 * h, 2 * w)

    def extra_repr(self) -> str:
        return (
            f"{super().extra_repr()}, up_kernel_size={self.up_kernel_size}, embedding_dim={self.embedding_dim}, "
            f"kernel_size={self.kernel_size}, lite={self.lite}, gate={self.gated}"
        )
