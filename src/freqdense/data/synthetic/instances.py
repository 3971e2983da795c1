"""Instance ids and boxes of the synthetic scenes: which classes are things, which surfaces form one object.

The scenes know every object, so instance ground truth is exact. *Things* (countable objects, in the sense of
"Panoptic Segmentation", Kirillov et al., CVPR 2019) are tables, cabinets, balls, bins, poles and pictures; *stuff*
(amorphous regions) is floor, wall, ceiling and rug. Unlabelled clutter and windows (label 255) are neither.

Instance ids are numbered per scene, so they are stable across resolutions, views and renders:

- id 0: no thing (stuff, clutter, windows);
- ids 1..M: the scene's M things in surface order (picture decals first, then objects). The primitives of one
  object share one id: a table's top and its four legs are one instance (``SceneObject.instance`` groups them).

Boxes come from the visible pixels of each id, in pixels, ``xyxy`` with ``x2 = max x + 1``, ``y2 = max y + 1``
(COCO's ``[x, y, w, h]`` with ``w = max x - min x + 1``, as ``pycocotools.mask.toBbox`` gives for a mask). Their
detection ``labels`` are contiguous thing indices ``0..5`` in :data:`THING_CLASSES` order (what
:class:`~freqdense.data.coco.COCODetection` returns for the COCO export, whose category ids are sorted the same way;
:func:`thing_labels` maps class ids to them). Things
with fewer than ``min_area`` visible pixels (default :data:`DEFAULT_MIN_AREA`) get no box: they stay in the
``instance`` map (so it agrees with ``semantic``) but are left out of ``boxes``/``labels`` and of the COCO export.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ...errors import ConfigError, ShapeError
from .classes import CLASSES, class_id
from .scene import Scene

__all__ = [
    "THING_CLASSES",
    "STUFF_CLASSES",
    "THING_CLASS_IDS",
    "STUFF_CLASS_IDS",
    "DEFAULT_MIN_AREA",
    "InstanceBoxes",
    "is_thing",
    "thing_labels",
    "scene_instances",
    "instance_boxes",
]

#: Countable object classes: each object gets its own instance id.
THING_CLASSES: tuple[str, ...] = ("table", "cabinet", "ball", "bin", "pole", "picture")
#: Amorphous region classes: instance id 0, one panoptic segment per class and image.
STUFF_CLASSES: tuple[str, ...] = ("floor", "wall", "ceiling", "rug")
THING_CLASS_IDS: tuple[int, ...] = tuple(class_id(name) for name in THING_CLASSES)
STUFF_CLASS_IDS: tuple[int, ...] = tuple(class_id(name) for name in STUFF_CLASSES)
assert sorted(THING_CLASS_IDS + STUFF_CLASS_IDS) == list(range(len(CLASSES)))

#: Things with fewer visible pixels get no box (a 2x2 patch is the smallest box that is more than a point).
DEFAULT_MIN_AREA = 4


def is_thing(label: int) -> bool:
    """Whether class id ``label`` is a thing class (255 = ignore is not)."""
    return int(label) in THING_CLASS_IDS


def thing_labels(class_ids: np.ndarray) -> np.ndarray:
    """Thing class ids -> contiguous detection labels (int64 index into :data:`THING_CLASSES`)."""
    lut = np.full(256, -1, dtype=np.int64)
    lut[list(THING_CLASS_IDS)] = np.arange(len(THING_CLASS_IDS))
    labels = lut[np.asarray(class_ids, dtype=np.int64)]
    if (labels < 0).any():
        raise ShapeError(f"class ids {sorted(set(np.asarray(class_ids)[labels < 0].tolist()))} are not thing classes")
    return labels


def scene_instances(scene: Scene) -> tuple[np.ndarray, np.ndarray]:
    """Instance id of every surface and the class of every instance.

    Returns:
        ``surface_to_instance`` (num_surfaces,) int32 (0 = not a thing), indexed like ``Scene.surface_labels``;
        ``instance_labels`` (M,) uint8: the class id of instance ``i + 1``.
    """
    lut = np.zeros(scene.num_surfaces, dtype=np.int32)
    labels: list[int] = []
    for k, decal in enumerate(scene.decals):
        if is_thing(decal.label):
            labels.append(int(decal.label))
            lut[6 + k] = len(labels)
    first_object = 6 + len(scene.decals)
    by_group: dict[int, int] = {}
    for k, obj in enumerate(scene.objects):
        if not is_thing(obj.label):
            continue
        if obj.instance not in by_group:
            labels.append(int(obj.label))
            by_group[obj.instance] = len(labels)
        elif labels[by_group[obj.instance] - 1] != obj.label:
            raise ValueError(f"scene object {k} shares instance {obj.instance} with an object of another class")
        lut[first_object + k] = by_group[obj.instance]
    return lut, np.asarray(labels, dtype=np.uint8)


class InstanceBoxes(NamedTuple):
    """Boxes of the things visible in an instance map (N of them, in increasing id order).

    ``boxes`` (N, 4) float32 xyxy pixels (x2, y2 exclusive), ``class_ids`` (N,) int64 semantic class ids, ``ids``
    (N,) int64 instance ids (mask of box ``i`` = ``instance == ids[i]``), ``areas`` (N,) int64 visible pixel counts.
    """

    boxes: np.ndarray
    class_ids: np.ndarray
    ids: np.ndarray
    areas: np.ndarray


def instance_boxes(
    instance: np.ndarray, instance_labels: np.ndarray, *, min_area: int = DEFAULT_MIN_AREA
) -> InstanceBoxes:
    """Tight boxes of every instance of ``instance`` (H, W) with at least ``min_area`` pixels.

    ``instance_labels`` (M,) holds the class of ids 1..M (``scene_instances``). The box of a mask whose pixels span
    columns x0..x1 and rows y0..y1 is ``[x0, y0, x1 + 1, y1 + 1]``.
    """
    if isinstance(min_area, bool) or not isinstance(min_area, (int, np.integer)) or min_area < 1:
        raise ConfigError(f"min_area must be an integer >= 1 (pixels), got {min_area!r}")
    instance = np.asarray(instance)
    if instance.ndim != 2 or instance.dtype.kind not in "iu":
        raise ShapeError(f"instance map must be an integer (H, W) array, got {instance.dtype} {instance.shape}")
    labels_of = np.asarray(instance_labels).reshape(-1)
    flat = instance.reshape(-1).astype(np.int64)
    if flat.size and (flat.min() < 0 or flat.max() > labels_of.size):
        raise ShapeError(
            f"instance map holds ids outside [0, {labels_of.size}] but instance_labels has {labels_of.size} entries"
        )
    areas = np.bincount(flat, minlength=labels_of.size + 1)
    ids = np.flatnonzero(areas >= min_area)
    ids = ids[ids > 0]
    boxes = np.zeros((ids.size, 4), dtype=np.float32)
    for row, i in enumerate(ids):
        mask = instance == i
        ys = np.flatnonzero(mask.any(axis=1))
        xs = np.flatnonzero(mask.any(axis=0))
        boxes[row] = (xs[0], ys[0], xs[-1] + 1, ys[-1] + 1)
    return InstanceBoxes(boxes, labels_of[ids - 1].astype(np.int64), ids.astype(np.int64), areas[ids].astype(np.int64))
