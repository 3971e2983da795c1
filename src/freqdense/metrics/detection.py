"""Object-detection average precision: PASCAL VOC style (:func:`detection_ap`) and the COCO protocol
(:func:`coco_box_ap`, :class:`DetectionMetric`).

**VOC** (Everingham et al., "The PASCAL Visual Object Classes (VOC) Challenge", IJCV 2010), with the all-point
interpolation the VOC devkit uses from VOC2010 on.

Per class: all detections of the class over all images, by decreasing score (ties: image order, then the order
within the image); a detection is a true positive when its best-overlapping ground-truth box of the same class
in the same image has ``IoU >= iou_threshold`` and was not matched by a higher-scored detection, otherwise a false
positive (a detection whose best box is already taken is a false positive even if another box overlaps it: the
devkit rule). With ``TP(k)``, ``FP(k)`` the counts among the first ``k`` detections and ``G`` the number of
ground-truth boxes, recall ``r_k = TP(k) / G`` and precision ``p_k = TP(k) / k``;

``AP = sum_k (r_k - r_{k-1}) * max_{k' >= k} p_{k'}``

(the area under the precision envelope). A class without ground truth has no AP (NaN) and is left out of the mean.
Boxes are continuous xyxy (no ``+ 1`` in widths) and ``>=`` at the threshold, as mmdetection's ``eval_map``;
the VOC devkit uses pixel-inclusive widths and ``>``. "difficult" boxes are not modelled.

**COCO** (Lin et al., "Microsoft COCO: Common Objects in Context", ECCV 2014; the protocol of ``pycocotools``'
``COCOeval`` for ``iouType="bbox"``, re-implemented here in numpy and checked against it to 1e-6). Per image and
category, with the detections sorted by score (stable) and cut to the best ``max_dets`` (100):

1. ground truth is *ignored* when it is a crowd region or its area lies outside the area range
   (all: [0, 1e10], small: [0, 32^2], medium: [32^2, 96^2], large: [96^2, 1e10], bounds inclusive);
2. for each IoU threshold t in 0.50:0.05:0.95, each detection in score order takes the still unmatched ground-truth
   box (crowd boxes may be taken any number of times) with the highest IoU >= t, preferring non-ignored boxes over
   ignored ones (ties: the later box); a detection matched to an ignored box is ignored, so is an unmatched
   detection whose area lies outside the range. IoU with a crowd box is ``|d ∩ g| / |d|``;
3. per category and area range, all detections of all images by score (stable, image order): cumulative TP and FP
   of the non-ignored ones give recall ``r_i = TP_i / G`` (G = non-ignored ground truth) and precision
   ``p_i = TP_i / (TP_i + FP_i + eps)``, made monotone from the right (``p_i = max_{j >= i} p_j``); the precision at
   recall r is ``p_i`` of the first i with ``r_i >= r``, 0 when recall never reaches r, for the 101 points
   r = 0, 0.01, ..., 1;
4. AP = the mean of these precisions over the recall points, the IoU thresholds and the categories with G > 0
   (AP50 / AP75: at one threshold; APs / APm / APl: in one area range). No category with ground truth: NaN
   (pycocotools prints -1).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from ..errors import ConfigError, ShapeError
from ..ops.boxes import box_iou
from ._base import Metric

__all__ = [
    "COCO_AREA_RANGES",
    "COCO_IOU_THRESHOLDS",
    "COCO_RECALL_POINTS",
    "DETECTION_METRIC_NAMES",
    "DetectionMetric",
    "average_precision",
    "coco_box_ap",
    "detection_ap",
]

#: COCOeval's IoU thresholds 0.50:0.05:0.95 (computed as pycocotools computes them, so AP50 / AP75 index exactly).
COCO_IOU_THRESHOLDS: np.ndarray = np.linspace(0.5, 0.95, int(np.round((0.95 - 0.5) / 0.05)) + 1, endpoint=True)
#: The 101 recall points 0:0.01:1 of the interpolated precision.
COCO_RECALL_POINTS: np.ndarray = np.linspace(0.0, 1.0, int(np.round((1.0 - 0.0) / 0.01)) + 1, endpoint=True)
#: Area ranges (pixels^2, bounds inclusive): all, small, medium, large.
COCO_AREA_RANGES: dict[str, tuple[float, float]] = {
    "all": (0.0, 1e5**2),
    "small": (0.0, 32.0**2),
    "medium": (32.0**2, 96.0**2),
    "large": (96.0**2, 1e5**2),
}
#: Keys of :meth:`DetectionMetric.compute` (logged as ``detection/<name>``).
DETECTION_METRIC_NAMES: tuple[str, ...] = ("ap", "ap50", "ap75", "ap_small", "ap_medium", "ap_large", "ap50_voc")


def average_precision(recall: torch.Tensor, precision: torch.Tensor) -> float:
    """All-point interpolated AP from the recall / precision after each ranked detection (both ``(D,)``)."""
    if recall.shape != precision.shape or recall.dim() != 1:
        raise ShapeError(
            f"average_precision needs 1-d recall and precision of one length, got {tuple(recall.shape)} and "
            f"{tuple(precision.shape)}"
        )
    if recall.numel() == 0:
        return 0.0
    zero = torch.zeros(1, dtype=torch.float64, device=recall.device)
    r = torch.cat((zero, recall.double(), zero + 1))
    p = torch.cat((zero, precision.double().to(recall.device), zero))
    p = torch.flip(torch.cummax(torch.flip(p, (0,)), dim=0).values, (0,))  # precision envelope
    step = r[1:] - r[:-1]
    return float((step * p[1:]).sum())


def _check(entries: Sequence[dict[str, torch.Tensor]], name: str, keys: tuple[str, ...]) -> None:
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict) or any(k not in entry for k in keys):
            raise ShapeError(f"{name}[{i}] must be a dict with keys {keys}")
        n = entry["boxes"].shape[0] if entry["boxes"].dim() == 2 else -1
        if entry["boxes"].dim() != 2 or entry["boxes"].shape[-1] != 4:
            raise ShapeError(f"{name}[{i}]['boxes'] must be (N, 4) xyxy, got {tuple(entry['boxes'].shape)}")
        for k in keys[1:]:
            if entry[k].shape != (n,):
                raise ShapeError(
                    f"{name}[{i}][{k!r}] must have shape ({n},) like its boxes, got {tuple(entry[k].shape)}"
                )


def detection_ap(
    predictions: Sequence[dict[str, torch.Tensor]],
    ground_truths: Sequence[dict[str, torch.Tensor]],
    num_classes: int,
    *,
    iou_threshold: float = 0.5,
) -> dict[str, float]:
    """VOC-style AP per class and their mean at one IoU threshold.

    Args:
        predictions: per image ``{"boxes": (D, 4) xyxy, "scores": (D,), "labels": (D,)}``
            (:meth:`freqdense.models.detection.FCOSDetector.predict`'s output).
        ground_truths: per image ``{"boxes": (G, 4) xyxy, "labels": (G,)}``, same image order.
        num_classes: classes ``0 .. num_classes - 1``.
        iou_threshold: minimum IoU of a true positive (0.5: AP@0.5).

    Returns:
        ``{"map": mean over classes with ground truth, "ap/<c>": AP of class c (NaN without ground truth)}``;
        ``map`` is NaN when no class has ground truth.
    """
    if len(predictions) != len(ground_truths):
        raise ShapeError(f"detection_ap got {len(predictions)} predictions for {len(ground_truths)} images")
    if int(num_classes) < 1:
        raise ConfigError(f"detection_ap num_classes must be >= 1, got {num_classes!r}")
    if not 0.0 < float(iou_threshold) <= 1.0:
        raise ConfigError(f"detection_ap iou_threshold must be in (0, 1], got {iou_threshold!r}")
    _check(predictions, "predictions", ("boxes", "scores", "labels"))
    _check(ground_truths, "ground_truths", ("boxes", "labels"))
    out: dict[str, float] = {}
    aps = []
    for c in range(int(num_classes)):
        gt = [g["boxes"][g["labels"] == c].detach().double().cpu() for g in ground_truths]
        n_gt = sum(b.shape[0] for b in gt)
        dets = []  # (score, image, box)
        for i, p in enumerate(predictions):
            sel = p["labels"] == c
            for score, box in zip(p["scores"][sel].detach().double().cpu(), p["boxes"][sel].detach().double().cpu()):
                dets.append((float(score), i, box))
        if n_gt == 0:
            out[f"ap/{c}"] = math.nan
            continue
        dets.sort(key=lambda d: -d[0])  # stable: ties keep image order, then within-image order
        taken = [torch.zeros(b.shape[0], dtype=torch.bool) for b in gt]
        tp = torch.zeros(len(dets), dtype=torch.float64)
        for k, (_, i, box) in enumerate(dets):
            if gt[i].shape[0] == 0:
                continue
            ious = box_iou(box[None], gt[i])[0]
            best = int(torch.argmax(ious))
            if float(ious[best]) >= iou_threshold and not bool(taken[i][best]):
                taken[i][best] = True
                tp[k] = 1.0
        tp_cum = torch.cumsum(tp, 0)
        ranks = torch.arange(1, len(dets) + 1, dtype=torch.float64)
        ap = average_precision(tp_cum / n_gt, tp_cum / ranks)
        out[f"ap/{c}"] = ap
        aps.append(ap)
    out["map"] = sum(aps) / len(aps) if aps else math.nan
    return {"map": out.pop("map"), **out}


# ----------------------------------------------------------------------------------------------------------------
# COCO protocol
# ----------------------------------------------------------------------------------------------------------------


def _numpy(value: Any, dtype: Any) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    return np.asarray(value, dtype=dtype)


def _coco_iou(dets: np.ndarray, gts: np.ndarray, crowd: np.ndarray) -> np.ndarray:
    """IoU ``(D, G)`` of xyxy boxes as pycocotools' ``bbIou``: widths without ``+ 1``, ``|d ∩ g| / |d|`` for crowd."""
    if dets.shape[0] == 0 or gts.shape[0] == 0:
        return np.zeros((dets.shape[0], gts.shape[0]))
    iw = np.minimum(dets[:, None, 2], gts[None, :, 2]) - np.maximum(dets[:, None, 0], gts[None, :, 0])
    ih = np.minimum(dets[:, None, 3], gts[None, :, 3]) - np.maximum(dets[:, None, 1], gts[None, :, 1])
    inter = np.where((iw > 0) & (ih > 0), iw * ih, 0.0)
    d_area = (dets[:, 2] - dets[:, 0]) * (dets[:, 3] - dets[:, 1])
    g_area = (gts[:, 2] - gts[:, 0]) * (gts[:, 3] - gts[:, 1])
    union = np.where(crowd[None, :], d_area[:, None], d_area[:, None] + g_area[None, :] - inter)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(union > 0, inter / union, 0.0)


class _ImageRecord:
    """One image's evaluation for one category (COCOeval ``evaluateImg`` for every area range at once)."""

    __slots__ = ("category", "scores", "matched", "ignored", "num_gt")

    def __init__(self, category: int, scores: np.ndarray, matched: np.ndarray, ignored: np.ndarray, num_gt: np.ndarray):
        self.category = category
        self.scores = scores  # (D,) float64, sorted by decreasing score
        self.matched = matched  # (A, T, D) bool
        self.ignored = ignored  # (A, T, D) bool
        self.num_gt = num_gt  # (A,) int64: non-ignored ground truth per area range

    def as_tuple(self) -> tuple[Any, ...]:
        return (self.category, self.scores, self.matched, self.ignored, self.num_gt)


def _match_category(
    det_boxes: np.ndarray,
    det_scores: np.ndarray,
    gt_boxes: np.ndarray,
    gt_crowd: np.ndarray,
    gt_areas: np.ndarray,
    iou_thresholds: np.ndarray,
    area_ranges: np.ndarray,
    max_dets: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    order = np.argsort(-det_scores, kind="mergesort")[:max_dets]
    det_boxes, det_scores = det_boxes[order], det_scores[order]
    num_a, num_t, num_d, num_g = len(area_ranges), len(iou_thresholds), len(det_scores), len(gt_boxes)
    lo, hi = area_ranges[:, 0], area_ranges[:, 1]
    gt_ignored = gt_crowd[None, :] | (gt_areas[None, :] < lo[:, None]) | (gt_areas[None, :] > hi[:, None])  # (A, G)
    det_areas = (det_boxes[:, 2] - det_boxes[:, 0]) * (det_boxes[:, 3] - det_boxes[:, 1])
    matched = np.zeros((num_a, num_t, num_d), dtype=bool)
    ignored = np.zeros((num_a, num_t, num_d), dtype=bool)
    if num_g and num_d:
        ious = _coco_iou(det_boxes, gt_boxes, gt_crowd)
        thresholds = np.minimum(iou_thresholds, 1 - 1e-10)[None, :, None]  # (1, T, 1)
        taken = np.zeros((num_a, num_t, num_g), dtype=bool)
        reverse = np.arange(num_g)[::-1]
        for d in range(num_d):
            iou = ious[d][None, None, :]  # (1, 1, G)
            free = ~taken | gt_crowd[None, None, :]
            candidate = free & (iou >= thresholds)  # (A, T, G)
            if not candidate.any():
                continue
            regular = candidate & ~gt_ignored[:, None, :]
            use = np.where(regular.any(axis=-1, keepdims=True), regular, candidate)
            score = np.where(use, np.broadcast_to(iou, use.shape), -np.inf)
            best = num_g - 1 - np.argmax(score[..., reverse], axis=-1)  # highest IoU, ties: the later box
            found = use.any(axis=-1)  # (A, T)
            a_idx, t_idx = np.nonzero(found)
            g_idx = best[a_idx, t_idx]
            matched[a_idx, t_idx, d] = True
            ignored[a_idx, t_idx, d] = gt_ignored[a_idx, g_idx]
            taken[a_idx, t_idx, g_idx] = True
    outside = (det_areas[None, :] < lo[:, None]) | (det_areas[None, :] > hi[:, None])  # (A, D)
    ignored |= ~matched & outside[:, None, :]
    num_gt = (~gt_ignored).sum(axis=1).astype(np.int64)
    return det_scores, matched, ignored, num_gt


def _evaluate_image(
    prediction: Mapping[str, Any],
    target: Mapping[str, Any],
    num_classes: int,
    iou_thresholds: np.ndarray,
    area_ranges: np.ndarray,
    max_dets: int,
) -> list[_ImageRecord]:
    det_boxes = _numpy(prediction["boxes"], np.float64).reshape(-1, 4)
    det_scores = _numpy(prediction["scores"], np.float64).reshape(-1)
    det_labels = _numpy(prediction["labels"], np.int64).reshape(-1)
    gt_boxes = _numpy(target["boxes"], np.float64).reshape(-1, 4)
    gt_labels = _numpy(target["labels"], np.int64).reshape(-1)
    n = gt_boxes.shape[0]
    crowd = _numpy(target["iscrowd"], bool).reshape(-1) if target.get("iscrowd") is not None else np.zeros(n, bool)
    if target.get("areas") is not None:
        areas = _numpy(target["areas"], np.float64).reshape(-1)
    else:
        areas = (gt_boxes[:, 2] - gt_boxes[:, 0]) * (gt_boxes[:, 3] - gt_boxes[:, 1])
    records = []
    for c in sorted(set(det_labels.tolist()) | set(gt_labels.tolist())):
        if not 0 <= c < num_classes:
            raise ShapeError(
                f"a label {c} is outside [0, {num_classes}); the metric was built for {num_classes} classes"
            )
        d, g = det_labels == c, gt_labels == c
        scores, matched, ignored, num_gt = _match_category(
            det_boxes[d], det_scores[d], gt_boxes[g], crowd[g], areas[g], iou_thresholds, area_ranges, max_dets
        )
        records.append(_ImageRecord(c, scores, matched, ignored, num_gt))
    return records


def _accumulate(
    records: Sequence[_ImageRecord], num_classes: int, num_thresholds: int, num_areas: int, recall_points: np.ndarray
) -> np.ndarray:
    """COCOeval ``accumulate``: interpolated precision ``(T, R, K, A)``, -1 where a category has no ground truth."""
    precision = -np.ones((num_thresholds, len(recall_points), num_classes, num_areas))
    by_class: dict[int, list[_ImageRecord]] = {}
    for record in records:
        by_class.setdefault(record.category, []).append(record)
    for k, recs in by_class.items():
        scores = np.concatenate([r.scores for r in recs])
        order = np.argsort(-scores, kind="mergesort")
        for a in range(num_areas):
            num_gt = int(sum(int(r.num_gt[a]) for r in recs))
            if num_gt == 0:
                continue
            matched = np.concatenate([r.matched[a] for r in recs], axis=1)[:, order]
            ignored = np.concatenate([r.ignored[a] for r in recs], axis=1)[:, order]
            tp = np.cumsum(matched & ~ignored, axis=1).astype(np.float64)
            fp = np.cumsum(~matched & ~ignored, axis=1).astype(np.float64)
            for t in range(num_thresholds):
                recall = tp[t] / num_gt
                prec = tp[t] / (fp[t] + tp[t] + np.spacing(1))
                prec = np.maximum.accumulate(prec[::-1])[::-1] if prec.size else prec  # monotone from the right
                where = np.searchsorted(recall, recall_points, side="left")
                q = np.zeros(len(recall_points))
                valid = where < prec.size
                q[valid] = prec[where[valid]]
                precision[t, :, k, a] = q
    return precision


def _summaries(precision: np.ndarray, iou_thresholds: np.ndarray) -> dict[str, float]:
    def mean(values: np.ndarray) -> float:
        values = values[values > -1]
        return float(values.mean()) if values.size else math.nan

    def at(threshold: float) -> np.ndarray:
        index = np.flatnonzero(np.isclose(iou_thresholds, threshold, rtol=0.0, atol=1e-12))
        return precision[index] if index.size else np.empty((0, *precision.shape[1:]))

    return {
        "ap": mean(precision[..., 0]),
        "ap50": mean(at(0.5)[..., 0]),
        "ap75": mean(at(0.75)[..., 0]),
        "ap_small": mean(precision[..., 1]),
        "ap_medium": mean(precision[..., 2]),
        "ap_large": mean(precision[..., 3]),
    }


def _check_entries(entries: Sequence[Mapping[str, Any]], name: str, keys: tuple[str, ...]) -> None:
    for i, entry in enumerate(entries):
        if not isinstance(entry, Mapping) or any(k not in entry for k in keys):
            raise ShapeError(f"{name}[{i}] must be a dict with keys {keys}")
        boxes = entry["boxes"]
        shape = tuple(boxes.shape) if hasattr(boxes, "shape") else np.shape(boxes)
        if len(shape) != 2 or shape[1] != 4:
            raise ShapeError(f"{name}[{i}]['boxes'] must be (N, 4) xyxy, got {shape}")
        for k in (*keys[1:], "iscrowd", "areas"):
            if entry.get(k) is None:
                continue
            other = tuple(entry[k].shape) if hasattr(entry[k], "shape") else np.shape(entry[k])
            if other != (shape[0],):
                raise ShapeError(f"{name}[{i}][{k!r}] must have shape ({shape[0]},) like its boxes, got {other}")


def coco_box_ap(
    predictions: Sequence[Mapping[str, Any]],
    ground_truths: Sequence[Mapping[str, Any]],
    num_classes: int,
    *,
    max_dets: int = 100,
) -> dict[str, float]:
    """COCO box AP (module docstring) of detections against ground truth, image by image.

    Args:
        predictions: per image ``{"boxes": (D, 4) xyxy, "scores": (D,), "labels": (D,)}`` (tensors or arrays).
        ground_truths: per image ``{"boxes": (G, 4) xyxy, "labels": (G,)}``, optionally ``"iscrowd"`` (G,) bool
            and ``"areas"`` (G,) (COCO's annotation ``area``; default: the box area), in the same image order.
        num_classes: labels are ``0 .. num_classes - 1``.
        max_dets: detections per image and category (COCO: 100).

    Returns:
        ``{"ap", "ap50", "ap75", "ap_small", "ap_medium", "ap_large"}``: fractions in [0, 1], NaN where no
        category has ground truth (in that area range).
    """
    metric = DetectionMetric(num_classes, max_dets=max_dets, voc_ap50=False)
    metric.update(predictions, ground_truths)
    return metric.compute()


class DetectionMetric(Metric):
    """COCO box AP (module docstring) accumulated over batches, plus VOC AP@0.5 (:func:`detection_ap`).

    ``update`` runs COCOeval's per-image matching at once and keeps only the matches (detection scores and
    matched / ignored flags per area range and IoU threshold) and the ground-truth counts, so ``merge`` and
    ``all_reduce`` gather these records; ``compute`` runs the accumulation. With ``voc_ap50`` the raw boxes are kept
    as well for the VOC number.

    Args:
        num_classes: labels are ``0 .. num_classes - 1``.
        class_names: names for messages (optional).
        max_dets: detections per image (COCO: 100).
        voc_ap50: also report ``ap50_voc`` (VOC all-point AP at IoU 0.5, mmdetection's ``eval_map`` rule).

    ``compute()`` returns :data:`DETECTION_METRIC_NAMES` (``ap50_voc`` only with ``voc_ap50``).
    """

    def __init__(
        self,
        num_classes: int,
        *,
        class_names: Sequence[str] | None = None,
        max_dets: int = 100,
        voc_ap50: bool = True,
    ) -> None:
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
            raise ConfigError(f"DetectionMetric num_classes must be an integer >= 1, got {num_classes!r}")
        if isinstance(max_dets, bool) or not isinstance(max_dets, int) or max_dets < 1:
            raise ConfigError(f"DetectionMetric max_dets must be an integer >= 1, got {max_dets!r}")
        self.num_classes = num_classes
        self.class_names = tuple(class_names) if class_names is not None else None
        self.max_dets = max_dets
        self.voc_ap50 = bool(voc_ap50)
        self.iou_thresholds = COCO_IOU_THRESHOLDS
        self.area_ranges = np.array(list(COCO_AREA_RANGES.values()), dtype=np.float64)
        self.reset()

    def _config(self) -> dict[str, Any]:
        return {"num_classes": self.num_classes, "max_dets": self.max_dets, "voc_ap50": self.voc_ap50}

    def reset(self) -> None:
        self.records: list[_ImageRecord] = []
        self.num_images = 0
        self.raw_predictions: list[dict[str, torch.Tensor]] = []
        self.raw_targets: list[dict[str, torch.Tensor]] = []

    def to(self, device: torch.device | str) -> DetectionMetric:
        return self  # the state is numpy / CPU tensors

    def update(self, predictions: Sequence[Mapping[str, Any]], targets: Sequence[Mapping[str, Any]]) -> None:
        """Add a batch: per image ``{"boxes", "scores", "labels"}`` and ``{"boxes", "labels"}`` (see
        :func:`coco_box_ap` for the optional ground-truth keys ``iscrowd`` and ``areas``).

        Raises:
            ShapeError: different numbers of images, malformed entries, or labels outside ``[0, num_classes)``.
            NonFiniteError: a predicted box or score is NaN/inf.
        """
        if len(predictions) != len(targets):
            raise ShapeError(f"DetectionMetric.update got {len(predictions)} predictions for {len(targets)} images")
        _check_entries(predictions, "predictions", ("boxes", "scores", "labels"))
        _check_entries(targets, "targets", ("boxes", "labels"))
        for i, p in enumerate(predictions):
            values = np.concatenate([_numpy(p["boxes"], np.float64).reshape(-1), _numpy(p["scores"], np.float64)])
            if not np.isfinite(values).all():
                from ..errors import NonFiniteError

                error = NonFiniteError(
                    f"predicted boxes or scores of batch item {i} hold NaN/inf; a NaN detection cannot be ranked "
                    "(check the inputs and the weights)"
                )
                error.batch_items = [i]
                raise error
        for p, t in zip(predictions, targets):
            self.records.extend(
                _evaluate_image(p, t, self.num_classes, self.iou_thresholds, self.area_ranges, self.max_dets)
            )
            self.num_images += 1
            if self.voc_ap50:
                self.raw_predictions.append(
                    {k: torch.as_tensor(_numpy(p[k], None)) for k in ("boxes", "scores", "labels")}
                )
                self.raw_targets.append({k: torch.as_tensor(_numpy(t[k], None)) for k in ("boxes", "labels")})

    def compute(self) -> dict[str, float]:
        precision = _accumulate(
            self.records, self.num_classes, len(self.iou_thresholds), len(self.area_ranges), COCO_RECALL_POINTS
        )
        out = _summaries(precision, self.iou_thresholds)
        if self.voc_ap50:
            if self.raw_targets:
                preds = [{**p, "boxes": p["boxes"].double().reshape(-1, 4)} for p in self.raw_predictions]
                gts = [{**t, "boxes": t["boxes"].double().reshape(-1, 4)} for t in self.raw_targets]
                out["ap50_voc"] = detection_ap(preds, gts, self.num_classes, iou_threshold=0.5)["map"]
            else:
                out["ap50_voc"] = math.nan
        return out

    def merge(self, other: Metric) -> DetectionMetric:
        if type(other) is not type(self) or other._config() != self._config():
            raise ConfigError(
                f"cannot merge {type(other).__name__} {getattr(other, '_config', dict)()} into DetectionMetric "
                f"{self._config()}; build both with the same arguments"
            )
        self.records.extend(other.records)
        self.num_images += other.num_images
        self.raw_predictions.extend(other.raw_predictions)
        self.raw_targets.extend(other.raw_targets)
        return self

    def all_reduce(self) -> DetectionMetric:
        """Gather every rank's records (in rank order); a no-op without a process group."""
        import torch.distributed as dist

        if not (dist.is_available() and dist.is_initialized()):
            return self
        mine = self.state_dict()
        gathered: list[Any] = [None] * dist.get_world_size()
        dist.all_gather_object(gathered, mine)
        self.reset()
        for state in gathered:
            other = DetectionMetric(self.num_classes, max_dets=self.max_dets, voc_ap50=self.voc_ap50)
            other.load_state_dict(state)
            self.merge(other)
        return self

    def state_dict(self) -> dict[str, Any]:
        return {
            "config": self._config(),
            "records": [r.as_tuple() for r in self.records],
            "num_images": self.num_images,
            "raw_predictions": [{k: v.clone() for k, v in p.items()} for p in self.raw_predictions],
            "raw_targets": [{k: v.clone() for k, v in t.items()} for t in self.raw_targets],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("config") != self._config():
            raise ConfigError(
                f"DetectionMetric state was saved with settings {state.get('config')}, this metric has "
                f"{self._config()}; rebuild the metric with the saved settings"
            )
        self.records = [_ImageRecord(*r) for r in state["records"]]
        self.num_images = int(state["num_images"])
        self.raw_predictions = list(state["raw_predictions"])
        self.raw_targets = list(state["raw_targets"])
