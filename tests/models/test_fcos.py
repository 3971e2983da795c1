"""FCOS: points, hand-worked target assignment, the head (official parameter counts), the detector's losses,
post-processing and gradients, the VOC AP metric, and a short learning run on synthetic squares and discs."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn as nn

from freqdense.errors import ConfigError, ShapeError
from freqdense.losses.detection import sigmoid_focal_loss
from freqdense.metrics.detection import average_precision, detection_ap
from freqdense.models.detection import (
    FCOSDetector,
    FCOSHead,
    FCOSOutputs,
    assign_targets,
    centerness_target,
    fcos_detector,
    fcos_targets,
    level_points,
)

STRIDES = (8, 16, 32, 64, 128)


def _count(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


# ---------------------------------------------------------------- points and targets


def test_points_follow_the_stride_half_offset_convention_row_major():
    (p3, p4) = level_points([(2, 3), (1, 2)], (8, 16))
    assert p3.tolist() == [[4, 4], [12, 4], [20, 4], [4, 12], [12, 12], [20, 12]]
    assert p4.tolist() == [[8, 8], [24, 8]]
    with pytest.raises(ConfigError, match="strides"):
        level_points([(2, 2)], (8, 16))


def test_centerness_target_formula():
    d = torch.tensor([[12.0, 4.0, 12.0, 12.0], [4.0, 4.0, 44.0, 44.0], [5.0, 5.0, 5.0, 5.0]], dtype=torch.float64)
    assert centerness_target(d).tolist() == pytest.approx([math.sqrt(1 / 3), 1 / 11, 1.0], rel=1e-12)


# A 128 x 128 image with a large box A (label 0) and a small box B (label 1) inside it.
BOX_A, BOX_B = [0.0, 0.0, 100.0, 80.0], [24.0, 24.0, 48.0, 40.0]


def _hand_image(center_sampling: bool):
    points = level_points([(128 // s, 128 // s) for s in STRIDES], STRIDES, dtype=torch.float64)
    boxes = torch.tensor([BOX_A, BOX_B], dtype=torch.float64)
    labels, dist, gt = assign_targets(points, STRIDES, boxes, torch.tensor([0, 1]), 2, center_sampling=center_sampling)
    flat = torch.cat(points)
    starts = [0]
    for p in points:
        starts.append(starts[-1] + p.shape[0])

    def at(level: int, x: float, y: float) -> int:
        idx = torch.nonzero((flat[starts[level] : starts[level + 1]] == torch.tensor([x, y])).all(1)).item()
        return starts[level] + idx

    return labels, dist, gt, at, starts


def test_assignment_on_a_hand_made_image_without_center_sampling():
    labels, dist, gt, at, starts = _hand_image(False)
    # P3 (36, 28) lies in both boxes and both are in P3's range (max distance 64 for A, 12 for B): smaller B wins
    i = at(0, 36, 28)
    assert labels[i] == 1 and gt[i] == 1 and dist[i].tolist() == [12, 4, 12, 12]
    assert centerness_target(dist[i]).item() == pytest.approx(math.sqrt(1 / 3))
    i = at(0, 44, 44)  # in A only (B ends at y = 40); max(l, t, r, b) = 56 <= 64
    assert labels[i] == 0 and dist[i].tolist() == [44, 44, 56, 36]
    assert labels[at(0, 12, 12)] == 2  # in A, but its max distance 88 belongs to P4
    i = at(1, 24, 24)  # P4: max distance 76 in (64, 128); on B's corner, so not inside B
    assert labels[i] == 0 and dist[i].tolist() == [24, 24, 76, 56]
    assert labels[at(1, 8, 8)] == 0
    # counts worked out by hand: P3 has A at x in {36..60} x y in {20..60} (24) minus the 4 points inside B, and
    # B's 6 interior points; P4 has A's 24 points whose farthest side is >= 64; A is never farther than 100 > 64,
    # so P5..P7 are empty
    per_level = [labels[a:b] for a, b in zip(starts[:-1], starts[1:])]
    assert [int((lv == 0).sum()) for lv in per_level] == [20, 24, 0, 0, 0]
    assert [int((lv == 1).sum()) for lv in per_level] == [6, 0, 0, 0, 0]
    assert bool((dist[labels == 2] == 0).all()) and bool((gt[labels == 2] == -1).all())


def test_assignment_with_center_sampling_radius_one_and_a_half_strides():
    labels, dist, gt, at, starts = _hand_image(True)
    # A's centre is (50, 40): at P3 the positive square is x in [38, 62], y in [28, 52]
    p3 = labels[starts[0] : starts[1]]
    assert int((p3 == 0).sum()) == 5 and int((p3 == 1).sum()) == 6  # B (24 x 16) lies within its own square
    assert labels[at(0, 52, 36)] == 0 and labels[at(0, 44, 44)] == 0
    assert labels[at(0, 36, 28)] == 1  # still B, the smaller box
    assert labels[at(1, 24, 24)] == 2 and labels[at(1, 8, 8)] == 2  # outside A's P4 square x in [26, 74]
    assert labels[at(1, 72, 40)] == 0 and dist[at(1, 72, 40)].tolist() == [72, 40, 28, 40]
    assert int((labels[starts[1] :] == 0).sum()) == 3  # (72, 24), (72, 40), (72, 56)


def test_empty_images_and_bad_targets():
    points = level_points([(4, 4)], (8,))
    labels, dist, gt = assign_targets(
        points, (8,), torch.zeros(0, 4), torch.zeros(0, dtype=torch.long), 3, regress_ranges=((-1, 1e8),)
    )
    assert bool((labels == 3).all()) and bool((gt == -1).all()) and dist.abs().sum() == 0
    with pytest.raises(ConfigError, match="regress range"):
        assign_targets(points, (8,), torch.zeros(0, 4), torch.zeros(0, dtype=torch.long), 3)
    with pytest.raises(ShapeError, match=r"\[0, 3\)"):
        assign_targets(points, (8,), torch.tensor([[0.0, 0, 8, 8]]), torch.tensor([3]), 3, regress_ranges=((-1, 64),))
    with pytest.raises(ShapeError, match="targets\\[0\\]"):
        fcos_targets(points, (8,), [{"boxes": torch.zeros(0, 4)}], 3, regress_ranges=((-1, 64),))


# ---------------------------------------------------------------- head


def test_head_parameter_counts_equal_the_official_heads():
    # Measured from the FCOS repository's FCOSHead (NUM_CLASSES=81 incl. background, 256 channels):
    # 4,920,666 (tower convs with bias, as the improved mmdetection config's conv_bias=True); mmdetection's
    # original config (conv_bias="auto" with GroupNorm) drops the 8 x 256 tower biases: 4,918,618.
    assert _count(FCOSHead(80, 256)) == 4_920_666
    assert _count(FCOSHead(80, 256, improved=False)) == 4_918_618
    assert _count(FCOSHead(20, 256)) == 4_782_366
    head = FCOSHead(80, 256)
    assert head.cls_logits.bias[0].item() == pytest.approx(-math.log(99), abs=1e-6)  # -4.595
    assert [s.scale.item() for s in head.scales] == [1.0] * 5
    assert (head.center_sampling, head.centerness_on_reg, head.norm_on_bbox, head.box_loss) == (
        True,
        True,
        True,
        "giou",
    )


def test_head_outputs_distance_parametrisations_and_centerness_branch():
    torch.manual_seed(0)
    feats = [torch.randn(2, 16, 9 >> k or 1, 7 >> k or 1) for k in range(5)]
    for improved in (True, False):
        head = FCOSHead(3, 16, feat_channels=16, num_groups=4, improved=improved)
        out = head(feats)
        assert [tuple(o.shape) for o in out.cls_logits] == [(2, 3, *f.shape[-2:]) for f in feats]
        assert [tuple(o.shape) for o in out.distances] == [(2, 4, *f.shape[-2:]) for f in feats]
        assert [tuple(o.shape) for o in out.centerness] == [(2, 1, *f.shape[-2:]) for f in feats]
        nn.init.zeros_(head.bbox_pred.weight)
        nn.init.constant_(head.bbox_pred.bias, 1.0)
        d = head(feats).distances
        # improved: relu(scale * 1) * stride; original: exp(scale * 1), both in image pixels
        for level, s in enumerate(STRIDES):
            assert torch.allclose(d[level], torch.full_like(d[level], float(s) if improved else math.e))
    # centerness_on_reg: the classification tower does not reach the centerness output
    head = FCOSHead(3, 16, feat_channels=16, num_groups=4)
    before = head(feats).centerness
    with torch.no_grad():
        for p in head.cls_tower.parameters():
            p.add_(1.0)
    assert all(torch.equal(a, b) for a, b in zip(before, head(feats).centerness))
    with pytest.raises(ConfigError, match="num_groups"):
        FCOSHead(3, 16, feat_channels=20)
    with pytest.raises(ConfigError, match="regress ranges"):
        FCOSHead(3, 16, feat_channels=16, num_groups=4, strides=(8, 16))
    with pytest.raises(ShapeError, match="5 feature maps"):
        head(feats[:3])


# ---------------------------------------------------------------- detector


def _tiny(fusion: str = "freqfusion", **kw) -> FCOSDetector:
    return fcos_detector(
        2,
        "resnet18",
        neck_fusion=fusion,
        neck_out_channels=16,
        backbone_kwargs={"base_width": 8},
        neck_kwargs={"compress_ratio": 4},  # FreqFusion's compressed width 8 (its GroupNorm needs >= 8)
        head_kwargs={"num_groups": 4, "stacked_convs": 2, **kw},
    )


def test_builder_uses_c3_to_c5_and_two_extra_levels():
    det = _tiny()
    assert det.neck.in_channels == (8, 16, 32, 64) and det.neck.start_level == 1  # uses C3..C5 of the ResNet-18
    assert det.strides == STRIDES and det.start_level == 1
    out = det(torch.randn(1, 3, 75, 101))  # odd size: ceil(H / s)
    assert [tuple(o.shape[-2:]) for o in out.cls_logits] == [(10, 13), (5, 7), (3, 4), (2, 2), (1, 1)]
    # a head whose strides do not match the neck is refused
    with pytest.raises(ConfigError, match="strides"):
        FCOSDetector(
            det.backbone,
            det.neck,
            FCOSHead(2, 16, feat_channels=16, num_groups=4, strides=(4, 8, 16, 32, 64)),
            start_level=1,
        )
    with pytest.raises(ConfigError, match="start_level"):
        fcos_detector(2, "resnet18", start_level=4)


@pytest.mark.parametrize("fusion", ["freqfusion", "bilinear"])
def test_gradients_reach_every_parameter(fusion):
    torch.manual_seed(0)
    det = _tiny(fusion)
    images = torch.randn(2, 3, 75, 67)
    targets = [
        {"boxes": torch.tensor([[5.0, 6.0, 40.0, 50.0], [30.0, 10.0, 60.0, 30.0]]), "labels": torch.tensor([0, 1])},
        {"boxes": torch.tensor([[10.0, 20.0, 66.0, 74.0]]), "labels": torch.tensor([1])},
    ]
    out = det(images)
    losses = det.loss(out, targets)
    assert set(losses) == {"loss_cls", "loss_bbox", "loss_centerness"}
    weights = torch.rand(3) + 0.5
    total = sum(w * v for w, v in zip(weights, losses.values()))
    for maps in (out.cls_logits, out.distances, out.centerness):
        total = total + sum((torch.randn_like(m) * m).sum() for m in maps)
    total.backward()
    missing = [n for n, p in det.named_parameters() if p.grad is None or not bool(p.grad.abs().sum() > 0)]
    assert missing == []


def test_loss_normalisation_and_empty_images():
    torch.manual_seed(0)
    k = 2
    head = FCOSHead(k, 8, feat_channels=8, num_groups=None, strides=(8,), regress_ranges=((-1, 1e8),))
    det = FCOSDetector(nn.Identity(), nn.Identity(), head)
    cls = torch.randn(2, k, 4, 4, dtype=torch.float64, requires_grad=True)
    dist = (torch.rand(2, 4, 4, 4, dtype=torch.float64) * 10 + 1).requires_grad_(True)
    ctr = torch.randn(2, 1, 4, 4, dtype=torch.float64, requires_grad=True)
    out = FCOSOutputs((cls,), (dist,), (ctr,), (8,))
    targets = [
        {"boxes": torch.tensor([[0.0, 0.0, 20.0, 16.0]], dtype=torch.float64), "labels": torch.tensor([1])},
        {"boxes": torch.zeros(0, 4, dtype=torch.float64), "labels": torch.zeros(0, dtype=torch.long)},
    ]
    losses = det.loss(out, targets)
    # by hand: B's centre square is x in [-2, 22] ∩ [0, 20], y in [-4, 20] ∩ [0, 16]: points x in {4, 12}, y in {4, 12}
    pts = level_points([(4, 4)], (8,), dtype=torch.float64)[0]
    pos = torch.tensor([0, 1, 4, 5])
    num_pos = 4.0
    one_hot = torch.zeros(2, 16, k, dtype=torch.float64)
    one_hot[0, pos, 1] = 1
    flat_cls = cls.permute(0, 2, 3, 1).reshape(2, 16, k)
    assert losses["loss_cls"].item() == pytest.approx(sigmoid_focal_loss(flat_cls, one_hot).item() / num_pos, rel=1e-12)
    tgt = torch.stack([pts[pos, 0], pts[pos, 1], 20 - pts[pos, 0], 16 - pts[pos, 1]], 1)
    c = centerness_target(tgt)
    p = torch.sigmoid(ctr[0, 0].reshape(-1)[pos])
    bce = -(c * p.log() + (1 - c) * (1 - p).log()).sum()
    assert losses["loss_centerness"].item() == pytest.approx(bce.item() / num_pos, rel=1e-12)
    assert 0 < losses["loss_bbox"].item() < 2
    # no object in the batch: focal loss over background only (divided by 1), zero box and centerness losses
    empty = [targets[1], targets[1]]
    losses = det.loss(out, empty)
    assert losses["loss_bbox"].item() == 0 and losses["loss_centerness"].item() == 0
    sum(losses.values()).backward()
    assert torch.isfinite(cls.grad).all()
    with pytest.raises(ShapeError, match="2 images"):
        det.loss(out, targets[:1])


def test_predict_decodes_thresholds_clips_and_suppresses():
    k = 2
    cls = torch.full((1, k, 2, 2), -10.0)
    dist = torch.zeros(1, 4, 2, 2)
    ctr = torch.zeros(1, 1, 2, 2)  # centerness 0.5 everywhere
    # point (4, 4): class 1, box (0, 0, 16, 16); point (12, 4): class 1, the same box, lower score (suppressed)
    cls[0, 1, 0, 0], dist[0, :, 0, 0] = 3.0, torch.tensor([4.0, 4.0, 12.0, 12.0])
    cls[0, 1, 0, 1], dist[0, :, 0, 1] = 2.5, torch.tensor([12.0, 4.0, 4.0, 12.0])
    # point (4, 12): class 0, a box reaching outside the 14 x 15 image (clipped); point (12, 12): below threshold
    cls[0, 0, 1, 0], dist[0, :, 1, 0] = 1.0, torch.tensor([10.0, 2.0, 30.0, 30.0])
    cls[0, 0, 1, 1], dist[0, :, 1, 1] = math.log(0.04 / 0.96), torch.tensor([1.0, 1.0, 1.0, 1.0])
    head = FCOSHead(k, 8, feat_channels=8, num_groups=None, strides=(8,), regress_ranges=((-1, 1e8),))
    det = FCOSDetector(nn.Identity(), nn.Identity(), head)
    out = FCOSOutputs((cls,), (dist,), (ctr,), (8,))
    (res,) = det.predict(out, [(14, 15)])
    assert res["labels"].tolist() == [1, 0]
    assert res["boxes"].tolist() == [[0, 0, 15, 14], [0, 10, 15, 14]]  # (0, 0, 16, 16) clipped to 14 x 15 too
    sig = torch.sigmoid(torch.tensor([3.0, 1.0]))
    assert res["scores"].tolist() == pytest.approx((sig * 0.5).tolist())
    (top,) = det.predict(out, [(14, 15)], max_per_image=1, sqrt_scores=True)
    assert top["labels"].tolist() == [1] and top["scores"].item() == pytest.approx(math.sqrt(sig[0].item() * 0.5))
    (more,) = det.predict(out, [(14, 15)], score_thr=0.01, nms_iou=1.0)
    assert more["labels"].tolist() == [1, 1, 0, 0]
    (few,) = det.predict(out, [(14, 15)], pre_nms_top_k=1, nms_iou=1.0)
    assert few["labels"].tolist() == [1]  # one candidate per level, the best cls * centerness
    with pytest.raises(ShapeError, match="height, width"):
        det.predict(out, [])


# ---------------------------------------------------------------- AP metric


def test_average_precision_all_point_interpolation():
    # recall 0.5, 0.5, 1.0 with precision 1, 0.5, 2/3: 0.5 * 1 + 0.5 * 2/3
    ap = average_precision(torch.tensor([0.5, 0.5, 1.0]), torch.tensor([1.0, 0.5, 2 / 3]))
    assert ap == pytest.approx(0.5 + 1 / 3)
    assert average_precision(torch.zeros(0), torch.zeros(0)) == 0.0


def _d(boxes, scores, labels):
    return {
        "boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
        "scores": torch.tensor(scores),
        "labels": torch.tensor(labels, dtype=torch.long),
    }


def test_detection_ap_hand_worked_case():
    gts = [
        {"boxes": torch.tensor([[0.0, 0, 10, 10], [30, 30, 40, 40]]), "labels": torch.tensor([0, 1])},
        {"boxes": torch.tensor([[0.0, 0, 10, 10], [20, 20, 30, 30]]), "labels": torch.tensor([0, 0])},
    ]
    preds = [
        _d([[0, 0, 10, 10], [0, 0, 10, 10], [0, 0, 10, 10], [30, 30, 40, 40]], [0.9, 0.7, 0.95, 0.3], [0, 0, 1, 1]),
        _d([[20, 20, 30, 30], [50, 50, 60, 60], [1, 0, 11, 10], [5, 5, 6, 6]], [0.8, 0.6, 0.5, 0.9], [0, 0, 0, 2]),
    ]
    # class 0 by score: TP (img0), TP (img1 second box), FP (duplicate), FP (nothing there), TP (IoU 90/110):
    # precision 1, 1, 2/3, 1/2, 3/5 at recall 1/3, 2/3, 2/3, 2/3, 1 -> AP = 1/3 + 1/3 + 1/3 * 3/5 = 13/15
    # class 1: FP (the class-0 box) then TP -> AP = 1 * 1/2; class 2 has no ground truth -> NaN, not averaged
    res = detection_ap(preds, gts, 3)
    assert res["ap/0"] == pytest.approx(13 / 15) and res["ap/1"] == pytest.approx(0.5)
    assert math.isnan(res["ap/2"]) and res["map"] == pytest.approx((13 / 15 + 0.5) / 2)
    # at IoU 0.85 the shifted box (IoU 0.818) is a false positive: recall stops at 2/3
    assert detection_ap(preds, gts, 3, iou_threshold=0.85)["ap/0"] == pytest.approx(2 / 3)


def test_detection_ap_a_taken_best_match_is_a_false_positive():
    gts = [{"boxes": torch.tensor([[0.0, 0, 10, 10], [2, 0, 12, 10]]), "labels": torch.tensor([0, 0])}]
    # the second detection overlaps both boxes (IoU 0.905 and 0.739); its best one is taken -> FP (VOC rule)
    preds = [_d([[0, 0, 10, 10], [0.5, 0, 10.5, 10]], [0.9, 0.8], [0, 0])]
    assert detection_ap(preds, gts, 1)["map"] == pytest.approx(0.5)
    assert detection_ap([_d([], [], [])], gts, 1)["map"] == 0.0
    with pytest.raises(ShapeError, match="predictions"):
        detection_ap(preds, gts + gts, 1)


# ---------------------------------------------------------------- learning


def _synthetic(n: int, gen: torch.Generator, size: int = 64):
    """Noisy dark images with 1-3 bright squares (class 0) or discs (class 1), 12-24 px wide."""
    images = torch.rand(n, 3, size, size, generator=gen) * 0.3
    yy, xx = torch.meshgrid(torch.arange(size) + 0.5, torch.arange(size) + 0.5, indexing="ij")
    targets = []
    for i in range(n):
        boxes, labels = [], []
        for _ in range(int(torch.randint(1, 4, (1,), generator=gen))):
            s = int(torch.randint(12, 25, (1,), generator=gen))
            x1, y1 = (int(v) for v in torch.randint(0, size - s + 1, (2,), generator=gen))
            c = int(torch.randint(0, 2, (1,), generator=gen))
            if c == 0:
                mask = (xx >= x1) & (xx < x1 + s) & (yy >= y1) & (yy < y1 + s)
            else:
                mask = (xx - x1 - s / 2) ** 2 + (yy - y1 - s / 2) ** 2 <= (s / 2) ** 2
            images[i][:, mask] = 0.7 + 0.3 * torch.rand(3, 1, generator=gen)
            boxes.append([x1, y1, x1 + s, y1 + s])
            labels.append(c)
        targets.append({"boxes": torch.tensor(boxes, dtype=torch.float32), "labels": torch.tensor(labels)})
    return images, targets


def _sliding_window_baseline(n: int, gen: torch.Generator):
    """A trivial detector: an 18 px box (the mean object size) at every 8 px, both classes, random scores."""
    centres = torch.arange(4, 64, 8, dtype=torch.float32)
    cy, cx = torch.meshgrid(centres, centres, indexing="ij")
    boxes = torch.stack((cx - 9, cy - 9, cx + 9, cy + 9), -1).reshape(-1, 4).clamp(0, 64)
    boxes = torch.cat((boxes, boxes))
    labels = torch.arange(2).repeat_interleave(boxes.shape[0] // 2)
    return [{"boxes": boxes, "scores": torch.rand(boxes.shape[0], generator=gen), "labels": labels} for _ in range(n)]


@pytest.fixture
def one_thread():
    # many tiny ops: two threads are slower than one here (12 s vs 60 s on a busy 2-core machine)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.slow
def test_a_tiny_freqfusion_fcos_learns_squares_and_discs(one_thread):
    # Measured (1 thread): AP@0.5 0.51 after 100 steps of batch 8; untrained 0.00; sliding-window baseline 0.01.
    torch.manual_seed(0)
    # half-width ResNet-18 / 8 (C3..C5: 16, 32, 64), FreqFusion neck of 32 channels with 3 outputs (P3..P5: the
    # objects are <= 24 px, all in P3's range), 2-conv towers
    det = fcos_detector(
        2,
        "resnet18",
        neck_out_channels=32,
        num_outs=3,
        backbone_kwargs={"base_width": 8},
        head_kwargs={"num_groups": 8, "stacked_convs": 2, "regress_ranges": ((-1, 64), (64, 128), (128, 1e8))},
    )
    val_images, val_targets = _synthetic(32, torch.Generator().manual_seed(123))
    baseline = detection_ap(_sliding_window_baseline(32, torch.Generator().manual_seed(5)), val_targets, 2)["map"]
    det.eval()
    untrained = detection_ap(det.predict(det(val_images), [(64, 64)] * 32), val_targets, 2)["map"]
    opt = torch.optim.AdamW(det.parameters(), lr=3e-3, weight_decay=1e-4)
    gen = torch.Generator().manual_seed(1)
    det.train()
    for _ in range(100):
        images, targets = _synthetic(8, gen)
        loss = sum(det.loss(det(images), targets).values())
        opt.zero_grad()
        loss.backward()
        opt.step()
    det.eval()
    with torch.no_grad():
        trained = detection_ap(det.predict(det(val_images), [(64, 64)] * 32), val_targets, 2)["map"]
    print(f"AP@0.5: trained {trained:.3f}, untrained {untrained:.3f}, sliding-window baseline {baseline:.3f}")
    assert trained > 0.3 and trained > baseline + 0.2 and trained > untrained + 0.2
