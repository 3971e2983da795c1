"""Shared plumbing of the on-disk semantic segmentation datasets (VOC, Cityscapes, ADE20K, DeepGlobe).

Each dataset module finds its (id, image file, label file) records and says how to turn a label file into train ids;
this module checks roots, splits and ``num_samples`` with helpful errors, reads list files, and builds the
:mod:`~freqdense.data.sample` dict. No resizing happens here (joint transforms do it).
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch.utils.data import Dataset

from ..errors import ConfigError, DataError
from .io import read_image
from .sample import IGNORE_INDEX, Sample

__all__ = [
    "Record",
    "SegmentationFiles",
    "bit_interleaved_palette",
    "check_num_samples",
    "check_root",
    "check_split",
    "lookup_table",
    "read_id_list",
    "remap",
]

PathLike = str | os.PathLike


@dataclass(frozen=True)
class Record:
    """One sample on disk: its id, the RGB file, the label file and optional extra files (e.g. disparity)."""

    id: str
    image: Path
    label: Path
    extra: dict[str, Path] = field(default_factory=dict)


def check_root(root: PathLike | None, dataset: str, layout: str) -> Path:
    """``root`` as a Path, or DataError naming it and describing the expected ``layout``."""
    if root is None:
        raise DataError(f"dataset {dataset!r} needs root=<directory>; expected layout:\n{layout}")
    path = Path(root).expanduser()
    if not path.is_dir():
        raise DataError(
            f"{dataset} root {os.fspath(root)!r} does not exist or is not a directory; point root= at the "
            f"directory with this layout:\n{layout}"
        )
    return path


def check_split(split: str, valid: Sequence[str], dataset: str) -> str:
    """Return ``split`` if valid, else ConfigError with close matches."""
    if split in valid:
        return split
    close = difflib.get_close_matches(str(split), list(valid), n=2, cutoff=0.4)
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    raise ConfigError(f"unknown {dataset} split {split!r}.{hint} Valid splits: {', '.join(valid)}.")


def check_num_samples(num_samples: int | None, available: int, dataset: str, split: str) -> int:
    """The dataset length: all ``available`` records, or the first ``num_samples`` of them."""
    if num_samples is None:
        return available
    if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < 0:
        raise ConfigError(f"{dataset} num_samples must be an integer >= 0 or None, got {num_samples!r}")
    if num_samples > available:
        raise ConfigError(
            f"{dataset} {split!r} split has {available} samples but num_samples={num_samples}; "
            f"lower num_samples or set it to null to use all"
        )
    return num_samples


def read_id_list(path: Path, dataset: str) -> list[str]:
    """Sample ids from a split list file: one per line, blank lines and ``#`` comments skipped.

    Lines holding paths (DeepLab's ``/JPEGImages/x.jpg /SegmentationClassAug/x.png`` form) give the stem of the
    first token, so both list conventions work.
    """
    if not path.is_file():
        raise DataError(f"{dataset} split list {os.fspath(path)!r} does not exist; check the dataset root and split")
    ids = []
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        token = line.split()[0]
        ids.append(Path(token).stem if ("/" in token or "." in token) else token)
    if not ids:
        raise DataError(f"{dataset} split list {os.fspath(path)!r} is empty; re-create or re-download it")
    return ids


def lookup_table(mapping: dict[int, int], size: int = 256, default: int = IGNORE_INDEX) -> torch.Tensor:
    """An int64 lookup table of ``size`` entries: ``lut[raw] = mapping.get(raw, default)``."""
    lut = torch.full((size,), default, dtype=torch.int64)
    for raw, new in mapping.items():
        lut[raw] = new
    return lut


def bit_interleaved_palette(n: int) -> list[tuple[int, int, int]]:
    """The PASCAL VOC colour map: bits 0/1/2 of the index go to the top bits of R/G/B, then bits 3/4/5, ...

    Index 0 is black, 1 (128, 0, 0), 2 (0, 128, 0), 3 (128, 128, 0), 255 (224, 224, 192).
    """
    palette = []
    for index in range(n):
        r = g = b = 0
        c = index
        for shift in range(7, -1, -1):
            r |= (c & 1) << shift
            g |= ((c >> 1) & 1) << shift
            b |= ((c >> 2) & 1) << shift
            c >>= 3
        palette.append((r, g, b))
    return palette


class SegmentationFiles(Dataset):
    """A list of :class:`Record` read as ``{"image", "semantic", "meta"}`` samples.

    Subclasses set ``name``, ``classes``, ``palette``, ``ignore_index`` and implement :meth:`read_semantic`;
    :meth:`extra_keys` may add more Sample keys (e.g. depth).
    """

    name: str = "segmentation"
    classes: tuple[str, ...] = ()
    palette: list[tuple[int, int, int]] = []
    ignore_index: int = IGNORE_INDEX

    def __init__(
        self,
        records: Sequence[Record],
        *,
        split: str,
        root: Path,
        num_samples: int | None = None,
        transform: Callable[[Sample], Sample] | None = None,
    ) -> None:
        if not records:
            raise DataError(f"{self.name} {split!r} split under {os.fspath(root)!r} has no samples; check the root")
        self.split = split
        self.root = root
        self.transform = transform
        self.records = list(records)[: check_num_samples(num_samples, len(records), self.name, split)]

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def __len__(self) -> int:
        return len(self.records)

    def read_semantic(self, record: Record) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def extra_keys(self, record: Record, sample: Sample) -> None:
        """Hook: add keys to ``sample`` in place (default: nothing)."""

    def __getitem__(self, index: int) -> Sample:
        n = len(self.records)
        if not -n <= index < n:
            raise IndexError(f"index {index} out of range for {self.name} {self.split!r} split of {n} samples")
        index = int(index) % n
        record = self.records[index]
        image = read_image(record.image)
        semantic = self.read_semantic(record)
        if tuple(semantic.shape) != tuple(image.shape[1:]):
            raise DataError(
                f"{self.name}: label {os.fspath(record.label)!r} is {tuple(semantic.shape)} but image "
                f"{os.fspath(record.image)!r} is {tuple(image.shape[1:])}; the pair must have the same size "
                f"(a resized or mismatched file)"
            )
        sample: Sample = {"image": image, "semantic": semantic}
        self.extra_keys(record, sample)
        sample["meta"] = {"id": record.id, "index": index, "split": self.split}
        return self.transform(sample) if self.transform is not None else sample

    def __repr__(self) -> str:
        return f"{type(self).__name__}(root={os.fspath(self.root)!r}, split={self.split!r}, num_samples={len(self)})"


def remap(raw: torch.Tensor, lut: torch.Tensor, path: Path, dataset: str, what: str) -> torch.Tensor:
    """``lut[raw]`` after checking that every raw value indexes the table (DataError naming the file otherwise)."""
    if raw.numel() and (int(raw.min()) < 0 or int(raw.max()) >= lut.numel()):
        raise DataError(
            f"{dataset} label {os.fspath(path)!r} holds values in [{int(raw.min())}, {int(raw.max())}], outside "
            f"the {what} range [0, {lut.numel() - 1}]; is it the right label file type?"
        )
    return lut[raw]
