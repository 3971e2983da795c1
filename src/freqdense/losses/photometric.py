"""Monodepth2's photometric reprojection error, per-pixel minimum over source views and identity auto-masking.

Godard et al., "Digging Into Self-Supervised Monocular Depth Estimation", ICCV 2019, Eq. 1-4 (per-pixel minimum,
auto-masking), with Chen et al., WACV 2023, Sec. 4.3-4.4 composed in :class:`PhotometricLoss` (Auto-Blur of the
loss images, Ambiguity-Masking of the minimum). Semantics: the official freq-aware-depth
``trainer.py`` @ b33ca8e, written down in docs/reference_code.md (sections "Ambiguity mask and the loss",
"Monodepth2 layers", "Monodepth2 loss computation"). Deviations: docs/methods/freq_aware_depth.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from .._checks import check_shape
from ..errors import ConfigError, ShapeError
from .ambiguity_mask import AmbiguityMask, warp_with_grid
from .auto_blur import AutoBlur

__all__ = [
    "LossImages",
    "MinReprojection",
    "PhotometricLoss",
    "PhotometricLossOutput",
    "min_reprojection",
    "photometric_error",
    "ssim",
]

_C1 = 0.01**2
_C2 = 0.03**2


def ssim(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-pixel, per-channel SSIM with a 3x3 box window and reflection padding (Monodepth2 ``SSIM``).

    ``C1 = 0.01^2``, ``C2 = 0.03^2`` (images in [0, 1]); variances are ``E[x^2] - mu^2``.

    Args:
        pred: ``(B, C, H, W)``, ``H, W >= 2``.
        target: same shape.

    Returns:
        ``(B, C, H, W)`` SSIM values (1 for identical inputs).

    Examples:
        >>> x = torch.rand(1, 3, 8, 8)
        >>> torch.allclose(ssim(x, x), torch.ones(1, 3, 8, 8))
        True
    """
    x = F.pad(pred, (1, 1, 1, 1), mode="reflect")
    y = F.pad(target, (1, 1, 1, 1), mode="reflect")
    mu_x = F.avg_pool2d(x, 3, 1)
    mu_y = F.avg_pool2d(y, 3, 1)
    sigma_x = F.avg_pool2d(x * x, 3, 1) - mu_x * mu_x
    sigma_y = F.avg_pool2d(y * y, 3, 1) - mu_y * mu_y
    sigma_xy = F.avg_pool2d(x * y, 3, 1) - mu_x * mu_y
    num = (2 * mu_x * mu_y + _C1) * (2 * sigma_xy + _C2)
    den = (mu_x * mu_x + mu_y * mu_y + _C1) * (sigma_x + sigma_y + _C2)
    return num / den


def photometric_error(pred: torch.Tensor, target: torch.Tensor, ssim_weight: float = 0.85) -> torch.Tensor:
    """Photometric error ``a * (1 - SSIM) / 2 + (1 - a) * |pred - target|``, channel-averaged (Monodepth2 Eq. 1).

    The SSIM term is clamped to [0, 1] per channel as upstream. ``ssim_weight=0`` is the L1-only variant
    (``--no_ssim``) and then skips SSIM entirely (works on images one pixel high).

    Args:
        pred: ``(B, C, H, W)`` synthesised (warped) image.
        target: ``(B, C, H, W)`` target image.
        ssim_weight: ``a`` (paper 0.85).

    Returns:
        ``(B, 1, H, W)`` per-pixel error, no reduction.

    Examples:
        >>> x = torch.rand(1, 3, 4, 4)
        >>> round(photometric_error(x + 0.25, x, ssim_weight=0.0).mean().item(), 6)
        0.25
    """
    check_shape(pred, "B C H W", name="pred")
    if pred.shape != target.shape:
        raise ShapeError(f"pred {tuple(pred.shape)} and target {tuple(target.shape)} must have the same shape")
    if not 0.0 <= ssim_weight <= 1.0:
        raise ConfigError(f"ssim_weight must be in [0, 1] (Monodepth2 uses 0.85), got {ssim_weight}")
    l1 = (target - pred).abs().mean(dim=1, keepdim=True)
    if ssim_weight == 0.0:
        return l1
    ssim_loss = ((1 - ssim(pred, target)) / 2).clamp(0, 1).mean(dim=1, keepdim=True)
    return ssim_weight * ssim_loss + (1 - ssim_weight) * l1


