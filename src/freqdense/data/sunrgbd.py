"""SUN RGB-D semantic segmentation (37 classes) with metric depth, in the flattened community layout.

Layout (docs/conventions.md#sun-rgb-d; docs/data/datasets.md)::

    <root>/image/{train,test}/img-000001.jpg
    <root>/depth/{train,test}/00000001.png      uint16, the SUN RGB-D toolbox's 3-bit rotated millimetres
    <root>/label37/{train,test}/<name>.png      0 = void, 1..37 = classes
    <root>/train37.txt, <root>/test37.txt       optional: "image depth label" per line, paths relative to root

With the list files the triplets are taken from them (in their order). Without them, the files of each split
folder are paired by the number in their names (``img-000001.jpg`` <-> ``00000001.png`` <-> ``img-000001.png``),
in increasing order; a number without all three files is an error. Splits: train 5285, test 5050.

Depth decoding (toolbox ``read3dPoints.m``): ``d = ((p >> 3) | (p << 13)) & 0xFFFF`` millimetres (a 16-bit
rotation right by 3), ``/ 1000`` -> metres, clamped at ``max_depth`` (8 m, as the toolbox does); 0 = invalid.
Images come from four sensors and differ in size (640x480, 730x530, ...): batches need a resize or crop transform.

Intrinsics: the flattened layout has no per-image camera (the toolbox's ``intrinsics.txt`` is lost). Unless
``intrinsics=(fx, fy, cx, cy)`` is given, every image gets the NYU Kinect colour camera (fx 518.8579, fy 519.4696,
cx 325.5824, cy 253.7362) with the principal point moved with the image centre, ``cx + (W - 640) / 2`` and
``cy + (H - 480) / 2``: exact for the 640x480 Kinect v1 images, an approximation for the other sensors (whose focal
lengths are 520..570 px and whose principal points sit near the centre). It matters for HHA.

``hha="load"`` reads precomputed HHA images (``<root>/hha/<split>/<id>.png`` or ``hha_root``: a folder of
``<id>.png`` or a ``freqdense data hha`` cache), ``hha="compute"`` encodes the loaded depth on the fly
(:func:`freqdense.data.transforms.compute_hha`); see :mod:`freqdense.data._hha_files`.
Importing this module registers ``"sunrgbd"``.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

from ..errors import ConfigError, DataError
from . import DATASETS
from ._hha_files import HHAMode, check_hha_mode, find_hha_files, read_hha
from ._segmentation_files import Record, SegmentationFiles, bit_interleaved_palette, check_root, check_split, remap
from .io import read_depth_png, read_label
from .sample import IGNORE_INDEX, Sample, depth_valid_mask
from .transforms import compute_hha

log = logging.getLogger(__name__)

__all__ = [
    "SUNRGBD_CLASSES",
    "SUNRGBD_DEFAULT_INTRINSICS",
    "SUNRGBD_PALETTE",
    "SUNRGBD_SPLITS",
    "SUNRGBDSegmentation",
    "decode_sunrgbd_depth",
    "sunrgbd_intrinsics",
]

#: The 37 classes; class k is label value k + 1 (0 = void).
SUNRGBD_CLASSES: tuple[str, ...] = (
    "wall",
    "floor",
    "cabinet",
    "bed",
    "chair",
    "sofa",
    "table",
    "door",
    "window",
    "bookshelf",
    "picture",
    "counter",
    "blinds",
    "desk",
    "shelves",
    "curtain",
    "dresser",
    "pillow",
    "mirror",
    "floor mat",
    "clothes",
    "ceiling",
    "books",
    "fridge",
    "tv",
    "paper",
    "towel",
    "shower curtain",
    "box",
    "whiteboard",
    "person",
    "night stand",
    "toilet",
    "sink",
    "lamp",
    "bathtub",
    "bag",
)
#: Display colours: the VOC bit-interleaved map at the raw label value (class k gets colour k + 1). Not official.
SUNRGBD_PALETTE: list[tuple[int, int, int]] = bit_interleaved_palette(len(SUNRGBD_CLASSES) + 1)[1:]
#: (fx, fy, cx, cy) in pixels at 640x480: the NYU Kinect colour camera, the default (principal point moved with the
#: image centre for other sizes).
SUNRGBD_DEFAULT_INTRINSICS: tuple[float, float, float, float] = (518.8579, 519.4696, 325.5824, 253.7362)
SUNRGBD_SPLITS = ("train", "test")

_OFFICIAL_COUNTS = {"train": 5285, "test": 5050}
_FOLDERS = {"image": ("image", ".jpg"), "depth": ("depth", ".png"), "label": ("label37", ".png")}
_LAYOUT = """  <root>/image/{train,test}/img-000001.jpg
  <root>/depth/{train,test}/00000001.png      (uint16, bit-rotated millimetres)
  <root>/label37/{train,test}/img-000001.png  (0 = void, 1..37)
  <root>/train37.txt, <root>/test37.txt       (optional; "image depth label" per line, relative to root)"""
_LUT = torch.full((256,), -1, dtype=torch.int64)
_LUT[0] = IGNORE_INDEX
_LUT[1 : len(SUNRGBD_CLASSES) + 1] = torch.arange(len(SUNRGBD_CLASSES))
_NUMBER = re.compile(r"(\d+)(?!.*\d)")


def decode_sunrgbd_depth(raw: torch.Tensor, *, max_depth: float | None = 8.0) -> torch.Tensor:
    """SUN RGB-D depth PNG values -> metres: rotate the 16 bits right by 3 (mm), divide by 1000, clamp.

    Args:
        raw: the uint16 PNG values (any shape), as an integer or (integer-valued) float tensor.
        max_depth: clamp larger depths to this value in metres (the toolbox uses 8); None keeps them.

    Returns:
        float32 depth of ``raw``'s shape, 0 where ``raw`` decodes to 0 (invalid).

    Examples:
        >>> decode_sunrgbd_depth(torch.tensor([0, 9872, 8001]), max_depth=None)  # 1234 mm; 1000 + 8192 mm
        tensor([0.0000, 1.2340, 9.1920])
    """
    p = raw.to(torch.int64)
    if p.numel() and (int(p.min()) < 0 or int(p.max()) > 0xFFFF):
        raise DataError(f"SUN RGB-D depth values must be 16-bit (0..65535), got [{int(p.min())}, {int(p.max())}]")
    millimetres = ((p >> 3) | (p << 13)) & 0xFFFF
    depth = millimetres.double() / 1000.0
    if max_depth is not None:
        depth = depth.clamp(max=max_depth)
    return depth.float()


class SUNRGBDSegmentation(SegmentationFiles):
    """SUN RGB-D: 37 classes (255 = void), metric depth and (default NYU Kinect) intrinsics; optional HHA.

    Args:
        root: the directory holding ``image/``, ``depth/``, ``label37/`` (see the module docstring).
        split: ``"train"`` (5285) or ``"test"`` (5050).
        transform: joint transform applied to each sample.
        num_samples: use only the first ``num_samples`` samples (None = all).
        max_depth: clamp depth at this many metres (toolbox: 8; some copies use 10); None = no clamp.
        intrinsics: ``(fx, fy, cx, cy)`` in pixels for every image; default: the NYU Kinect camera
            (:data:`SUNRGBD_DEFAULT_INTRINSICS`) with the principal point moved with the image centre.
        hha: ``"none"``, ``"load"`` (``<root>/hha/<split>/<id>.png`` or ``hha_root``) or ``"compute"`` (from
            ``depth`` and ``intrinsics``).
        hha_root: a folder of ``<id>.png`` HHA images or a ``freqdense data hha`` cache (for ``hha="load"``).

    Samples: ``image`` (3, H, W), ``semantic`` (H, W) int64, ``depth``/``depth_valid`` (1, H, W) metres,
    ``intrinsics`` (3, 3), optional ``hha`` (3, H, W) float32 in [0, 1], ``meta`` with the image stem as id.
    """

    name = "sunrgbd"
    classes = SUNRGBD_CLASSES
    palette = SUNRGBD_PALETTE
    ignore_index = IGNORE_INDEX

    def __init__(
        self,
        *,
        root: str | os.PathLike | None = None,
        split: str = "train",
        transform: Callable[[Sample], Sample] | None = None,
        num_samples: int | None = None,
        max_depth: float | None = 8.0,
        intrinsics: Sequence[float] | None = None,
        hha: HHAMode = "none",
        hha_root: str | os.PathLike | None = None,
    ) -> None:
        split = check_split(split, SUNRGBD_SPLITS, "sunrgbd")
        self.hha = check_hha_mode(hha, "sunrgbd")
        if max_depth is not None and not (isinstance(max_depth, (int, float)) and max_depth > 0):
            raise ConfigError(f"sunrgbd max_depth must be a positive number of metres or None, got {max_depth!r}")
        self.intrinsics = None if intrinsics is None else _check_intrinsics(intrinsics)
        self.max_depth = None if max_depth is None else float(max_depth)
        root_path = check_root(root, "sunrgbd", _LAYOUT)
        list_file = root_path / f"{split}37.txt"
        records = _read_list(list_file, root_path) if list_file.is_file() else _pair_folders(root_path, split)
        if len(records) != _OFFICIAL_COUNTS[split]:
            log.warning(
                "sunrgbd %r split under %s has %d samples, the official split has %d; is the copy complete?",
                split,
                os.fspath(root_path),
                len(records),
                _OFFICIAL_COUNTS[split],
            )
        super().__init__(records, split=split, root=root_path, num_samples=num_samples, transform=transform)
        self._hha_files: list[Path] = []
        if self.hha == "load":
            self._hha_files = find_hha_files(
                hha_root=hha_root,
                default_dir=root_path / "hha" / split,
                split=split,
                ids=[r.id for r in self.records],
                dataset=self.name,
            )
        self._positions = {record.image: index for index, record in enumerate(self.records)}

    def read_semantic(self, record: Record) -> torch.Tensor:
        label = remap(read_label(record.label), _LUT, record.label, "sunrgbd", "8-bit label")
        if bool((label < 0).any()):
            raise DataError(
                f"sunrgbd label {os.fspath(record.label)!r} holds values other than 0..37; is it a label37 file "
                f"(not the 894-class or colour labels)?"
            )
        return label

    def extra_keys(self, record: Record, sample: Sample) -> None:
        path = record.extra["depth"]
        depth = decode_sunrgbd_depth(read_depth_png(path, 1.0), max_depth=self.max_depth)
        size = tuple(sample["image"].shape[1:])
        if tuple(depth.shape[1:]) != size:
            raise DataError(
                f"sunrgbd: depth {os.fspath(path)!r} is {tuple(depth.shape[1:])} but image {os.fspath(record.image)!r} "
                f"is {size}; the list or the file numbering pairs the wrong files"
            )
        sample["depth"] = depth
        sample["depth_valid"] = depth_valid_mask(depth)
        sample["intrinsics"] = sunrgbd_intrinsics(*size, override=self.intrinsics)
        if self.hha == "load":
            sample["hha"] = read_hha(self._hha_files[self._positions[record.image]], size, self.name)
        elif self.hha == "compute":
            sample["hha"] = compute_hha(sample, depth_key="depth")["hha"]


def sunrgbd_intrinsics(height: int, width: int, *, override: Sequence[float] | None = None) -> torch.Tensor:
    """The K (3, 3) float32 used for a SUN RGB-D image of ``height x width`` (see the module docstring).

    Examples:
        >>> [round(v, 4) for v in sunrgbd_intrinsics(480, 640)[0].tolist()]
        [518.8579, 0.0, 325.5824]
        >>> [round(v, 4) for v in sunrgbd_intrinsics(530, 730)[:2, 2].tolist()]  # + ((730 - 640) / 2, (530 - 480) / 2)
        [370.5824, 278.7362]
    """
    if override is not None:
        fx, fy, cx, cy = override
    else:
        fx, fy, cx, cy = SUNRGBD_DEFAULT_INTRINSICS
        cx, cy = cx + (width - 640) / 2.0, cy + (height - 480) / 2.0
    return torch.tensor([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]], dtype=torch.float64).float()


def _check_intrinsics(intrinsics: Sequence[float]) -> tuple[float, float, float, float]:
    try:
        values = tuple(float(v) for v in intrinsics)
    except (TypeError, ValueError):
        values = ()
    if len(values) != 4 or values[0] <= 0 or values[1] <= 0:
        raise ConfigError(
            f"sunrgbd intrinsics must be (fx, fy, cx, cy) in pixels with fx, fy > 0, got {intrinsics!r}; "
            f"leave it unset for the NYU Kinect camera"
        )
    return values  # type: ignore[return-value]


def _read_list(path: Path, root: Path) -> list[Record]:
    """Records from a ``train37.txt`` / ``test37.txt`` list: ``image depth label`` per line."""
    records = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        tokens = line.split()
        if len(tokens) != 3:
            raise DataError(
                f"sunrgbd list {os.fspath(path)!r} line {number} has {len(tokens)} fields: {line!r}; expected "
                f"'image depth label' paths relative to the root"
            )
        image, depth, label = (_resolve(token, root) for token in tokens)
        records.append(Record(image.stem, image, label, {"depth": depth}))
    if not records:
        raise DataError(f"sunrgbd list {os.fspath(path)!r} is empty; re-create it or delete it to pair the folders")
    return records


def _resolve(token: str, root: Path) -> Path:
    """A list path: relative to ``root``; an absolute path that does not exist is retried as its last 3 parts."""
    path = Path(token)
    if not path.is_absolute():
        return root / path
    if path.is_file() or len(path.parts) < 4:
        return path
    return root.joinpath(*path.parts[-3:])


def _pair_folders(root: Path, split: str) -> list[Record]:
    """Pair ``image/``, ``depth/`` and ``label37/`` files of ``split`` by the last number in their names."""
    found: dict[str, dict[int, Path]] = {}
    for kind, (folder_name, suffix) in _FOLDERS.items():
        folder = root / folder_name / split
        if not folder.is_dir():
            raise DataError(
                f"sunrgbd: folder {os.fspath(folder)!r} does not exist (and there is no {split}37.txt list); "
                f"expected layout:\n{_LAYOUT}"
            )
        numbered: dict[int, Path] = {}
        for file in sorted(folder.glob(f"*{suffix}")):
            match = _NUMBER.search(file.stem)
            if match is None:
                raise DataError(f"sunrgbd: {os.fspath(file)!r} has no number in its name to pair it by")
            key = int(match.group(1))
            if key in numbered:
                raise DataError(
                    f"sunrgbd: {os.fspath(numbered[key])!r} and {os.fspath(file)!r} have the same number {key}; "
                    f"remove the duplicate or write a {split}37.txt list"
                )
            numbered[key] = file
        found[kind] = numbered
    keys = set(found["image"])
    for kind in ("depth", "label"):
        missing = sorted(keys ^ set(found[kind]))
        if missing:
            key = missing[0]
            have, lack = ("image", kind) if key in keys else (kind, "image")
            raise DataError(
                f"sunrgbd: {os.fspath(found[have][key])!r} has no {lack} partner numbered {key} in "
                f"{os.fspath(root / _FOLDERS[lack][0] / split)!r} ({len(missing)} unmatched numbers); complete the "
                f"copy or write a {split}37.txt list"
            )
    return [
        Record(found["image"][k].stem, found["image"][k], found["label"][k], {"depth": found["depth"][k]})
        for k in sorted(keys)
    ]


DATASETS.register(SUNRGBDSegmentation, name="sunrgbd")
