"""Export the synthetic scenes in the COCO instances and COCO panoptic formats (``freqdense data synth --coco``).

Layout written under ``out`` for a split ``S`` (the COCO 2017 layout, so :func:`freqdense.data.coco.coco` and other
COCO tools read it with ``root=out, split=S``)::

    annotations/instances_S.json     images, thing annotations (bbox, area, iscrowd 0, RLE segmentation), categories
    annotations/panoptic_S.json      images, per-image segments_info, all 10 categories with isthing
    S/<index:06d>.png                RGB images
    panoptic_S/<index:06d>.png       panoptic segment ids as RGB, id = R + 256 G + 256^2 B (0 = void)

Conventions (formats of "Microsoft COCO", Lin et al., ECCV 2014, and "Panoptic Segmentation", Kirillov et al.,
CVPR 2019):

- ``category_id = class id + 1`` (floor = 1, ..., rug = 10), so no category has id 0; the instances file lists the
  six thing categories (table 4 .. picture 9), the panoptic file all ten with ``isthing``.
- ``image_id = index + 1`` and ``file_name = f"{index:06d}.png"``; annotation ids count from 1 over the split.
- ``bbox`` is ``[x, y, w, h]`` of the visible mask with ``w = max x - min x + 1``; ``area`` is the mask's pixel
  count; ``segmentation`` is uncompressed RLE ``{"size": [h, w], "counts": [...]}`` (exact; column-major runs).
- Things with fewer than ``min_area`` visible pixels are left out of both files (their pixels are void, id 0, in the
  panoptic PNG), like the ``boxes`` of the ``instance`` modality. Unlabelled pixels (semantic 255: windows,
  clutter) are void too.
- Panoptic segment ids: thing segments use their instance id (1..M, stable per scene), stuff segments
  ``M + 1 + k`` for the k-th stuff class (floor, wall, ceiling, rug); one stuff segment per class and image.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError, DataError
from .coco import mask_to_bbox, rle_encode
from .io import atomic_write, write_png_atomic
from .synthetic.classes import CLASSES, PALETTE
from .synthetic.dataset import SyntheticScenes
from .synthetic.instances import DEFAULT_MIN_AREA, STUFF_CLASS_IDS, THING_CLASS_IDS, instance_boxes

__all__ = [
    "CATEGORY_OFFSET",
    "category_id",
    "coco_categories",
    "panoptic_segments",
    "encode_panoptic",
    "decode_panoptic",
    "export_coco",
]

#: ``category_id = class id + CATEGORY_OFFSET``.
CATEGORY_OFFSET = 1


def category_id(class_id: int) -> int:
    """COCO category id of a synthetic class id."""
    return int(class_id) + CATEGORY_OFFSET


def coco_categories(*, panoptic: bool = False) -> list[dict[str, Any]]:
    """The ``categories`` list: thing classes only (instances file) or every class with ``isthing`` and ``color``."""
    out = []
    for cid, name in enumerate(CLASSES):
        thing = cid in THING_CLASS_IDS
        if not panoptic and not thing:
            continue
        cat: dict[str, Any] = {"id": category_id(cid), "name": name, "supercategory": "thing" if thing else "stuff"}
        if panoptic:
            cat["isthing"] = int(thing)
            cat["color"] = list(PALETTE[cid])
        out.append(cat)
    return out


def panoptic_segments(
    semantic: np.ndarray, instance: np.ndarray, instance_labels: np.ndarray, *, min_area: int = DEFAULT_MIN_AREA
) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """Panoptic segment ids (H, W) int32 (0 = void) and their ``segments_info`` (see the module docstring)."""
    if semantic.shape != instance.shape:
        raise DataError(f"semantic {semantic.shape} and instance {instance.shape} maps differ in size")
    found = instance_boxes(instance, instance_labels, min_area=min_area)
    ids = np.zeros(instance.shape, dtype=np.int32)
    segments: list[dict[str, Any]] = []
    for seg_id, label, area in zip(found.ids.tolist(), found.class_ids.tolist(), found.areas.tolist()):
        mask = instance == seg_id
        ids[mask] = seg_id
        segments.append(_segment(seg_id, label, mask, area, thing=True))
    first_stuff = int(np.asarray(instance_labels).size) + 1
    for k, cid in enumerate(STUFF_CLASS_IDS):
        mask = (semantic == cid) & (instance == 0)
        area = int(mask.sum())
        if area:
            ids[mask] = first_stuff + k
            segments.append(_segment(first_stuff + k, cid, mask, area, thing=False))
    return ids, segments


def _segment(seg_id: int, label: int, mask: np.ndarray, area: int, *, thing: bool) -> dict[str, Any]:
    return {
        "id": int(seg_id),
        "category_id": category_id(label),
        "isthing": int(thing),
        "iscrowd": 0,
        "bbox": mask_to_bbox(mask),
        "area": int(area),
    }


def encode_panoptic(ids: np.ndarray) -> np.ndarray:
    """Segment ids (H, W) -> the panoptic PNG's (H, W, 3) uint8 RGB with ``id = R + 256 G + 256^2 B``."""
    ids = np.asarray(ids, dtype=np.int64)
    if ids.size and (ids.min() < 0 or ids.max() >= 256**3):
        raise DataError(f"panoptic segment ids must lie in [0, 256^3), got [{ids.min()}, {ids.max()}]")
    return np.stack([ids % 256, ids // 256 % 256, ids // 256**2], axis=-1).astype(np.uint8)


def decode_panoptic(rgb: np.ndarray) -> np.ndarray:
    """The inverse of :func:`encode_panoptic`: (H, W, 3) uint8 -> (H, W) int64 segment ids."""
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise DataError(f"a panoptic PNG must be RGB (H, W, 3), got shape {rgb.shape}")
    c = rgb.astype(np.int64)
    return c[..., 0] + 256 * c[..., 1] + 256 * 256 * c[..., 2]


def _with_instances(dataset: SyntheticScenes) -> SyntheticScenes:
    """The same scenes with the image, semantic and instance groups (the cache or ``root`` is reused)."""
    needed = ("image", "semantic", "instance")
    if all(m in dataset.modalities for m in needed):
        return dataset
    return SyntheticScenes(
        split=dataset.split,
        config=dataset.config,
        size=dataset.size,
        seed=dataset.seed,
        num_samples=len(dataset),
        modalities=needed,
        cache_dir=dataset.cache.dir.parent if dataset.cache is not None else None,
        root=dataset.root,
        min_area=dataset.min_area,
    )


def _write_json(path: Path, data: dict[str, Any]) -> None:
    with atomic_write(path, "w", encoding="utf-8") as handle:
        json.dump(data, handle, separators=(",", ":"))


def export_coco(
    dataset: SyntheticScenes,
    out: str | os.PathLike,
    *,
    min_area: int | None = None,
    panoptic: bool = True,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Path]:
    """Write every sample of ``dataset`` in the COCO instances (and panoptic) format under ``out``.

    Args:
        dataset: synthetic scenes (any modalities; the needed ones are rendered, read from its cache or ``root``).
        out: output folder (layout in the module docstring); existing files of the same names are replaced.
        min_area: smallest visible thing exported (pixels); default: the dataset's ``min_area``.
        panoptic: also write the panoptic PNGs and JSON.
        progress: called as ``progress(done, total)`` after each image.

    Returns:
        The paths written: ``instances`` (JSON), ``images`` (folder), and with ``panoptic`` also ``panoptic`` (JSON)
        and ``panoptic_images`` (folder).
    """
    if not isinstance(dataset, SyntheticScenes):
        raise ConfigError(f"export_coco exports SyntheticScenes, got {type(dataset).__name__}")
    min_area = dataset.min_area if min_area is None else min_area
    if isinstance(min_area, bool) or not isinstance(min_area, int) or min_area < 1:
        raise ConfigError(f"min_area must be an integer >= 1 (pixels), got {min_area!r}")
    source = _with_instances(dataset)
    root, split = Path(out), dataset.split
    paths = {"instances": root / "annotations" / f"instances_{split}.json", "images": root / split}
    if panoptic:
        paths["panoptic"] = root / "annotations" / f"panoptic_{split}.json"
        paths["panoptic_images"] = root / f"panoptic_{split}"
    height, width = dataset.size
    info = {
        "description": "freqdense synthetic indoor scenes",
        "split": split,
        "seed": dataset.seed,
        "size": [height, width],
        "min_area": min_area,
        "config": dataset.config.to_dict(),
    }
    images, annotations, panoptic_annotations = [], [], []
    total = len(dataset)
    for index in range(total):
        record = source.record(index)
        file_name = f"{index:06d}.png"
        image_id = index + 1
        write_png_atomic(record["image"], paths["images"] / file_name)
        images.append({"id": image_id, "file_name": file_name, "height": height, "width": width})
        instance, labels = record["instance"], record["instance_labels"]
        found = instance_boxes(instance, labels, min_area=min_area)
        for seg_id, label, area, box in zip(
            found.ids.tolist(), found.class_ids.tolist(), found.areas.tolist(), found.boxes.tolist()
        ):
            x1, y1, x2, y2 = (int(v) for v in box)
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": category_id(label),
                    "bbox": [x1, y1, x2 - x1, y2 - y1],
                    "area": int(area),
                    "iscrowd": 0,
                    "segmentation": rle_encode(instance == seg_id),
                }
            )
        if panoptic:
            ids, segments = panoptic_segments(record["semantic"], instance, labels, min_area=min_area)
            write_png_atomic(encode_panoptic(ids), paths["panoptic_images"] / file_name)
            panoptic_annotations.append({"image_id": image_id, "file_name": file_name, "segments_info": segments})
        if progress is not None:
            progress(index + 1, total)
    _write_json(
        paths["instances"],
        {
            "info": info,
            "licenses": [],
            "images": images,
            "annotations": annotations,
            "categories": coco_categories(),
        },
    )
    if panoptic:
        _write_json(
            paths["panoptic"],
            {
                "info": info,
                "licenses": [],
                "images": images,
                "annotations": panoptic_annotations,
                "categories": coco_categories(panoptic=True),
            },
        )
    return paths
