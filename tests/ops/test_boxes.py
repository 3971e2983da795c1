"""Box ops: conversions, IoU / GIoU against hand-computed boxes, NMS against a hand-worked case and a brute force."""

from __future__ import annotations

import pytest
import torch

from freqdense.errors import ConfigError, ShapeError
from freqdense.ops.boxes import (
    batched_nms,
    box_area,
    box_convert,
    box_iou,
    boxes_to_distances,
    clip_boxes,
    distances_to_boxes,
    generalized_box_iou,
    nms,
    remove_small_boxes,
)


def _t(rows):
    return torch.tensor(rows, dtype=torch.float64)


def test_box_convert_hand_values_and_round_trips():
    xyxy = _t([[1, 2, 5, 8], [0, 0, 0, 3]])
    assert torch.equal(box_convert(xyxy, "xyxy", "xywh"), _t([[1, 2, 4, 6], [0, 0, 0, 3]]))
    assert torch.equal(box_convert(xyxy, "xyxy", "cxcywh"), _t([[3, 5, 4, 6], [0, 1.5, 0, 3]]))
    for fmt in ("xywh", "cxcywh"):
        assert torch.allclose(box_convert(box_convert(xyxy, "xyxy", fmt), fmt, "xyxy"), xyxy)
    assert torch.allclose(box_convert(_t([[3, 5, 4, 6]]), "cxcywh", "xywh"), _t([[1, 2, 4, 6]]))
    with pytest.raises(ConfigError, match="in_fmt"):
        box_convert(xyxy, "xxyy", "xyxy")  # type: ignore[arg-type]
    with pytest.raises(ShapeError, match=r"\(\.\.\., 4\)"):
        box_convert(torch.zeros(3, 5), "xyxy", "xywh")


def test_area_counts_degenerate_and_inverted_boxes_as_empty():
    assert torch.equal(box_area(_t([[0, 0, 2, 3], [1, 1, 1, 5], [4, 4, 2, 6]])), _t([6, 0, 0]))


# (box a, box b, IoU, GIoU), each worked out by hand
CASES = [
    ("overlap", [0, 0, 2, 2], [1, 1, 3, 3], 1 / 7, 1 / 7 - 2 / 9),  # inter 1, union 7, hull 3x3
    ("disjoint", [0, 0, 1, 1], [2, 0, 3, 1], 0.0, -1 / 3),  # union 2, hull 3x1
    ("touching", [0, 0, 1, 1], [1, 0, 2, 1], 0.0, 0.0),  # shared edge: hull = union
    ("nested", [0, 0, 4, 4], [1, 1, 2, 2], 1 / 16, 1 / 16),  # hull = outer box
    ("identical", [1, 2, 5, 7], [1, 2, 5, 7], 1.0, 1.0),
    ("zero-width in box", [1, 1, 1, 3], [0, 0, 2, 2], 0.0, -1 / 3),  # union 4, hull 2x3
    ("two equal points", [2, 2, 2, 2], [2, 2, 2, 2], 0.0, 0.0),  # 0/0 := 0
    ("two distant points", [0, 0, 0, 0], [2, 2, 2, 2], 0.0, -1.0),  # union 0, hull 4
]


@pytest.mark.parametrize("name, a, b, iou, giou", CASES, ids=[c[0] for c in CASES])
def test_iou_and_giou_hand_computed(name, a, b, iou, giou):
    a, b = _t([a]), _t([b])
    assert box_iou(a, b).item() == pytest.approx(iou, abs=1e-15)
    assert generalized_box_iou(a, b).item() == pytest.approx(giou, abs=1e-15)
    # symmetric, and the aligned form agrees
    assert box_iou(b, a).item() == pytest.approx(iou, abs=1e-15)
    assert generalized_box_iou(a, b, aligned=True).item() == pytest.approx(giou, abs=1e-15)


def test_pairwise_shapes_and_aligned_equals_the_diagonal():
    torch.manual_seed(0)
    xy = torch.rand(5, 2, dtype=torch.float64) * 10
    a = torch.cat((xy, xy + torch.rand(5, 2, dtype=torch.float64) * 5), 1)
    xy = torch.rand(5, 2, dtype=torch.float64) * 10
    b = torch.cat((xy, xy + torch.rand(5, 2, dtype=torch.float64) * 5), 1)
    assert box_iou(a, b[:3]).shape == (5, 3)
    assert torch.allclose(box_iou(a, b, aligned=True), torch.diagonal(box_iou(a, b)))
    g = generalized_box_iou(a, b)
    assert torch.allclose(generalized_box_iou(a, b, aligned=True), torch.diagonal(g))
    assert bool((g <= box_iou(a, b) + 1e-12).all()) and bool((g > -1).all())
    with pytest.raises(ShapeError, match="same shape"):
        box_iou(a, b[:3], aligned=True)
    with pytest.raises(ShapeError, match="pairwise"):
        box_iou(a[None], b)


def test_gradients_stay_finite_for_degenerate_boxes():
    a = _t([[2, 2, 2, 2], [0, 0, 0, 0]]).requires_grad_(True)
    b = _t([[2, 2, 2, 2], [2, 2, 2, 2]])
    (box_iou(a, b, aligned=True).sum() + generalized_box_iou(a, b, aligned=True).sum()).backward()
    assert torch.isfinite(a.grad).all()


