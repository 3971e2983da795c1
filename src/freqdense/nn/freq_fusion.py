"""Frequency-aware feature fusion (FreqFusion). Chen et al., "Frequency-aware Feature Fusion for Dense Image
Prediction", TPAMI 2024. Official code: github.com/Linwei-Chen/FreqFusion @ 3fb0c70 (``FreqFusion.py``).

A drop-in, pure-PyTorch replacement of the official module: same constructor keywords and defaults, same state-dict
keys, the official forward order (docs/reference_code.md#freqfusion-forward-default-path) and the official output order.
The three generators of the paper map to: ALPF = ``content_encoder`` + ``normalize_kernels`` + ``carafe`` (5x5, up 2);
AHPF = ``content_encoder2`` + 3x3 ``carafe`` subtracted from the input; offset generator = ``dysampler``.
Where the official code departs from the paper, and what this file does about inputs that are not exactly 2x, is in
docs/methods/freqfusion.md.
"""

from __future__ import annotations

import logging
from typing import ClassVar, Literal, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from .._checks import check_shape
from ..errors import ConfigError, ShapeError
from ..ops.filters import hamming2d, normalize_kernels
from ..ops.reassemble import carafe
from .local_sim_sampler import LocalSimGuidedSampler

__all__ = ["FreqFusion", "FreqFusionOutput"]

logger = logging.getLogger(__name__)


class FreqFusionOutput(NamedTuple):
    """FreqFusion outputs in the official order ``(mask_lr, hr_feat, lr_feat)``; the caller adds or concatenates
    ``hr_feat`` and ``lr_feat``.
    """

    mask: torch.Tensor
    """(B, lowpass_kernel^2 * up_group, H, W): the normalised ALPF kernels at the high resolution."""
    hr_feat: torch.Tensor
    """(B, hr_channels, H, W): the AHPF-enhanced high-resolution feature (``2 hr - LP(hr)`` with ``hr_residual``)."""
    lr_feat: torch.Tensor
    """(B, lr_channels, H, W): the low-resolution feature up-sampled by the ALPF kernels (and resampled by offsets)."""


