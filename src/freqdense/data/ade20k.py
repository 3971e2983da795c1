"""ADE20K scene parsing (ADEChallengeData2016, 150 classes), the FreqFusion segmentation benchmark.

Layout (docs/conventions.md#ade20k; docs/data/datasets.md)::

    <root>/ADEChallengeData2016/        (root may also be ADEChallengeData2016/ itself)
        images/{training,validation}/ADE_<split>_<n>.jpg
        annotations/{training,validation}/ADE_<split>_<n>.png   (mode L: 0 = other, 1..150 = classes)

Labels follow mmseg's ``reduce_zero_label``: 0 ("other") -> 255, k -> k - 1. Splits: train 20210, val 2000.
Importing this module registers ``"ade20k"``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import torch

from ..errors import DataError
from . import DATASETS
from ._segmentation_files import (
    Record,
    SegmentationFiles,
    bit_interleaved_palette,
    check_root,
    check_split,
    lookup_table,
    remap,
)
from .io import read_label
from .sample import IGNORE_INDEX, Sample

__all__ = ["ADE20K_CLASSES", "ADE20K_PALETTE", "ADE20K_SPLITS", "ADE20KSegmentation"]

#: The 150 SceneParsing classes (short names of objectInfo150); index = label value - 1.
ADE20K_CLASSES: tuple[str, ...] = (
    "wall", "building", "sky", "floor", "tree", "ceiling", "road", "bed", "windowpane", "grass",
    "cabinet", "sidewalk", "person", "earth", "door", "table", "mountain", "plant", "curtain", "chair",
    "car", "water", "painting", "sofa", "shelf", "house", "sea", "mirror", "rug", "field",
    "armchair", "seat", "fence", "desk", "rock", "wardrobe", "lamp", "bathtub", "railing", "cushion",
    "base", "box", "column", "signboard", "chest of drawers", "counter", "sand", "sink", "skyscraper", "fireplace",
    "refrigerator", "grandstand", "path", "stairs", "runway", "case", "pool table", "pillow", "screen door", "stairway",
    "river", "bridge", "bookcase", "blind", "coffee table", "toilet", "flower", "book", "hill", "bench",
    "countertop", "stove", "palm", "kitchen island", "computer", "swivel chair", "boat", "bar", "arcade machine",
    "hovel",
    "bus", "towel", "light", "truck", "tower", "chandelier", "awning", "streetlight", "booth", "television receiver",
    "airplane", "dirt track", "apparel", "pole", "land", "bannister", "escalator", "ottoman", "bottle", "buffet",
    "poster", "stage", "van", "ship", "fountain", "conveyer belt", "canopy", "washer", "plaything", "swimming pool",
    "stool", "barrel", "basket", "waterfall", "tent", "bag", "minibike", "cradle", "oven", "ball",
    "food", "step", "tank", "trade name", "microwave", "pot", "animal", "bicycle", "lake", "dishwasher",
    "screen", "blanket", "sculpture", "hood", "sconce", "vase", "traffic light", "tray", "ashcan", "fan",
    "pier", "crt screen", "plate", "monitor", "bulletin board", "shower", "radiator", "glass", "clock", "flag",
)  # fmt: skip
#: Display colours: the VOC bit-interleaved map at label value k (= class k - 1), not the ADE toolkit's colours.
ADE20K_PALETTE: list[tuple[int, int, int]] = bit_interleaved_palette(len(ADE20K_CLASSES) + 1)[1:]
ADE20K_SPLITS = ("train", "val")

_FOLDER = {"train": "training", "val": "validation"}
_LUT = lookup_table({k: k - 1 for k in range(1, len(ADE20K_CLASSES) + 1)}, size=len(ADE20K_CLASSES) + 1)
_LAYOUT = """  <root>/ADEChallengeData2016/  (or root = ADEChallengeData2016/)
    images/{training,validation}/<name>.jpg
    annotations/{training,validation}/<name>.png   (0 = other, 1..150)"""


def _find_base(root: Path) -> Path:
    for candidate in (root / "ADEChallengeData2016", root):
        if (candidate / "images").is_dir() and (candidate / "annotations").is_dir():
            return candidate
    raise DataError(
        f"ade20k: no images/ and annotations/ folders under {os.fspath(root)!r} (looked in ADEChallengeData2016/ and "
        f"the root itself); expected layout:\n{_LAYOUT}"
    )


class ADE20KSegmentation(SegmentationFiles):
    """ADE20K SceneParsing: 150 classes, 255 = "other"/ignore (``reduce_zero_label``).

    Args:
        root: a directory holding ``ADEChallengeData2016`` (or that folder itself).
        split: ``"train"`` (``training``, 20210 images) or ``"val"`` (``validation``, 2000 images).
        transform: joint transform applied to each sample.
        num_samples: use only the first ``num_samples`` images in sorted name order (None = all).

    Samples: ``image`` (3, H, W) (grey JPEGs are expanded to RGB), ``semantic`` (H, W) int64, ``meta`` with the
    file stem as id.
    """

    name = "ade20k"
    classes = ADE20K_CLASSES
    palette = ADE20K_PALETTE
    ignore_index = IGNORE_INDEX

    def __init__(
        self,
        *,
        root: str | os.PathLike | None = None,
        split: str = "train",
        transform: Callable[[Sample], Sample] | None = None,
        num_samples: int | None = None,
    ) -> None:
        split = check_split(split, ADE20K_SPLITS, "ade20k")
        base = _find_base(check_root(root, "ade20k", _LAYOUT))
        image_dir = base / "images" / _FOLDER[split]
        label_dir = base / "annotations" / _FOLDER[split]
        for folder in (image_dir, label_dir):
            if not folder.is_dir():
                raise DataError(f"ade20k: {os.fspath(folder)!r} does not exist; expected layout:\n{_LAYOUT}")
        records = [Record(p.stem, p, label_dir / f"{p.stem}.png") for p in sorted(image_dir.glob("*.jpg"))]
        super().__init__(records, split=split, root=base, num_samples=num_samples, transform=transform)

    def read_semantic(self, record: Record) -> torch.Tensor:
        return remap(read_label(record.label), _LUT, record.label, "ade20k", "ADE20K label")


DATASETS.register(ADE20KSegmentation, name="ade20k")
