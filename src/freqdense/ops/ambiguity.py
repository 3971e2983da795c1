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
from .frequency import one_sided_differences, two_sided_gradient_magnitude

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
    d = one_sided_differences(image)
    # u_plus = I(x) - I(x+1) and u_minus = I(x) - I(x-1): same sign of dL, dR <=> u_plus * u_minus < 0.
    same = ((d.u_plus * d.u_minus) < 0).any(dim=1, keepdim=True) | ((d.v_plus * d.v_minus) < 0).any(dim=1, keepdim=True)
    return two_sided_gradient_magnitude(image, mode="mean_abs", channels="sum") * same
