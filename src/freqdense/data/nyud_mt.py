"""NYUD-v2 in the Multi-Task-Learning-PyTorch layout ("NYUD_MT"): 40-class segmentation + metric depth.

Layout (docs/conventions.md#nyud-v2-multi-task-learning-pytorch-layout; docs/data/datasets.md)::

    <root>/images/<id>.jpg          RGB (480x640 in the original archive; 448x576 in the ATRC/InvPT copy)
    <root>/segmentation/<id>.png    uint8: 0 = void, 1..40 = classes  ->  0 -> 255, x -> x - 1
    <root>/depth/<id>.npy           float32 metres (H, W), 0 = missing
    <root>/gt_sets/train.txt        795 ids, one per line
    <root>/gt_sets/val.txt          654 ids (the official test frames)
    <root>/hha/<id>.png             optional, only read with hha="load" and no hha_root

The size is never hard-coded. Intrinsics are the NYU colour camera resampled to the image size
(:func:`~freqdense.data.nyuv2.nyu_color_intrinsics`); pass ``intrinsics=(fx, fy, cx, cy)`` for a cropped copy.
Importing this module registers ``"nyud_mt"``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

import numpy as np
import torch

from ..errors import DataError
from . import DATASETS
from ._hha_files import HHAMode, check_hha_mode, find_hha_files, read_hha
from ._segmentation_files import Record, SegmentationFiles, check_root, check_split, read_id_list, remap
from .io import read_label, read_npy
from .nyuv2 import NYU40_CLASSES, NYU40_PALETTE, check_nyu_split_size, nyu_color_intrinsics, nyu_label_table
from .sample import IGNORE_INDEX, Sample, depth_valid_mask
from .transforms import compute_hha

__all__ = ["NYUDMultiTask"]

_LAYOUT = """  <root>/images/<id>.jpg
  <root>/segmentation/<id>.png   (uint8, 0 = void, 1..40)
  <root>/depth/<id>.npy          (float32 metres, 0 = missing)
  <root>/gt_sets/{train,val}.txt"""


def _read_depth_npy(path: os.PathLike, size: tuple[int, int], dataset: str) -> torch.Tensor:
    """A (1, H, W) float32 metres map from an (H, W) / (1, H, W) / (H, W, 1) ``.npy``; non-finite/negative -> 0."""
    arr = np.asarray(read_npy(path), dtype=np.float32)
    if arr.ndim == 3 and arr.shape[0] == 1:
        arr = arr[0]
    elif arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[..., 0]
    if arr.shape != tuple(size):
        raise DataError(
            f"{dataset}: depth {os.fspath(path)!r} has shape {arr.shape} but the image is {tuple(size)}; depth must "
            f"be an (H, W) float32 map in metres at the image resolution"
        )
    arr = np.where(np.isfinite(arr) & (arr > 0), arr, np.float32(0.0))
    return torch.from_numpy(np.ascontiguousarray(arr))[None]


class NYUDMultiTask(SegmentationFiles):
    """NYUD-v2 for joint segmentation and depth as Multi-Task-Learning-PyTorch ships it (40 classes, 795/654).

    Args:
        root: the ``NYUD_MT`` folder (see the module docstring).
        split: ``"train"`` (795) or ``"val"`` (654, the official test frames).
        transform: joint transform applied to each sample (after ``hha``).
        num_samples: use only the first ``num_samples`` ids of the list (None = all).
        hha: ``"none"``, ``"load"`` (``<root>/hha/<id>.png`` or ``hha_root``) or ``"compute"`` (from ``depth``).
        hha_root: a folder of ``<id>.png`` HHA images or a ``freqdense data hha`` cache.
        intrinsics: ``(fx, fy, cx, cy)`` at the image size; None = the NYU colour camera resampled to it.

    Samples: ``image`` (3, H, W), ``semantic`` (H, W) int64 in 0..39 / 255, ``depth``/``depth_valid`` (1, H, W),
    ``intrinsics`` (3, 3), optional ``hha`` (3, H, W) in [0, 1], ``meta``.
    """

    name = "nyud_mt"
    classes = NYU40_CLASSES
    palette = NYU40_PALETTE
    ignore_index = IGNORE_INDEX

    def __init__(
        self,
        *,
        root: str | os.PathLike | None = None,
        split: str = "train",
        transform: Callable[[Sample], Sample] | None = None,
        num_samples: int | None = None,
        hha: HHAMode = "none",
        hha_root: str | os.PathLike | None = None,
        intrinsics: Sequence[float] | None = None,
    ) -> None:
        split = check_split(split, ("train", "val"), self.name)
        self.hha = check_hha_mode(hha, self.name)
        base = check_root(root, self.name, _LAYOUT)
        for folder in ("images", "segmentation", "depth"):
            if not (base / folder).is_dir():
                raise DataError(
                    f"{self.name}: folder {os.fspath(base / folder)!r} does not exist; expected layout:\n{_LAYOUT}"
                )
        list_file = base / "gt_sets" / f"{split}.txt"
        ids = read_id_list(list_file, self.name)
        check_nyu_split_size(len(ids), split, self.name, os.fspath(list_file))
        records = [
            Record(
                i,
                base / "images" / f"{i}.jpg",
                base / "segmentation" / f"{i}.png",
                {"depth": base / "depth" / f"{i}.npy"},
            )
            for i in ids
        ]
        # Like the reference loader: every modality of every listed id must exist, checked up front.
        missing = [p for r in records for p in (r.image, r.label, r.extra["depth"]) if not p.is_file()]
        if missing:
            raise DataError(
                f"{self.name}: {len(missing)} file(s) listed by {os.fspath(list_file)!r} do not exist, e.g. "
                f"{os.fspath(missing[0])!r}; re-extract the archive (layout:\n{_LAYOUT})"
            )
        super().__init__(records, split=split, root=base, num_samples=num_samples, transform=transform)
        self.intrinsics = None if intrinsics is None else tuple(intrinsics)
        nyu_color_intrinsics(override=self.intrinsics)  # validate now, not at the first sample
        self._lut = nyu_label_table(len(self.classes))
        self._hha_files: dict[str, os.PathLike] = {}
        if self.hha == "load":
            files = find_hha_files(
                hha_root=hha_root,
                default_dir=base / "hha",
                split=split,
                ids=[r.id for r in self.records],
                dataset=self.name,
            )
            self._hha_files = {r.id: f for r, f in zip(self.records, files)}

    def read_semantic(self, record: Record) -> torch.Tensor:
        label = remap(read_label(record.label), self._lut, record.label, self.name, "8-bit label")
        if bool((label < 0).any()):
            bad = int(read_label(record.label)[label < 0][0])
            raise DataError(
                f"{self.name} label {os.fspath(record.label)!r} holds the value {bad}; NYUD_MT labels are 0 (void) and "
                f"1..{len(self.classes)} (and 255): is it a colour-coded or 894-class map?"
            )
        return label

    def extra_keys(self, record: Record, sample: Sample) -> None:
        size = (int(sample["image"].shape[-2]), int(sample["image"].shape[-1]))
        depth = _read_depth_npy(record.extra["depth"], size, self.name)
        sample["depth"] = depth
        sample["depth_valid"] = depth_valid_mask(depth)
        sample["intrinsics"] = nyu_color_intrinsics(*size, override=self.intrinsics)
        if self.hha == "load":
            sample["hha"] = read_hha(self._hha_files[record.id], size, self.name)
        elif self.hha == "compute":
            sample["hha"] = compute_hha(sample, depth_key="depth")["hha"]


DATASETS.register(NYUDMultiTask, name="nyud_mt")
