"""FreqFusion's offset generator: similarity-guided 2x resampling (``LocalSimGuidedSampler``, attribute ``dysampler``).

Chen et al., TPAMI 2024 (FreqFusion), offset generator; official code github.com/Linwei-Chen/FreqFusion @ 3fb0c70,
written down in docs/reference_code.md#offset-generator-localsimguidedsampler. A DySample-style "lp" sampler: offsets in
low-resolution pixel units are predicted from GroupNorm-ed features and their local cosine similarities at both levels,
then the already up-sampled feature is resampled by ``grid_sample`` in ``groups`` contiguous channel chunks.
With zero conv weights and biases the offsets equal ``init_pos`` and the sampler is the identity.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError

__all__ = ["LocalSimGuidedSampler", "local_cosine_similarity"]


def local_cosine_similarity(x: torch.Tensor, *, window: int = 3, dilation: int = 2) -> torch.Tensor:
    """Cosine similarity between each pixel and its ``window x window`` dilated neighbours, centre dropped.

    Neighbours outside the map are zeros (similarity 0). The channel order is the row-major tap order with the
    centre removed (8 channels for ``window=3``).

    Args:
        x: (B, C, H, W) features.
        window: odd neighbourhood side.
        dilation: spacing of the neighbours in pixels.

    Returns:
        (B, window^2 - 1, H, W) similarities in [-1, 1].
    """
    r = (window // 2) * dilation
    h, w = x.shape[-2:]
    padded = F.pad(x, (r, r, r, r))
    sims = []
    for t in range(window * window):
        if t == window * window // 2:
            continue
        dy, dx = divmod(t, window)
        tap = padded[..., dy * dilation : dy * dilation + h, dx * dilation : dx * dilation + w]
        sims.append(F.cosine_similarity(x, tap, dim=1, eps=1e-8))
    return torch.stack(sims, dim=1)


class LocalSimGuidedSampler(nn.Module):
    """Offset generator + resampler of FreqFusion (official class name and state-dict keys).

    Args:
        in_channels: channels ``Cc`` of the compressed guidance features ``hr_x`` / ``lr_x``.
        scale: up-sampling factor; only 2 (what FreqFusion uses) is implemented.
        style: only ``"lp"`` (offsets predicted at low resolution) is implemented.
        groups: offset groups ``G``; the resampled feature's channels are split into ``G`` contiguous chunks.
        use_direct_scale: modulate offsets by ``sigmoid(direct_scale(...))`` (FreqFusion: True); otherwise by 0.25.
        kernel_size: side of the offset/scale convs (FreqFusion passes ``encoder_kernel``).
        local_window: neighbourhood side of the cosine similarities.
        sim_type: only ``"cos"`` is implemented.
        norm: GroupNorm(Cc // 8, Cc) on both guidance features (``norm_hr``, ``norm_lr``).
        direction_feat: ``"sim_concat"`` (standalone / mmdet / Mask2Former copies: every conv sees
            ``cat(norm(x), sim(x))``) or ``"sim"`` (SegNeXt copy: offset convs see the similarities, scale convs the
            normed features).
    """

    def __init__(
        self,
        in_channels: int,
        scale: int = 2,
        style: str = "lp",
        groups: int = 4,
        use_direct_scale: bool = True,
        kernel_size: int = 1,
        local_window: int = 3,
        sim_type: str = "cos",
        norm: bool = True,
        direction_feat: Literal["sim_concat", "sim"] = "sim_concat",
    ) -> None:
        super().__init__()
        if scale != 2 or style != "lp" or sim_type != "cos":
            raise ConfigError(
                f"LocalSimGuidedSampler supports scale=2, style='lp', sim_type='cos' (what FreqFusion uses); got "
                f"scale={scale}, style={style!r}, sim_type={sim_type!r}"
            )
        if direction_feat not in ("sim_concat", "sim"):
            raise ConfigError(f"direction_feat must be 'sim_concat' or 'sim', got {direction_feat!r}")
        if in_channels % groups:
            raise ConfigError(f"in_channels={in_channels} must be divisible by groups={groups}")
        if norm and (in_channels < 8 or in_channels % (in_channels // 8)):
            raise ConfigError(
                f"norm=True uses GroupNorm(in_channels // 8, in_channels), which needs in_channels >= 8 and divisible "
                f"by in_channels // 8; got in_channels={in_channels}. Use a multiple of 8 or norm=False"
            )
        self.scale = scale
        self.groups = groups
        self.local_window = local_window
        self.direction_feat = direction_feat
        self.use_norm = norm
        sims = local_window * local_window - 1
        offset_in = in_channels + sims if direction_feat == "sim_concat" else sims
        scale_in = in_channels + sims if direction_feat == "sim_concat" else in_channels
        out_lr, out_hr = 2 * groups * scale * scale, 2 * groups
        pad = kernel_size // 2
        self.register_buffer("init_pos", self._init_pos(scale, groups))
        self.offset = nn.Conv2d(offset_in, out_lr, kernel_size, padding=pad)
        if use_direct_scale:
            self.direct_scale = nn.Conv2d(scale_in, out_lr, kernel_size, padding=pad)
        self.hr_offset = nn.Conv2d(offset_in, out_hr, kernel_size, padding=pad)
        if use_direct_scale:
            self.hr_direct_scale = nn.Conv2d(scale_in, out_hr, kernel_size, padding=pad)
        self.norm_hr: nn.Module = nn.GroupNorm(in_channels // 8, in_channels) if norm else nn.Identity()
        self.norm_lr: nn.Module = nn.GroupNorm(in_channels // 8, in_channels) if norm else nn.Identity()
        self.use_direct_scale = use_direct_scale
        for conv in (self.offset, self.hr_offset):
            nn.init.normal_(conv.weight, std=0.001)
            nn.init.zeros_(conv.bias)
        if use_direct_scale:
            for conv in (self.direct_scale, self.hr_direct_scale):
                nn.init.zeros_(conv.weight)
                nn.init.zeros_(conv.bias)

    @staticmethod
    def _init_pos(scale: int, groups: int) -> torch.Tensor:
        # Sub-pixel centres of the scale x scale output phases in input-pixel units: -0.25 / +0.25 for scale 2.
        h = (torch.arange(scale, dtype=torch.float32) - (scale - 1) / 2) / scale
        x_half = h.view(1, 1, scale).expand(groups, scale, scale)  # varies with dx
        y_half = h.view(1, scale, 1).expand(groups, scale, scale)  # varies with dy
        return torch.stack([x_half, y_half]).reshape(1, -1, 1, 1).clone()  # [x|y] x group x dy x dx

    def offsets(self, hr_x: torch.Tensor, lr_x: torch.Tensor) -> torch.Tensor:
        """Offsets (B, 2 * G * 4, H, W) in low-resolution pixels, ``init_pos`` included; ``hr_x`` is 2x ``lr_x``."""
        hr_x, lr_x = self.norm_hr(hr_x), self.norm_lr(lr_x)
        hr_sim = local_cosine_similarity(hr_x, window=self.local_window)
        lr_sim = local_cosine_similarity(lr_x, window=self.local_window)
        if self.direction_feat == "sim_concat":
            hr_sim = hr_x = torch.cat([hr_x, hr_sim], dim=1)
            lr_sim = lr_x = torch.cat([lr_x, lr_sim], dim=1)
        offset = self.offset(lr_sim) + F.pixel_unshuffle(self.hr_offset(hr_sim), self.scale)
        if self.use_direct_scale:
            gate = self.direct_scale(lr_x) + F.pixel_unshuffle(self.hr_direct_scale(hr_x), self.scale)
            offset = offset * gate.sigmoid()
        else:
            offset = offset * 0.25
        return offset + self.init_pos.to(offset.dtype)

    def sample(self, feat: torch.Tensor, offset: torch.Tensor) -> torch.Tensor:
        """Bilinearly resample ``feat`` (B, C, 2H, 2W) at base grid + ``offset`` (B, 2 * G * 4, H, W), border pad."""
        b, _, h, w = offset.shape
        s, g = self.scale, self.groups
        # Coordinates in float32 at least: bfloat16 cannot resolve sub-pixel positions on realistic maps.
        dtype = torch.promote_types(torch.promote_types(feat.dtype, offset.dtype), torch.float32)
        base_x = torch.arange(w, dtype=dtype, device=offset.device) + 0.5
        base_y = torch.arange(h, dtype=dtype, device=offset.device) + 0.5
        off = offset.to(dtype).view(b, 2, -1, h, w)
        x = 2 * (base_x.view(1, 1, 1, w) + off[:, 0]) / w - 1
        y = 2 * (base_y.view(1, 1, h, 1) + off[:, 1]) / h - 1
        coords = torch.stack([x, y], dim=1).view(b, -1, h, w)
        grid = (
            F.pixel_shuffle(coords, s)
            .view(b, 2, g, s * h, s * w)
            .permute(0, 2, 3, 4, 1)
            .reshape(b * g, s * h, s * w, 2)
        )
        src = feat.to(dtype).reshape(b * g, -1, feat.shape[-2], feat.shape[-1])
        out = F.grid_sample(src, grid, mode="bilinear", padding_mode="border", align_corners=False)
        return out.view(b, -1, s * h, s * w).to(feat.dtype)

    def forward(self, hr_x: torch.Tensor, lr_x: torch.Tensor, feat2sample: torch.Tensor) -> torch.Tensor:
        """Resample ``feat2sample`` (B, C, 2H, 2W) guided by ``hr_x`` (B, Cc, 2H, 2W) and ``lr_x`` (B, Cc, H, W)."""
        return self.sample(feat2sample, self.offsets(hr_x, lr_x))
