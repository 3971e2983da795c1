"""Boundary F-score: hand-counted cases, ignore handling, merge = one big update."""

from __future__ import annotations

import math

import torch

from freqdense.metrics import BoundaryFScore
from freqdense.metrics.boundary import label_boundaries


def _halves(split: int, h: int = 4, w: int = 6) -> torch.Tensor:
    lab = torch.zeros(1, h, w, dtype=torch.long)
    lab[..., split:] = 1
    return lab


def test_boundaries_of_a_vertical_edge():
    b = label_boundaries(_halves(3))[0]
    expected = torch.zeros(4, 6, dtype=torch.bool)
    expected[:, 2:4] = True  # both sides of the edge; the image border is not a boundary
    assert torch.equal(b, expected)


def test_shift_by_one_column_fails_at_zero_tolerance_and_passes_at_one():
    gt, pred = _halves(3), _halves(4)
    exact = BoundaryFScore(2, tolerance_px=0)
    exact.update(pred, gt)
    # gt boundary columns: class 0 -> 2, class 1 -> 3; pred: class 0 -> 3, class 1 -> 4: no pixel coincides
    assert exact.compute()["boundary_f"] == 0.0
    loose = BoundaryFScore(2, tolerance_px=1)
    loose.update(pred, gt)
    assert loose.compute()["boundary_f"] == 1.0


def test_partial_match_hand_counted():
    gt = _halves(3, h=4, w=8)
    pred = gt.clone()
    pred[0, :2, 3:5] = 0  # top two rows: edge moved two columns right
    m = BoundaryFScore(2, tolerance_px=1)
    m.update(pred, gt)
    c = m.counts
    # class 0: pred boundary = col 4 rows 0-1, col 2 rows 2-3, plus (row 1, col 3) and (row 1, col 4) whose lower
    # neighbour is class 1 -> pixels {(0,4),(1,4),(1,3),(2,2),(3,2)} = 5; gt boundary col 2 = 4 pixels.
    assert c[0].tolist()[0] == 5 and c[0].tolist()[2] == 4
    # matched pred (distance <= 1 to column 2): (1,3), (2,2), (3,2) -> 3; gt matched: (1,2) [next to (1,3)],
    # (2,2), (3,2) -> 3; (0,2) has no pred boundary pixel within distance 1 ((0,3) and (1,2) are interior in pred)
    assert c[0].tolist()[1] == 3 and c[0].tolist()[3] == 3
    p, r = 3 / 5, 3 / 4
    f0 = 2 * p * r / (p + r)
    assert math.isclose(m.compute()["boundary_f/0"], f0, rel_tol=1e-12)


def test_ignore_pixels_neither_create_nor_count_boundaries():
    gt = torch.zeros(1, 4, 6, dtype=torch.long)
    gt[..., 3:] = 255
    pred = _halves(3)
    m = BoundaryFScore(2, tolerance_px=0)
    m.update(pred, gt)
    # gt has no boundary (void neighbours do not count); pred boundary of class 0 (col 2) counts, class 1's lies on void
    assert m.counts[0].tolist() == [4, 0, 0, 0]
    assert m.counts[1].tolist() == [0, 0, 0, 0]
    out = m.compute()
    assert out["boundary_f/0"] == 0.0 and math.isnan(out["boundary_f/1"])


def test_merge_equals_single_update_and_logits_are_accepted():
    torch.manual_seed(0)
    gt = torch.randint(0, 3, (2, 9, 11))
    logits = torch.randn(2, 3, 9, 11)
    whole = BoundaryFScore(3, tolerance_px=1)
    whole.update(logits, gt)
    a, b = BoundaryFScore(3, tolerance_px=1), BoundaryFScore(3, tolerance_px=1)
    a.update(logits[:1], gt[:1])
    b.update(logits[1:], gt[1:])
    assert torch.equal(a.merge(b).counts, whole.counts)
    perfect = BoundaryFScore(3, tolerance_px=0)
    perfect.update(gt, gt)
    assert perfect.compute()["boundary_f"] == 1.0
