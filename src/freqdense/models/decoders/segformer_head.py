"""All-MLP decoder (SegFormer, Xie et al. 2021) with bilinear, FreqFusion or any family up-sampler "concat" fusion.

Bilinear (SegFormer): a 1x1 projection per level, every level bilinearly resized to the finest, concatenated,
fused by a 1x1 conv-BN-ReLU.

FreqFusion follows the official SegNeXt head ``LightHamHeadFreqAware``
(docs/reference_code.md#freqfusion-integrations-upstream; the repo has no SegFormer integration, and the author advises
following the SegNeXt scheme): levels are visited coarse to fine; ``x`` starts as the coarsest projection and each step
runs ``FreqFusion(hr=proj_i, lr=x)`` with ``compressed_channels = (C_hr + C_lr) // compress_ratio`` and sets ``x`` to
the group-interleaved concatenation of ``(hr_out, lr_up)`` (:func:`interleave_concat`), so the next step's ``groups``
contiguous channel chunks (the offset generator's groups) each hold matching hr/lr channels. The final ``x`` has
``L * channels`` channels, like the bilinear concat, and goes through the same 1x1 fuse.

``integration="segnext"`` reproduces ``LightHamHeadFreqAware`` exactly up to its ``squeeze``: no projection, the
**raw backbone stages** are fused (``FreqFusion(hr=stage_i, lr=x)`` with ``C_lr = sum`` of the coarser stages and
``compressed_channels = (C_hr + C_lr) // compress_ratio``), with the official SegNeXt defaults
:data:`SEGNEXT_FUSION` (``feature_resample=True`` with 4 groups, ``hamming_window=False``, the SegNeXt copy's
``direction_feat="sim"``), group-interleaved only when ``feature_resample`` is on (plain ``[hr, lr]`` otherwise),
then a 1x1 conv-BN-ReLU from ``sum(in_channels)`` to ``channels`` (the official squeeze uses GroupNorm(32) and is
followed by the Hamburger matrix-decomposition block, which freqdense does not ship). Bilinear with ``"segnext"``:
raw stages resized to the finest and concatenated finest first (``LightHamHead``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import torch
import torch.nn as nn

from ...errors import ConfigError, ShapeError
from ._fusion import ConvBNReLU, Fusion, build_fusion, check_fusion, fusion_step, upsample_like

__all__ = ["SEGNEXT_FUSION", "SegFormerHead", "interleave_concat"]

#: FreqFusion keywords of the official SegNeXt config (``segnext.tiny.freqfusion.512x512.ade.160k.py``) and the
#: SegNeXt copy of FreqFusion (offsets from the similarity channels only).
SEGNEXT_FUSION: dict[str, Any] = {
    "lowpass_kernel": 5,
    "highpass_kernel": 3,
    "feature_resample": True,
    "feature_resample_group": 4,
    "hamming_window": False,
    "feature_resample_norm": True,
    "semi_conv": True,
    "comp_feat_upsample": True,
    "direction_feat": "sim",
}


def interleave_concat(a: torch.Tensor, b: torch.Tensor, groups: int) -> torch.Tensor:
    """Concatenate ``a`` and ``b`` on channels so group ``g`` of the result is ``[a_g, b_g]``.

    ``a`` is ``(B, Ca, H, W)``, ``b`` is ``(B, Cb, H, W)``, both channel counts divisible by ``groups``; the result
    is ``(B, Ca + Cb, H, W)`` where channels ``g * (Ca + Cb) / G ...`` hold ``a``'s ``g``-th chunk then ``b``'s.
    """
    n, ca, h, w = a.shape
    cb = b.shape[1]
    if ca % groups or cb % groups:
        raise ShapeError(f"interleave_concat: channels {ca} and {cb} must both be divisible by groups={groups}")
    out = torch.cat([a.reshape(n, groups, ca // groups, h, w), b.reshape(n, groups, cb // groups, h, w)], dim=2)
    return out.reshape(n, ca + cb, h, w)


class SegFormerHead(nn.Module):
    """SegFormer-style all-MLP decoder with concat fusion.

    Args:
        in_channels: channels of the backbone levels, finest first.
        channels: projection width (``embed_dim``).
        fusion: ``"bilinear"`` (SegFormer's direct resize of every level), ``"freqfusion"``, or any other member of
            the up-sampler family (:data:`freqdense.nn.upsamplers.UPSAMPLERS`), which then fuses coarse to fine like
            FreqFusion with a plain ``[hr_feat, lr_feat]`` concat.
        fusion_kwargs: extra keywords for every up-sampler; FreqFusion's ``compressed_channels`` defaults per step
            to ``(C_hr + C_lr) // compress_ratio``.
        compress_ratio: 4 in the official SegNeXt config.
        groups: interleaving groups (SegNeXt uses ``feature_resample_group`` = 4); ``channels`` must be divisible.
            With ``integration="segnext"`` the groups are ``fusion_kwargs["feature_resample_group"]``.
        integration: ``"projected"`` (1x1 projection of every level first, always interleaved) or ``"segnext"``
            (the official SegNeXt integration on raw stages, see the module docstring; ``fusion_kwargs`` default
            to :data:`SEGNEXT_FUSION`, keys given override them).

    Attributes:
        fusions: up-samplers, ``fusions[i]`` fuses level ``i`` with the fused coarser levels (empty for bilinear).
        out_channels: ``channels``.
    """

    def __init__(
        self,
        in_channels: Sequence[int],
        channels: int = 128,
        *,
        fusion: Fusion = "bilinear",
        fusion_kwargs: dict[str, Any] | None = None,
        compress_ratio: int = 4,
        groups: int = 4,
        integration: Literal["projected", "segnext"] = "projected",
    ) -> None:
        super().__init__()
        self.in_channels = tuple(int(c) for c in in_channels)
        if len(self.in_channels) < 2 or min(self.in_channels) < 1:
            raise ConfigError(f"SegFormerHead needs >= 2 levels with positive channels, got {tuple(in_channels)!r}")
        c = int(channels)
        if c < 1 or int(groups) < 1 or c % int(groups):
            raise ConfigError(
                f"SegFormerHead channels={channels!r} must be positive and divisible by groups={groups!r}"
            )
        self.fusion = check_fusion(fusion)
        if integration not in ("projected", "segnext"):
            raise ConfigError(f"SegFormerHead integration must be 'projected' or 'segnext', got {integration!r}")
        self.integration = integration
        self.groups = int(groups)
        self.out_channels = c
        n = len(self.in_channels)
        fusions = []
        if integration == "segnext":
            self.proj = nn.ModuleList()
            is_ff = self.fusion == "freqfusion"
            kw = {**SEGNEXT_FUSION, **dict(fusion_kwargs or {})} if is_ff else dict(fusion_kwargs or {})
            self.interleave = bool(kw.get("feature_resample", False))
            self.groups = int(kw.get("feature_resample_group", 4))
            for i in range(n - 1) if self.fusion != "bilinear" else ():
                hr_c, lr_c = self.in_channels[i], sum(self.in_channels[i + 1 :])
                if self.interleave and (hr_c % self.groups or lr_c % self.groups):
                    raise ConfigError(
                        f"SegFormerHead(integration='segnext'): stage channels {hr_c} and {lr_c} must be divisible "
                        f"by feature_resample_group={self.groups} for the group-interleaved concat"
                    )
                fusions.append(
                    build_fusion(self.fusion, hr_c, lr_c, kw, compressed_channels=(hr_c + lr_c) // int(compress_ratio))
                )
            self.fusions = nn.ModuleList(fusions)
            self.fuse = ConvBNReLU(sum(self.in_channels), c, 1)
            return
        self.interleave = self.fusion == "freqfusion"
        self.proj = nn.ModuleList(nn.Conv2d(ci, c, 1) for ci in self.in_channels)
        if self.fusion != "bilinear":
            for i in range(n - 1):  # fusions[i]: hr = level i (c channels), lr = levels i+1.. fused ((n-1-i) * c)
                lr_c = (n - 1 - i) * c
                fusions.append(
                    build_fusion(
                        self.fusion, c, lr_c, fusion_kwargs, compressed_channels=(c + lr_c) // int(compress_ratio)
                    )
                )
        self.fusions = nn.ModuleList(fusions)
        self.fuse = ConvBNReLU(n * c, c, 1)

    def forward(self, features: Sequence[torch.Tensor]) -> torch.Tensor:
        """``[(B, C_k, H_k, W_k)]`` finest first -> ``(B, channels, H_0, W_0)``."""
        got = tuple(f.shape[1] if f.dim() == 4 else None for f in features)
        if got != self.in_channels:
            raise ShapeError(
                f"SegFormerHead expected {len(self.in_channels)} feature maps with channels {self.in_channels}, "
                f"got {got}; build it with in_channels=backbone.out_channels"
            )
        projected = [p(f) for p, f in zip(self.proj, features)] if self.proj else list(features)
        if self.fusion == "bilinear":
            order = projected if self.integration == "segnext" else reversed(projected)  # LightHamHead: finest first
            x = torch.cat([upsample_like(p, projected[0]) for p in order], dim=1)
        else:
            x = projected[-1]
            for i in range(len(projected) - 2, -1, -1):
                out = fusion_step(self.fusions[i], projected[i], x)
                hr, lr = out.hr_feat, out.lr_feat
                x = interleave_concat(hr, lr, self.groups) if self.interleave else torch.cat([hr, lr], dim=1)
        return self.fuse(x)
