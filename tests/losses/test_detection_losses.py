"""Detection losses: focal loss against its formula, GIoU / IoU losses on hand-computed boxes, centerness BCE."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from freqdense.errors import ConfigError, ShapeError
from freqdense.losses.detection import (
    GIoULoss,
    SigmoidFocalLoss,
    centerness_loss,
    giou_loss,
    iou_loss,
    sigmoid_focal_loss,
)


def _focal_direct(x: float, t: int, alpha: float = 0.25, gamma: float = 2.0) -> float:
    """Lin et al. Eq. 5 written out: -alpha (1 - p)^gamma log p for t = 1, -(1 - alpha) p^gamma log(1 - p) else."""
    p = 1 / (1 + math.exp(-x))
    if t == 1:
        return -alpha * (1 - p) ** gamma * math.log(p)
    return -(1 - alpha) * p**gamma * math.log(1 - p)


def test_focal_loss_equals_the_formula_for_a_few_logits():
    logits = torch.tensor([[-2.0, 0.5, 3.0], [1.0, -1.0, 0.0], [4.5, -3.5, 0.25]], dtype=torch.float64)
    targets = torch.tensor([[0, 1, 0], [1, 0, 0], [0, 0, 1]], dtype=torch.float64)
    expected = torch.tensor(
        [[_focal_direct(x, int(t)) for x, t in zip(row, trow)] for row, trow in zip(logits.tolist(), targets.tolist())],
        dtype=torch.float64,
    )
    got = sigmoid_focal_loss(logits, targets, reduction="none")
    assert torch.allclose(got, expected, rtol=1e-12, atol=0)
    assert sigmoid_focal_loss(logits, targets).item() == pytest.approx(expected.sum().item(), rel=1e-12)
    assert sigmoid_focal_loss(logits, targets, reduction="mean").item() == pytest.approx(expected.mean().item())
    other = sigmoid_focal_loss(logits, targets, alpha=0.5, gamma=1.0, reduction="none")
    assert other[0, 1].item() == pytest.approx(_focal_direct(0.5, 1, 0.5, 1.0), rel=1e-12)
    # gamma 0 without alpha: the binary cross-entropy
    bce = F.binary_cross_entropy_with_logits(logits, targets, reduction="sum")
    assert sigmoid_focal_loss(logits, targets, alpha=None, gamma=0.0).item() == pytest.approx(bce.item(), rel=1e-12)
    module = SigmoidFocalLoss()
    assert module(logits, targets).item() == pytest.approx(expected.sum().item(), rel=1e-12)


def test_focal_loss_is_stable_and_down_weights_easy_examples():
    logits = torch.tensor([60.0, -60.0, 60.0, -60.0], dtype=torch.float64, requires_grad=True)
    targets = torch.tensor([1.0, 0.0, 0.0, 1.0], dtype=torch.float64)
    loss = sigmoid_focal_loss(logits, targets, reduction="none")
    assert torch.isfinite(loss).all() and loss[:2].max() < 1e-50
    assert loss[2].item() == pytest.approx(0.75 * 60, rel=1e-9) and loss[3].item() == pytest.approx(0.25 * 60, rel=1e-9)
    loss.sum().backward()
    assert torch.isfinite(logits.grad).all()
    # an easy negative (p = 0.1) loses much more weight than a hard one (p = 0.9) compared to plain BCE
    x = torch.tensor([math.log(0.1 / 0.9), math.log(0.9 / 0.1)], dtype=torch.float64)
    ratio = sigmoid_focal_loss(x, torch.zeros(2, dtype=torch.float64), alpha=None, reduction="none") / (
        F.binary_cross_entropy_with_logits(x, torch.zeros(2, dtype=torch.float64), reduction="none")
    )
    assert ratio.tolist() == pytest.approx([0.01, 0.81])


def test_focal_loss_gradcheck():
    logits = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    targets = torch.tensor([[0, 1, 0], [0, 0, 0], [1, 0, 0], [0, 0, 1]], dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda x: sigmoid_focal_loss(x, targets, reduction="none"), (logits,))


def _b(rows):
    return torch.tensor(rows, dtype=torch.float64)


def test_giou_loss_zero_for_identical_and_above_one_for_disjoint_boxes():
    same = _b([[1, 2, 5, 7], [0, 0, 3, 3]])
    assert giou_loss(same, same, reduction="none").abs().max().item() < 1e-12
    # disjoint: GIoU = -1/3 (union 2, hull 3) -> 4/3; far apart tiny boxes -> close to 2
    assert giou_loss(_b([[0, 0, 1, 1]]), _b([[2, 0, 3, 1]])).item() == pytest.approx(4 / 3, rel=1e-9)
    far = giou_loss(_b([[0, 0, 1, 1]]), _b([[99, 99, 100, 100]])).item()
    assert 1.99 < far < 2.0
    # overlapping pair of the GIoU test: 1 - (1/7 - 2/9)
    assert giou_loss(_b([[0, 0, 2, 2]]), _b([[1, 1, 3, 3]])).item() == pytest.approx(1 - (1 / 7 - 2 / 9), rel=1e-9)


def test_box_losses_weights_reductions_and_iou_loss():
    pred = _b([[0, 0, 2, 2], [0, 0, 4, 4]])
    target = _b([[1, 1, 3, 3], [1, 1, 2, 2]])
    per_box = giou_loss(pred, target, reduction="none")
    expected = torch.tensor([1 - (1 / 7 - 2 / 9), 1 - 1 / 16], dtype=torch.float64)
    assert torch.allclose(per_box, expected, rtol=1e-9)
    w = _b([0.5, 2.0])
    assert giou_loss(pred, target, w).item() == pytest.approx((expected * w).sum().item(), rel=1e-9)
    assert GIoULoss(reduction="mean")(pred, target).item() == pytest.approx(expected.mean().item(), rel=1e-9)
    assert iou_loss(pred, target, reduction="none").tolist() == pytest.approx([math.log(7), math.log(16)], rel=1e-9)
    # no overlap: IoU floored at eps
    assert iou_loss(_b([[0, 0, 1, 1]]), _b([[2, 0, 3, 1]])).item() == pytest.approx(-math.log(1e-6), rel=1e-6)
    with pytest.raises(ShapeError, match="weight"):
        giou_loss(pred, target, w[:1])
    with pytest.raises(ShapeError, match="same shape|one shape"):
        giou_loss(pred, target[:1])
    with pytest.raises(ConfigError, match="reduction"):
        giou_loss(pred, target, reduction="avg")  # type: ignore[arg-type]


def test_giou_loss_gradients_are_finite_for_empty_predictions():
    pred = _b([[5, 5, 5, 5], [0, 0, 0, 2]]).requires_grad_(True)
    target = _b([[0, 0, 10, 10], [1, 1, 3, 3]])
    giou_loss(pred, target).backward()
    assert torch.isfinite(pred.grad).all() and pred.grad.abs().sum() > 0


def test_centerness_loss_is_the_binary_cross_entropy():
    logits = _b([0.3, -1.2, 2.0])
    targets = _b([0.5, 0.1, 1.0])
    p = torch.sigmoid(logits)
    expected = -(targets * p.log() + (1 - targets) * (1 - p).log())
    assert centerness_loss(logits, targets, reduction="none").tolist() == pytest.approx(expected.tolist(), rel=1e-12)
    assert centerness_loss(logits, targets).item() == pytest.approx(expected.sum().item(), rel=1e-12)
    with pytest.raises(ShapeError, match="centerness_loss"):
        centerness_loss(logits, targets[:2])


def test_bad_options_are_named():
    x = torch.zeros(2, 3)
    with pytest.raises(ShapeError, match="one-hot"):
        sigmoid_focal_loss(x, torch.zeros(2))
    with pytest.raises(ConfigError, match="alpha"):
        sigmoid_focal_loss(x, x, alpha=1.5)
    with pytest.raises(ConfigError, match="gamma"):
        SigmoidFocalLoss(gamma=-1)
