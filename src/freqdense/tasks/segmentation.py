"""Semantic segmentation: cross-entropy with an ignore index, confusion-matrix metrics."""

from __future__ import annotations

from collections.abc import Sequence

import torch.nn.functional as F
from torch import Tensor

from ..data.sample import IGNORE_INDEX, Sample
from ..metrics import ConfusionMatrix

__all__ = ["SemanticSegmentation", "resize_logits"]


def resize_logits(logits: Tensor, size: tuple[int, int]) -> Tensor:
    """Bilinear resize of logits to the label size (no-op when equal)."""
    if tuple(logits.shape[-2:]) == tuple(size):
        return logits
    return F.interpolate(logits, size=size, mode="bilinear", align_corners=False)


class SemanticSegmentation:
    """Cross-entropy (mean over non-ignored pixels) on ``batch["semantic"]``."""

    key = "semantic"

    def __init__(
        self,
        num_classes: int,
        *,
        ignore_index: int = IGNORE_INDEX,
        class_names: Sequence[str] | None = None,
        absent_classes: str = "exclude",
    ) -> None:
        self.num_classes = num_classes
        self.absent_classes = absent_classes
        self.ignore_index = ignore_index
        self.class_names = list(class_names) if class_names is not None else None

    def loss(self, prediction: Tensor, batch: Sample) -> Tensor:
        target = batch["semantic"]
        logits = resize_logits(prediction, tuple(target.shape[-2:]))
        return F.cross_entropy(logits.float(), target, ignore_index=self.ignore_index)

    def make_metric(self) -> ConfusionMatrix:
        return ConfusionMatrix(
            self.num_classes,
            ignore_index=self.ignore_index,
            class_names=self.class_names,
            absent_classes=self.absent_classes,
        )

    def update_metric(self, metric: ConfusionMatrix, prediction: Tensor, batch: Sample) -> None:
        target = batch["semantic"]
        metric.update(resize_logits(prediction, tuple(target.shape[-2:])).argmax(1), target)
