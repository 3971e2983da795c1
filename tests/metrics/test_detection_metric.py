"""COCO box AP (DetectionMetric, coco_box_ap): hand-computed cases and agreement with pycocotools' COCOeval."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from freqdense.errors import ConfigError, NonFiniteError, ShapeError
from freqdense.metrics.detection import (
    COCO_IOU_THRESHOLDS,
    COCO_RECALL_POINTS,
    DetectionMetric,
    coco_box_ap,
    detection_ap,
)

KEYS = ("ap", "ap50", "ap75", "ap_small", "ap_medium", "ap_large")


def _pred(boxes, scores, labels):
    return {
        "boxes": torch.tensor(boxes, dtype=torch.float64).reshape(-1, 4),
        "scores": torch.tensor(scores, dtype=torch.float64),
        "labels": torch.tensor(labels, dtype=torch.int64),
    }


def _gt(boxes, labels, **extra):
    out = {"boxes": torch.tensor(boxes, dtype=torch.float64).reshape(-1, 4), "labels": torch.tensor(labels)}
    out.update({k: torch.tensor(v) for k, v in extra.items()})
    return out


def test_thresholds_and_recall_points_are_cocoeval_s():
    assert len(COCO_IOU_THRESHOLDS) == 10 and COCO_IOU_THRESHOLDS[0] == 0.5 and COCO_IOU_THRESHOLDS[5] == 0.75
    assert len(COCO_RECALL_POINTS) == 101 and COCO_RECALL_POINTS[-1] == 1.0


def test_perfect_detection_scores_one_and_a_miss_halves_recall():
    gt = _gt([[0, 0, 10, 10], [50, 50, 150, 150]], [0, 0])  # a small and a large box
    perfect = coco_box_ap([_pred([[0, 0, 10, 10], [50, 50, 150, 150]], [0.9, 0.8], [0, 0])], [gt], 2)
    assert perfect["ap"] == pytest.approx(1.0) and perfect["ap_small"] == pytest.approx(1.0)
    assert perfect["ap_large"] == pytest.approx(1.0) and math.isnan(perfect["ap_medium"])  # no medium ground truth
    # only the large box found: precision 1 up to recall 0.5, then 0 -> 51 of 101 recall points
    half = coco_box_ap([_pred([[50, 50, 150, 150]], [0.9], [0])], [gt], 2)
    assert half["ap"] == pytest.approx(51 / 101) and half["ap_large"] == pytest.approx(1.0)
    assert half["ap_small"] == 0.0


def test_iou_threshold_counts_by_hand():
    # IoU of [0, 0, 10, 10] and [0, 0, 10, 8] is 0.8: a true positive at t = 0.50..0.80 (7 of 10 thresholds)
    out = coco_box_ap([_pred([[0, 0, 10, 8]], [0.5], [1])], [_gt([[0, 0, 10, 10]], [1])], 3)
    assert out["ap50"] == pytest.approx(1.0) and out["ap75"] == pytest.approx(1.0)
    assert out["ap"] == pytest.approx(0.7)


def test_false_positive_before_true_positive_lowers_precision():
    # ranked FP then TP: precision envelope 0.5 at every recall point -> AP 0.5 at IoU 0.5
    gt = _gt([[0, 0, 20, 20]], [0])
    out = coco_box_ap([_pred([[40, 40, 60, 60], [0, 0, 20, 20]], [0.9, 0.8], [0, 0])], [gt], 1)
    eps = np.spacing(1)
    assert out["ap50"] == pytest.approx(1 / (2 + eps))


def test_crowd_region_absorbs_detections_without_false_positives():
    gt = _gt([[0, 0, 20, 20], [100, 100, 200, 200]], [0, 0], iscrowd=[False, True])
    dets = _pred([[0, 0, 20, 20], [110, 110, 150, 150], [150, 150, 190, 190]], [0.9, 0.8, 0.7], [0, 0, 0])
    # the two detections inside the crowd box (IoU with crowd = |d ∩ g| / |d| = 1) are ignored
    assert coco_box_ap([dets], [gt], 1)["ap"] == pytest.approx(1.0)
    no_crowd = _gt([[0, 0, 20, 20], [100, 100, 200, 200]], [0, 0])
    assert coco_box_ap([dets], [no_crowd], 1)["ap"] < 0.6


def test_empty_images_and_no_ground_truth():
    empty_p = _pred([], [], [])
    empty_g = _gt([], [])
    out = coco_box_ap([empty_p, _pred([[0, 0, 5, 5]], [0.3], [0])], [empty_g, empty_g], 2)
    assert all(math.isnan(out[k]) for k in KEYS)
    # ground truth but no detections: 0
    out = coco_box_ap([empty_p], [_gt([[0, 0, 5, 5]], [1])], 2)
    assert out["ap"] == 0.0 and out["ap_small"] == 0.0 and math.isnan(out["ap_large"])


def test_merge_and_state_dict_equal_one_pass():
    rng = np.random.default_rng(3)
    preds, gts = zip(*[_random_image(rng, 3) for _ in range(6)])
    one = DetectionMetric(3)
    one.update(preds, gts)
    a, b = DetectionMetric(3), DetectionMetric(3)
    a.update(preds[:4], gts[:4])
    b.update(preds[4:], gts[4:])
    c = DetectionMetric(3)
    c.load_state_dict(b.state_dict())
    merged = a.merge(c).compute()
    assert merged == pytest.approx(one.compute(), nan_ok=True)
    voc = detection_ap(
        [{k: v.double() if k == "boxes" else v for k, v in p.items()} for p in preds],
        [{k: v.double() if k == "boxes" else v for k, v in g.items()} for g in gts],
        3,
    )["map"]
    assert merged["ap50_voc"] == pytest.approx(voc)
    with pytest.raises(ConfigError, match="merge"):
        a.merge(DetectionMetric(4))


def test_bad_inputs_are_refused():
    metric = DetectionMetric(2)
    with pytest.raises(ShapeError, match="outside"):
        metric.update([_pred([[0, 0, 1, 1]], [0.5], [2])], [_gt([], [])])
    with pytest.raises(ShapeError, match="2 predictions for 1"):
        metric.update([_pred([], [], [])] * 2, [_gt([], [])])
    with pytest.raises(ShapeError, match="boxes"):
        metric.update([{"boxes": torch.zeros(3), "scores": torch.zeros(3), "labels": torch.zeros(3)}], [_gt([], [])])
    with pytest.raises(NonFiniteError, match="NaN"):
        metric.update([_pred([[0, 0, 1, float("nan")]], [0.5], [0])], [_gt([], [])])
    with pytest.raises(ConfigError):
        DetectionMetric(0)


# ---------------------------------------------------------------- against pycocotools


def _random_image(rng: np.random.Generator, num_classes: int, *, crowd: bool = False, areas: bool = False):
    g = int(rng.integers(0, 7))
    sizes = rng.choice([8.0, 24.0, 50.0, 120.0], size=g) * rng.uniform(0.6, 1.5, size=g)
    xy = rng.uniform(0, 300, size=(g, 2))
    wh = np.stack([sizes, sizes * rng.uniform(0.5, 2.0, size=g)], 1)
    gt_boxes = np.concatenate([xy, xy + wh], 1)
    gt_labels = rng.integers(0, num_classes, size=g)
    dets, labels = [], []
    for box, label in zip(gt_boxes, gt_labels):  # jittered copies (sometimes two, sometimes the wrong class)
        for _ in range(int(rng.integers(0, 3))):
            w, h = box[2] - box[0], box[3] - box[1]
            jitter = rng.normal(0, 0.15, size=4) * np.array([w, h, w, h])
            dets.append(box + jitter)
            labels.append(label if rng.random() < 0.8 else int(rng.integers(0, num_classes)))
    for _ in range(int(rng.integers(0, 5))):  # background detections
        xy0 = rng.uniform(0, 300, size=2)
        dets.append(np.concatenate([xy0, xy0 + rng.uniform(4, 100, size=2)]))
        labels.append(int(rng.integers(0, num_classes)))
    d = len(dets)
    det_boxes = np.array(dets, dtype=np.float64).reshape(-1, 4)
    det_boxes[:, 2:] = np.maximum(det_boxes[:, 2:], det_boxes[:, :2] + 0.5)
    scores = np.round(rng.uniform(0, 1, size=d), 1)  # rounded: ties across and within images
    pred = {
        "boxes": torch.from_numpy(det_boxes),
        "scores": torch.from_numpy(scores),
        "labels": torch.tensor(labels, dtype=torch.int64).reshape(-1),
    }
    target = {"boxes": torch.from_numpy(gt_boxes), "labels": torch.from_numpy(gt_labels.astype(np.int64))}
    if crowd:
        target["iscrowd"] = torch.from_numpy(rng.random(g) < 0.2)
    if areas:
        target["areas"] = torch.from_numpy((wh[:, 0] * wh[:, 1]) * rng.uniform(0.3, 1.0, size=g))
    return pred, target


def _pycocotools(preds, gts, num_classes, max_dets=100):
    pytest.importorskip("pycocotools")
    from freqdense.metrics.coco_eval import coco_evaluate

    images, annotations, results = [], [], []
    for i, (p, g) in enumerate(zip(preds, gts)):
        images.append({"id": i + 1, "file_name": f"{i}.png", "height": 512, "width": 512})
        crowd = g.get("iscrowd", torch.zeros(len(g["labels"]), dtype=torch.bool))
        for j, (box, label) in enumerate(zip(g["boxes"].tolist(), g["labels"].tolist())):
            x1, y1, x2, y2 = box
            area = float(g["areas"][j]) if "areas" in g else (x2 - x1) * (y2 - y1)
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": i + 1,
                    "category_id": label + 1,
                    "bbox": [x1, y1, x2 - x1, y2 - y1],
                    "area": area,
                    "iscrowd": int(crowd[j]),
                }
            )
        for box, score, label in zip(p["boxes"].tolist(), p["scores"].tolist(), p["labels"].tolist()):
            x1, y1, x2, y2 = box
            results.append(
                {"image_id": i + 1, "category_id": label + 1, "bbox": [x1, y1, x2 - x1, y2 - y1], "score": score}
            )
    gt_json = {
        "images": images,
        "annotations": annotations,
        "categories": [{"id": c + 1, "name": str(c)} for c in range(num_classes)],
    }
    official = coco_evaluate(gt_json, results)
    return {k: (math.nan if official[name] == -1 else official[name]) for k, name in zip(KEYS, official)}


@pytest.mark.parametrize("seed", range(12))
def test_equals_pycocotools_on_random_cases(seed):
    rng = np.random.default_rng(seed)
    num_classes = int(rng.integers(1, 4))
    crowd, areas = seed % 3 == 1, seed % 4 == 2
    preds, gts = zip(
        *[_random_image(rng, num_classes, crowd=crowd, areas=areas) for _ in range(int(rng.integers(1, 9)))]
    )
    mine = coco_box_ap(preds, gts, num_classes)
    official = _pycocotools(preds, gts, num_classes)
    for key in KEYS:
        if math.isnan(official[key]):
            assert math.isnan(mine[key]), (key, mine, official)
        else:
            assert mine[key] == pytest.approx(official[key], abs=1e-6), (key, mine, official)


def test_max_dets_cut_equals_pycocotools():
    # 130 detections on one image: COCO keeps the 100 best per image and category
    rng = np.random.default_rng(7)
    gt_boxes = np.concatenate([rng.uniform(0, 400, (60, 2)), np.zeros((60, 2))], 1)
    gt_boxes[:, 2:] = gt_boxes[:, :2] + rng.uniform(10, 60, (60, 2))
    det_boxes = np.concatenate([gt_boxes, gt_boxes[:60] + 1.0, gt_boxes[:10] - 2.0])
    scores = rng.uniform(0, 1, len(det_boxes))
    pred = {"boxes": torch.from_numpy(det_boxes), "scores": torch.from_numpy(scores), "labels": torch.zeros(130).long()}
    gt = {"boxes": torch.from_numpy(gt_boxes), "labels": torch.zeros(60).long()}
    mine = coco_box_ap([pred], [gt], 1)
    official = _pycocotools([pred], [gt], 1)
    assert mine == pytest.approx(official, abs=1e-6, nan_ok=True)


def test_all_reduce_gathers_records_in_a_process_group(tmp_path):
    import torch.distributed as dist

    rng = np.random.default_rng(5)
    preds, gts = zip(*[_random_image(rng, 2) for _ in range(4)])
    expected = DetectionMetric(2)
    expected.update(preds, gts)
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'pg'}", rank=0, world_size=1)
    try:
        metric = DetectionMetric(2)
        metric.update(preds, gts)
        assert metric.all_reduce().compute() == pytest.approx(expected.compute(), nan_ok=True)
        assert metric.num_images == 4
    finally:
        dist.destroy_process_group()
