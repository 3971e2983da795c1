"""Semantic-segmentation metrics from an accumulated confusion matrix, plus the shared metric protocol.

Every freqdense metric keeps its state as a few summable tensors, so merging two accumulators (``merge``) and
summing across DDP ranks (``all_reduce``) are the same operation: an element-wise sum of the state.
Conventions and formulas: docs/metrics.md.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import Any, Literal

import torch

from ..errors import ConfigError, DataError, ShapeError
from ._base import Metric, refuse_non_finite

__all__ = ["ConfusionMatrix"]

log = logging.getLogger(__name__)


def _describe_values(values: torch.Tensor, limit: int = 10) -> str:
    uniq = torch.unique(values).tolist()
    shown = ", ".join(str(v) for v in uniq[:limit])
    return shown + (f", ... ({len(uniq)} distinct)" if len(uniq) > limit else "")


class ConfusionMatrix(Metric):
    """Confusion-matrix accumulator for semantic segmentation (rows = ground truth, columns = prediction).

    Args:
        num_classes: number of classes; valid labels are ``0 .. num_classes - 1``.
        ignore_index: ground-truth value excluded from every count (the library convention is 255).
        class_names: names used in the per-class keys ``iou/<name>``; default the class index.
        absent_classes: what a class with no pixels in the ground truth *and* the prediction contributes.
            ``"exclude"`` (default): its IoU is NaN and it is left out of the mIoU mean (a class with ground
            truth 0 but false positives still has IoU 0 and counts). Mean accuracy likewise averages over the
            classes that occur in the ground truth.
            ``"zero"``: every 0/0 ratio is 0 and means run over all ``num_classes`` classes; this reproduces
            Multi-Task-Learning-PyTorch's ``SemsegMeter`` (IoU = tp / max(tp + fp + fn, 1e-8)).

    Example:
        >>> cm = ConfusionMatrix(3)
        >>> cm.update(torch.tensor([[0, 1, 2]]), torch.tensor([[0, 1, 1]]))
        >>> round(cm.compute()["pixel_acc"], 4)
        0.6667
    """

    _state_names = ("matrix",)

    def __init__(
        self,
        num_classes: int,
        *,
        ignore_index: int | None = 255,
        class_names: Sequence[str] | None = None,
        absent_classes: Literal["exclude", "zero"] = "exclude",
    ) -> None:
        if not isinstance(num_classes, int) or num_classes < 1:
            raise ConfigError(f"ConfusionMatrix num_classes must be a positive int, got {num_classes!r}")
        if ignore_index is not None and 0 <= ignore_index < num_classes:
            raise ConfigError(
                f"ConfusionMatrix ignore_index={ignore_index} is a valid class id (num_classes={num_classes}); "
                "use an id outside [0, num_classes), e.g. 255"
            )
        if class_names is not None and len(class_names) != num_classes:
            raise ConfigError(
                f"ConfusionMatrix class_names has {len(class_names)} names but num_classes={num_classes}; "
                "give one name per class"
            )
        if absent_classes not in ("exclude", "zero"):
            raise ConfigError(f"ConfusionMatrix absent_classes must be 'exclude' or 'zero', got {absent_classes!r}")
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.class_names = [str(n) for n in class_names] if class_names is not None else None
        self.absent_classes = absent_classes
        self.matrix: torch.Tensor
        self.reset()

    def _config(self) -> dict[str, Any]:
        return {
            "num_classes": self.num_classes,
            "ignore_index": self.ignore_index,
            "absent_classes": self.absent_classes,
        }

    def _empty_state(self) -> dict[str, torch.Tensor]:
        device = self.matrix.device if hasattr(self, "matrix") else torch.device("cpu")
        return {"matrix": torch.zeros(self.num_classes, self.num_classes, dtype=torch.int64, device=device)}

    @torch.no_grad()
    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        """Accumulate one batch.

        Args:
            pred: logits/scores ``(B, C, H, W)`` (argmax over C) or integer class ids ``(B, H, W)``.
            target: ground-truth class ids ``(B, H, W)``, int; ``ignore_index`` pixels are skipped.

        Raises:
            ShapeError: the shapes do not fit each other or ``num_classes``.
            DataError: a label (or predicted id) lies outside ``[0, num_classes)`` and is not ``ignore_index``.
            NonFiniteError: NaN/inf logits at a pixel that is not ignored (names the batch items).
        """
        if not isinstance(pred, torch.Tensor) or not isinstance(target, torch.Tensor):
            raise ShapeError("ConfusionMatrix.update expects torch tensors for pred and target")
        if target.is_floating_point():
            raise ShapeError(f"target must hold integer class ids (int64), got dtype {target.dtype}; use target.long()")
        if pred.dim() == target.dim() + 1:
            if pred.shape[1] != self.num_classes or pred.shape[:1] + pred.shape[2:] != target.shape:
                raise ShapeError(
                    f"logits pred {tuple(pred.shape)} must be (B, {self.num_classes}, H, W) for target "
                    f"{tuple(target.shape)}; resize logits to the label size before the metric"
                )
            counted = target != self.ignore_index if self.ignore_index is not None else torch.ones_like(target).bool()
            refuse_non_finite((~torch.isfinite(pred)).any(dim=1) & counted.to(pred.device), "pred logits")
            pred = pred.argmax(dim=1)
        elif pred.dim() == target.dim():
            if pred.is_floating_point():
                raise ShapeError(
                    f"pred {tuple(pred.shape)} has the target's shape but dtype {pred.dtype}; pass integer class "
                    "ids or logits with a class dimension (B, C, H, W)"
                )
            if pred.shape != target.shape:
                raise ShapeError(
                    f"pred ids {tuple(pred.shape)} and target {tuple(target.shape)} differ in size; resize the "
                    "prediction (nearest) to the label size"
                )
        else:
            raise ShapeError(
                f"pred {tuple(pred.shape)} and target {tuple(target.shape)}: expected pred (B, C, H, W) logits or "
                "(B, H, W) ids with target (B, H, W)"
            )
        target = target.reshape(-1).long()
        pred = pred.reshape(-1).to(device=target.device, dtype=torch.long)
        keep = (
            target != self.ignore_index if self.ignore_index is not None else torch.ones_like(target, dtype=torch.bool)
        )
        target = target[keep]
        pred = pred[keep]
        n = self.num_classes
        if not torch.compiler.is_compiling():
            bad = (target < 0) | (target >= n)
            if bool(bad.any()):
                raise DataError(
                    f"target holds labels {_describe_values(target[bad])} outside [0, {n}) that are not the "
                    f"ignore_index ({self.ignore_index}); remap them to class ids or to {self.ignore_index}"
                )
            bad = (pred < 0) | (pred >= n)
            if bool(bad.any()):
                raise DataError(
                    f"pred holds class ids {_describe_values(pred[bad])} outside [0, {n}); check the model's "
                    "number of output classes"
                )
        counts = torch.bincount(target * n + pred, minlength=n * n).reshape(n, n)
        self.matrix = self.matrix.to(counts.device)
        self.matrix += counts

    def _ratio(self, num: torch.Tensor, den: torch.Tensor) -> torch.Tensor:
        if self.absent_classes == "zero":
            return num / den.clamp_min(1e-8)
        return torch.where(den > 0, num / den.clamp_min(1), torch.full_like(num, math.nan))

    def per_class_iou(self) -> torch.Tensor:
        """IoU per class ``tp / (tp + fp + fn)``, float64 ``(num_classes,)``; see ``absent_classes`` for 0/0."""
        m = self.matrix.detach().cpu().double()
        tp = m.diagonal()
        union = m.sum(0) + m.sum(1) - tp
        return self._ratio(tp, union)

    def per_class_accuracy(self) -> torch.Tensor:
        """Recall per class ``tp / (tp + fn)``, float64 ``(num_classes,)``; NaN (or 0) for classes without GT."""
        m = self.matrix.detach().cpu().double()
        return self._ratio(m.diagonal(), m.sum(1))

    def compute(self) -> dict[str, float]:
        """Return ``miou``, ``mean_acc``, ``pixel_acc`` and ``iou/<name or index>`` per class (fractions in [0, 1])."""
        m = self.matrix.detach().cpu().double()
        iou = self.per_class_iou()
        acc = self.per_class_accuracy()
        total = m.sum()
        pixel_acc = self._ratio(m.diagonal().sum(), total)

        def mean(values: torch.Tensor) -> float:
            if self.absent_classes == "zero":
                return float(values.mean())
            present = values[~torch.isnan(values)]
            return float(present.mean()) if present.numel() else math.nan

        out = {"miou": mean(iou), "mean_acc": mean(acc), "pixel_acc": float(pixel_acc)}
        names = self.class_names or [str(i) for i in range(self.num_classes)]
        for name, value in zip(names, iou.tolist()):
            out[f"iou/{name}"] = float(value)
        return out
