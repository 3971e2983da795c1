"""Local-aware consistency loss of FAFE (Fu et al., ACM MM 2021, §3.3, Eq. 4; no official code).

    MP_T = mean_{3x3}(P_T),   C_T = (P_T - MP_T)^2,   L_c = L1(C_s, C_d) over pixels with C_s <= t and C_d <= t

with ``t = 1`` (paper §4.1: "we discard large values in C_s and C_d ... we set the threshold to 1") and total loss
``L = L_s + L_d + 0.1 L_c``. Choices the paper leaves open (docs/reference_code.md#fafe-fd-and-the-consistency-loss):

* Segmentation prediction ``P_s`` (option ``seg_mode``): ``"probs"`` (default) uses the softmax probabilities of all
  ``K`` classes and ``C_s = sum_k (p_k - mean_3x3 p_k)^2`` (squared distance between a pixel's class distribution
  and its neighbourhood mean, in ``[0, 2)``): differentiable, independent of class numbering, and 0 inside a
  uniformly-predicted region. ``"max_prob"`` uses the max softmax probability (one map, differentiable, but blind to
  a change between two confident classes). ``"argmax"`` uses the one-hot of the argmax (no gradient to the
  segmentation head; the loss then only shapes depth). Class indices themselves are never used as values.
* The 3x3 mean includes the centre pixel and averages only the in-image neighbours at borders
  (``count_include_pad=False``), so borders are not penalised by padding.
* The mask is computed without gradient; L1 is averaged over kept pixels (0 if none is kept).
"""

from __future__ import annotations

import logging
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from .._checks import check_shape
from ..errors import ConfigError, ShapeError

__all__ = ["LocalConsistencyLoss", "local_consistency_loss", "local_variance_map"]

logger = logging.getLogger(__name__)

SegMode = Literal["probs", "max_prob", "argmax"]


def local_variance_map(pred: torch.Tensor) -> torch.Tensor:
    """``(P - mean_3x3 P)^2`` summed over channels: ``(B, C, H, W)`` -> ``(B, 1, H, W)`` (Eq. 4, ``C_T``).

    Examples:
        >>> p = torch.zeros(1, 1, 3, 3); p[0, 0, 1, 1] = 9.0
        >>> local_variance_map(p)[0, 0, 1, 1]  # (9 - 1)^2
        tensor(64.)
    """
    mean = F.avg_pool2d(pred, 3, stride=1, padding=1, count_include_pad=False)
    return (pred - mean).square().sum(dim=1, keepdim=True)


def _seg_map(seg_logits: torch.Tensor, seg_mode: SegMode) -> torch.Tensor:
    probs = torch.softmax(seg_logits, dim=1)
    if seg_mode == "probs":
        return probs
    if seg_mode == "max_prob":
        return probs.max(dim=1, keepdim=True).values
    if seg_mode == "argmax":
        return F.one_hot(seg_logits.argmax(dim=1), seg_logits.shape[1]).permute(0, 3, 1, 2).to(seg_logits.dtype)
    raise ConfigError(f"local_consistency_loss: seg_mode must be 'probs', 'max_prob' or 'argmax', got {seg_mode!r}")


def local_consistency_loss(
    seg_logits: torch.Tensor, depth_pred: torch.Tensor, *, threshold: float = 1.0, seg_mode: SegMode = "probs"
) -> torch.Tensor:
    """FAFE local-aware consistency ``L_c`` (Eq. 4), unweighted.

    Args:
        seg_logits: ``(B, K, H, W)`` segmentation logits (softmax is applied here).
        depth_pred: ``(B, 1, H, W)`` depth prediction in metres.
        threshold: pixels where ``C_s`` or ``C_d`` exceeds it are ignored (paper: 1).
        seg_mode: which segmentation prediction ``P_s`` is (see the module docstring).

    Returns:
        Scalar mean of ``|C_s - C_d|`` over kept pixels.

    Examples:
        >>> seg = torch.zeros(1, 3, 4, 4)  # uniform class distribution everywhere -> C_s = 0
        >>> depth = torch.ones(1, 1, 4, 4)  # flat depth -> C_d = 0
        >>> float(local_consistency_loss(seg, depth)) < 1e-6
        True
    """
    check_shape(seg_logits, "B K H W", name="seg_logits")
    check_shape(depth_pred, "B C H W", name="depth_pred", C=1)
    if seg_logits.shape[0] != depth_pred.shape[0] or seg_logits.shape[-2:] != depth_pred.shape[-2:]:
        raise ShapeError(
            f"local_consistency_loss: seg_logits {tuple(seg_logits.shape)} and depth_pred {tuple(depth_pred.shape)} "
            "must share batch and spatial size; upsample the predictions to a common size first"
        )
    c_s = local_variance_map(_seg_map(seg_logits, seg_mode))
    c_d = local_variance_map(depth_pred)
    with torch.no_grad():
        keep = ((c_s <= threshold) & (c_d <= threshold)).to(c_s.dtype)
    return ((c_s - c_d).abs() * keep).sum() / keep.sum().clamp(min=1.0)


class LocalConsistencyLoss(nn.Module):
    """Module form: ``weight * local_consistency_loss(...)`` with the paper's ``lambda_3 = 0.1`` as default weight.

    Examples:
        >>> loss = LocalConsistencyLoss()
        >>> float(loss(torch.zeros(1, 3, 4, 4), torch.ones(1, 1, 4, 4))) < 1e-6
        True
    """

    def __init__(self, *, weight: float = 0.1, threshold: float = 1.0, seg_mode: SegMode = "probs") -> None:
        super().__init__()
        if seg_mode not in ("probs", "max_prob", "argmax"):
            raise ConfigError(
                f"LocalConsistencyLoss: seg_mode must be 'probs', 'max_prob' or 'argmax', got {seg_mode!r}"
            )
        self.weight = weight
        self.threshold = threshold
        self.seg_mode = seg_mode

    def forward(self, seg_logits: torch.Tensor, depth_pred: torch.Tensor) -> torch.Tensor:
        """Weighted loss; see :func:`local_consistency_loss`."""
        return self.weight * local_consistency_loss(
            seg_logits, depth_pred, threshold=self.threshold, seg_mode=self.seg_mode
        )

    def extra_repr(self) -> str:
        return f"weight={self.weight}, threshold={self.threshold}, seg_mode={self.seg_mode!r}"
