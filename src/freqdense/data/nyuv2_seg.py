"""NYUv2 RGB-D semantic segmentation (40 or 13 classes, 795/654): the official .mat and two processed folder layouts.

``"nyuv2"`` reads the official files (docs/conventions.md#nyuv2-official-labeled-file)::

    <root>/nyu_depth_v2_labeled.mat   MATLAB v7.3 (HDF5): images (N, 3, W, H) uint8, depths/rawDepths (N, W, H)
                                      metres, labels (N, W, H) 0 = unlabelled, 1..894 (h5py reverses MATLAB's axes)
    <root>/splits.mat                 trainNdxs (795) / testNdxs (654), 1-based frame numbers
    <root>/classMapping40.mat         mapClass (1, 894): 894 -> 40 (values 1..40)
    <root>/class13Mapping.mat         optional, for num_classes=13: a 40-entry 40 -> 13 mapping (values 1..13)

``"nyuv2_folders"`` reads a processed copy in one of two layouts (``layout="auto"`` detects which)::

    SA-Gate ("sagate"):  <root>/{RGB,HHA,Depth,Label}/<i>.jpg|png with <i> 0-based,
                         <root>/{train,test}.txt rows "RGB/<i>.jpg<TAB>Label/<i>.png"; labels uint8 0 = void, 1..40
    ESANet  ("esanet"):  <root>/<split>/{rgb,depth,depth_raw,labels_40,labels_13}/<n:04d>.png with <n> 1-based,
                         depth uint16 millimetres, <root>/{train,test}.txt with the ids

Frame numbering (docs/data/datasets.md): official/ESANet frame ``n`` (1-based) is SA-Gate's ``n - 1``; the sample id
is the on-disk name (``"0003"`` for the .mat and ESANet, ``"2"`` for SA-Gate). Labels become 0..K-1 with
void -> 255 everywhere. Importing this module registers ``"nyuv2"`` and ``"nyuv2_folders"``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from ..errors import ConfigError, DataError
from . import DATASETS
from ._hha_files import HHAMode, check_hha_mode, find_hha_files, read_hha
from ._segmentation_files import Record, SegmentationFiles, check_root, check_split, read_id_list, remap
from .io import read_depth_png, read_label
from .nyuv2 import (
    NYU13_CLASSES,
    NYU13_PALETTE,
    NYU40_CLASSES,
    NYU40_PALETTE,
    NYUv2Depth,
    check_nyu_split_size,
    nyu_color_intrinsics,
    nyu_label_table,
)
from .sample import IGNORE_INDEX, Sample, depth_valid_mask
from .transforms import compute_hha

log = logging.getLogger(__name__)

__all__ = ["NYUv2Folders", "NYUv2Segmentation", "read_class_mapping_40", "read_class_mapping_13"]

_CLASSES = {40: (NYU40_CLASSES, NYU40_PALETTE), 13: (NYU13_CLASSES, NYU13_PALETTE)}


def _check_num_classes(num_classes: int, allowed: Sequence[int], dataset: str) -> int:
    if isinstance(num_classes, bool) or num_classes not in allowed:
        raise ConfigError(f"{dataset} num_classes must be one of {', '.join(map(str, allowed))}, got {num_classes!r}")
    return int(num_classes)


def _loadmat(path: Path, what: str) -> dict[str, Any]:
    import scipy.io

    if not path.is_file():
        raise DataError(f"NYUv2 {what} file {os.fspath(path)!r} does not exist; put it next to the labeled .mat file")
    try:
        return scipy.io.loadmat(path)
    except (OSError, ValueError, NotImplementedError) as err:
        raise DataError(f"cannot read NYUv2 {what} file {os.fspath(path)!r} ({type(err).__name__}: {err})") from err


def read_class_mapping_40(path: str | os.PathLike) -> np.ndarray:
    """``mapClass`` of ``classMapping40.mat``: (L,) int64, entry ``i`` = 40-class id (1..40) of raw class ``i + 1``.

    Raises:
        DataError: missing/unreadable file, no ``mapClass``, or values outside 1..40.
    """
    mat = _loadmat(Path(path), "class mapping")
    if "mapClass" not in mat:
        raise DataError(f"{os.fspath(path)!r} has no 'mapClass' array; is it classMapping40.mat (nyuv2-meta-data)?")
    mapping = np.asarray(mat["mapClass"]).reshape(-1).astype(np.int64)
    if mapping.size == 0 or mapping.min() < 1 or mapping.max() > 40:
        raise DataError(f"{os.fspath(path)!r} mapClass must hold class ids 1..40; re-download classMapping40.mat")
    return mapping


def read_class_mapping_13(path: str | os.PathLike) -> np.ndarray:
    """The 40 -> 13 mapping of ``class13Mapping.mat``: (40,) int64 with values 1..13.

    The file's internal layout is not pinned down by our sources, so the first 40-entry integer array with values in
    1..13 found anywhere in it (top-level variables and MATLAB struct fields) is used.

    Raises:
        DataError: missing/unreadable file or no such array.
    """
    mat = _loadmat(Path(path), "13-class mapping")
    found = [a for key, v in mat.items() if not key.startswith("__") for a in _numeric_arrays(v)]
    found = [a for a in found if a.size == 40 and a.min() >= 1 and a.max() <= 13]
    if not found:
        raise DataError(
            f"{os.fspath(path)!r} holds no 40-entry 40 -> 13 class mapping (values 1..13); is it class13Mapping.mat?"
        )
    return found[0]


def _numeric_arrays(value: Any) -> list[np.ndarray]:
    """Every numeric array inside a loadmat value (structs and cell arrays searched depth first)."""
    arr = np.asarray(value)
    if arr.dtype.names:
        return [a for item in arr.reshape(-1) for name in arr.dtype.names for a in _numeric_arrays(item[name])]
    if arr.dtype == object:
        return [a for item in arr.reshape(-1) for a in _numeric_arrays(item)]
    if np.issubdtype(arr.dtype, np.number):
        return [arr.reshape(-1).astype(np.int64)] if np.all(np.mod(arr, 1) == 0) else []
    return []


class NYUv2Segmentation(NYUv2Depth):
    """The 1449 labelled NYUv2 frames from the official .mat file: RGB, 40/13-class labels, depth, intrinsics.

    Args:
        root: folder with ``nyu_depth_v2_labeled.mat``, ``splits.mat``, ``classMapping40.mat`` (and
            ``class13Mapping.mat`` for ``num_classes=13``).
        split: ``"train"`` (795) or ``"test"`` (654).
        transform: joint transform applied to each sample (after ``hha``).
        num_samples: use only the first ``num_samples`` frames of the split.
        num_classes: 40 (``classMapping40.mat``) or 13 (then also ``class13Mapping.mat``).
        raw_depth: ``depth`` from ``rawDepths`` (holes = 0) instead of the in-painted ``depths``.
        hha: ``"none"``, ``"load"`` (needs ``hha_root``) or ``"compute"``: encoded from the in-painted ``depths``
            with the holes of ``rawDepths`` left out of the normal fits (Depth2HHA's protocol), whatever
            ``raw_depth`` says.
        hha_root: a folder of ``<id>.png`` (``0003.png``) HHA images or a ``freqdense data hha`` cache.

    Samples: ``image`` (3, 480, 640), ``semantic`` (480, 640) int64 0..K-1 / 255, ``depth``/``depth_valid``,
    ``intrinsics`` (the NYU colour camera, resampled if the frames are not 480x640), optional ``hha``, ``meta`` (id =
    4-digit 1-based frame number).
    """

    name = "nyuv2"
    ignore_index = IGNORE_INDEX

    def __init__(
        self,
        *,
        root: str | os.PathLike | None = None,
        split: str = "train",
        transform: Callable[[Sample], Sample] | None = None,
        num_samples: int | None = None,
        num_classes: Literal[40, 13] = 40,
        raw_depth: bool = False,
        hha: HHAMode = "none",
        hha_root: str | os.PathLike | None = None,
    ) -> None:
        import h5py

        num_classes = _check_num_classes(num_classes, (40, 13), self.name)
        self.hha = check_hha_mode(hha, self.name)
        super().__init__(root=root, split=split, transform=transform, raw_depth=raw_depth, num_samples=num_samples)
        check_nyu_split_size(self.split_size, self.split, self.name, os.fspath(self.root / "splits.mat"))
        self.classes, self.palette = _CLASSES[num_classes]
        with h5py.File(self.mat_path, "r") as f:
            images = f["images"].shape
            labels = f["labels"].shape if "labels" in f else None
            self._has_raw = "rawDepths" in f and "depths" in f
        if labels is None or tuple(labels) != (images[0], *images[2:]):
            raise DataError(
                f"{os.fspath(self.mat_path)!r} has no 'labels' array of shape {(images[0], *images[2:])} (it has "
                f"{labels}); nyuv2 needs the labelled file nyu_depth_v2_labeled.mat, not a depth-only export"
            )
        raw_to_40 = read_class_mapping_40(self.root / "classMapping40.mat")
        raw_to_k = np.concatenate([[0], raw_to_40])
        if num_classes == 13:
            raw_to_k = np.concatenate([[0], read_class_mapping_13(self.root / "class13Mapping.mat")])[raw_to_k]
        # raw 0..894 -> on-disk-style 0..K -> train ids (0 -> 255, k -> k - 1)
        self._lut = nyu_label_table(num_classes, size=num_classes + 1)[torch.from_numpy(raw_to_k)]
        self._hha_files: list[Path] = []
        if self.hha == "load":
            self._hha_files = find_hha_files(
                hha_root=hha_root,
                default_dir=None,
                split=self.split,
                ids=[f"{i:04d}" for i in self.indices],
                dataset=self.name,
            )

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def _read_frame(self, index: int) -> Sample:
        sample = super()._read_frame(index)
        frame = self.indices[index]
        f = self._handle()
        raw = torch.from_numpy(np.ascontiguousarray(np.asarray(f["labels"][frame - 1]).T).astype(np.int64))
        sample["semantic"] = remap(raw, self._lut, self.mat_path, self.name, f"frame {frame} label")
        size = tuple(sample["image"].shape[1:])
        # The official frames are 480x640 (K unchanged); scaled like the folder layouts for anything else.
        sample["intrinsics"] = nyu_color_intrinsics(*size)
        if self.hha == "load":
            sample["hha"] = read_hha(self._hha_files[index], size, self.name)
        elif self.hha == "compute":
            if self._has_raw:
                filled = self._depth_map(f, "depths", frame)
                missing = self._depth_map(f, "rawDepths", frame)
                code = compute_hha({"depth": filled, "intrinsics": sample["intrinsics"]}, raw_depth=missing)
            else:
                code = compute_hha(sample, depth_key="depth")
            sample["hha"] = code["hha"]
        return sample

    @staticmethod
    def _depth_map(f: Any, key: str, frame: int) -> torch.Tensor:
        depth = np.asarray(f[key][frame - 1], dtype=np.float32).T
        return torch.from_numpy(np.nan_to_num(np.ascontiguousarray(depth), nan=0.0, posinf=0.0, neginf=0.0))[None]

    def __repr__(self) -> str:
        return f"{type(self).__name__}(root={os.fspath(self.root)!r}, split={self.split!r}, num_samples={len(self)})"


# ----------------------------------------------------------------------------------------------------------------
# Processed folder layouts.
# ----------------------------------------------------------------------------------------------------------------

_SAGATE_LAYOUT = """  SA-Gate (layout="sagate"), 0-based names:
    <root>/RGB/<i>.jpg   <root>/Label/<i>.png (uint8, 0 = void, 1..40)   <root>/HHA/<i>.jpg   <root>/Depth/<i>.png
    <root>/train.txt, <root>/test.txt   rows "RGB/<i>.jpg<TAB>Label/<i>.png\""""
_ESANET_LAYOUT = """  ESANet (layout="esanet"), 1-based 4-digit names:
    <root>/<split>/rgb/<n>.png   <root>/<split>/labels_40/<n>.png (or labels_13; uint8, 0 = void)
    <root>/<split>/depth/<n>.png, depth_raw/<n>.png (uint16 mm)   <root>/train.txt, <root>/test.txt (ids)"""
_LAYOUTS = ("auto", "sagate", "esanet")


def _detect_layout(root: Path) -> str:
    sagate = (root / "RGB").is_dir() and (root / "Label").is_dir()
    esanet = any((root / s / "rgb").is_dir() for s in ("train", "test"))
    if sagate and esanet:
        raise ConfigError(
            f"nyuv2_folders root {os.fspath(root)!r} holds both an SA-Gate (RGB/, Label/) and an ESANet "
            f"(<split>/rgb/) tree; pass layout='sagate' or layout='esanet'"
        )
    if not (sagate or esanet):
        raise DataError(
            f"nyuv2_folders root {os.fspath(root)!r} matches no known layout (no RGB/ + Label/, no train/rgb/ or "
            f"test/rgb/); expected one of:\n{_SAGATE_LAYOUT}\n{_ESANET_LAYOUT}"
        )
    return "sagate" if sagate else "esanet"


def _sagate_records(root: Path, split: str) -> list[Record]:
    list_file = root / f"{split}.txt"
    if not list_file.is_file():
        raise DataError(
            f"nyuv2_folders (sagate) split list {os.fspath(list_file)!r} does not exist; layout:\n{_SAGATE_LAYOUT}"
        )
    records = []
    for line in list_file.read_text().splitlines():
        tokens = line.split()
        if not tokens or tokens[0].startswith("#"):
            continue
        if len(tokens) >= 2:
            image, label = root / tokens[0], root / tokens[1]
        else:  # a bare id
            image, label = root / "RGB" / f"{tokens[0]}.jpg", root / "Label" / f"{tokens[0]}.png"
        sample_id = image.stem
        records.append(Record(sample_id, image, label, {"depth": root / "Depth" / f"{sample_id}.png"}))
    if not records:
        raise DataError(f"nyuv2_folders split list {os.fspath(list_file)!r} is empty; re-create or re-download it")
    return records


def _esanet_records(root: Path, split: str, num_classes: int, raw_depth: bool) -> list[Record]:
    base = root / split
    list_file = root / f"{split}.txt"
    if list_file.is_file():
        ids = read_id_list(list_file, "nyuv2_folders")
    else:
        rgb_dir = base / "rgb"
        if not rgb_dir.is_dir():
            raise DataError(
                f"nyuv2_folders (esanet) has neither {os.fspath(list_file)!r} nor {os.fspath(rgb_dir)!r}; layout:\n"
                f"{_ESANET_LAYOUT}"
            )
        ids = sorted(p.stem for p in rgb_dir.iterdir() if p.suffix.lower() in (".png", ".jpg"))
        log.info("nyuv2_folders: no %s, using the %d images in %s (sorted)", list_file.name, len(ids), rgb_dir)
    depth_dir = base / ("depth_raw" if raw_depth else "depth")
    records = []
    for i in ids:
        image = base / "rgb" / f"{i}.png"
        if not image.is_file() and (base / "rgb" / f"{i}.jpg").is_file():
            image = base / "rgb" / f"{i}.jpg"
        records.append(Record(i, image, base / f"labels_{num_classes}" / f"{i}.png", {"depth": depth_dir / f"{i}.png"}))
    return records


class NYUv2Folders(SegmentationFiles):
    """NYUv2 segmentation from a processed copy: SA-Gate's or ESANet's folders (see the module docstring).

    Args:
        root: the processed NYUv2 folder.
        split: ``"train"`` (795) or ``"test"`` (654).
        layout: ``"sagate"``, ``"esanet"`` or ``"auto"`` (detected from the folders; ambiguous -> ConfigError).
        transform: joint transform applied to each sample (after ``hha``).
        num_samples: use only the first ``num_samples`` ids of the split.
        num_classes: 40, or 13 (ESANet's ``labels_13``).
        with_depth: add ``depth``/``depth_valid`` (and ``intrinsics``); None = yes for ESANet, and for SA-Gate if a
            ``Depth/`` folder exists.
        raw_depth: ESANet only: ``depth_raw`` (sensor holes = 0) instead of the in-painted ``depth``.
        depth_scale: stored depth units per metre in the 16-bit PNGs (1000 = millimetres).
        hha: ``"none"``, ``"load"`` (SA-Gate's ``HHA/``, ESANet's ``<split>/hha/``, or ``hha_root``) or
            ``"compute"`` (from ``depth``; needs depth).
        hha_root: a folder of ``<id>.png|jpg`` HHA images or a ``freqdense data hha`` cache.
        intrinsics: ``(fx, fy, cx, cy)`` at the image size; None = the NYU colour camera resampled to it.

    Samples: ``image``, ``semantic`` (0..K-1, 255), ``intrinsics``, optional ``depth``/``depth_valid`` and ``hha``,
    ``meta`` (id = file stem: ``"2"`` for SA-Gate, ``"0003"`` for ESANet).
    """

    name = "nyuv2_folders"
    ignore_index = IGNORE_INDEX

    def __init__(
        self,
        *,
        root: str | os.PathLike | None = None,
        split: str = "train",
        layout: Literal["auto", "sagate", "esanet"] = "auto",
        transform: Callable[[Sample], Sample] | None = None,
        num_samples: int | None = None,
        num_classes: Literal[40, 13] = 40,
        with_depth: bool | None = None,
        raw_depth: bool = False,
        depth_scale: float = 1000.0,
        hha: HHAMode = "none",
        hha_root: str | os.PathLike | None = None,
        intrinsics: Sequence[float] | None = None,
    ) -> None:
        split = check_split(split, ("train", "test"), self.name)
        if layout not in _LAYOUTS:
            raise ConfigError(f"nyuv2_folders layout must be one of {', '.join(_LAYOUTS)}, got {layout!r}")
        self.hha = check_hha_mode(hha, self.name)
        base = check_root(root, self.name, f"{_SAGATE_LAYOUT}\n{_ESANET_LAYOUT}")
        self.layout = _detect_layout(base) if layout == "auto" else layout
        num_classes = _check_num_classes(num_classes, (40, 13) if self.layout == "esanet" else (40,), self.name)
        if raw_depth and self.layout != "esanet":
            raise ConfigError("nyuv2_folders raw_depth=True needs the ESANet layout (SA-Gate ships one depth map)")
        if not depth_scale > 0:
            raise ConfigError(f"nyuv2_folders depth_scale must be positive (units per metre), got {depth_scale!r}")
        if self.layout == "sagate":
            records = _sagate_records(base, split)
            default_hha, default_depth = base / "HHA", base / "Depth"
        else:
            records = _esanet_records(base, split, num_classes, raw_depth)
            default_hha, default_depth = base / split / "hha", base / split / "depth"
        self.with_depth = (
            (self.layout == "esanet" or default_depth.is_dir()) if with_depth is None else bool(with_depth)
        )
        if self.hha == "compute" and not self.with_depth:
            raise ConfigError("nyuv2_folders hha='compute' needs the depth maps; set with_depth=True (or hha='load')")
        check_nyu_split_size(len(records), split, self.name, os.fspath(base))
        super().__init__(records, split=split, root=base, num_samples=num_samples, transform=transform)
        self.classes, self.palette = _CLASSES[num_classes]
        self.depth_scale = float(depth_scale)
        self.intrinsics = None if intrinsics is None else tuple(intrinsics)
        nyu_color_intrinsics(override=self.intrinsics)  # validate now, not at the first sample
        needed = [(r.image, r.label) + ((r.extra["depth"],) if self.with_depth else ()) for r in self.records]
        missing = [p for paths in needed for p in paths if not p.is_file()]
        if missing:
            raise DataError(
                f"{self.name} ({self.layout}): {len(missing)} listed file(s) do not exist, e.g. "
                f"{os.fspath(missing[0])!r}; check the root and the layout"
            )
        self._lut = nyu_label_table(num_classes)
        self._hha_files: dict[str, Path] = {}
        if self.hha == "load":
            files = find_hha_files(
                hha_root=hha_root,
                default_dir=default_hha,
                split=split,
                ids=[r.id for r in self.records],
                dataset=self.name,
            )
            self._hha_files = dict(zip((r.id for r in self.records), files))

    def read_semantic(self, record: Record) -> torch.Tensor:
        raw = read_label(record.label)
        label = remap(raw, self._lut, record.label, self.name, "8-bit label")
        if bool((label < 0).any()):
            raise DataError(
                f"{self.name} label {os.fspath(record.label)!r} holds the value {int(raw[label < 0][0])}; expected 0 "
                f"(void) and 1..{len(self.classes)}: is it a coloured or 894-class label map?"
            )
        return label

    def extra_keys(self, record: Record, sample: Sample) -> None:
        size = (int(sample["image"].shape[-2]), int(sample["image"].shape[-1]))
        sample["intrinsics"] = nyu_color_intrinsics(*size, override=self.intrinsics)
        if self.with_depth:
            depth = read_depth_png(record.extra["depth"], self.depth_scale)
            if tuple(depth.shape[1:]) != size:
                raise DataError(
                    f"{self.name}: depth {os.fspath(record.extra['depth'])!r} is {tuple(depth.shape[1:])} but the "
                    f"image is {size}; the pair must have the same size"
                )
            sample["depth"] = depth
            sample["depth_valid"] = depth_valid_mask(depth)
        if self.hha == "load":
            sample["hha"] = read_hha(self._hha_files[record.id], size, self.name)
        elif self.hha == "compute":
            sample["hha"] = compute_hha(sample, depth_key="depth")["hha"]


DATASETS.register(NYUv2Segmentation, name="nyuv2")
DATASETS.register(NYUv2Folders, name="nyuv2_folders")