def test_nms_hand_worked_example():
    boxes = torch.tensor(
        [
            [0, 0, 10, 10],  # 0: s .90
            [1, 1, 11, 11],  # 1: s .80, IoU with 0 = 81 / 119 = 0.68
            [20, 20, 30, 30],  # 2: s .70, IoU with 4 = 64 / 100 = 0.64
            [5, 0, 15, 10],  # 3: s .85, IoU with 0 = 50 / 150 = 0.33
            [21, 21, 29, 29],  # 4: s .95
        ],
        dtype=torch.float32,
    )
    scores = torch.tensor([0.90, 0.80, 0.70, 0.85, 0.95])
    assert nms(boxes, scores, 0.5).tolist() == [4, 0, 3]
    assert nms(boxes, scores, 0.66).tolist() == [4, 0, 3, 2]  # 2 (0.64) survives, 1 (0.68) does not
    assert nms(boxes, scores, 0.7).tolist() == [4, 0, 3, 1, 2]
    assert nms(boxes, scores, 0.0).tolist() == [4, 0]  # any overlap suppresses
    # IoU exactly at the threshold is kept (only IoU > threshold suppresses)
    pair = torch.tensor([[0.0, 0.0, 2.0, 1.0], [0.0, 0.0, 1.0, 1.0]])
    assert nms(pair, torch.tensor([0.9, 0.8]), 0.5).tolist() == [0, 1]
    # equal scores: the lower index is visited first
    assert nms(pair, torch.tensor([0.5, 0.5]), 0.4).tolist() == [0]
    assert nms(torch.zeros(0, 4), torch.zeros(0), 0.5).tolist() == []


def _nms_reference(boxes, scores, thr):
    """Plain-python greedy NMS: repeatedly take the best remaining box, drop the remaining ones overlapping it."""

    def iou(p, q):
        w = max(0.0, min(p[2], q[2]) - max(p[0], q[0]))
        h = max(0.0, min(p[3], q[3]) - max(p[1], q[1]))
        union = (p[2] - p[0]) * (p[3] - p[1]) + (q[2] - q[0]) * (q[3] - q[1]) - w * h
        return w * h / union if union > 0 else 0.0

    b, s = boxes.tolist(), scores.tolist()
    remaining = list(range(len(b)))
    kept = []
    while remaining:
        best = max(remaining, key=lambda i: (s[i], -i))
        kept.append(best)
        remaining = [i for i in remaining if i != best and iou(b[best], b[i]) <= thr]
    return kept


@pytest.mark.parametrize("seed", range(4))
def test_nms_equals_a_brute_force_reference_on_random_boxes(seed):
    g = torch.Generator().manual_seed(seed)
    n = 60
    xy = torch.rand(n, 2, generator=g, dtype=torch.float64) * 50
    boxes = torch.cat((xy, xy + 5 + torch.rand(n, 2, generator=g, dtype=torch.float64) * 25), 1)
    scores = torch.rand(n, generator=g, dtype=torch.float64)
    if seed == 3:
        scores = (scores * 4).floor() / 4  # many ties
    for thr in (0.3, 0.5, 0.7):
        assert nms(boxes, scores, thr).tolist() == _nms_reference(boxes, scores, thr)


def test_batched_nms_keeps_overlapping_boxes_of_different_classes():
    boxes = torch.tensor([[0.0, 0, 10, 10], [0, 0, 10, 10], [1, 1, 10, 10], [0, 0, 9, 10]])
    scores = torch.tensor([0.9, 0.8, 0.7, 0.95])
    labels = torch.tensor([0, 1, 0, 1])
    # class 0: 0 removes 2; class 1: 3 removes 1; merged by score
    assert batched_nms(boxes, scores, labels, 0.5).tolist() == [3, 0]
    assert batched_nms(boxes, scores, torch.tensor([0, 1, 2, 3]), 0.5).tolist() == [3, 0, 1, 2]
    assert nms(boxes, scores, 0.5).tolist() == [3]
    with pytest.raises(ShapeError, match="integer"):
        batched_nms(boxes, scores, labels.float(), 0.5)
    with pytest.raises(ConfigError, match="iou_threshold"):
        nms(boxes, scores, 1.5)
    with pytest.raises(ShapeError, match="nms scores"):
        nms(boxes, scores[:2], 0.5)


def test_clip_and_remove_small_boxes():
    boxes = torch.tensor([[-5.0, 3, 20, 40], [2, 2, 3, 2.5], [10, 10, 60, 60]])
    assert clip_boxes(boxes, (30, 50)).tolist() == [[0, 3, 20, 30], [2, 2, 3, 2.5], [10, 10, 50, 30]]
    assert remove_small_boxes(boxes, 1.0).tolist() == [0, 2]
    assert remove_small_boxes(boxes, 0.5).tolist() == [0, 1, 2]


def test_distances_round_trip():
    points = _t([[4, 4], [12, 20]])
    boxes = _t([[0, 1, 10, 9], [2, 3, 30, 31]])
    d = boxes_to_distances(points, boxes)
    assert d.tolist() == [[4, 3, 6, 5], [10, 17, 18, 11]]
    assert torch.equal(distances_to_boxes(points, d), boxes)
    # broadcasting: every point against every box
    assert boxes_to_distances(points[:, None], boxes[None]).shape == (2, 2, 4)


def test_nms_refuses_non_finite_inputs():
    with pytest.raises(ShapeError, match="finite"):
        nms(torch.tensor([[0.0, 0, 1, 1]]), torch.tensor([float("nan")]), 0.5)
