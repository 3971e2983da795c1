"""SegNeXt's decode head: the light Hamburger head, plain or with FreqFusion, with the official mmseg keys.

Hamburger: Geng et al., "Is Attention Better Than Matrix Decomposition?", ICLR 2021. SegNeXt: Guo et al., NeurIPS
2022 (``LightHamHead``, ``mmseg/models/decode_heads/ham_head.py`` of github.com/Visual-Attention-Network/SegNeXt).
FreqFusion: Chen et al., "Frequency-aware Feature Fusion for Dense Image Prediction", TPAMI 2024
(``LightHamHeadFreqAware`` in ``SegNeXt/mmseg/models/decode_heads/ham_head.py`` of github.com/Linwei-Chen/FreqFusion).

``LightHamHead`` (``fusion="none"``): the selected stages (SegNeXt: strides 8, 16, 32) are resized bilinearly to the
finest and concatenated finest first; ``squeeze`` (1x1 conv - GN(32) - ReLU) -> ``hamburger`` -> ``align`` (1x1 conv
- GN(32) - ReLU) -> dropout -> ``conv_seg`` (1x1), logits at the finest selected stage.

``LightHamHeadFreqAware`` (``fusion="freqfusion"``): instead of the resize, FreqFusion fuses the raw stages coarse to
fine. ``x`` starts as the coarsest stage; step ``k`` runs ``FreqFusion(hr=stage, lr=x)`` (``freqfusions.k``, with
``C_lr`` = the channels of all coarser stages and ``compressed_channels = (C_hr + C_lr) // compress_ratio``) and sets
``x`` to the group-interleaved concatenation of ``(hr_out, lr_up)``
(:func:`~freqdense.models.decoders.segformer_head.interleave_concat`, plain concatenation without
``feature_resample``). The FreqFusion settings are :data:`~freqdense.models.decoders.segformer_head.SEGNEXT_FUSION`.

Hamburger (Geng et al., Sec. 2): ``ham_in`` (1x1 conv with bias) -> ReLU -> NMF -> ``ham_out`` (1x1 conv - GN), then
``ReLU(x + .)``. The NMF (non-negative matrix factorisation, their Eq. 5 multiplicative updates) reshapes the
``(B, C, H, W)`` input to ``X`` of ``(B S, D, N)`` with ``D = C / S``, ``N = H W`` and draws random bases
``B0 ~ U[0, 1)^{D x R}`` (columns L2-normalised); ``C0 = softmax(X^T B0)`` over the ``R`` bases. Then ``K`` times
(``K`` = 6 in training, 7 in evaluation)::

    C <- C * (X^T B) / (C B^T B + 1e-6)
    B <- B * (X C) / (B C^T C + 1e-6)

one more ``C`` update, and the output is ``B C^T``. Gradients flow through every iteration (the official code has no
``no_grad`` here).

Randomness (the official head draws new random bases ``B0`` at every forward, so its outputs depend on the RNG):

- in training, and whenever ``seed`` is ``None``, the bases are drawn per sample with ``torch.rand`` in float32 **on
  the CPU** (as the official code, which draws on the CPU and then moves them) from the global CPU generator: under
  the same ``torch.manual_seed`` the official head and this one draw the same bases;
- a ``generator`` passed to ``forward`` replaces the global generator (explicit draws, e.g. to compare with the
  official head under a seed);
- in evaluation with ``seed`` set (freqdense models default to 0), every sample uses one fixed draw ``(S, D, R)``
  from ``torch.Generator().manual_seed(seed)``: predictions are deterministic, independent of the batch they are in,
  and the head exports to ONNX (a random op cannot be checked against ONNX Runtime).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import torch
import torch.nn as nn
import torch.nn.functional as F

from ...errors import ConfigError, ShapeError
from ._fusion import build_fusion, fusion_step
from .segformer_head import SEGNEXT_FUSION, interleave_concat

__all__ = ["HAM_KWARGS", "ConvGNReLU", "Hamburger", "LightHamHead", "NMF2D", "nmf_options"]

#: The official ``ham_kwargs`` keys this head understands, with the official defaults (``MD_D`` is accepted and,
#: as upstream, unused: ``D`` is ``channels / MD_S``).
HAM_KWARGS: dict[str, Any] = {
    "MD_S": 1,
    "MD_D": 512,
    "MD_R": 64,
    "TRAIN_STEPS": 6,
    "EVAL_STEPS": 7,
    "RAND_INIT": True,
}
_FIXED = {
    "INV_T": "NMF2D fixes inv_t = 1 (the base class value 100 is overwritten)",
    "ETA": "eta is only read by the CD / VQ decompositions, not NMF",
    "SPATIAL": "only the spatial decomposition (SPATIAL=True, the default) is built",
}


def nmf_options(ham_kwargs: Mapping[str, Any] | None) -> dict[str, Any]:
    """Official ``ham_kwargs`` (``MD_S``, ``MD_D``, ``MD_R``, ``TRAIN_STEPS``, ``EVAL_STEPS``, ``RAND_INIT``) ->
    :class:`NMF2D` keywords; unknown keys raise ConfigError naming the accepted ones."""
    given = dict(ham_kwargs or {})
    for key, why in _FIXED.items():
        if key in given and not (key == "SPATIAL" and given[key] is True):
            raise ConfigError(f"ham_kwargs[{key!r}] cannot be set: {why}")
    unknown = sorted(set(given) - set(HAM_KWARGS) - set(_FIXED))
    if unknown:
        raise ConfigError(f"unknown ham_kwargs {unknown}; accepted (official names): {sorted(HAM_KWARGS)}")
    kw = {**HAM_KWARGS, **given}
    return {
        "S": int(kw["MD_S"]),
        "R": int(kw["MD_R"]),
        "train_steps": int(kw["TRAIN_STEPS"]),
        "eval_steps": int(kw["EVAL_STEPS"]),
        "rand_init": bool(kw["RAND_INIT"]),
    }


class ConvGNReLU(nn.Module):
    """mmcv ``ConvModule`` with GroupNorm: 1x1 conv (``conv``, no bias) -> ``gn`` -> optional ReLU."""

    def __init__(self, in_channels: int, out_channels: int, *, groups: int = 32, relu: bool = True) -> None:
        super().__init__()
        if out_channels % groups:
            raise ConfigError(
                f"GroupNorm({groups}) needs channels divisible by {groups}, got {out_channels}; use a multiple of "
                f"{groups} for the head widths (channels / ham_channels)"
            )
        self.conv = nn.Conv2d(in_channels, out_channels, 1, bias=False)
        self.gn = nn.GroupNorm(groups, out_channels)
        self.relu = bool(relu)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.gn(self.conv(x))
        return F.relu(x) if self.relu else x


class _Conv(nn.Module):
    """mmcv ``ConvModule`` without norm and activation: a 1x1 conv with bias under the key ``conv``."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class NMF2D(nn.Module):
    """Non-negative matrix factorisation of a feature map (Hamburger's "ham"); see the module docstring.

    Args:
        S: number of channel splits (``MD_S``); ``D = C / S``.
        R: rank, the number of bases (``MD_R``; 16 in the SegNeXt-T/S ADE20K configs, 64 by default).
        train_steps / eval_steps: multiplicative-update iterations in training / evaluation.
        rand_init: draw new bases at every forward (official default). ``False`` keeps one fixed draw in the
            persistent buffer ``bases`` of shape ``(S, channels / S, R)`` (needs ``channels``).
        channels: input channels; needed for ``rand_init=False``, and lets ``seed``'s bases be drawn at
            construction (so an export trace never draws).
        seed: in evaluation (and without a ``generator``), use one fixed draw of bases from
            ``torch.Generator().manual_seed(seed)`` for every sample (deterministic, batch-independent, exportable);
            ``None`` draws per sample from the global CPU generator in evaluation too, like the official code.
            Training always draws fresh bases (official).
        eps: the updates' denominator guard (1e-6).
    """

    def __init__(
        self,
        S: int = 1,
        R: int = 64,
        train_steps: int = 6,
        eval_steps: int = 7,
        rand_init: bool = True,
        *,
        channels: int | None = None,
        seed: int | None = None,
        eps: float = 1e-6,
    ) -> None:
        super().__init__()
        if int(S) < 1 or int(R) < 1 or int(train_steps) < 0 or int(eval_steps) < 0:
            raise ConfigError(
                f"NMF2D needs S >= 1, R >= 1 and non-negative step counts, got S={S}, R={R}, "
                f"train_steps={train_steps}, eval_steps={eval_steps}"
            )
        self.S, self.R = int(S), int(R)
        self.train_steps, self.eval_steps = int(train_steps), int(eval_steps)
        self.rand_init = bool(rand_init)
        self.channels = None if channels is None else int(channels)
        self._fixed: tuple[tuple[int, int], torch.Tensor] | None = None
        self.eps = float(eps)
        self.seed = seed  # property: fills the fixed-bases cache when the channels are known
        if not self.rand_init:
            if channels is None or int(channels) % self.S:
                raise ConfigError(
                    f"NMF2D(rand_init=False) keeps fixed bases and needs channels divisible by S={self.S}, got "
                    f"channels={channels!r}"
                )
            self.register_buffer("bases", self.draw_bases(1, int(channels) // self.S, torch.float32, "cpu"))

    def draw_bases(
        self,
        batch: int,
        dim: int,
        dtype: torch.dtype,
        device: torch.device | str,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """``(batch * S, dim, R)`` bases: float32 uniform draws on the CPU, moved and cast, columns L2-normalised."""
        raw = torch.rand((batch * self.S, dim, self.R), generator=generator, dtype=torch.float32, device="cpu")
        return F.normalize(raw.to(device=device, dtype=dtype), dim=1)

    @property
    def seed(self) -> int | None:
        """Seed of the fixed evaluation bases (``None``: random bases in evaluation too, as upstream)."""
        return self._seed

    @seed.setter
    def seed(self, value: int | None) -> None:
        if value is not None and (isinstance(value, bool) or int(value) != value):
            raise ConfigError(f"NMF2D seed must be an integer or None, got {value!r}")
        self._seed = None if value is None else int(value)
        self._fixed = None
        if self._seed is not None and self.channels is not None and self.channels % self.S == 0:
            self.fixed_bases(self.channels // self.S)  # drawn now, so tracing for export never draws

    def fixed_bases(
        self, dim: int, dtype: torch.dtype = torch.float32, device: torch.device | str = "cpu"
    ) -> torch.Tensor:
        """The evaluation bases ``(S, dim, R)`` of ``seed``: a cached float32 CPU draw, cast, then L2-normalised
        (the same order as :meth:`draw_bases`)."""
        if self._seed is None:
            raise ConfigError("NMF2D.fixed_bases needs a seed; set nmf.seed = 0 (or any integer)")
        key = (self._seed, dim)
        if self._fixed is None or self._fixed[0] != key:
            raw = torch.rand((self.S, dim, self.R), generator=torch.Generator().manual_seed(self._seed), device="cpu")
            self._fixed = (key, raw)
        return F.normalize(self._fixed[1].to(device=device, dtype=dtype), dim=1)

    def _update_coef(self, x: torch.Tensor, bases: torch.Tensor, coef: torch.Tensor) -> torch.Tensor:
        numerator = torch.bmm(x.transpose(1, 2), bases)
        denominator = coef.bmm(bases.transpose(1, 2).bmm(bases))
        return coef * numerator / (denominator + self.eps)

    def _update_bases(self, x: torch.Tensor, bases: torch.Tensor, coef: torch.Tensor) -> torch.Tensor:
        numerator = torch.bmm(x, coef)
        denominator = bases.bmm(coef.transpose(1, 2).bmm(coef))
        return bases * numerator / (denominator + self.eps)

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """``(B, C, H, W)`` non-negative features -> their rank-``R`` reconstruction, same shape."""
        b, c, h, w = x.shape
        if c % self.S:
            raise ShapeError(f"NMF2D input has {c} channels, not divisible by S={self.S}")
        d = c // self.S
        flat = x.reshape(b * self.S, d, h * w)
        if self.rand_init and (generator is not None or self._seed is None or self.training):
            bases = self.draw_bases(b, d, x.dtype, x.device, generator)
        elif self.rand_init:
            bases = self.fixed_bases(d, x.dtype, x.device).repeat(b, 1, 1)
        else:
            if self.bases.shape[1] != d:
                raise ShapeError(f"NMF2D fixed bases have D={self.bases.shape[1]}, the input D = C / S = {d}")
            bases = self.bases.to(dtype=x.dtype).repeat(b, 1, 1)
        coef = torch.softmax(torch.bmm(flat.transpose(1, 2), bases), dim=-1)  # inv_t = 1
        for _ in range(self.train_steps if self.training else self.eval_steps):
            coef = self._update_coef(flat, bases, coef)
            bases = self._update_bases(flat, bases, coef)
        coef = self._update_coef(flat, bases, coef)
        return torch.bmm(bases, coef.transpose(1, 2)).reshape(b, c, h, w)

    def extra_repr(self) -> str:
        return (
            f"S={self.S}, R={self.R}, train_steps={self.train_steps}, eval_steps={self.eval_steps}, "
            f"rand_init={self.rand_init}, seed={self.seed}"
        )


class Hamburger(nn.Module):
    """``ReLU(x + ham_out(NMF(ReLU(ham_in(x)))))``; ``ham_in`` is a 1x1 conv with bias, ``ham_out`` 1x1 conv + GN."""

    def __init__(
        self,
        channels: int,
        ham_kwargs: Mapping[str, Any] | None = None,
        *,
        norm_groups: int = 32,
        seed: int | None = None,
    ) -> None:
        super().__init__()
        self.ham_in = _Conv(channels)
        self.ham = NMF2D(**nmf_options(ham_kwargs), channels=channels, seed=seed)
        self.ham_out = ConvGNReLU(channels, channels, groups=norm_groups, relu=False)

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        enjoy = self.ham_out(self.ham(F.relu(self.ham_in(x)), generator))
        return F.relu(x + enjoy)


class LightHamHead(nn.Module):
    """SegNeXt's decode head (``LightHamHead``) or its FreqFusion variant (``LightHamHeadFreqAware``).

    Args:
        in_channels: channels of the features the head reads, finest first (SegNeXt-T: ``(64, 160, 256)``).
        channels: width of ``align`` and the classifier input (256 for T/S, 512 for B, 1024 for L).
        ham_channels: width of ``squeeze`` and the Hamburger (equal to ``channels`` in every official config).
        num_classes: output classes (``conv_seg``).
        fusion: ``"none"`` (bilinear resize + concat, ``LightHamHead``) or ``"freqfusion"``.
        fusion_kwargs: FreqFusion keywords over :data:`SEGNEXT_FUSION`; ``compressed_channels`` defaults per step to
            ``(C_hr + C_lr) // compress_ratio``.
        compress_ratio: 4 in the official FreqFusion config (the class default upstream is 8).
        ham_kwargs: official NMF keys (:func:`nmf_options`), e.g. ``{"MD_R": 16}``.
        dropout_ratio: ``Dropout2d`` before ``conv_seg`` (0.1).
        norm_groups: GroupNorm groups of ``squeeze``, ``ham_out`` and ``align`` (32).
        nmf_seed: see :class:`NMF2D` ``seed`` (``None``: random bases in evaluation, as upstream).

    Attributes:
        freqfusions: ``len(in_channels) - 1`` FreqFusion modules, ``freqfusions[k]`` fusing the ``(k+2)``-th coarsest
            feature with everything coarser (empty for ``"none"``).
    """

    def __init__(
        self,
        in_channels: Sequence[int],
        channels: int = 256,
        ham_channels: int = 256,
        num_classes: int = 150,
        *,
        fusion: Literal["none", "freqfusion"] = "none",
        fusion_kwargs: dict[str, Any] | None = None,
        compress_ratio: int = 4,
        ham_kwargs: Mapping[str, Any] | None = None,
        dropout_ratio: float = 0.1,
        norm_groups: int = 32,
        nmf_seed: int | None = None,
    ) -> None:
        super().__init__()
        self.in_channels = tuple(int(c) for c in in_channels)
        if len(self.in_channels) < 1 or min(self.in_channels) < 1:
            raise ConfigError(f"LightHamHead needs >= 1 feature with positive channels, got {tuple(in_channels)!r}")
        if int(num_classes) < 1 or int(channels) < 1 or int(ham_channels) < 1:
            raise ConfigError(
                f"LightHamHead num_classes, channels and ham_channels must be >= 1, got {num_classes!r}, "
                f"{channels!r}, {ham_channels!r}"
            )
        if fusion not in ("none", "freqfusion"):
            raise ConfigError(
                f"LightHamHead fusion must be 'none' (LightHamHead) or 'freqfusion' (LightHamHeadFreqAware), got "
                f"{fusion!r}"
            )
        if not 0.0 <= float(dropout_ratio) < 1.0:
            raise ConfigError(f"LightHamHead dropout_ratio must be in [0, 1), got {dropout_ratio!r}")
        if int(compress_ratio) < 1:
            raise ConfigError(f"LightHamHead compress_ratio must be >= 1, got {compress_ratio!r}")
        self.fusion = fusion
        self.num_classes = int(num_classes)
        self.channels, self.ham_channels = int(channels), int(ham_channels)
        # Registration order = the official state-dict order (BaseDecodeHead first, then LightHamHead's modules,
        # then the FreqFusion modules of LightHamHeadFreqAware).
        self.conv_seg = nn.Conv2d(self.channels, self.num_classes, 1)
        self.dropout = nn.Dropout2d(float(dropout_ratio)) if dropout_ratio > 0 else nn.Identity()
        self.squeeze = ConvGNReLU(sum(self.in_channels), self.ham_channels, groups=norm_groups)
        self.hamburger = Hamburger(self.ham_channels, ham_kwargs, norm_groups=norm_groups, seed=nmf_seed)
        self.align = ConvGNReLU(self.ham_channels, self.channels, groups=norm_groups)
        self.freqfusions = nn.ModuleList()
        self.interleave, self.groups = False, 1
        if fusion == "freqfusion":
            kw = {**SEGNEXT_FUSION, **dict(fusion_kwargs or {})}
            self.interleave = bool(kw.get("feature_resample", False))
            self.groups = int(kw.get("feature_resample_group", 4))
            coarse_to_fine = self.in_channels[::-1]
            lr_c = coarse_to_fine[0]
            for hr_c in coarse_to_fine[1:]:
                if self.interleave and (hr_c % self.groups or lr_c % self.groups):
                    raise ConfigError(
                        f"LightHamHead(fusion='freqfusion'): channels {hr_c} and {lr_c} must be divisible by "
                        f"feature_resample_group={self.groups} for the group-interleaved concat"
                    )
                self.freqfusions.append(
                    build_fusion("freqfusion", hr_c, lr_c, kw, compressed_channels=(hr_c + lr_c) // int(compress_ratio))
                )
                lr_c += hr_c
        elif fusion_kwargs:
            raise ConfigError(
                "LightHamHead fusion_kwargs are FreqFusion keywords; set fusion='freqfusion' or drop them"
            )
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """mmseg's initialisation of the head's own layers: ConvModule convs Kaiming-normal (fan_out, ReLU), GN 1/0,
        ``conv_seg`` ``N(0, 0.01)``; the FreqFusion modules keep their own initialisation."""
        for module in (self.squeeze, self.hamburger, self.align):
            for m in module.modules():
                if isinstance(m, nn.Conv2d):
                    nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                    if m.bias is not None:
                        nn.init.zeros_(m.bias)
                elif isinstance(m, nn.GroupNorm):
                    nn.init.ones_(m.weight)
                    nn.init.zeros_(m.bias)
        nn.init.normal_(self.conv_seg.weight, std=0.01)
        nn.init.zeros_(self.conv_seg.bias)

    @property
    def nmf(self) -> NMF2D:
        """The Hamburger's matrix decomposition (``head.nmf.seed``: fixed evaluation bases, or ``None``)."""
        return self.hamburger.ham

    def fuse(self, features: Sequence[torch.Tensor]) -> torch.Tensor:
        """The ``squeeze`` input: ``(B, sum(in_channels), H_0, W_0)`` (resize + concat, or the FreqFusion chain)."""
        got = tuple(f.shape[1] if isinstance(f, torch.Tensor) and f.dim() == 4 else None for f in features)
        if got != self.in_channels:
            raise ShapeError(
                f"LightHamHead expected {len(self.in_channels)} feature maps with channels {self.in_channels}, got "
                f"{got}; build it with in_channels = the backbone stages it reads"
            )
        if self.fusion == "none":
            size = features[0].shape[-2:]
            resized = [
                f if f.shape[-2:] == size else F.interpolate(f, size=size, mode="bilinear", align_corners=False)
                for f in features
            ]
            return torch.cat(resized, dim=1)
        x = features[-1]
        for k, hr in enumerate(reversed(features[:-1])):
            out = fusion_step(self.freqfusions[k], hr, x)
            x = (
                interleave_concat(out.hr_feat, out.lr_feat, self.groups)
                if self.interleave
                else torch.cat([out.hr_feat, out.lr_feat], dim=1)
            )
        return x

    def forward_features(
        self, features: Sequence[torch.Tensor], generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """The ``align`` output ``(B, channels, H_0, W_0)`` (official ``_forward_feature``)."""
        return self.align(self.hamburger(self.squeeze(self.fuse(features)), generator))

    def forward(self, features: Sequence[torch.Tensor], generator: torch.Generator | None = None) -> torch.Tensor:
        """``[(B, C_k, H_k, W_k)]`` finest first -> logits ``(B, num_classes, H_0, W_0)``."""
        return self.conv_seg(self.dropout(self.forward_features(features, generator)))