class MinReprojection(NamedTuple):
    """Output of :func:`min_reprojection`.

    Attributes:
        loss: ``(B, 1, H, W)`` the per-pixel minimum (over warped and, with auto-masking, identity errors).
        index: ``(B, 1, H, W)`` int64 in ``[0, F)``: the warped source with the smallest error ("frame of minimum
            reprojection", step 2 of docs/reference_code.md#ambiguity-mask-and-the-loss), defined at every pixel, also
            where the identity won.
        automask: ``(B, 1, H, W)`` bool, True where a warped error won (the pixel is supervised by the warp);
            False marks the pixels where an identity (unwarped) error was smaller or equal.
    """

    loss: torch.Tensor
    index: torch.Tensor
    automask: torch.Tensor


def min_reprojection(
    errors: Sequence[torch.Tensor],
    identity_errors: Sequence[torch.Tensor] | None = None,
    *,
    tie_noise: float = 0.0,
    generator: torch.Generator | None = None,
) -> MinReprojection:
    """Per-pixel minimum reprojection with identity auto-masking (Monodepth2 Eq. 4 and Sec. 3.3).

    Ties between a warped and an identity error go to the identity (the pixel is masked), deterministically.
    Upstream adds ``1e-5 * randn`` to the identity errors instead; ``tie_noise=1e-5`` reproduces that.

    Args:
        errors: ``F`` tensors ``(B, 1, H, W)``: :func:`photometric_error` of each warped source vs. the target.
        identity_errors: ``F`` tensors ``(B, 1, H, W)``: errors of the unwarped sources, or None (no auto-mask).
        tie_noise: std of Gaussian noise added to the identity errors (upstream 1e-5; default 0).
        generator: random generator for ``tie_noise``.

    Returns:
        :class:`MinReprojection`.

    Examples:
        >>> e = [torch.full((1, 1, 1, 2), 0.3), torch.tensor([[[[0.1, 0.5]]]])]
        >>> out = min_reprojection(e, [torch.full((1, 1, 1, 2), 0.2)])
        >>> out.loss.flatten().tolist(), out.index.flatten().tolist(), out.automask.flatten().tolist()
        ([0.10000000149011612, 0.20000000298023224], [1, 0], [True, False])
    """
    if len(errors) == 0:
        raise ShapeError("min_reprojection needs at least one warped error map (one per source frame)")
    for i, e in enumerate(errors):
        check_shape(e, "B C H W", name=f"errors[{i}]", C=1)
    warped = torch.cat(list(errors), dim=1)
    warped_min, index = warped.min(dim=1, keepdim=True)
    if identity_errors is None or len(identity_errors) == 0:
        return MinReprojection(warped_min, index, torch.ones_like(warped_min, dtype=torch.bool))
    identity = torch.cat(list(identity_errors), dim=1)
    if identity.shape[0] != warped.shape[0] or identity.shape[2:] != warped.shape[2:]:
        raise ShapeError(
            f"identity errors {tuple(identity.shape)} do not match the warped errors {tuple(warped.shape)}"
        )
    if tie_noise > 0:
        noise = torch.randn(identity.shape, generator=generator, dtype=identity.dtype, device=identity.device)
        identity = identity + tie_noise * noise
    identity_min = identity.min(dim=1, keepdim=True).values
    automask = warped_min < identity_min
    return MinReprojection(torch.where(automask, warped_min, identity_min), index, automask)


class LossImages(NamedTuple):
    """Scale-independent parts of the photometric loss, computed once per batch by :meth:`PhotometricLoss.prepare`.

    Attributes:
        target: ``(B, 3, H, W)`` the target as the loss sees it (auto-blurred when Auto-Blur is on).
        sources: the ``F`` source images as the loss sees them.
        identity_errors: ``F`` maps ``(B, 1, H, W)`` (unwarped source vs. target), or None without auto-masking.
        target_ambiguity: ``(B, 1, H, W)`` or None without Ambiguity-Masking.
        source_ambiguities: ``F`` maps ``(B, 1, H, W)`` or None.
    """

    target: torch.Tensor
    sources: tuple[torch.Tensor, ...]
    identity_errors: tuple[torch.Tensor, ...] | None
    target_ambiguity: torch.Tensor | None
    source_ambiguities: tuple[torch.Tensor, ...] | None


class PhotometricLossOutput(NamedTuple):
    """Output of :class:`PhotometricLoss` for one scale.

    Attributes:
        loss: scalar, the mean over all ``B*H*W`` pixels of ``min_reprojection.loss * weights`` (masked pixels count
            as zeros, as upstream).
        min_reprojection: :class:`MinReprojection`.
        weights: ``(B, 1, H, W)`` Ambiguity-Masking weights, or None when it is off.
        warped: the ``F`` warped sources ``(B, 3, H, W)``.
    """

    loss: torch.Tensor
    min_reprojection: MinReprojection
    weights: torch.Tensor | None
    warped: tuple[torch.Tensor, ...]


