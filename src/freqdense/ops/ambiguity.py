"""Pixel-level ambiguity map of Ambiguity-Masking.

Chen et al., "Frequency-Aware Self-Supervised Monocular Depth Estimation", WACV 2023, Sec. 4.3, Eq. 9-17;
semantics of the official ``Trainer.extract_ambiguity`` (xingyuuchen/freq-aware-depth @ b33ca8e), written down in
docs/reference_code.md#ambiguity-extraction. A pixel is ambiguous ("mixed") when it lies strictly between its two
neighbours along an axis in some channel (a monotone ramp / anti-aliased edge); its ambiguity is then the two-sided
gradient magnitude ``sqrt(G_u^2 + G_v^2)`` with ``G_u = sum_c (|dL| + |dR|) / 2``.
"""

from __future__ import annotations

import torch

from .._checks import check_shape
from ..errors import ShapeError

__all__ = ["ambiguity_map"]


def ambiguity_map(image: torch.Tensor) -> torch.Tensor:
    """Ambiguity ``A = G * [same-sign]`` of every pixel (docs/reference_code.md#ambiguity-extraction).

    ``same-sign`` is true where ``(I(x-1) - I(x)) * (I(x) - I(x+1)) > 0`` horizontally or vertically in at least
    one channel (zero outside the image, so never along an axis at the border). ``G`` is
    :func:`~freqdense.ops.two_sided_gradient_magnitude` (``mode="mean_abs"``, channels summed), taken over
    both axes even if only one passed the test. Thresholds on ``A`` (delta = 0.3) are absolute values for RGB
    in [0, 1] summed over channels.

    Args:
        image: ``(B, C, H, W)``.

    Returns:
        ``(B, 1, H, W)``, ``>= 0``; 0 on flat regions, at local extrema and on one-pixel-sharp steps; 1.5 on the
        mixed pixel of an anti-aliased grey 0 -> 1 edge (``3 * (a + (1 - a)) / 2`` for any mixing ``a``).

    Examples:
        >>> row = torch.tensor([0.0, 0.0, 0.4, 1.0, 1.0]).expand(1, 3, 3, 5)
        >>> ambiguity_map(row)[0, 0, 1]
        tensor([0.0000, 0.0000, 1.5000, 0.0000, 0.0000])
    """
    check_shape(image, "B C H W", name="image")
    if not image.is_floating_point():
        raise ShapeError(f"image must be floating point, got {image.dtype}; convert with image.float() / 255")
    # One pass per axis over forward differences d(x) = I(x) - I(x + 1): the same-sign test is
    # d(x - 1) * d(x) > 0 (the product of Eq. 10's dL and dR), the magnitude per channel (|d(x - 1)| + |d(x)|) / 2
    # with zero differences outside the image. Written without padded copies; equal, operation for operation, to
    # composing one_sided_differences and two_sided_gradient_magnitude (tests/losses/test_ambiguity.py).
    b, _, h, w = image.shape
    du = image[..., :, :-1] - image[..., :, 1:]
    dv = image[..., :-1, :] - image[..., 1:, :]
    same = image.new_zeros((b, 1, h, w), dtype=torch.bool)
    if w > 2:
        torch.any(du[..., :, :-1] * du[..., :, 1:] > 0, dim=1, keepdim=True, out=same[..., :, 1:-1])
    if h > 2:
        same[..., 1:-1, :] |= (dv[..., :-1, :] * dv[..., 1:, :] > 0).any(dim=1, keepdim=True)
    if image.requires_grad and torch.is_grad_enabled():  # differentiable path: no in-place updates
        return _half_sum_norm(du.abs(), dv.abs(), image.shape, inplace=False) * same
    return _half_sum_norm(du.abs_(), dv.abs_(), image.shape, inplace=True).mul_(same)


def _half_sum_norm(au: torch.Tensor, av: torch.Tensor, shape: torch.Size, *, inplace: bool) -> torch.Tensor:
    """``sqrt(G_u^2 + G_v^2)`` with ``G_u = sum_c (|d(x - 1)| + |d(x)|) / 2`` from the absolute forward differences
    ``au`` (``W - 1`` columns) and ``av`` (``H - 1`` rows); a square below the smallest normal float is taken at that
    float (``two_sided_gradient_magnitude``'s rule, which keeps the gradient finite)."""
    b, c, h, w = shape
    pair_u = au.new_zeros(b, c, h, w)
    pair_u[..., :, :-1] = au
    pair_u[..., :, 1:] += au
    pair_v = av.new_zeros(b, c, h, w)
    pair_v[..., :-1, :] = av
    pair_v[..., 1:, :] += av
    gu = pair_u.mul_(0.5).sum(dim=1, keepdim=True)
    gv = pair_v.mul_(0.5).sum(dim=1, keepdim=True)
    tiny = torch.finfo(gu.dtype).tiny
    if not inplace:
        return (gu * gu + gv * gv).clamp_min(tiny).sqrt()
    return gu.mul_(gu).add_(gv.mul_(gv)).clamp_min_(tiny).sqrt_()
