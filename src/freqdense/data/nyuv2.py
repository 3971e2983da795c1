"""NYUv2 depth evaluation from the official labeled file (docs/conventions.md#nyuv2-official-labeled-file,
#nyuv2-for-self-supervised-depth).

Layout::

    <root>/nyu_depth_v2_labeled.mat   MATLAB v7.3 (HDF5): images (N, 3, 640, 480) uint8, depths (N, 640, 480) metres
    <root>/splits.mat                 MATLAB v5: trainNdxs (795, 1), testNdxs (654, 1), 1-based

h5py reverses MATLAB's axis order, so each image is transposed to (3, 480, 640) and each depth to (480, 640).
``depths`` are the in-painted (hole-filled) maps; ``rawDepths`` (``raw_depth=True``) keep the sensor holes (0).
The usual self-supervised protocol (``DEPTH_PROTOCOLS["nyuv2_eigen_mono"]``: Eigen crop [45:471, 41:601] at
480x640, cap 10 m, median scaling) is the common P2Net/StructDepth one and is marked unverified in docs/conventions.md.
Importing this module registers ``"nyuv2_depth"``. It also holds the NYU constants shared by the segmentation
loaders (:mod:`.nyud_mt`, :mod:`.nyuv2_seg`): the 40/13 class names, the split sizes and the colour camera.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from ..errors import ConfigError, DataError
from . import DATASETS
from ._segmentation_files import bit_interleaved_palette, check_num_samples, check_root, check_split
from .sample import IGNORE_INDEX, Sample, depth_valid_mask

log = logging.getLogger(__name__)

__all__ = [
    "NYU13_CLASSES",
    "NYU13_PALETTE",
    "NYU40_CLASSES",
    "NYU40_PALETTE",
    "NYU_COLOR_INTRINSICS",
    "NYU_SPLIT_SIZES",
    "NYUv2Depth",
    "check_nyu_split_size",
    "nyu_color_intrinsics",
    "nyu_label_table",
    "read_nyu_split_indices",
]

#: NYU Kinect colour camera (fx, fy, cx, cy) in pixels at 480x640 (Depth2HHA-python ``getCameraParam``).
NYU_COLOR_INTRINSICS = (518.8579, 519.4696, 325.5824, 253.7362)

#: Frames per split of the 1449 labelled frames (``splits.mat``; NYUD_MT calls the test split ``val``).
NYU_SPLIT_SIZES = {"train": 795, "test": 654, "val": 654}

#: The 40 classes of Gupta et al. (``classMapping40.mat``); label ``k`` here is class ``k + 1`` on disk.
NYU40_CLASSES: tuple[str, ...] = (
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
    "refrigerator",
    "television",
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
    "otherstructure",
    "otherfurniture",
    "otherprop",
)

#: The 13 classes of Couprie et al. / Eigen and Fergus (``class13Mapping.mat``), in file order.
NYU13_CLASSES: tuple[str, ...] = (
    "bed",
    "books",
    "ceiling",
    "chair",
    "floor",
    "furniture",
    "objects",
    "picture",
    "sofa",
    "table",
    "tv",
    "wall",
    "window",
)

#: Display colours: the VOC bit-interleaved map shifted by one so that no class is black (black = void).
NYU40_PALETTE: list[tuple[int, int, int]] = bit_interleaved_palette(41)[1:]
NYU13_PALETTE: list[tuple[int, int, int]] = bit_interleaved_palette(14)[1:]


def nyu_color_intrinsics(
    height: int = 480, width: int = 640, *, override: Sequence[float] | None = None
) -> torch.Tensor:
    """The NYU colour camera K (3, 3) float32 for an image of ``height x width`` resampled from 480x640.

    The same map as :func:`freqdense.data.transforms.resize`: ``fx' = fx W/640``, ``cx' = (cx + 0.5) W/640 - 0.5``
    (pixel centres at integers). For a copy that was *cropped* rather than resized, pass the crop's own
    ``override=(fx, fy, cx, cy)`` (pixels at the image size), which is returned as a matrix unchanged.

    Raises:
        ConfigError: ``override`` is not four numbers.

    Examples:
        >>> [round(v, 4) for v in nyu_color_intrinsics()[0].tolist()]
        [518.8579, 0.0, 325.5824]
        >>> [round(v, 4) for v in nyu_color_intrinsics(240, 320)[0].tolist()]  # fx / 2, (cx + 0.5) / 2 - 0.5
        [259.429, 0.0, 162.5412]
    """
    if override is not None:
        values = list(override)
        if len(values) != 4 or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
            raise ConfigError(f"intrinsics must be (fx, fy, cx, cy) in pixels at the image size, got {override!r}")
        fx, fy, cx, cy = (float(v) for v in values)
        return torch.tensor([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]], dtype=torch.float32)
    fx, fy, cx, cy = NYU_COLOR_INTRINSICS
    sx, sy = width / 640.0, height / 480.0
    return torch.tensor(
        [[fx * sx, 0.0, (cx + 0.5) * sx - 0.5], [0.0, fy * sy, (cy + 0.5) * sy - 0.5], [0.0, 0.0, 1.0]],
        dtype=torch.float32,
    )


def nyu_label_table(num_classes: int, size: int = 256) -> torch.Tensor:
    """LUT for on-disk NYU labels: 0 (void) -> 255, ``1..K`` -> ``0..K-1``, 255 -> 255, anything else -> -1.

    The -1 entries let the loader name a file holding impossible values (a colour map, an 894-class map).

    Examples:
        >>> nyu_label_table(40)[torch.tensor([0, 1, 7, 40, 41, 255])].tolist()
        [255, 0, 6, 39, -1, 255]
    """
    lut = torch.full((size,), -1, dtype=torch.int64)
    lut[0] = IGNORE_INDEX
    lut[1 : num_classes + 1] = torch.arange(num_classes)
    if size > IGNORE_INDEX:
        lut[IGNORE_INDEX] = IGNORE_INDEX
    return lut


def check_nyu_split_size(count: int, split: str, dataset: str, source: str) -> None:
    """Log a warning when a split does not have the official 795/654 frames (tiny fixtures and subsets do)."""
    expected = NYU_SPLIT_SIZES.get(split)
    if expected is not None and count != expected:
        log.warning(
            "%s %r split lists %d frames in %s, not the official %d; results will not be comparable to published "
            "NYUv2 numbers (fine for a subset, wrong for a full run: check the split file)",
            dataset,
            split,
            count,
            source,
            expected,
        )


_LAYOUT = """  <root>/nyu_depth_v2_labeled.mat   (h5py-readable MATLAB v7.3 file with 'images' and 'depths')
  <root>/splits.mat                 (trainNdxs / testNdxs, 1-based)"""
_SPLIT_KEYS = {"train": "trainNdxs", "test": "testNdxs"}


def read_nyu_split_indices(path: str | os.PathLike, split: str) -> list[int]:
    """The 1-based frame numbers of ``split`` (``"train"``: 795, ``"test"``: 654) from ``splits.mat``.

    Raises:
        DataError: missing/unreadable file or key.
    """
    import scipy.io

    p = Path(path)
    if not p.is_file():
        raise DataError(f"NYUv2 split file {os.fspath(path)!r} does not exist; put splits.mat next to the .mat file")
    try:
        mat = scipy.io.loadmat(p)
    except (OSError, ValueError, NotImplementedError) as err:
        raise DataError(f"cannot read NYUv2 split file {os.fspath(path)!r} ({type(err).__name__}: {err})") from err
    key = _SPLIT_KEYS[split]
    if key not in mat:
        raise DataError(f"NYUv2 split file {os.fspath(path)!r} has no {key!r} array; is it the official splits.mat?")
    return [int(i) for i in np.asarray(mat[key]).reshape(-1)]


class NYUv2Depth(Dataset):
    """The labeled NYUv2 frames as depth samples (RGB, metric depth, colour-camera intrinsics).

    Args:
        root: folder with ``nyu_depth_v2_labeled.mat`` and ``splits.mat``.
        split: ``"test"`` (654 frames) or ``"train"`` (795).
        transform: joint transform applied to each sample.
        raw_depth: read ``rawDepths`` (holes = 0) instead of the in-painted ``depths``.
        num_samples: use only the first ``num_samples`` frames.

    Samples: ``image`` (3, 480, 640), ``depth``/``depth_valid`` (1, 480, 640), ``intrinsics``, ``meta`` with
    the 1-based frame number as a 4-digit id (ESANet's file names; SA-Gate's copies are 0-based).
    """

    name = "nyuv2_depth"

    def __init__(
        self,
        *,
        root: str | os.PathLike | None = None,
        split: str = "test",
        transform: Callable[[Sample], Sample] | None = None,
        raw_depth: bool = False,
        num_samples: int | None = None,
    ) -> None:
        import h5py

        self.split = check_split(split, tuple(_SPLIT_KEYS), self.name)
        self.root = check_root(root, self.name, _LAYOUT)
        self.mat_path = self.root / "nyu_depth_v2_labeled.mat"
        self.depth_key = "rawDepths" if raw_depth else "depths"
        self.transform = transform
        if not self.mat_path.is_file():
            raise DataError(f"NYUv2 file {os.fspath(self.mat_path)!r} does not exist; expected layout:\n{_LAYOUT}")
        try:
            with h5py.File(self.mat_path, "r") as f:
                shapes = {k: f[k].shape for k in ("images", self.depth_key)}
        except (OSError, KeyError) as err:
            raise DataError(
                f"cannot read 'images'/{self.depth_key!r} from {os.fspath(self.mat_path)!r} with h5py "
                f"({type(err).__name__}: {err}); it must be the official MATLAB v7.3 labeled file"
            ) from err
        count = shapes["images"][0]
        if len(shapes["images"]) != 4 or shapes["images"][1] != 3 or shapes[self.depth_key][0] != count:
            raise DataError(
                f"{os.fspath(self.mat_path)!r} has images {shapes['images']} and {self.depth_key} "
                f"{shapes[self.depth_key]}; expected (N, 3, W, H) and (N, W, H)"
            )
        indices = read_nyu_split_indices(self.root / "splits.mat", split)
        bad = [i for i in indices if not 1 <= i <= count]
        if bad:
            raise DataError(f"splits.mat lists frame {bad[0]} but the .mat file has {count} frames (1-based)")
        self.num_frames = count
        self.split_size = len(indices)
        self.indices = indices[: check_num_samples(num_samples, len(indices), self.name, split)]
        self._file: Any = None
        self._pid: int | None = None

    def __len__(self) -> int:
        return len(self.indices)

    def _handle(self) -> Any:
        import h5py

        if self._file is None or self._pid != os.getpid():  # one handle per (worker) process
            self._file = h5py.File(self.mat_path, "r")
            self._pid = os.getpid()
        return self._file

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_file"] = None
        return state

    def __getitem__(self, index: int) -> Sample:
        n = len(self.indices)
        if not -n <= index < n:
            raise IndexError(f"index {index} out of range for {self.name} {self.split!r} split of {n} samples")
        sample = self._read_frame(int(index) % n)
        return self.transform(sample) if self.transform is not None else sample

    def _read_frame(self, index: int) -> Sample:
        """The untransformed sample at ``index`` (subclasses add keys)."""
        frame = self.indices[index]
        f = self._handle()
        rgb = np.asarray(f["images"][frame - 1]).transpose(0, 2, 1)  # (3, W, H) -> (3, H, W)
        depth = np.asarray(f[self.depth_key][frame - 1], dtype=np.float32).T
        image = torch.from_numpy(np.ascontiguousarray(rgb)).float().div_(255.0)
        depth_t = torch.from_numpy(np.nan_to_num(np.ascontiguousarray(depth), nan=0.0, posinf=0.0, neginf=0.0))[None]
        fx, fy, cx, cy = NYU_COLOR_INTRINSICS
        sample: Sample = {
            "image": image,
            "depth": depth_t,
            "depth_valid": depth_valid_mask(depth_t),
            "intrinsics": torch.tensor([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]], dtype=torch.float32),
            "meta": {"id": f"{frame:04d}", "index": index, "split": self.split},
        }
        return sample


DATASETS.register(NYUv2Depth, name="nyuv2_depth")
