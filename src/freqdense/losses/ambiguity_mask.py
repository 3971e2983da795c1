"""Ambiguity-Masking: down-weight the photometric loss of pixels that are ambiguous in the target or the source.

Chen et al., "Frequency-Aware Self-Supervised Monocular Depth Estimation", WACV 2023, Sec. 4.3; semantics of the
official ``Trainer.compute_ambiguity_mask`` (xingyuuchen/freq-aware-depth @ b33ca8e),
docs/reference_code.md#ambiguity-mask-and-the-loss: the source ambiguity maps are warped with the colour sampling grid
(bilinear, border, ``align_corners=True``), the one of the source with the minimum reprojection error is taken,
``S = max(A_target, A_source)``, and the weight is the hard mask ``[S < delta]`` or the soft ``exp(-gamma * S)``.
Deviations: docs/methods/freq_aware_depth.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn as nn
import torch.nn.functional as F

from .._checks import check_shape
from ..errors import ConfigError, ShapeError
from ..ops.ambiguity import ambiguity_map

__all__ = ["AmbiguityMask", "ambiguity_mask", "warp_with_grid"]

MaskMode = Literal["hard", "soft"]


def warp_with_grid(image: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
    """``grid_sample`` as the view synthesis uses it: bilinear, border padding, ``align_corners=True``.

    Args:
        image: ``(B, C, H_s, W_s)`` source image or map.
        grid: ``(B, H, W, 2)`` normalised coordinates (e.g. :func:`freqdense.ops.project`).

    Returns:
        ``(B, C, H, W)``.
    """
    check_shape(grid, "B H W two", name="grid", two=2)
    return F.grid_sample(image, grid, mode="bilinear", padding_mode="border", align_corners=True)


def ambiguity_mask(
    target_amb: torch.Tensor,
    warped_source_ambs: Sequence[torch.Tensor],
    index: torch.Tensor,
    *,
    mode: MaskMode = "hard",
    delta: float = 0.3,
    gamma: float = 3.0,
) -> torch.Tensor:
    """Loss weights from the synthetic ambiguity ``S = max(A_t, A_{min-reprojection source})`` (steps 5-7 of
    docs/reference_code.md#ambiguity-mask-and-the-loss).

    Args:
        target_amb: ``(B, 1, H, W)`` :func:`~freqdense.ops.ambiguity_map` of the target (as the loss sees it).
        warped_source_ambs: ``F`` maps ``(B, 1, H, W)``: source ambiguities warped into the target view with the
            same grids as the colours (:func:`warp_with_grid`).
        index: ``(B, 1, H, W)`` int64 in ``[0, F)``: the source of minimum reprojection error
            (:attr:`MinReprojection.index`).
        mode: ``"hard"``: ``[S < delta]``; ``"soft"``: ``exp(-gamma * S)``.
        delta: hard threshold (paper 0.3; 0.4 on Cityscapes).
        gamma: soft-mask coefficient (paper 3; any float here).

    Returns:
        ``(B, 1, H, W)`` float weights in [0, 1] (hard: exactly 0 or 1).

    Examples:
        >>> t = torch.tensor([[[[0.0, 0.5, 0.1]]]])
        >>> s = [torch.tensor([[[[0.2, 0.0, 0.9]]]]), torch.tensor([[[[0.4, 0.0, 0.0]]]])]
        >>> ambiguity_mask(t, s, torch.tensor([[[[0, 0, 1]]]])).flatten().tolist()
        [1.0, 0.0, 1.0]
    """
    check_shape(target_amb, "B C H W", name="target_amb", C=1)
    check_shape(index, "B C H W", name="index", C=1)
    if len(warped_source_ambs) == 0:
        raise ShapeError("ambiguity_mask needs at least one warped source ambiguity map")
    stacked = torch.cat(list(warped_source_ambs), dim=1)
    if stacked.shape[0] != target_amb.shape[0] or stacked.shape[2:] != target_amb.shape[2:]:
        raise ShapeError(
            f"warped source ambiguities {tuple(stacked.shape)} do not match target_amb {tuple(target_amb.shape)}; "
            "warp them with the grids of the target resolution"
        )
    if index.dtype != torch.int64 or index.shape != target_amb.shape:
        raise ShapeError(
            f"index must be int64 of shape {tuple(target_amb.shape)}, got {index.dtype} {tuple(index.shape)}"
        )
    synthetic = torch.maximum(target_amb, stacked.gather(1, index))
    if mode == "hard":
        return (synthetic < delta).to(target_amb.dtype)
    if mode == "soft":
        return torch.exp(-gamma * synthetic)
    raise ConfigError(f"ambiguity mask mode must be 'hard' or 'soft', got {mode!r}")


class AmbiguityMask(nn.Module):
    """Ambiguity-Masking weights for one scale (module form of :func:`ambiguity_mask`, with the source warping).

    Args:
        mode: ``"hard"`` (paper default) or ``"soft"`` (``--ambiguity_by_negative_exponential``).
        delta: hard threshold (0.3).
        gamma: soft coefficient (3.0).
        detach: stop gradients through the warped ambiguity into the grid (default True). Upstream lets the soft
            mask's gradient reach the depth, which rewards warping onto ambiguous pixels; the hard mask has none.
    """

    def __init__(self, mode: MaskMode = "hard", *, delta: float = 0.3, gamma: float = 3.0, detach: bool = True) -> None:
        super().__init__()
        if mode not in ("hard", "soft"):
            raise ConfigError(f"AmbiguityMask mode must be 'hard' or 'soft', got {mode!r}")
        self.mode: MaskMode = mode
        self.delta = delta
        self.gamma = gamma
        self.detach = detach

    @staticmethod
    def ambiguity(image: torch.Tensor) -> torch.Tensor:
        """:func:`~freqdense.ops.ambiguity_map` of an image the loss sees (after Auto-Blur when that is on)."""
        return ambiguity_map(image)

    def forward(
        self,
        target_amb: torch.Tensor,
        source_ambs: Sequence[torch.Tensor],
        grids: Sequence[torch.Tensor],
        index: torch.Tensor,
    ) -> torch.Tensor:
        """Warp ``source_ambs`` with ``grids`` (the colour grids) and return the ``(B, 1, H, W)`` weights."""
        if len(source_ambs) != len(grids):
            raise ShapeError(f"AmbiguityMask got {len(source_ambs)} source ambiguity maps but {len(grids)} grids")
        warped = [warp_with_grid(a, g.detach() if self.detach else g) for a, g in zip(source_ambs, grids, strict=True)]
        return ambiguity_mask(target_amb, warped, index, mode=self.mode, delta=self.delta, gamma=self.gamma)
