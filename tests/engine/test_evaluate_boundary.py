"""``evaluate_boundary_f``: a model's boundary F-score over a loader (used by the demo and the FreqFusion script)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from freqdense.engine.evaluate import evaluate_boundary_f
from freqdense.metrics import BoundaryFScore


class _Oracle(nn.Module):
    """Returns the one-hot logits of a fixed label map, at ``scale`` times the label size."""

    def __init__(self, labels: torch.Tensor, num_classes: int, scale: int = 1) -> None:
        super().__init__()
        logits = F.one_hot(labels, num_classes).permute(0, 3, 1, 2).float()
        self.logits = F.interpolate(logits, scale_factor=scale, mode="nearest") if scale != 1 else logits

    def forward(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"semantic": self.logits[: image.shape[0]]}


def _batches(labels: torch.Tensor) -> list[dict[str, torch.Tensor]]:
    return [{"image": torch.zeros(labels.shape[0], 3, *labels.shape[-2:]), "semantic": labels}]


def test_perfect_prediction_scores_one_and_logits_are_resized_to_the_labels():
    labels = torch.zeros(2, 16, 16, dtype=torch.long)
    labels[:, 4:12, 4:12] = 1
    labels[1, :, :3] = 2
    for scale in (1, 2):
        model = _Oracle(labels, 3, scale)
        out = evaluate_boundary_f(model, _batches(labels), num_classes=3, device=torch.device("cpu"))
        assert out["boundary_f"] == 1.0 and out["boundary_precision"] == 1.0


def test_equals_the_metric_on_the_argmax_and_names_classes():
    labels = torch.randint(0, 3, (2, 12, 12))
    predicted = torch.randint(0, 3, (2, 12, 12))
    out = evaluate_boundary_f(
        _Oracle(predicted, 3),
        _batches(labels),
        num_classes=3,
        device=torch.device("cpu"),
        tolerance_px=1,
        class_names=["a", "b", "c"],
    )
    metric = BoundaryFScore(3, tolerance_px=1, class_names=["a", "b", "c"])
    metric.update(predicted, labels)
    assert out == metric.compute() and "boundary_f/b" in out
