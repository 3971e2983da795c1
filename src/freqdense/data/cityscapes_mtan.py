"""Cityscapes as preprocessed by MTAN (Liu et al., CVPR 2019): ``.npy`` files at 128x256 (or 256x512).

Layout (docs/conventions.md#cityscapes; docs/data/datasets.md)::

    <root>/{train,val}/image/<i>.npy      (H, W, 3) float in [0, 1]
    <root>/{train,val}/label_7/<i>.npy    (H, W) 7 categories, -1 = ignore    (classes=7)
    <root>/{train,val}/label_19/<i>.npy   (H, W) 19 train ids, -1 = ignore    (classes=19)
    <root>/{train,val}/depth/<i>.npy      (H, W, 1) "inverse depth": a rescaled disparity, 0 = invalid

``i`` runs over 0..N-1 (train 2975, val 500); which Cityscapes frame each index is cannot be recovered (mtan#57).

**The ``depth`` files are not depth.** They hold a disparity (inverse depth) divided by a constant that MTAN never
published (its maximum is about 0.49). This loader therefore never puts them under the ``depth`` key unless asked:

* ``depth="disparity"`` (default): key ``disparity`` (1, H, W) float32, the stored values, 0 = invalid.
* ``depth="metric"``: key ``depth`` in metres = ``depth_factor / value`` (0 stays invalid). ``depth_factor`` is
  required: for files written by auto-lambda's ``cityscapes_preprocess.py`` (value = disparity in pixels at width
  512) it is ``baseline * fx / 4``, about ``0.2093 * 2262.5 / 4 = 118.4``; for MTAN's own files it is unknown.
* ``depth="disparity_as_depth"``: key ``depth`` holds the stored disparity values as they are, so the depth task,
  losses and metrics run on them as MTAN and FAFE (Table 2 and 6: rel, mae on this quantity) do. A warning
  is logged once per dataset; depth metrics are then in MTAN units, not metres, and augmentations that divide depth
  by a zoom factor move it the wrong way (disparity should be multiplied).
* ``depth="none"``: no depth key.

Importing this module registers ``"cityscapes_mtan"``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch.utils.data import Dataset

from ..errors import ConfigError, DataError
from . import DATASETS
from ._segmentation_files import check_num_samples, check_root, check_split
from .cityscapes import CITYSCAPES_CATEGORIES, CITYSCAPES_CATEGORY_PALETTE, CITYSCAPES_CLASSES, CITYSCAPES_PALETTE
from .io import read_npy
from .sample import IGNORE_INDEX, Sample, depth_valid_mask

log = logging.getLogger(__name__)

__all__ = ["CITYSCAPES_MTAN_SPLITS", "CityscapesMTAN"]

CITYSCAPES_MTAN_SPLITS = ("train", "val")
_OFFICIAL_COUNTS = {"train": 2975, "val": 500}
_DEPTH_MODES = ("disparity", "metric", "disparity_as_depth", "none")
_LAYOUT = """  <root>/{train,val}/image/<i>.npy     (H, W, 3) float in [0, 1]
  <root>/{train,val}/label_7/<i>.npy   or label_19/<i>.npy (H, W), -1 = ignore
  <root>/{train,val}/depth/<i>.npy     (H, W, 1) rescaled disparity, 0 = invalid
  (MTAN's preprocessed Cityscapes, e.g. the 128x256 archive from lorenmt/mtan)"""


class CityscapesMTAN(Dataset):
    """MTAN's preprocessed Cityscapes: image, 7 or 19 class labels (255 = ignore) and its rescaled disparity.

    Args:
        root: the directory holding ``train/`` and ``val/`` (see the module docstring).
        split: ``"train"`` (2975) or ``"val"`` (500).
        classes: ``7`` (``label_7/``, categories flat .. vehicle) or ``19`` (``label_19/``, train ids).
        depth: what to do with ``depth/<i>.npy``: ``"disparity"`` (key ``disparity``), ``"metric"`` (key ``depth``
            in metres via ``depth_factor``), ``"disparity_as_depth"`` (key ``depth`` holding the disparity, as the
            MTAN protocol trains and evaluates) or ``"none"``. See the module docstring.
        depth_factor: metres times stored units for ``depth="metric"``: ``depth = depth_factor / value``.
        transform: joint transform applied to each sample.
        num_samples: use only the first ``num_samples`` indices (None = all).

    Samples: ``image`` (3, H, W) float32, ``semantic`` (H, W) int64, ``disparity`` or ``depth`` + ``depth_valid``
    (1, H, W) per ``depth``, ``meta`` with the file index as id.

    Raises:
        ConfigError: unknown split, classes or depth mode; ``depth="metric"`` without a positive ``depth_factor``.
        DataError: missing folders or files (named), arrays of the wrong shape or with values out of range.
    """

    name = "cityscapes_mtan"
    ignore_index = IGNORE_INDEX

    def __init__(
        self,
        *,
        root: str | os.PathLike | None = None,
        split: str = "train",
        classes: Literal[7, 19] = 7,
        depth: Literal["disparity", "metric", "disparity_as_depth", "none"] = "disparity",
        depth_factor: float | None = None,
        transform: Callable[[Sample], Sample] | None = None,
        num_samples: int | None = None,
    ) -> None:
        self.split = check_split(split, CITYSCAPES_MTAN_SPLITS, "cityscapes_mtan")
        if isinstance(classes, bool) or classes not in (7, 19):
            raise ConfigError(f"cityscapes_mtan classes must be 7 (label_7/) or 19 (label_19/), got {classes!r}")
        if depth not in _DEPTH_MODES:
            raise ConfigError(
                f"cityscapes_mtan depth must be one of {', '.join(map(repr, _DEPTH_MODES))}, got {depth!r}"
            )
        if depth == "metric" and not (isinstance(depth_factor, (int, float)) and depth_factor > 0):
            raise ConfigError(
                f"cityscapes_mtan depth='metric' needs depth_factor > 0 (depth = depth_factor / stored value), got "
                f"{depth_factor!r}; about 118.4 for auto-lambda's 256x512 files, unknown for MTAN's own files "
                f"(use depth='disparity' or 'disparity_as_depth' for those)"
            )
        if depth != "metric" and depth_factor is not None:
            raise ConfigError(f"cityscapes_mtan depth_factor is only used with depth='metric', not depth={depth!r}")
        if depth == "disparity_as_depth":
            log.warning(
                "cityscapes_mtan depth='disparity_as_depth': sample['depth'] holds MTAN's rescaled disparity (inverse "
                "depth), not metres; depth metrics are in MTAN units and zoom augmentation scales it the wrong way"
            )
        self.root = check_root(root, "cityscapes_mtan", _LAYOUT)
        self.depth_mode = depth
        self.depth_factor = None if depth_factor is None else float(depth_factor)
        self.transform = transform
        self.classes = CITYSCAPES_CATEGORIES if classes == 7 else CITYSCAPES_CLASSES
        self.palette = CITYSCAPES_CATEGORY_PALETTE if classes == 7 else CITYSCAPES_PALETTE
        base = self.root / self.split
        self.dirs = {"image": base / "image", "label": base / f"label_{classes}"}
        if depth != "none":
            self.dirs["depth"] = base / "depth"
        for folder in self.dirs.values():
            if not folder.is_dir():
                raise DataError(
                    f"cityscapes_mtan: folder {os.fspath(folder)!r} does not exist; expected layout:\n{_LAYOUT}"
                )
        indices = self._list_indices(self.dirs["image"])
        for index in indices:
            for folder in self.dirs.values():
                if not (folder / f"{index}.npy").is_file():
                    raise DataError(
                        f"cityscapes_mtan: {os.fspath(folder / f'{index}.npy')!r} is missing although "
                        f"image/{index}.npy exists; re-extract the archive (depth='none' if it has no depth files)"
                    )
        if len(indices) != _OFFICIAL_COUNTS[self.split]:
            log.warning(
                "cityscapes_mtan %r split under %s has %d samples, MTAN's has %d; is the archive complete?",
                self.split,
                os.fspath(base),
                len(indices),
                _OFFICIAL_COUNTS[self.split],
            )
        self.indices = indices[: check_num_samples(num_samples, len(indices), "cityscapes_mtan", self.split)]

    @staticmethod
    def _list_indices(folder: Path) -> list[int]:
        indices = []
        for path in folder.glob("*.npy"):
            if not path.stem.isdigit():
                raise DataError(
                    f"cityscapes_mtan: {os.fspath(path)!r} is not named <index>.npy; the folder must hold only MTAN's "
                    f"numbered arrays"
                )
            indices.append(int(path.stem))
        if not indices:
            raise DataError(
                f"cityscapes_mtan: no <index>.npy files in {os.fspath(folder)!r}; expected layout:\n{_LAYOUT}"
            )
        return sorted(indices)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index: int) -> Sample:
        n = len(self.indices)
        if not -n <= index < n:
            raise IndexError(f"index {index} out of range for cityscapes_mtan {self.split!r} split of {n} samples")
        index = int(index) % n
        file = f"{self.indices[index]}.npy"
        image = self._read_image(self.dirs["image"] / file)
        size = tuple(image.shape[1:])
        sample: Sample = {"image": image, "semantic": self._read_label(self.dirs["label"] / file, size)}
        if "depth" in self.dirs:
            values = self._read_depth(self.dirs["depth"] / file, size)
            if self.depth_mode == "disparity":
                sample["disparity"] = values
            else:
                if self.depth_mode == "metric":
                    values = torch.where(values > 0, self.depth_factor / values.clamp_min(1e-12), 0.0)
                sample["depth"] = values
                sample["depth_valid"] = depth_valid_mask(values)
        sample["meta"] = {"id": str(self.indices[index]), "index": index, "split": self.split}
        return self.transform(sample) if self.transform is not None else sample

    @staticmethod
    def _read_image(path: Path) -> torch.Tensor:
        arr = read_npy(path)
        if arr.ndim != 3 or arr.shape[2] != 3:
            raise DataError(f"cityscapes_mtan image {os.fspath(path)!r} has shape {arr.shape}; expected (H, W, 3)")
        arr = arr.astype(np.float32)
        if not np.isfinite(arr).all() or arr.min() < -1e-3 or arr.max() > 1.0 + 1e-3:
            raise DataError(
                f"cityscapes_mtan image {os.fspath(path)!r} holds values in [{arr.min()}, {arr.max()}], not [0, 1]; "
                f"MTAN's images are floats in [0, 1] (divide 8-bit images by 255)"
            )
        return torch.from_numpy(np.clip(arr, 0.0, 1.0)).permute(2, 0, 1).contiguous()

    def _read_label(self, path: Path, size: tuple[int, ...]) -> torch.Tensor:
        arr = np.asarray(read_npy(path))
        if arr.ndim == 3 and arr.shape[2] == 1:
            arr = arr[..., 0]
        if arr.shape != size:
            raise DataError(
                f"cityscapes_mtan label {os.fspath(path)!r} has shape {arr.shape} but the image is {size}; "
                f"the files of one index must match"
            )
        ids = np.rint(arr.astype(np.float64))
        bad = ~np.isfinite(arr) | (np.abs(arr - ids) > 1e-6) | (ids < -1) | (ids >= self.num_classes)
        if bad.any():
            raise DataError(
                f"cityscapes_mtan label {os.fspath(path)!r} holds {float(arr[bad][0])}, not an id in "
                f"-1..{self.num_classes - 1}; is it a label_{self.num_classes} file?"
            )
        labels = torch.from_numpy(ids.astype(np.int64))
        return torch.where(labels < 0, IGNORE_INDEX, labels)

    @staticmethod
    def _read_depth(path: Path, size: tuple[int, ...]) -> torch.Tensor:
        arr = np.asarray(read_npy(path)).astype(np.float32)
        if arr.ndim == 3 and arr.shape[2] == 1:
            arr = arr[..., 0]
        if arr.shape != size:
            raise DataError(
                f"cityscapes_mtan depth {os.fspath(path)!r} has shape {arr.shape} but the image is {size}; "
                f"expected (H, W, 1) of the image's size"
            )
        if not np.isfinite(arr).all() or arr.min() < 0:
            raise DataError(
                f"cityscapes_mtan depth {os.fspath(path)!r} holds negative or non-finite values; MTAN's disparity is "
                f">= 0 with 0 = invalid: re-extract the file"
            )
        return torch.from_numpy(arr)[None]

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(root={os.fspath(self.root)!r}, split={self.split!r}, "
            f"classes={self.num_classes}, depth={self.depth_mode!r}, num_samples={len(self)})"
        )


DATASETS.register(CityscapesMTAN, name="cityscapes_mtan")
