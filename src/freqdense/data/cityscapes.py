"""Cityscapes fine annotations: 19 train ids or 7 categories, optional metric depth from the stereo disparity maps.

Layout (docs/conventions.md#cityscapes; docs/data/datasets.md)::

    <root>/leftImg8bit/<split>/<city>/<city>_<seq>_<frame>_leftImg8bit.png
    <root>/gtFine/<split>/<city>/<stem>_gtFine_labelIds.png        (or the generated *_gtFine_labelTrainIds.png)
    <root>/disparity/<split>/<city>/<stem>_disparity.png            (uint16, only with with_depth=True)
    <root>/camera/<split>/<city>/<stem>_camera.json                 (only with with_depth=True)

Splits: train 2975, val 500, test 1525 (test labels are not public: its label files hold no classes).

``classes=7`` gives the seven Cityscapes *categories* used by MTAN's multi-task setting (flat, construction, object,
nature, sky, human, vehicle: ``catId`` 1..7 -> 0..6, void -> 255). That this is MTAN's 7-class split is
**unverified** beyond the MTAN paper's wording (docs/conventions.md#cityscapes); see docs/data/datasets.md. MTAN's
128x256 resolution is a transform (``data.transforms.resize: [128, 256]``; labels and depth are resampled with
nearest neighbour).
Importing this module registers ``"cityscapes"``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Literal

import torch

from ..errors import ConfigError, DataError
from . import DATASETS
from ._segmentation_files import Record, SegmentationFiles, check_root, check_split, lookup_table, remap
from .io import read_depth_png, read_label
from .sample import IGNORE_INDEX, Sample, depth_valid_mask

__all__ = [
    "CITYSCAPES_CATEGORIES",
    "CITYSCAPES_CATEGORY_PALETTE",
    "CITYSCAPES_CLASSES",
    "CITYSCAPES_PALETTE",
    "CITYSCAPES_SPLITS",
    "LABEL_ID_TO_CATEGORY",
    "LABEL_ID_TO_TRAIN_ID",
    "TRAIN_ID_TO_CATEGORY",
    "CityscapesSegmentation",
    "disparity_to_depth",
]

CITYSCAPES_CLASSES: tuple[str, ...] = (
    "road",
    "sidewalk",
    "building",
    "wall",
    "fence",
    "pole",
    "traffic light",
    "traffic sign",
    "vegetation",
    "terrain",
    "sky",
    "person",
    "rider",
    "car",
    "truck",
    "bus",
    "train",
    "motorcycle",
    "bicycle",
)
#: Official colours of the 19 train ids (cityscapesScripts ``labels.py``).
CITYSCAPES_PALETTE: list[tuple[int, int, int]] = [
    (128, 64, 128),
    (244, 35, 232),
    (70, 70, 70),
    (102, 102, 156),
    (190, 153, 153),
    (153, 153, 153),
    (250, 170, 30),
    (220, 220, 0),
    (107, 142, 35),
    (152, 251, 152),
    (70, 130, 180),
    (220, 20, 60),
    (255, 0, 0),
    (0, 0, 142),
    (0, 0, 70),
    (0, 60, 100),
    (0, 80, 100),
    (0, 0, 230),
    (119, 11, 32),
]
#: labelId -> trainId (docs/conventions.md#cityscapes); every other labelId (void, ego vehicle, rail track, caravan,
#: ...) -> 255.
LABEL_ID_TO_TRAIN_ID: dict[int, int] = {
    7: 0, 8: 1, 11: 2, 12: 3, 13: 4, 17: 5, 19: 6, 20: 7, 21: 8, 22: 9,
    23: 10, 24: 11, 25: 12, 26: 13, 27: 14, 28: 15, 31: 16, 32: 17, 33: 18,
}  # fmt: skip
CITYSCAPES_SPLITS = ("train", "val", "test")

#: The 7 categories of cityscapesScripts ``labels.py`` (catId 1..7), MTAN's 7-class setting (unverified,
#: docs/conventions.md#cityscapes).
CITYSCAPES_CATEGORIES: tuple[str, ...] = ("flat", "construction", "object", "nature", "sky", "human", "vehicle")
#: Display colours of the categories: the train-id colour of each category's most common class
#: (road, building, pole, vegetation, sky, person, car). Not an official table.
CITYSCAPES_CATEGORY_PALETTE: list[tuple[int, int, int]] = [
    (128, 64, 128),
    (70, 70, 70),
    (153, 153, 153),
    (107, 142, 35),
    (70, 130, 180),
    (220, 20, 60),
    (0, 0, 142),
]
#: labelId -> category index (catId - 1) for every labelId with catId 1..7, including the classes that the 19-class
#: evaluation ignores (parking 9, rail track 10, guard rail 14, bridge 15, tunnel 16, polegroup 18, caravan 29,
#: trailer 30); labelIds 0..6 (catId 0, void) -> 255.
LABEL_ID_TO_CATEGORY: dict[int, int] = {
    7: 0, 8: 0, 9: 0, 10: 0,  # flat: road, sidewalk, parking, rail track
    11: 1, 12: 1, 13: 1, 14: 1, 15: 1, 16: 1,  # construction: building, wall, fence, guard rail, bridge, tunnel
    17: 2, 18: 2, 19: 2, 20: 2,  # object: pole, polegroup, traffic light, traffic sign
    21: 3, 22: 3,  # nature: vegetation, terrain
    23: 4,  # sky
    24: 5, 25: 5,  # human: person, rider
    26: 6, 27: 6, 28: 6, 29: 6, 30: 6, 31: 6, 32: 6, 33: 6,  # vehicle: car .. bicycle, caravan, trailer
}  # fmt: skip
#: train id (0..18) -> category index; used for ``*_labelTrainIds.png`` files (their ignored classes stay 255).
TRAIN_ID_TO_CATEGORY: dict[int, int] = {
    train_id: LABEL_ID_TO_CATEGORY[label_id] for label_id, train_id in LABEL_ID_TO_TRAIN_ID.items()
}

_LUTS = {
    19: {"labelIds": lookup_table(LABEL_ID_TO_TRAIN_ID), "trainIds": lookup_table({i: i for i in range(19)})},
    7: {"labelIds": lookup_table(LABEL_ID_TO_CATEGORY), "trainIds": lookup_table(TRAIN_ID_TO_CATEGORY)},
}
_SUFFIX = {"labelIds": "_gtFine_labelIds.png", "trainIds": "_gtFine_labelTrainIds.png"}
_LAYOUT = """  <root>/leftImg8bit/{train,val,test}/<city>/<stem>_leftImg8bit.png
  <root>/gtFine/{train,val,test}/<city>/<stem>_gtFine_labelIds.png   (or <stem>_gtFine_labelTrainIds.png)
  <root>/disparity/<split>/<city>/<stem>_disparity.png and <root>/camera/<split>/<city>/<stem>_camera.json
      (with_depth=True only)"""


def disparity_to_depth(raw: torch.Tensor, baseline: float, fx: float) -> torch.Tensor:
    """Cityscapes disparity PNG values -> depth in metres (docs/conventions.md#cityscapes).

    For ``p > 0`` the disparity is ``d = (p - 1) / 256`` pixels and ``depth = baseline * fx / d``; ``p = 0``
    (no stereo match) and ``p = 1`` (zero disparity, infinitely far) give 0 = invalid.

    Args:
        raw: the uint16 PNG values (any shape), as a float or integer tensor.
        baseline: stereo baseline in metres (``camera.json`` ``extrinsic.baseline``, about 0.209).
        fx: focal length in pixels (``camera.json`` ``intrinsic.fx``, about 2262.5).

    Returns:
        float32 depth of ``raw``'s shape, 0 where invalid.

    Examples:
        >>> disparity_to_depth(torch.tensor([0.0, 1.0, 257.0]), baseline=0.2, fx=2000.0)
        tensor([  0.,   0., 400.])
    """
    disparity = (raw.double() - 1.0) / 256.0
    depth = torch.where(disparity > 0, baseline * fx / disparity.clamp_min(1e-12), torch.zeros_like(disparity))
    return depth.float()


class CityscapesSegmentation(SegmentationFiles):
    """Cityscapes (fine): 19 classes or 7 categories, 255 = ignore; optionally metric depth from disparity.

    Args:
        root: the directory holding ``leftImg8bit/`` and ``gtFine/`` (see the module docstring).
        split: ``"train"`` (2975), ``"val"`` (500) or ``"test"`` (1525, no public labels).
        transform: joint transform applied to each sample.
        num_samples: use only the first ``num_samples`` frames in sorted (city, name) order (None = all).
        label_type: ``"labelIds"`` (mapped to train ids here), ``"trainIds"`` (the generated
            ``*_labelTrainIds.png``, read as is) or ``"auto"``: labelIds where present, else labelTrainIds.
        with_depth: also return ``depth`` (1, H, W) float32 metres, ``depth_valid`` and ``intrinsics`` (3, 3)
            from ``disparity/`` and ``camera/``.
        classes: ``19`` (the train ids) or ``7`` (the categories flat .. vehicle of MTAN's multi-task setting;
            unverified beyond the MTAN paper). ``classes``/``palette`` then hold the 7 names/colours.

    Samples: ``image``, ``semantic`` (H, W) int64, ``meta`` with the frame stem as id (+ depth keys).
    """

    name = "cityscapes"
    classes = CITYSCAPES_CLASSES
    palette = CITYSCAPES_PALETTE
    ignore_index = IGNORE_INDEX

    def __init__(
        self,
        *,
        root: str | os.PathLike | None = None,
        split: str = "train",
        transform: Callable[[Sample], Sample] | None = None,
        num_samples: int | None = None,
        label_type: Literal["auto", "labelIds", "trainIds"] = "auto",
        with_depth: bool = False,
        classes: Literal[7, 19] = 19,
    ) -> None:
        split = check_split(split, CITYSCAPES_SPLITS, "cityscapes")
        if label_type not in ("auto", "labelIds", "trainIds"):
            raise ConfigError(f"cityscapes label_type must be 'auto', 'labelIds' or 'trainIds', got {label_type!r}")
        if isinstance(classes, bool) or classes not in (7, 19):
            raise ConfigError(
                f"cityscapes classes must be 19 (train ids) or 7 (categories, MTAN's setting), got {classes!r}"
            )
        self.classes = CITYSCAPES_CLASSES if classes == 19 else CITYSCAPES_CATEGORIES
        self.palette = CITYSCAPES_PALETTE if classes == 19 else CITYSCAPES_CATEGORY_PALETTE
        self._luts = _LUTS[int(classes)]
        root_path = check_root(root, "cityscapes", _LAYOUT)
        image_dir = root_path / "leftImg8bit" / split
        if not image_dir.is_dir():
            raise DataError(f"cityscapes: {os.fspath(image_dir)!r} does not exist; expected layout:\n{_LAYOUT}")
        self.with_depth = bool(with_depth)
        records = []
        for image in sorted(image_dir.glob("*/*_leftImg8bit.png")):
            city, stem = image.parent.name, image.name[: -len("_leftImg8bit.png")]
            label = self._label_path(root_path / "gtFine" / split / city, stem, label_type)
            extra: dict[str, Path] = {}
            if self.with_depth:
                extra["disparity"] = root_path / "disparity" / split / city / f"{stem}_disparity.png"
                extra["camera"] = root_path / "camera" / split / city / f"{stem}_camera.json"
            records.append(Record(stem, image, label, extra))
        super().__init__(records, split=split, root=root_path, num_samples=num_samples, transform=transform)

    @staticmethod
    def _label_path(folder: Path, stem: str, label_type: str) -> Path:
        kinds = ("labelIds", "trainIds") if label_type == "auto" else (label_type,)
        for kind in kinds:
            path = folder / f"{stem}{_SUFFIX[kind]}"
            if path.is_file():
                return path
        wanted = " or ".join(os.fspath(folder / f"{stem}{_SUFFIX[k]}") for k in kinds)
        raise DataError(f"cityscapes: label file {wanted} is missing; download gtFine and unpack it into the root")

    def read_semantic(self, record: Record) -> torch.Tensor:
        if record.label.name.endswith(_SUFFIX["trainIds"]):
            return remap(read_label(record.label), self._luts["trainIds"], record.label, "cityscapes", "train id")
        return remap(read_label(record.label), self._luts["labelIds"], record.label, "cityscapes", "label id")

    def extra_keys(self, record: Record, sample: Sample) -> None:
        if not self.with_depth:
            return
        camera = _read_camera(record.extra["camera"])
        depth = disparity_to_depth(read_depth_png(record.extra["disparity"], 1.0), camera["baseline"], camera["fx"])
        if tuple(depth.shape[1:]) != tuple(sample["image"].shape[1:]):
            raise DataError(
                f"cityscapes: disparity {os.fspath(record.extra['disparity'])!r} is {tuple(depth.shape[1:])} but the "
                f"image is {tuple(sample['image'].shape[1:])}; use the original full-resolution files"
            )
        sample["depth"] = depth
        sample["depth_valid"] = depth_valid_mask(depth)
        sample["intrinsics"] = torch.tensor(
            [[camera["fx"], 0.0, camera["u0"]], [0.0, camera["fy"], camera["v0"]], [0.0, 0.0, 1.0]],
            dtype=torch.float32,
        )


def _read_camera(path: Path) -> dict[str, float]:
    if not path.is_file():
        raise DataError(
            f"cityscapes: camera file {os.fspath(path)!r} is missing (needed by with_depth=True); download "
            f"camera_trainvaltest and unpack it into the root, or set with_depth=False"
        )
    try:
        data = json.loads(path.read_text())
        return {
            "baseline": float(data["extrinsic"]["baseline"]),
            **{k: float(data["intrinsic"][k]) for k in ("fx", "fy", "u0", "v0")},
        }
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as err:
        raise DataError(
            f"cityscapes: camera file {os.fspath(path)!r} is not valid JSON with extrinsic.baseline and "
            f"intrinsic.fx/fy/u0/v0 ({type(err).__name__}: {err}); re-extract it"
        ) from err


DATASETS.register(CityscapesSegmentation, name="cityscapes")
