"""PASCAL VOC 2012 semantic segmentation, with the SBD-augmented training set (``split="train_aug"``).

Layout (docs/conventions.md#pascal-voc-2012--sbd; docs/data/datasets.md)::

    <root>/VOCdevkit/VOC2012/            (root may also be VOCdevkit/ or VOC2012/ itself)
        JPEGImages/<id>.jpg
        SegmentationClass/<id>.png       palettised (mode P): indices 0..20, 255 = boundary/void
        SegmentationClassAug/<id>.png    SBD-augmented labels (mode L or P), same ids/values
        ImageSets/Segmentation/{train,val,trainval}.txt
        ImageSets/Segmentation/train_aug.txt   (or trainaug.txt; also accepted next to SegmentationClassAug/)

Splits: train 1464, val 1449, trainval 2913, train_aug 10582 (= VOC train + SBD train + SBD val - VOC val).
Importing this module registers ``"voc"``.
"""

from __future__ import annotations

import logging
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
    read_id_list,
    remap,
)
from .io import read_label
from .sample import IGNORE_INDEX, Sample

log = logging.getLogger(__name__)

__all__ = ["VOC_CLASSES", "VOC_PALETTE", "VOC_SPLITS", "VOCSegmentation"]

#: The 21 classes; the index is the label value.
VOC_CLASSES: tuple[str, ...] = (
    "background",
    "aeroplane",
    "bicycle",
    "bird",
    "boat",
    "bottle",
    "bus",
    "car",
    "cat",
    "chair",
    "cow",
    "diningtable",
    "dog",
    "horse",
    "motorbike",
    "person",
    "pottedplant",
    "sheep",
    "sofa",
    "train",
    "tvmonitor",
)
#: Official colours (the bit-interleaved VOC colour map); the void/boundary colour 255 is (224, 224, 192).
VOC_PALETTE: list[tuple[int, int, int]] = bit_interleaved_palette(len(VOC_CLASSES))
VOC_SPLITS = ("train", "val", "trainval", "train_aug")

_AUG_LISTS = ("train_aug.txt", "trainaug.txt")
_LAYOUT = """  <root>/VOCdevkit/VOC2012/  (or root = VOCdevkit/ or VOC2012/)
    JPEGImages/<id>.jpg
    SegmentationClass/<id>.png             (mode P; for train/val/trainval)
    ImageSets/Segmentation/{train,val,trainval}.txt
    SegmentationClassAug/<id>.png          (for split='train_aug')
    ImageSets/Segmentation/train_aug.txt   (or trainaug.txt, 10582 ids)"""

# 0..20 stay, 255 stays, anything else is a wrong file: mapped to a sentinel and reported.
_LUT = torch.full((256,), -1, dtype=torch.int64)
_LUT[: len(VOC_CLASSES)] = torch.arange(len(VOC_CLASSES))
_LUT[IGNORE_INDEX] = IGNORE_INDEX


def _find_voc2012(root: Path) -> Path:
    for candidate in (root / "VOCdevkit" / "VOC2012", root / "VOC2012", root):
        if (candidate / "JPEGImages").is_dir():
            return candidate
    raise DataError(
        f"voc: no JPEGImages/ folder under {os.fspath(root)!r} (looked in VOCdevkit/VOC2012/, VOC2012/ and the root "
        f"itself); expected layout:\n{_LAYOUT}"
    )


def _find_aug_list(base: Path) -> Path:
    for folder in (base / "ImageSets" / "Segmentation", base):
        for name in _AUG_LISTS:
            if (folder / name).is_file():
                return folder / name
    raise DataError(
        f"voc split 'train_aug' needs a list file {' or '.join(_AUG_LISTS)} in "
        f"{os.fspath(base / 'ImageSets' / 'Segmentation')!r} (or {os.fspath(base)!r}); create it with the SBD "
        f"conversion (10582 ids = VOC train + SBD train + SBD val - VOC val)"
    )


class VOCSegmentation(SegmentationFiles):
    """PASCAL VOC 2012 segmentation: 21 classes (0 = background), 255 = object boundary / void.

    Args:
        root: a directory holding ``VOCdevkit/VOC2012`` (or that folder itself); see the module docstring.
        split: ``"train"`` (1464), ``"val"`` (1449), ``"trainval"`` or ``"train_aug"`` (10582, SBD-augmented,
            labels from ``SegmentationClassAug``).
        transform: joint transform applied to each sample.
        num_samples: use only the first ``num_samples`` ids of the list (None = all).

    Samples: ``image`` (3, H, W) float in [0, 1], ``semantic`` (H, W) int64, ``meta`` with the VOC id.
    """

    name = "voc"
    classes = VOC_CLASSES
    palette = VOC_PALETTE
    ignore_index = IGNORE_INDEX

    def __init__(
        self,
        *,
        root: str | os.PathLike | None = None,
        split: str = "train",
        transform: Callable[[Sample], Sample] | None = None,
        num_samples: int | None = None,
    ) -> None:
        split = check_split(split, VOC_SPLITS, "voc")
        base = _find_voc2012(check_root(root, "voc", _LAYOUT))
        if split == "train_aug":
            list_file, label_dir = _find_aug_list(base), base / "SegmentationClassAug"
        else:
            list_file = base / "ImageSets" / "Segmentation" / f"{split}.txt"
            label_dir = base / "SegmentationClass"
        if not label_dir.is_dir():
            raise DataError(f"voc split {split!r} needs the label folder {os.fspath(label_dir)!r}; layout:\n{_LAYOUT}")
        ids = read_id_list(list_file, "voc")
        if split == "train_aug":
            self._warn_val_overlap(base, ids)
        records = [Record(i, base / "JPEGImages" / f"{i}.jpg", label_dir / f"{i}.png") for i in ids]
        super().__init__(records, split=split, root=base, num_samples=num_samples, transform=transform)

    @staticmethod
    def _warn_val_overlap(base: Path, ids: list[str]) -> None:
        val_list = base / "ImageSets" / "Segmentation" / "val.txt"
        if val_list.is_file():
            leaked = set(ids) & set(read_id_list(val_list, "voc"))
            if leaked:
                log.warning(
                    "voc train_aug list shares %d ids with val.txt (e.g. %s): validation images leak into training; "
                    "the standard 10582-image list excludes VOC val",
                    len(leaked),
                    sorted(leaked)[0],
                )

    def read_semantic(self, record: Record) -> torch.Tensor:
        label = remap(read_label(record.label), _LUT, record.label, "voc", "8-bit label")
        if bool((label < 0).any()):
            raise DataError(
                f"voc label {os.fspath(record.label)!r} holds values other than 0..20 and 255; VOC labels are palette "
                f"indices (read with PIL mode P), not colours: re-extract the original PNGs"
            )
        return label


DATASETS.register(VOCSegmentation, name="voc")