class PhotometricLoss(nn.Module):
    """Monodepth2 photometric term of one scale, with optional Auto-Blur and Ambiguity-Masking (independent switches).

    Per scale ``s`` the caller warps with the grid of the full-resolution-upsampled ``disp_s``
    (docs/reference_code.md#monodepth2-loss-computation); the images (target, sources), their blur, ambiguity and
    identity errors do not depend on ``s``: compute them once with :meth:`prepare` and pass the :class:`LossImages`
    to :meth:`forward` for every scale.

    Args:
        ssim_weight: SSIM share of :func:`photometric_error` (0.85).
        automask: identity auto-masking (Monodepth2 default on).
        auto_blur: an :class:`~freqdense.losses.AutoBlur` to apply to the loss images, or None.
        ambiguity_mask: an :class:`~freqdense.losses.AmbiguityMask`, or None.
        tie_noise: see :func:`min_reprojection`.

    Examples:
        >>> loss_fn = PhotometricLoss(auto_blur=AutoBlur(), ambiguity_mask=AmbiguityMask())
        >>> tgt, src = torch.rand(2, 3, 16, 24), torch.rand(2, 3, 16, 24)
        >>> grid = F.affine_grid(torch.eye(2, 3).expand(2, 2, 3), (2, 3, 16, 24), align_corners=True)
        >>> images = loss_fn.prepare(tgt, [src])
        >>> loss_fn(images, grids=[grid]).loss.shape
        torch.Size([])
    """

    def __init__(
        self,
        *,
        ssim_weight: float = 0.85,
        automask: bool = True,
        auto_blur: AutoBlur | None = None,
        ambiguity_mask: AmbiguityMask | None = None,
        tie_noise: float = 0.0,
    ) -> None:
        super().__init__()
        self.ssim_weight = ssim_weight
        self.automask = automask
        self.auto_blur = auto_blur
        self.ambiguity_mask = ambiguity_mask
        self.tie_noise = tie_noise

    def prepare(self, target: torch.Tensor, sources: Sequence[torch.Tensor]) -> LossImages:
        """Blur (if on), ambiguity maps (if on) and identity errors (if auto-masking) of the batch; no gradient.

        Args:
            target: ``(B, 3, H, W)`` full-resolution target in [0, 1] (not the augmented network input).
            sources: ``F`` source images of the same shape.
        """
        check_shape(target, "B C H W", name="target")
        with torch.no_grad():
            images = [target, *sources]
            if self.auto_blur is not None:
                images = [self.auto_blur(im) for im in images]
            tgt, srcs = images[0], tuple(images[1:])
            identity = tuple(photometric_error(s, tgt, self.ssim_weight) for s in srcs) if self.automask else None
            if self.ambiguity_mask is not None:
                tgt_amb = self.ambiguity_mask.ambiguity(tgt)
                src_amb: tuple[torch.Tensor, ...] | None = tuple(self.ambiguity_mask.ambiguity(s) for s in srcs)
            else:
                tgt_amb, src_amb = None, None
        return LossImages(tgt, srcs, identity, tgt_amb, src_amb)

    def forward(
        self,
        images: LossImages | torch.Tensor,
        sources: Sequence[torch.Tensor] | None = None,
        *,
        grids: Sequence[torch.Tensor],
    ) -> PhotometricLossOutput:
        """Photometric loss of one scale.

        Args:
            images: :class:`LossImages` from :meth:`prepare`, or the raw target ``(B, 3, H, W)`` (then pass
                ``sources``; prepared on the fly).
            sources: raw sources when ``images`` is a tensor.
            grids: ``F`` sampling grids ``(B, H, W, 2)`` (``grid_sample`` convention, ``align_corners=True``), one
                per source, e.g. :func:`freqdense.ops.project` of the depth upsampled to full resolution.
        """
        if isinstance(images, torch.Tensor):
            if sources is None:
                raise ShapeError("PhotometricLoss: pass the source images with the raw target, or a LossImages")
            images = self.prepare(images, sources)
        if len(grids) != len(images.sources):
            raise ShapeError(f"PhotometricLoss got {len(grids)} grids for {len(images.sources)} source images")
        warped = tuple(warp_with_grid(s, g) for s, g in zip(images.sources, grids, strict=True))
        errors = [photometric_error(w, images.target, self.ssim_weight) for w in warped]
        best = min_reprojection(errors, images.identity_errors, tie_noise=self.tie_noise)
        per_pixel = best.loss
        weights = None
        if self.ambiguity_mask is not None:
            assert images.target_ambiguity is not None and images.source_ambiguities is not None
            weights = self.ambiguity_mask(images.target_ambiguity, images.source_ambiguities, grids, best.index)
            per_pixel = per_pixel * weights
        return PhotometricLossOutput(per_pixel.mean(), best, weights, warped)
