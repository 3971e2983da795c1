"""COCO detection / instance segmentation AP with the official ``pycocotools`` evaluator.

The metric of "Microsoft COCO: Common Objects in Context" (Lin et al., ECCV 2014): average precision (101-point
interpolated precision-recall) averaged over the IoU thresholds 0.50:0.05:0.95 and the categories (``AP``), at IoU
0.50 (``AP50``) and 0.75 (``AP75``), and ``AP`` restricted to small (area < 32^2 px), medium (32^2..96^2) and large
(> 96^2) objects (``APs``, ``APm``, ``APl``), with up to 100 detections per image. Values are fractions in [0, 1];
pycocotools reports -1 where no ground truth falls in an area range, and so does this function.

``pycocotools`` is an optional dependency (``pip install freqdense[coco]``), imported only when this runs.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError, DataError

__all__ = ["COCO_METRIC_NAMES", "coco_evaluate", "detections_to_coco"]

#: Keys of :func:`coco_evaluate`'s result, in pycocotools' ``stats`` order.
COCO_METRIC_NAMES: tuple[str, ...] = ("AP", "AP50", "AP75", "APs", "APm", "APl")


def _pycocotools() -> tuple[Any, Any]:
    try:
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval
    except ImportError as err:
        raise ImportError(
            "coco_evaluate needs pycocotools, which is not installed: pip install freqdense[coco] "
            "(or pip install pycocotools)"
        ) from err
    return COCO, COCOeval


def _load(source: str | os.PathLike | Any, what: str) -> Any:
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.is_file():
            raise DataError(f"COCO {what} file {os.fspath(path)!r} does not exist")
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as err:
            raise DataError(f"cannot read COCO {what} file {os.fspath(path)!r}: {err}") from err
    return source


def detections_to_coco(
    image_id: int,
    boxes: Any,
    scores: Any,
    labels: Any,
    category_ids: Sequence[int],
) -> list[dict[str, Any]]:
    """One image's detections -> COCO result entries.

    ``boxes`` (N, 4) ``x1, y1, x2, y2`` pixels, ``scores`` (N,), ``labels`` (N,) contiguous labels mapped to COCO
    ids through ``category_ids`` (e.g. ``COCODetection.category_ids``). Tensors or arrays.
    """
    b = np.asarray(boxes.detach().cpu() if hasattr(boxes, "detach") else boxes, dtype=np.float64).reshape(-1, 4)
    s = np.asarray(scores.detach().cpu() if hasattr(scores, "detach") else scores, dtype=np.float64).reshape(-1)
    lab = np.asarray(labels.detach().cpu() if hasattr(labels, "detach") else labels).reshape(-1)
    if not len(b) == len(s) == len(lab):
        raise DataError(f"detections_to_coco: {len(b)} boxes, {len(s)} scores and {len(lab)} labels differ in number")
    if lab.size and (lab.min() < 0 or lab.max() >= len(category_ids)):
        raise DataError(
            f"detections_to_coco: labels span [{lab.min()}, {lab.max()}] but there are {len(category_ids)} categories"
        )
    return [
        {
            "image_id": int(image_id),
            "category_id": int(category_ids[int(c)]),
            "bbox": [float(x1), float(y1), float(x2 - x1), float(y2 - y1)],
            "score": float(sc),
        }
        for (x1, y1, x2, y2), sc, c in zip(b.tolist(), s.tolist(), lab.tolist())
    ]


def _check_detections(dets: Any, gt: Mapping[str, Any], iou_type: str) -> list[dict[str, Any]]:
    if not isinstance(dets, list):
        raise DataError(
            f"detections must be a list of COCO result dicts (or a JSON file of one), got {type(dets).__name__}"
        )
    images = {img["id"] for img in gt["images"]}
    categories = sorted(cat["id"] for cat in gt["categories"])
    need = ("image_id", "category_id", "score", "bbox" if iou_type == "bbox" else "segmentation")
    out = []
    for k, det in enumerate(dets):
        if not isinstance(det, Mapping) or any(key not in det for key in need):
            raise DataError(f"detection {k} lacks one of {list(need)}: {det!r}"[:300])
        if det["image_id"] not in images:
            raise DataError(f"detection {k} has image_id {det['image_id']!r}, which the ground truth does not have")
        if det["category_id"] not in categories:
            raise DataError(
                f"detection {k} has category_id {det['category_id']!r}, not one of the ground-truth categories "
                f"{categories}; map contiguous labels with detections_to_coco(..., category_ids)"
            )
        if not (isinstance(det["score"], (int, float)) and math.isfinite(det["score"])):
            raise DataError(f"detection {k} has a non-finite score {det['score']!r}")
        det = dict(det)
        segm = det.get("segmentation")
        if iou_type == "segm" and isinstance(segm, Mapping) and isinstance(segm.get("counts"), list):
            from ..data.coco import rle_to_string

            det["segmentation"] = {"size": list(segm["size"]), "counts": rle_to_string(segm["counts"])}
        out.append(det)
    return out


def coco_evaluate(
    gt_json: str | os.PathLike | Mapping[str, Any],
    detections: str | os.PathLike | Sequence[Mapping[str, Any]],
    *,
    iou_type: str = "bbox",
    verbose: bool = False,
) -> dict[str, float]:
    """COCO AP of ``detections`` against ``gt_json`` with pycocotools' ``COCOeval``.

    Args:
        gt_json: a COCO instances file (path) or its loaded dict.
        detections: COCO result entries ``{"image_id", "category_id", "bbox": [x, y, w, h], "score"}`` (with
            ``"segmentation"`` RLE for ``iou_type="segm"``), or a JSON file of them. See :func:`detections_to_coco`.
        iou_type: ``"bbox"`` or ``"segm"``.
        verbose: print pycocotools' summary table.

    Returns:
        ``{"AP", "AP50", "AP75", "APs", "APm", "APl"}`` as floats (no detections: 0 where ground truth exists).

    Raises:
        ImportError: pycocotools is missing (``pip install freqdense[coco]``).
        DataError: unreadable files, or detections naming images or categories the ground truth lacks.
    """
    if iou_type not in ("bbox", "segm"):
        raise ConfigError(f"iou_type must be 'bbox' or 'segm', got {iou_type!r}")
    COCO, COCOeval = _pycocotools()
    gt_data = _load(gt_json, "ground-truth")
    if not isinstance(gt_data, Mapping) or not all(isinstance(gt_data.get(k), list) for k in ("images", "categories")):
        raise DataError("the COCO ground truth must be an object with 'images', 'annotations' and 'categories' lists")
    dets = _check_detections(_load(detections, "detections"), gt_data, iou_type)
    quiet = contextlib.nullcontext() if verbose else contextlib.redirect_stdout(io.StringIO())
    with quiet:
        gt = COCO()
        gt.dataset = copy.deepcopy(dict(gt_data))
        gt.dataset.setdefault("annotations", [])
        gt.createIndex()
        if dets:
            dt = gt.loadRes(dets)
        else:  # pycocotools' loadRes cannot take an empty list; an empty result set scores 0 where gt exists
            dt = COCO()
            dt.dataset = {
                "images": list(gt.dataset["images"]),
                "categories": gt.dataset["categories"],
                "annotations": [],
            }
            dt.createIndex()
        evaluator = COCOeval(gt, dt, iou_type)
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return {name: float(value) for name, value in zip(COCO_METRIC_NAMES, evaluator.stats[: len(COCO_METRIC_NAMES)])}
