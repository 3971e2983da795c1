"""Local-aware consistency loss of FAFE (Fu et al., ACM MM 2021, §3.3, Eq. 4; no official code).

    MP_T = mean_{3x3}(P_T),   C_T = (P_T - MP_T)^2,   L_c = L1(C_s, C_d) over pixels with C_s <= t and C_d <= t

with ``t = 1`` (paper §4.1: "we discard large values in C_s and C_d ... we set the threshold to 1") and total loss
``L = L_s + L_d + 0.1 L_c``. Choices the paper leaves open (docs/reference_code.md#fafe-fd-and-the-consistency-loss):

* Segmentation prediction ``P_s`` (option ``seg_mode``). The paper asks two things of ``C_s``: small where the
  3x3 neighbourhood "belongs to the same object", and "too large" (above the threshold 1) at "the edge of an
  object", which is then left out. ``"scaled_onehot"`` (default) meets both for every boundary: ``P_s = 9 *
  one_hot(argmax)`` (9 = the window's area), so ``C_s = 0`` inside a uniformly predicted region and ``C_s >= 2 > 1``
  at every pixel whose 3x3 window holds another class: the masked set is exactly the predicted boundary pixels
  (for any threshold below 2), whatever the class numbering. On the kept pixels ``C_s = 0`` and ``L_c`` is the
  depth's local variance, i.e. depth is smoothed inside objects and left free at their edges. ``"index"`` is the
  literal reading (``P_s`` = the predicted class-index map): ``C_s > 1`` marks boundaries between classes whose
  indices differ enough (83 % of boundary pixels of 40-class NYUD-like labels) and asks depth to vary like the
  index jump at the others. Both carry no gradient to the segmentation head. ``"probs"`` (all softmax
  probabilities, ``C_s = sum_k (p_k - mean_3x3 p_k)^2 < 2``), ``"max_prob"`` and ``"argmax"`` (unscaled one-hot)
  are kept as options: their ``C_s`` stays below 1 at almost every boundary, so they mask (almost) no edge and
  ``L_c`` pulls depth variance towards the segmentation's at every boundary. docs/methods/fafe.md has the argument
  and the measured shares.
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

__all__ = ["SEG_MODES", "LocalConsistencyLoss", "consistency_edge_mask", "local_consistency_loss", "local_variance_map"]

logger = logging.getLogger(__name__)

SegMode = Literal["scaled_onehot", "index", "probs", "max_prob", "argmax"]
#: Every ``seg_mode``, the default first.
SEG_MODES: tuple[str, ...] = ("scaled_onehot", "index", "probs", "max_prob", "argmax")
#: Area of the 3x3 window; ``scaled_onehot`` scales the one-hot by it so one differing neighbour gives ``C_s = 2``.
_WINDOW_AREA = 9.0


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
    if seg_mode in ("scaled_onehot", "argmax", "index"):
        labels = seg_logits.detach().argmax(dim=1)
        if seg_mode == "index":
            return labels.unsqueeze(1).to(seg_logits.dtype)
        one_hot = F.one_hot(labels, seg_logits.shape[1]).permute(0, 3, 1, 2).to(seg_logits.dtype)
        return one_hot * _WINDOW_AREA if seg_mode == "scaled_onehot" else one_hot
    probs = torch.softmax(seg_logits, dim=1)
    if seg_mode == "probs":
        return probs
    if seg_mode == "max_prob":
        return probs.max(dim=1, keepdim=True).values
    raise ConfigError(
        f"local_consistency_loss: seg_mode must be one of {', '.join(map(repr, SEG_MODES))}, got {seg_mode!r}"
    )


def consistency_edge_mask(
    seg_logits: torch.Tensor, *, threshold: float = 1.0, seg_mode: SegMode = "scaled_onehot"
) -> torch.Tensor:
    """Pixels ``L_c`` treats as object edges, ``C_s > threshold`` (Eq. 4, §4.1): logits -> bool ``(B, 1, H, W)``.

    With the default ``seg_mode`` and ``threshold < 2`` this is exactly the set of pixels whose 3x3 window (in the
    image) holds more than one predicted class.

    Examples:
        >>> labels = torch.tensor([[0, 0, 0, 1, 1, 1]])
        >>> logits = torch.nn.functional.one_hot(labels, 2).permute(2, 0, 1)[None].float()
        >>> consistency_edge_mask(logits)[0, 0].int()
        tensor([[0, 0, 1, 1, 0, 0]], dtype=torch.int32)
    """
    check_shape(seg_logits, "B K H W", name="seg_logits")
    with torch.no_grad():
        return local_variance_map(_seg_map(seg_logits, seg_mode)) > threshold


def local_consistency_loss(
    seg_logits: torch.Tensor, depth_pred: torch.Tensor, *, threshold: float = 1.0, seg_mode: SegMode = "scaled_onehot"
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
        >>> seg = torch.zeros(1, 3, 4, 4)  # one predicted class everywhere -> C_s = 0
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

    def __init__(self, *, weight: float = 0.1, threshold: float = 1.0, seg_mode: SegMode = "scaled_onehot") -> None:
        super().__init__()
        if seg_mode not in SEG_MODES:
            raise ConfigError(
                f"LocalConsistencyLoss: seg_mode must be one of {', '.join(map(repr, SEG_MODES))}, got {seg_mode!r}"
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
