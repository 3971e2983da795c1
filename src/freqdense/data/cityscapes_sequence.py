"""Cityscapes for self-supervised depth: ManyDepth's preprocessed triplets and its test protocol
(docs/conventions.md#cityscapes).

Training layout (SfMLearner-style preprocessing, as used by ManyDepth and Freq-Aware-Depth)::

    <root>/<city>/<frame>.jpg          three frames side by side: [t-1 | t | t+1], each 1024x384 (ego car cut off)
    <root>/<city>/<frame>_cam.txt      one line of 9 comma-separated numbers: K row-major, pixels of one frame

Test layout (official files + ManyDepth's exported ground truth)::

    <root>/leftImg8bit/test/<city>/<city>_<seq>_<frame>_leftImg8bit.png      1024x2048
    <gt_dir>/<iii>_depth.npy                                                 float32 metres, i = test list line

Test samples keep only the top 75 % of rows (``round(0.75 H)``: the ego car is removed) of both image and
depth; :data:`~freqdense.metrics.depth.DEPTH_PROTOCOLS` ``"cityscapes_mono"`` then applies ManyDepth's
``[256:, 192:1856]`` crop (as fractions of that 768x2048 ground truth), 1e-3 < gt < 80 and median scaling.
Importing this module registers ``"cityscapes_sequence"``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from ..errors import ConfigError, DataError
from . import DATASETS
from ._segmentation_files import check_num_samples, check_root, check_split
from .io import read_image, read_npy
from .sample import Sample, depth_valid_mask

__all__ = ["CityscapesSequence", "crop_ego_car", "read_cam_file", "read_pair_list"]

log = logging.getLogger(__name__)

_LAYOUT = """  train/val: <root>/<city>/<frame>.jpg ([t-1 | t | t+1] side by side) and <root>/<city>/<frame>_cam.txt
  test:      <root>/leftImg8bit/test/<city>/<stem>_leftImg8bit.png and <gt_dir>/<iii>_depth.npy"""
_TOP_FRACTION = 0.75


def crop_ego_car(x: torch.Tensor) -> torch.Tensor:
    """Keep the top ``round(0.75 H)`` rows of an ``(..., H, W)`` map (ManyDepth's Cityscapes test crop)."""
    return x[..., : int(round(_TOP_FRACTION * x.shape[-2])), :]


def read_cam_file(path: str | os.PathLike) -> torch.Tensor:
    """Read a ``<frame>_cam.txt``: 9 comma-separated numbers, the 3x3 K row-major, as float32 (3, 3).

    Raises:
        DataError: missing file or not 9 numbers.
    """
    p = Path(path)
    if not p.is_file():
        raise DataError(
            f"cityscapes_sequence: camera file {os.fspath(path)!r} does not exist; re-run the preprocessing"
        )
    try:
        values = [float(v) for v in p.read_text().replace("\n", ",").split(",") if v.strip()]
    except ValueError as err:
        raise DataError(f"cityscapes_sequence: camera file {os.fspath(path)!r} holds a non-number ({err})") from err
    if len(values) != 9:
        raise DataError(
            f"cityscapes_sequence: camera file {os.fspath(path)!r} has {len(values)} numbers, expected 9 "
            f"(fx,0,cx,0,fy,cy,0,0,1)"
        )
    return torch.tensor(values, dtype=torch.float32).view(3, 3)


def read_pair_list(path: str | os.PathLike) -> list[tuple[str, str]]:
    """Read a ManyDepth-style list: ``<city> <frame>`` per line (extra tokens ignored); DataError names bad lines."""
    p = Path(path)
    if not p.is_file():
        raise DataError(f"cityscapes_sequence split file {os.fspath(path)!r} does not exist; check split_file=")
    out = []
    for number, raw in enumerate(p.read_text().splitlines(), start=1):
        parts = raw.split()
        if not parts or parts[0].startswith("#"):
            continue
        if len(parts) < 2:
            raise DataError(
                f"cityscapes_sequence split file {os.fspath(path)!r} line {number}: {raw!r} is not '<city> <frame>'"
            )
        out.append((parts[0], parts[1]))
    if not out:
        raise DataError(f"cityscapes_sequence split file {os.fspath(path)!r} holds no line")
    return out


class CityscapesSequence(Dataset):
    """Cityscapes self-supervised depth: preprocessed triplets (train/val) or the 1525-frame test protocol.

    Args:
        root: the preprocessed folder (train/val) or the official Cityscapes root (test); see the module docstring.
        split: ``"train"``/``"val"`` (triplets) or ``"test"``.
        transform: joint transform applied to each sample.
        split_file: ``<city> <frame>`` lines (ManyDepth's ``splits/cityscapes*/<split>_files.txt``). Train
            default: every ``<city>/<frame>.jpg`` with a ``_cam.txt``, sorted (val has no default). Test default:
            the sorted test images, with a warning, as the ground-truth files follow the authors' list order.
        gt_dir: folder of ``<iii>_depth.npy`` (test only; None = no ``depth``).
        num_samples: use only the first ``num_samples`` entries.

    Samples: train/val ``image``, ``image_prev``, ``image_next`` (each a third of the triplet) and ``intrinsics``;
    test ``image`` (top 75 %), ``depth``/``depth_valid`` (top 75 %, with ``gt_dir``); ``meta`` id ``<city>/<frame>``.
    Test samples have no intrinsics (the official ``camera/`` files describe the full 1024x2048 frame).
    """

    name = "cityscapes_sequence"

    def __init__(
        self,
        *,
        root: str | os.PathLike | None = None,
        split: str = "train",
        transform: Callable[[Sample], Sample] | None = None,
        split_file: str | os.PathLike | None = None,
        gt_dir: str | os.PathLike | None = None,
        num_samples: int | None = None,
    ) -> None:
        self.split = check_split(split, ("train", "val", "test"), "cityscapes_sequence")
        self.root = check_root(root, "cityscapes_sequence", _LAYOUT)
        self.transform = transform
        self.gt_dir = Path(gt_dir) if gt_dir is not None else None
        if self.gt_dir is not None and split != "test":
            raise DataError("cityscapes_sequence: gt_dir= is only used with split='test'; remove it for train/val")
        if split_file is not None:
            entries = read_pair_list(split_file)
        elif split == "test":
            entries = [
                (p.parent.name, p.name[: -len("_leftImg8bit.png")])
                for p in sorted((self.root / "leftImg8bit" / "test").glob("*/*_leftImg8bit.png"))
            ]
            if entries and self.gt_dir is not None:
                log.warning(
                    "cityscapes_sequence: no split_file given; pairing sorted test images with %s/<iii>_depth.npy "
                    "assumes the ground truth was exported in sorted order (pass the authors' test_files.txt)",
                    self.gt_dir,
                )
        elif split == "val":
            raise ConfigError(
                "cityscapes_sequence split='val' needs split_file= (a '<city> <frame>' list); without one the "
                "triplet folder cannot be divided, and split='train' already uses every triplet"
            )
        else:
            jpgs = sorted(self.root.glob("*/*.jpg"))
            entries = [(p.parent.name, p.stem) for p in jpgs if p.with_name(f"{p.stem}_cam.txt").is_file()]
        if not entries:
            raise DataError(
                f"cityscapes_sequence {split!r}: no sample under {os.fspath(self.root)!r}; expected layout:\n{_LAYOUT}"
            )
        self.entries = entries[: check_num_samples(num_samples, len(entries), "cityscapes_sequence", split)]

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, index: int) -> Sample:
        n = len(self.entries)
        if not -n <= index < n:
            raise IndexError(f"index {index} out of range for cityscapes_sequence {self.split!r} of {n} samples")
        index = int(index) % n
        city, frame = self.entries[index]
        sample: Sample = self._test(city, frame, index) if self.split == "test" else self._triplet(city, frame)
        sample["meta"] = {"id": f"{city}/{frame}", "index": index, "split": self.split}
        return self.transform(sample) if self.transform is not None else sample

    def _triplet(self, city: str, frame: str) -> Sample:
        path = self.root / city / f"{frame}.jpg"
        strip = read_image(path)
        width = strip.shape[2]
        if width % 3:
            raise DataError(
                f"cityscapes_sequence: {os.fspath(path)!r} is {width} px wide, not three frames side by side "
                f"(width divisible by 3); re-run the triplet preprocessing"
            )
        w = width // 3
        return {
            "image": strip[:, :, w : 2 * w].contiguous(),
            "image_prev": strip[:, :, :w].contiguous(),
            "image_next": strip[:, :, 2 * w :].contiguous(),
            "intrinsics": read_cam_file(self.root / city / f"{frame}_cam.txt"),
        }

    def _test(self, city: str, frame: str, index: int) -> Sample:
        image = crop_ego_car(read_image(self.root / "leftImg8bit" / "test" / city / f"{frame}_leftImg8bit.png"))
        sample: Sample = {"image": image}
        if self.gt_dir is not None:
            path = self.gt_dir / f"{index:03d}_depth.npy"
            gt = read_npy(path)
            if gt.ndim != 2 or not np.issubdtype(gt.dtype, np.floating):
                raise DataError(
                    f"cityscapes_sequence: {os.fspath(path)!r} is {gt.dtype} {gt.shape}; expected a float (H, W) depth"
                )
            depth = crop_ego_car(
                torch.from_numpy(np.nan_to_num(gt.astype(np.float32), nan=0.0, posinf=0.0, neginf=0.0))[None]
            )
            if tuple(depth.shape[1:]) != tuple(image.shape[1:]):
                raise DataError(
                    f"cityscapes_sequence: ground truth {os.fspath(path)!r} gives {tuple(depth.shape[1:])} after the "
                    f"ego-car crop but the image gives {tuple(image.shape[1:])}; is the test list order right?"
                )
            sample["depth"] = depth
            sample["depth_valid"] = depth_valid_mask(depth)
        return sample


DATASETS.register(CityscapesSequence, name="cityscapes_sequence")