class FreqFusion(nn.Module):
    """Fuse a high-resolution and a 2x coarser feature with adaptive low/high-pass filters and offsets.

    A member of the up-sampler family (:mod:`freqdense.nn.upsamplers`, name ``"freqfusion"``): its output has the
    family's ``hr_feat`` and ``lr_feat`` fields.

    The keywords and defaults are the official ones; only the last two keyword-only arguments are additions.

    Args:
        hr_channels: channels of ``hr_feat`` (may differ from ``lr_channels``).
        lr_channels: channels of ``lr_feat``.
        scale_factor: must be 1 (official: it only multiplies the encoder outputs and breaks the kernels otherwise).
        lowpass_kernel: ALPF kernel side ``k_l`` (5).
        highpass_kernel: AHPF kernel side ``k_h`` (3).
        up_group: kernel groups over the channels; 1 officially (the official code crashes for 2), here any
            divisor of both channel counts and ``compressed_channels`` works.
        encoder_kernel: side of the kernel-generator convs (and of the offset convs).
        encoder_dilation: dilation of the kernel-generator convs.
        compressed_channels: ``Cc``, channels after the 1x1 compressors.
        align_corners: used only when ``semi_conv=False`` and ``upsample_mode`` is not nearest.
        upsample_mode: ``F.interpolate`` mode for ``lr_feat`` when ``semi_conv=False``.
        feature_resample: enable the offset generator (``dysampler``); off by default as upstream.
        feature_resample_group: offset groups ``G`` (must divide ``Cc`` and ``lr_channels``).
        comp_feat_upsample: fuse the LR kernel logits after CARAFE up-sampling with the initial HR kernels
            (default) instead of nearest up-sampling.
        use_high_pass: enable the AHPF (``content_encoder2``).
        use_low_pass: stored but never read, as upstream: the ALPF always runs.
        hr_residual: return ``hr + HP(hr)`` (default) instead of ``HP(hr)``.
        semi_conv: fuse kernel logits (default, the "semi-conv" shortcut); False fuses compressed features first.
        hamming_window: multiply kernels by a Hamming window before the final renormalisation.
        feature_resample_norm: GroupNorm in the offset generator.
        direction_feat: offset-generator input, ``"sim_concat"`` (standalone/mmdet/Mask2Former copies) or
            ``"sim"`` (SegNeXt copy) - pick the one of the checkpoint you load. Addition.
        carafe_padding: ``"zeros"`` (mmcv CARAFE, what released checkpoints were trained with) or ``"reflect"``
            (the official pure-torch fallback). Addition.
        **kwargs: accepted and ignored, as upstream, but logged as a warning.

    Examples:
        >>> ff = FreqFusion(32, 64, compressed_channels=16)
        >>> out = ff(torch.rand(1, 32, 16, 16), torch.rand(1, 64, 8, 8))
        >>> tuple(out.mask.shape), tuple(out.hr_feat.shape), tuple(out.lr_feat.shape)
        ((1, 25, 16, 16), (1, 32, 16, 16), (1, 64, 16, 16))
    """

    name: ClassVar[str] = "freqfusion"
    guided: ClassVar[bool] = True

    def __init__(
        self,
        hr_channels: int,
        lr_channels: int,
        scale_factor: int = 1,
        lowpass_kernel: int = 5,
        highpass_kernel: int = 3,
        up_group: int = 1,
        encoder_kernel: int = 3,
        encoder_dilation: int = 1,
        compressed_channels: int = 64,
        align_corners: bool = False,
        upsample_mode: str = "nearest",
        feature_resample: bool = False,
        feature_resample_group: int = 4,
        comp_feat_upsample: bool = True,
        use_high_pass: bool = True,
        use_low_pass: bool = True,
        hr_residual: bool = True,
        semi_conv: bool = True,
        hamming_window: bool = True,
        feature_resample_norm: bool = True,
        *,
        direction_feat: Literal["sim_concat", "sim"] = "sim_concat",
        carafe_padding: Literal["zeros", "reflect"] = "zeros",
        **kwargs: object,
    ) -> None:
        super().__init__()
        if kwargs:
            logger.warning(
                "FreqFusion ignores unknown keyword arguments %s (as the official module does)", sorted(kwargs)
            )
        if scale_factor != 1:
            raise ConfigError(
                f"FreqFusion: scale_factor={scale_factor} is not supported; the official module only works with 1 "
                "(it multiplies the kernel channels without making sub-pixel kernels). The 2x up-sampling is built in"
            )
        for name, value in (("lowpass_kernel", lowpass_kernel), ("highpass_kernel", highpass_kernel)):
            if value < 1 or value % 2 == 0:
                raise ConfigError(f"FreqFusion: {name} must be odd and >= 1, got {value}")
        for name, channels in (
            ("hr_channels", hr_channels),
            ("lr_channels", lr_channels),
            ("compressed_channels", compressed_channels),
        ):
            if channels % up_group:
                raise ConfigError(f"FreqFusion: {name}={channels} must be divisible by up_group={up_group}")
        if feature_resample and lr_channels % feature_resample_group:
            raise ConfigError(
                f"FreqFusion: lr_channels={lr_channels} must be divisible by feature_resample_group="
                f"{feature_resample_group} (the resampler splits channels into groups)"
            )
        if carafe_padding not in ("zeros", "reflect"):
            raise ConfigError(f"FreqFusion: carafe_padding must be 'zeros' or 'reflect', got {carafe_padding!r}")
        if not use_low_pass:
            logger.warning("FreqFusion: use_low_pass=False has no effect (as upstream); the ALPF always runs")
        self.hr_channels = hr_channels
        self.lr_channels = lr_channels
        self.scale_factor = scale_factor
        self.lowpass_kernel = lowpass_kernel
        self.highpass_kernel = highpass_kernel
        self.up_group = up_group
        self.encoder_kernel = encoder_kernel
        self.encoder_dilation = encoder_dilation
        self.compressed_channels = compressed_channels
        self.align_corners = align_corners
        self.upsample_mode = upsample_mode
        self.feature_resample = feature_resample
        self.comp_feat_upsample = comp_feat_upsample
        self.use_high_pass = use_high_pass
        self.use_low_pass = use_low_pass
        self.hr_residual = hr_residual
        self.semi_conv = semi_conv
        self.hamming_window = hamming_window
        self.carafe_padding = carafe_padding

        pad = (encoder_kernel - 1) * encoder_dilation // 2
        self.hr_channel_compressor = nn.Conv2d(hr_channels, compressed_channels, 1)
        self.lr_channel_compressor = nn.Conv2d(lr_channels, compressed_channels, 1)
        self.content_encoder = nn.Conv2d(
            compressed_channels,
            lowpass_kernel**2 * up_group * scale_factor**2,
            encoder_kernel,
            padding=pad,
            dilation=encoder_dilation,
        )
        if feature_resample:
            self.dysampler = LocalSimGuidedSampler(
                compressed_channels,
                scale=2,
                style="lp",
                groups=feature_resample_group,
                use_direct_scale=True,
                kernel_size=encoder_kernel,
                norm=feature_resample_norm,
                direction_feat=direction_feat,
            )
        if use_high_pass:
            self.content_encoder2 = nn.Conv2d(
                compressed_channels,
                highpass_kernel**2 * up_group * scale_factor**2,
                encoder_kernel,
                padding=pad,
                dilation=encoder_dilation,
            )
        # Official buffers: the window, or a placeholder [1.0] when hamming_window=False (shape (1,)).
        for name, k in (("hamming_lowpass", lowpass_kernel), ("hamming_highpass", highpass_kernel)):
            window = hamming2d(k)[None, None] if hamming_window else torch.ones(1)
            self.register_buffer(name, window)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Official ``init_weights``: xavier-uniform on every conv (the offset generator's too), zero biases, then
        normal(std=0.001) for the kernel generators (docs/reference_code.md#freqfusion-initialisation).
        """
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.xavier_uniform_(module.weight)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
        for module in (self.content_encoder, getattr(self, "content_encoder2", None)):
            if module is not None:
                nn.init.normal_(module.weight, std=0.001)
                nn.init.zeros_(module.bias)

    def _kernels(self, logits: torch.Tensor, kernel_size: int, window: torch.Tensor) -> torch.Tensor:
        return normalize_kernels(logits, kernel_size, window=window, group=self.up_group)

    def _carafe(self, x: torch.Tensor, kernels: torch.Tensor, kernel_size: int, scale: int) -> torch.Tensor:
        return carafe(x, kernels, kernel_size, self.up_group, scale, padding_mode=self.carafe_padding)

    def _fuse(self, hr_feat: torch.Tensor, lr_feat: torch.Tensor) -> FreqFusionOutput:
        """Official forward on exactly-2x inputs; step numbers are those of
        docs/reference_code.md#freqfusion-forward-default-path."""
        kl, kh = self.lowpass_kernel, self.highpass_kernel
        hr_comp = self.hr_channel_compressor(hr_feat)  # step 1
        lr_comp = self.lr_channel_compressor(lr_feat)
        mask_hr: torch.Tensor | None = None
        if self.semi_conv and self.comp_feat_upsample:
            if self.use_high_pass:
                # Step 2: initial AHPF; the enhanced hr_comp replaces the original from here on (dysampler too).
                mask_hr_hr = self.content_encoder2(hr_comp)
                hr_comp = 2 * hr_comp - self._carafe(
                    hr_comp, self._kernels(mask_hr_hr, kh, self.hamming_highpass), kh, 1
                )
            # Steps 3-5: ALPF logits = HR logits + LR logits up-sampled by the HR-derived low-pass kernels.
            mask_lr_hr = self.content_encoder(hr_comp)
            init_lowpass = self._kernels(mask_lr_hr, kl, self.hamming_lowpass)
            mask_lr = mask_lr_hr + self._carafe(self.content_encoder(lr_comp), init_lowpass, kl, 2)
            if self.use_high_pass:
                # Step 6: AHPF logits, LR part up-sampled with the fused low-pass kernels.
                lowpass = self._kernels(mask_lr, kl, self.hamming_lowpass)
                mask_hr = mask_hr_hr + self._carafe(self.content_encoder2(lr_comp), lowpass, kl, 2)
        elif self.semi_conv:
            mask_lr = self.content_encoder(hr_comp) + _nearest(self.content_encoder(lr_comp), hr_comp)
            if self.use_high_pass:
                mask_hr = self.content_encoder2(hr_comp) + _nearest(self.content_encoder2(lr_comp), hr_comp)
        else:
            fused = _nearest(lr_comp, hr_comp) + hr_comp
            mask_lr = self.content_encoder(fused)
            if self.use_high_pass:
                mask_hr = self.content_encoder2(fused)

        # Step 7: final low-pass up-sampling of the real LR feature.
        lowpass = self._kernels(mask_lr, kl, self.hamming_lowpass)
        if self.semi_conv:
            lr_up = self._carafe(lr_feat, lowpass, kl, 2)
        else:
            align = None if self.upsample_mode == "nearest" else self.align_corners
            lr_up = F.interpolate(lr_feat, size=hr_feat.shape[-2:], mode=self.upsample_mode, align_corners=align)
            lr_up = self._carafe(lr_up, lowpass, kl, 1)
        # Step 8: final high-pass enhancement of the real HR feature.
        hr_out = hr_feat
        if mask_hr is not None:
            highpass = hr_feat - self._carafe(hr_feat, self._kernels(mask_hr, kh, self.hamming_highpass), kh, 1)
            hr_out = highpass + hr_feat if self.hr_residual else highpass
        # Step 9: optional offset resampling, guided by the (enhanced) compressed features.
        if self.feature_resample:
            lr_up = self.dysampler(hr_comp, lr_comp, lr_up)
        return FreqFusionOutput(lowpass, hr_out, lr_up)

    def _forward(self, hr_feat: torch.Tensor, lr_feat: torch.Tensor) -> FreqFusionOutput:
        height, width = hr_feat.shape[-2:]
        lr_h, lr_w = _padded_lr_size(height, width, lr_feat.shape[-2], lr_feat.shape[-1])
        exporting = torch.compiler.is_exporting()
        if not exporting and (lr_h, lr_w) == tuple(lr_feat.shape[-2:]) and (2 * lr_h, 2 * lr_w) == (height, width):
            return self._fuse(hr_feat, lr_feat)
        # Non-2x sizes: replicate-pad lr to ceil(H/2) x ceil(W/2) and hr to twice that at the bottom/right, fuse,
        # crop every output back to H x W. The top-left alignment (hr pixel p <-> lr pixel p // 2) is CARAFE's.
        # While exporting this path is always taken (pads of 0 at even sizes): a size test here would be traced as
        # a guard and bake "H, W even" into the ONNX graph, which then fails at odd sizes in ONNX Runtime.
        lr_pad = _pad_bottom_right(lr_feat, lr_h, lr_w, always=exporting)
        hr_pad = _pad_bottom_right(hr_feat, 2 * lr_h, 2 * lr_w, always=exporting)
        out = self._fuse(hr_pad, lr_pad)
        return FreqFusionOutput(*(t[..., :height, :width] for t in out))

    def forward(self, hr_feat: torch.Tensor, lr_feat: torch.Tensor, use_checkpoint: bool = False) -> FreqFusionOutput:
        """Fuse ``hr_feat`` (B, C_hr, H, W) with ``lr_feat`` (B, C_lr, h, w), ``h in {floor(H/2), ceil(H/2)}``.

        Args:
            hr_feat: high-resolution feature.
            lr_feat: low-resolution feature, nominally (H/2, W/2); odd sizes are padded and cropped (see docs).
            use_checkpoint: recompute the forward in backward (``torch.utils.checkpoint``) to save memory.

        Returns:
            ``FreqFusionOutput(mask, hr_feat, lr_feat)``, all at (H, W).
        """
        check_shape(hr_feat, "B C H W", name="hr_feat", C=self.hr_channels)
        check_shape(lr_feat, "B C H W", name="lr_feat", C=self.lr_channels)
        if hr_feat.shape[0] != lr_feat.shape[0]:
            raise ShapeError(
                f"hr_feat and lr_feat must have the same batch size, got {tuple(hr_feat.shape)} and "
                f"{tuple(lr_feat.shape)}"
            )
        _padded_lr_size(hr_feat.shape[-2], hr_feat.shape[-1], lr_feat.shape[-2], lr_feat.shape[-1])
        if use_checkpoint and torch.is_grad_enabled():
            return FreqFusionOutput(*checkpoint(self._forward, hr_feat, lr_feat, use_reentrant=False))
        return self._forward(hr_feat, lr_feat)

    def upsample(self, lr_feat: torch.Tensor) -> torch.Tensor:
        """The family's guide-free path; FreqFusion needs the high-resolution feature, so this refuses."""
        raise ConfigError(
            "freqfusion is guided by the high-resolution feature; call it as module(hr, lr), or pick an unguided "
            "up-sampler (bilinear, nearest, deconv, pixel_shuffle, carafe, dysample*)"
        )


def _nearest(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, size=like.shape[-2:], mode="nearest")


def _padded_lr_size(height: int, width: int, lr_h: int, lr_w: int) -> tuple[int, int]:
    """The LR size both inputs are padded to: ceil(H/2) x ceil(W/2); lr must be floor or ceil of half of hr."""
    for name, big, small in (("H", height, lr_h), ("W", width, lr_w)):
        if small not in (big // 2, (big + 1) // 2):
            raise ShapeError(
                f"lr_feat must be half the size of hr_feat (floor or ceil of {name}/2 = {big // 2} or "
                f"{(big + 1) // 2}),"
                f" got {name}={small} for hr_feat {name}={big}; resize or pad lr_feat to that size"
            )
    return (height + 1) // 2, (width + 1) // 2


def _pad_bottom_right(x: torch.Tensor, height: int, width: int, *, always: bool = False) -> torch.Tensor:
    pad_h, pad_w = height - x.shape[-2], width - x.shape[-1]
    if not always and pad_h == 0 and pad_w == 0:
        return x
    return F.pad(x, (0, pad_w, 0, pad_h), mode="replicate")
