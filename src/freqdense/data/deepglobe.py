"""DeepGlobe land cover classification (803 labelled 2448x2448 satellite tiles, RGB colour masks).

Layout (docs/conventions.md#deepglobe-land-cover; docs/data/datasets.md)::

    <root>/train/<id>_sat.jpg  <root>/train/<id>_mask.png     (root may also be the train/ folder itself)
    <root>/splits/{train,val}.txt                             (optional: our split as lists of <id>)

Only the 803 official training tiles have public masks. The spectral-analysis paper (Chen, Chiu, Wu) splits them 701 /
102 without publishing the lists, so the default split here is a deterministic one of our own (:func:`deepglobe_split`);
list files under ``<root>/splits/`` (or ``split_dir=``) take precedence. Importing this module registers
``"deepglobe"``.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

from ..errors import DataError
from . import DATASETS
from ._segmentation_files import Record, SegmentationFiles, check_root, check_split, read_id_list
from .io import read_image
from .sample import IGNORE_INDEX, Sample

__all__ = [
    "DEEPGLOBE_CLASSES",
    "DEEPGLOBE_COLORS",
    "DEEPGLOBE_SPLITS",
    "DeepGlobeLandCover",
    "deepglobe_split",
    "mask_to_labels",
]

#: Class names in id order; ``unknown`` is class 6 only with ``keep_unknown=True`` (otherwise 255).
DEEPGLOBE_CLASSES: tuple[str, ...] = ("urban", "agriculture", "rangeland", "forest", "water", "barren", "unknown")
#: Official mask colours, in the order of :data:`DEEPGLOBE_CLASSES`.
DEEPGLOBE_COLORS: tuple[tuple[int, int, int], ...] = (
    (0, 255, 255),
    (255, 255, 0),
    (255, 0, 255),
    (0, 255, 0),
    (0, 0, 255),
    (255, 255, 255),
    (0, 0, 0),
)
DEEPGLOBE_SPLITS = ("train", "val", "trainval")
#: The spectral-analysis paper: 803 labelled tiles -> 701 train + 102 val.
_PAPER_VAL_FRACTION = 102 / 803
_LAYOUT = """  <root>/train/<id>_sat.jpg and <root>/train/<id>_mask.png  (or root = that folder)
  optional split lists: <root>/splits/train.txt, <root>/splits/val.txt (one <id> per line)"""


def _lut(keep_unknown: bool) -> torch.Tensor:
    # Index = 4*R + 2*G + B of the channels binarised at 128. (255, 0, 0) is no DeepGlobe colour -> ignore.
    lut = torch.full((8,), IGNORE_INDEX, dtype=torch.int64)
    for cls, (r, g, b) in enumerate(DEEPGLOBE_COLORS):
        lut[4 * (r >= 128) + 2 * (g >= 128) + (b >= 128)] = cls
    if not keep_unknown:
        lut[0] = IGNORE_INDEX
    return lut


def mask_to_labels(mask: torch.Tensor, *, keep_unknown: bool = False) -> torch.Tensor:
    """DeepGlobe colour mask -> class ids, after binarising each channel at 128 (the challenge's own advice).

    Args:
        mask: (3, H, W) uint8 0..255 or float in [0, 1] (as :func:`~freqdense.data.io.read_image` returns).
        keep_unknown: map unknown (0, 0, 0) to class 6 instead of 255.

    Returns:
        (H, W) int64 ids 0..5 (or 6), 255 for unknown (default) and for non-DeepGlobe colours.

    Examples:
        >>> mask_to_labels(torch.tensor([[[250]], [[5]], [[250]]], dtype=torch.uint8))  # near-magenta
        tensor([[2]])
    """
    return _lut(keep_unknown)[_codes(mask)]


def _hash_key(sample_id: str) -> str:
    return hashlib.sha256(sample_id.encode()).hexdigest()


def deepglobe_split(ids: Sequence[str], split: str) -> list[str]:
    """Our deterministic 701/102 split of the labelled tiles (the spectral-analysis paper does not publish its lists).

    The ids are ordered by the SHA-256 of the id string; the first ``round(n * 102 / 803)`` (102 of 803, at least
    1 when n >= 2) form ``val``, the rest ``train``. Independent of file-system order and library versions; each
    returned list is sorted by id.
    """
    ids = sorted(set(ids))
    if split == "trainval":
        return ids
    n_val = round(len(ids) * _PAPER_VAL_FRACTION)
    if len(ids) >= 2:
        n_val = max(n_val, 1)
    by_hash = sorted(ids, key=_hash_key)
    chosen = by_hash[:n_val] if split == "val" else by_hash[n_val:]
    return sorted(chosen)


class DeepGlobeLandCover(SegmentationFiles):
    """DeepGlobe land cover: 6 classes + unknown (ignored by default, as in the challenge's mIoU).

    Args:
        root: the directory holding ``train/`` (or the folder of ``*_sat.jpg`` / ``*_mask.png`` itself).
        split: ``"train"`` (701 tiles), ``"val"`` (102) or ``"trainval"`` (all 803 labelled tiles).
        transform: joint transform applied to each sample.
        num_samples: use only the first ``num_samples`` ids of the split in sorted order (None = all).
        keep_unknown: train ``unknown`` as a 7th class (the spectral-analysis paper counts "7 categories") instead of
        ignoring it.
        split_dir: folder with ``train.txt`` / ``val.txt`` id lists; default ``<root>/splits`` when it exists,
            else :func:`deepglobe_split`.

    Samples: ``image`` (3, H, W), ``semantic`` (H, W) int64, ``meta`` with the tile id.
    """

    name = "deepglobe"
    palette = list(DEEPGLOBE_COLORS)
    ignore_index = IGNORE_INDEX

    def __init__(
        self,
        *,
        root: str | os.PathLike | None = None,
        split: str = "train",
        transform: Callable[[Sample], Sample] | None = None,
        num_samples: int | None = None,
        keep_unknown: bool = False,
        split_dir: str | os.PathLike | None = None,
    ) -> None:
        split = check_split(split, DEEPGLOBE_SPLITS, "deepglobe")
        root_path = check_root(root, "deepglobe", _LAYOUT)
        folder = root_path / "train" if (root_path / "train").is_dir() else root_path
        available = sorted(p.name[: -len("_sat.jpg")] for p in folder.glob("*_sat.jpg"))
        if not available:
            raise DataError(f"deepglobe: no <id>_sat.jpg files in {os.fspath(folder)!r}; expected layout:\n{_LAYOUT}")
        self.keep_unknown = bool(keep_unknown)
        self.classes = DEEPGLOBE_CLASSES if self.keep_unknown else DEEPGLOBE_CLASSES[:6]
        self.palette = list(DEEPGLOBE_COLORS[: len(self.classes)])
        self._lut = _lut(self.keep_unknown)
        lists = Path(split_dir) if split_dir is not None else root_path / "splits"
        if split_dir is not None or lists.is_dir():
            ids = self._ids_from_lists(lists, split, set(available))
        else:
            ids = deepglobe_split(available, split)
        records = [Record(i, folder / f"{i}_sat.jpg", folder / f"{i}_mask.png") for i in ids]
        super().__init__(records, split=split, root=root_path, num_samples=num_samples, transform=transform)

    @staticmethod
    def _ids_from_lists(lists: Path, split: str, available: set[str]) -> list[str]:
        names = ("train", "val") if split == "trainval" else (split,)
        ids = sorted({i for name in names for i in read_id_list(lists / f"{name}.txt", "deepglobe")})
        missing = [i for i in ids if i not in available]
        if missing:
            raise DataError(
                f"deepglobe split list in {os.fspath(lists)!r} names {len(missing)} tile(s) with no _sat.jpg, e.g. "
                f"{missing[0]!r}; fix the list or the root"
            )
        return ids

    def read_semantic(self, record: Record) -> torch.Tensor:
        mask = read_image(record.label)  # RGB colour mask, float in [0, 1]
        return self._lut[_codes(mask)]


def _codes(mask: torch.Tensor) -> torch.Tensor:
    # 127.5 / 255 sits between the float32 values of 127 / 255 and 128 / 255: no rounding question at the edge.
    bits = mask >= 128 if mask.dtype == torch.uint8 else mask > 127.5 / 255
    return 4 * bits[0].long() + 2 * bits[1].long() + bits[2].long()


DATASETS.register(DeepGlobeLandCover, name="deepglobe")
