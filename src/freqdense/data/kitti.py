"""KITTI raw for self-supervised monocular / stereo depth (monodepth2 conventions;
docs/conventions.md#kitti-raw-and-the-eigen-split, docs/reference_code.md#kitti-data-in-monodepth2).

Layout (docs/data/depth_datasets.md)::

    <root>/<date>/calib_cam_to_cam.txt, calib_velo_to_cam.txt
    <root>/<date>/<date>_drive_<nnnn>_sync/image_02/data/<frame:010d>.png|.jpg      (left colour camera)
    <root>/<date>/<date>_drive_<nnnn>_sync/image_03/data/<frame:010d>.png|.jpg      (right colour camera)
    <root>/<date>/<date>_drive_<nnnn>_sync/velodyne_points/data/<frame:010d>.bin    (depth="velodyne*")
    <root>/<date>/<date>_drive_<nnnn>_sync/proj_depth/groundtruth/image_0{2,3}/<frame:010d>.png   (depth="improved")

Split files use monodepth2's line format ``<date>/<drive> <frame> <side>`` (``side`` l -> image_02, r -> image_03,
frame zero-padded or not). The official Eigen / Eigen-Zhou lists come from their authors (monodepth2's ``splits/``
folder, which freqdense cannot ship); :func:`generate_split_files` builds Eigen-Zhou-*style* lists from a raw tree.
Importing this module registers ``"kitti"``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Literal, NamedTuple

import numpy as np
import torch
from torch.utils.data import Dataset

from ..errors import ConfigError, DataError
from . import DATASETS
from ._segmentation_files import check_num_samples, check_root
from .io import atomic_write, read_depth_png, read_image
from .kitti_calib import KittiCalibration, load_calibration, read_velodyne, velodyne_depth_map
from .sample import Sample, depth_valid_mask

__all__ = [
    "KITTI_MONODEPTH2_K",
    "STEREO_SCALE_FACTOR",
    "KittiFrame",
    "KittiRaw",
    "generate_split_files",
    "read_split_file",
    "write_split_file",
]

log = logging.getLogger(__name__)

#: monodepth2 trains stereo with a fixed 0.1 "baseline" instead of KITTI's ~0.54 m, so its stereo depths are in
#: units of 0.54 / 0.1 = 5.4 m; its evaluation multiplies them by this factor (no median scaling). With
#: ``KittiRaw``'s calibrated baseline (the default) stereo-trained depth is already metric and needs no factor.
STEREO_SCALE_FACTOR = 5.4
#: monodepth2's normalised KITTI intrinsics: fx / W, fy / H, cx / W, cy / H (principal point assumed centred).
KITTI_MONODEPTH2_K = (0.58, 1.92, 0.5, 0.5)

_SIDE_TO_CAM = {"l": 2, "r": 3}
_EXTS = {"png": (".png",), "jpg": (".jpg",), "auto": (".png", ".jpg")}
_LAYOUT = """  <root>/<date>/calib_cam_to_cam.txt and calib_velo_to_cam.txt
  <root>/<date>/<date>_drive_<nnnn>_sync/image_02/data/<frame:010d>.png (or .jpg), same for image_03
  <root>/<date>/<date>_drive_<nnnn>_sync/velodyne_points/data/<frame:010d>.bin          (velodyne ground truth)
  <root>/<date>/<date>_drive_<nnnn>_sync/proj_depth/groundtruth/image_02/<frame:010d>.png  (improved ground truth)"""


class KittiFrame(NamedTuple):
    """One split line: drive folder ``<date>/<drive>``, frame index, side ``"l"`` or ``"r"``."""

    folder: str
    frame: int
    side: str

    def line(self) -> str:
        """The monodepth2 split-file line (frame zero-padded to 10 digits, as in the Eigen test list)."""
        return f"{self.folder} {self.frame:010d} {self.side}"


def read_split_file(path: str | os.PathLike) -> list[KittiFrame]:
    """Parse a monodepth2 split file: ``<date>/<drive> <frame> <side>`` per line (blank and ``#`` lines skipped).

    Raises:
        DataError: missing/empty file, or a malformed line (the message names the file and the line number).
    """
    p = Path(path)
    if not p.is_file():
        raise DataError(
            f"KITTI split file {os.fspath(path)!r} does not exist; pass the authors' list (e.g. monodepth2's "
            f"splits/eigen/test_files.txt) or build one with freqdense.data.kitti.generate_split_files"
        )
    frames = []
    for number, raw in enumerate(p.read_text().splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split()
        ok = len(parts) == 3 and parts[1].isdigit() and parts[2] in _SIDE_TO_CAM and parts[0].count("/") == 1
        if not ok:
            raise DataError(
                f"KITTI split file {os.fspath(path)!r} line {number}: {raw!r} is not '<date>/<drive> <frame> <l|r>' "
                f"(e.g. '2011_09_26/2011_09_26_drive_0022_sync 473 r'); fix or remove the line"
            )
        frames.append(KittiFrame(parts[0], int(parts[1]), parts[2]))
    if not frames:
        raise DataError(f"KITTI split file {os.fspath(path)!r} holds no sample line; re-create it")
    return frames


def write_split_file(path: str | os.PathLike, frames: Iterable[KittiFrame]) -> None:
    """Write frames in the monodepth2 line format (atomically)."""
    with atomic_write(path, "w") as f:
        f.writelines(f"{frame.line()}\n" for frame in frames)


def _image_file(root: Path, folder: str, frame: int, cam: int, exts: Sequence[str]) -> Path | None:
    base = root / folder / f"image_0{cam}" / "data" / f"{frame:010d}"
    for ext in exts:
        if (path := base.with_suffix(ext)).is_file():
            return path
    return None


def generate_split_files(
    root: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    exclude_split_file: str | os.PathLike | None = None,
    val_fraction: float = 0.1,
    seed: int = 0,
    sides: Sequence[str] = ("l", "r"),
) -> dict[str, Path]:
    """Write Eigen-Zhou-style ``train_files.txt`` / ``val_files.txt`` for a KITTI raw tree.

    Rule: every frame (of each side in ``sides``) whose previous and next frames exist in the same camera folder,
    in every drive of ``root`` that does not appear in ``exclude_split_file`` (pass the Eigen test list so no test
    drive leaks into training); a seeded random ``val_fraction`` of the lines goes to validation. This follows
    Zhou et al.'s rule (test drives out, neighbours needed) but skips their static-frame removal, so the lists
    are *not* the official ``eigen_zhou`` ones (39,810 / 4,424 lines): use the authors' files for comparable numbers.

    Returns:
        ``{"train": path, "val": path}`` of the written files.
    """
    root_path = check_root(root, "kitti", _LAYOUT)
    if not 0.0 <= val_fraction < 1.0:
        raise ConfigError(f"val_fraction must be in [0, 1), got {val_fraction}")
    bad = [s for s in sides if s not in _SIDE_TO_CAM]
    if bad or not sides:
        raise ConfigError(f"sides must be a non-empty subset of ('l', 'r'), got {tuple(sides)!r}")
    excluded = {f.folder for f in read_split_file(exclude_split_file)} if exclude_split_file is not None else set()
    frames: list[KittiFrame] = []
    for drive in sorted(root_path.glob("*/*_sync")):
        folder = f"{drive.parent.name}/{drive.name}"
        if folder in excluded:
            continue
        for side in sides:
            data = drive / f"image_0{_SIDE_TO_CAM[side]}" / "data"
            indices = {int(p.stem) for p in data.glob("*") if p.suffix in (".png", ".jpg") and p.stem.isdigit()}
            frames += [KittiFrame(folder, i, side) for i in sorted(indices) if i - 1 in indices and i + 1 in indices]
    if not frames:
        raise DataError(
            f"no KITTI frame with both neighbours under {os.fspath(root_path)!r} (after excluding the drives of "
            f"{os.fspath(exclude_split_file) if exclude_split_file else 'nothing'}); expected layout:\n{_LAYOUT}"
        )
    order = np.random.default_rng(seed).permutation(len(frames))
    n_val = int(round(val_fraction * len(frames)))
    val_ids = set(order[:n_val].tolist())
    out = Path(out_dir)
    paths = {"train": out / "train_files.txt", "val": out / "val_files.txt"}
    write_split_file(paths["train"], [f for i, f in enumerate(frames) if i not in val_ids])
    write_split_file(paths["val"], [f for i, f in enumerate(frames) if i in val_ids])
    log.info("KITTI split: %d train / %d val lines written to %s", len(frames) - n_val, n_val, out)
    return paths


class KittiRaw(Dataset):
    """KITTI raw frames for self-supervised depth, with optional velodyne or improved ground truth.

    Args:
        root: the KITTI raw root (``<date>/`` folders; see the module docstring).
        split: ``"train"``, ``"val"`` or ``"test"``: reads ``<split_dir>/<split>_files.txt`` unless
            ``split_file`` is given.
        transform: joint transform applied to each sample.
        split_file: an explicit monodepth2-format split file (overrides ``split_dir``).
        split_dir: a folder with ``{train,val,test}_files.txt`` (e.g. monodepth2's ``splits/eigen_zhou``).
        temporal: add ``image_prev`` / ``image_next`` (frames -1 / +1 of the same camera; both must exist).
        stereo: add ``image_right`` (the other camera's frame), ``pose_right`` and ``baseline``.
        depth: ground truth to add as ``depth`` + ``depth_valid``: None; ``"velodyne"`` (projected camera z,
            monodepth2's training GT); ``"velodyne_forward"`` (velodyne x, what monodepth2 exports for the Eigen
            test GT); ``"improved"`` (``proj_depth/groundtruth`` uint16 PNG / 256, the eigen_benchmark GT).
        image_ext: ``"png"``, ``"jpg"`` (monodepth2's converted images) or ``"auto"`` (png if present, else jpg).
        intrinsics: ``"calib"`` (``P_rect`` of the camera) or ``"monodepth2"`` (0.58 W, 1.92 H, centred).
        stereo_baseline: None = from the calibration (metric, ~0.54 m); a number overrides it (0.1 reproduces
            monodepth2, whose depths are then in units of :data:`STEREO_SCALE_FACTOR` metres).
        num_samples: use only the first ``num_samples`` lines.

    Samples: ``image`` (3, H, W) of the line's camera at native resolution, ``intrinsics`` (3, 3),
    ``meta`` (``id`` = the split line), plus the keys enabled above. For side ``r`` the target is camera 3 and
    ``image_right`` holds camera 2: ``baseline`` is then negative and ``pose_right[0, 3] = -baseline`` (the
    sample contract's signed convention, as after a flip), so ``pose_right`` always maps target -> other camera.
    """

    name = "kitti"

    def __init__(
        self,
        *,
        root: str | os.PathLike | None = None,
        split: str = "train",
        transform: Callable[[Sample], Sample] | None = None,
        split_file: str | os.PathLike | None = None,
        split_dir: str | os.PathLike | None = None,
        temporal: bool = True,
        stereo: bool = False,
        depth: Literal["velodyne", "velodyne_forward", "improved"] | None = None,
        image_ext: Literal["png", "jpg", "auto"] = "auto",
        intrinsics: Literal["calib", "monodepth2"] = "calib",
        stereo_baseline: float | None = None,
        num_samples: int | None = None,
    ) -> None:
        self.root = check_root(root, "kitti", _LAYOUT)
        if depth not in (None, "velodyne", "velodyne_forward", "improved"):
            raise ConfigError(f"kitti depth must be None, 'velodyne', 'velodyne_forward' or 'improved', got {depth!r}")
        if image_ext not in _EXTS:
            raise ConfigError(f"kitti image_ext must be 'png', 'jpg' or 'auto', got {image_ext!r}")
        if intrinsics not in ("calib", "monodepth2"):
            raise ConfigError(f"kitti intrinsics must be 'calib' or 'monodepth2', got {intrinsics!r}")
        if stereo_baseline is not None and not stereo_baseline > 0:
            raise ConfigError(f"kitti stereo_baseline must be positive metres or None, got {stereo_baseline!r}")
        if split_file is None:
            if split_dir is None:
                raise ConfigError(
                    f"kitti needs split_file= or split_dir= (a folder with {split}_files.txt): use the authors' "
                    f"lists (monodepth2 splits/eigen_zhou for training, splits/eigen for the test) or write "
                    f"Eigen-Zhou-style ones with freqdense.data.kitti.generate_split_files(root, out_dir)"
                )
            split_file = Path(split_dir) / f"{split}_files.txt"
        self.split = split
        self.split_file = Path(split_file)
        frames = read_split_file(self.split_file)
        self.frames = frames[: check_num_samples(num_samples, len(frames), "kitti", split)]
        self.transform = transform
        self.temporal, self.stereo, self.depth = bool(temporal), bool(stereo), depth
        self.exts = _EXTS[image_ext]
        self.intrinsics_source = intrinsics
        self.stereo_baseline = stereo_baseline
        self._calib: dict[str, KittiCalibration] = {}

    def __len__(self) -> int:
        return len(self.frames)

    def calibration(self, date: str) -> KittiCalibration:
        """The (cached) calibration of a recording date folder."""
        if date not in self._calib:
            self._calib[date] = load_calibration(self.root / date)
        return self._calib[date]

    def _image(self, frame: KittiFrame, index: int, cam: int, what: str) -> torch.Tensor:
        path = _image_file(self.root, frame.folder, index, cam, self.exts)
        if path is None:
            wanted = self.root / frame.folder / f"image_0{cam}" / "data" / f"{index:010d}"
            hint = (
                " (temporal=True needs frames -1 and +1: drop first/last frames from the split or set temporal=False)"
                if what != "image"
                else ""
            )
            raise DataError(
                f"kitti: {what} file {os.fspath(wanted)}{'|'.join(self.exts)} for split line {frame.line()!r} of "
                f"{os.fspath(self.split_file)!r} does not exist{hint}; check root= and image_ext="
            )
        return read_image(path)

    def __getitem__(self, index: int) -> Sample:
        n = len(self.frames)
        if not -n <= index < n:
            raise IndexError(f"index {index} out of range for kitti {self.split!r} split of {n} samples")
        index = int(index) % n
        frame = self.frames[index]
        cam = _SIDE_TO_CAM[frame.side]
        other = 5 - cam
        calib = self.calibration(frame.folder.split("/")[0])
        image = self._image(frame, frame.frame, cam, "image")
        h, w = image.shape[1:]
        sample: Sample = {"image": image}
        if self.temporal:
            sample["image_prev"] = self._image(frame, frame.frame - 1, cam, "previous frame")
            sample["image_next"] = self._image(frame, frame.frame + 1, cam, "next frame")
        if self.intrinsics_source == "calib":
            k = calib.intrinsics(cam)
        else:
            fx, fy, cx, cy = KITTI_MONODEPTH2_K
            k = np.array([[fx * w, 0, cx * w], [0, fy * h, cy * h], [0, 0, 1]])
        sample["intrinsics"] = torch.as_tensor(k, dtype=torch.float32)
        if self.stereo:
            sample["image_right"] = self._image(frame, frame.frame, other, "stereo partner")
            magnitude = self.stereo_baseline if self.stereo_baseline is not None else calib.baseline
            signed = magnitude if cam == 2 else -magnitude  # other camera at +baseline along x
            pose = torch.eye(4)
            pose[0, 3] = -signed
            sample["pose_right"] = pose
            sample["baseline"] = torch.tensor(signed, dtype=torch.float32)
        if self.depth is not None:
            depth = self._depth(frame, cam, calib, (h, w))
            sample["depth"] = depth
            sample["depth_valid"] = depth_valid_mask(depth)
        for key in ("image_prev", "image_next", "image_right"):
            if key in sample and tuple(sample[key].shape) != tuple(image.shape):
                raise DataError(
                    f"kitti: {key} of split line {frame.line()!r} is {tuple(sample[key].shape[1:])} but the image is "
                    f"{(h, w)}; the raw tree mixes resolutions (re-extract the drive)"
                )
        sample["meta"] = {"id": frame.line(), "index": index, "split": self.split}
        return self.transform(sample) if self.transform is not None else sample

    def _depth(self, frame: KittiFrame, cam: int, calib: KittiCalibration, size: tuple[int, int]) -> torch.Tensor:
        drive = self.root / frame.folder
        if self.depth == "improved":
            path = drive / "proj_depth" / "groundtruth" / f"image_0{cam}" / f"{frame.frame:010d}.png"
            if not path.is_file():
                raise DataError(
                    f"kitti: improved ground truth {os.fspath(path)!r} does not exist; merge data_depth_annotated "
                    f"into the raw tree (none for the first and last 5 frames of a drive: use the eigen_benchmark list)"
                )
            depth = read_depth_png(path, 256.0)
        else:
            points = read_velodyne(drive / "velodyne_points" / "data" / f"{frame.frame:010d}.bin")
            dmap = velodyne_depth_map(points, calib, cam, forward_depth=self.depth == "velodyne_forward")
            depth = torch.from_numpy(dmap)[None]
        if tuple(depth.shape[1:]) != size:
            raise DataError(
                f"kitti: {self.depth} ground truth of split line {frame.line()!r} is {tuple(depth.shape[1:])} but the "
                f"image is {size}; S_rect_0{cam} in {os.fspath(drive.parent / 'calib_cam_to_cam.txt')!r} or the "
                f"ground-truth file does not belong to this image"
            )
        return depth

    def __repr__(self) -> str:
        return (
            f"KittiRaw(root={os.fspath(self.root)!r}, split_file={os.fspath(self.split_file)!r}, "
            f"num_samples={len(self)})"
        )


DATASETS.register(KittiRaw, name="kitti")
