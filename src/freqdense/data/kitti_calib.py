"""KITTI raw calibration files and velodyne ground truth (docs/conventions.md#kitti-raw-and-the-eigen-split,
docs/reference_code.md#kitti-evaluation-in-monodepth2).

* ``<date>/calib_cam_to_cam.txt``: ``key: v v v ...`` lines; used keys ``P_rect_0{2,3}`` (3x4 rectified projection
  of the colour cameras), ``R_rect_00`` (3x3 rectifying rotation of camera 0) and ``S_rect_0{2,3}`` (W H of the
  rectified images). Lines whose values are not numbers (``calib_time: 09-Jan-2012 13:57:47``) are skipped.
* ``<date>/calib_velo_to_cam.txt``: ``R`` (3x3, row-major) and ``T`` (3) map velodyne points to camera 0.
* ``velodyne_points/data/<frame:010d>.bin``: float32 ``(N, 4)`` = x forward, y left, z up, reflectance.

Projection (KITTI devkit, as monodepth2's ``generate_depth_map``): ``P = P_rect_0c @ R_rect_00 @ [R|T]`` with
``R_rect_00`` and ``[R|T]`` padded to 4x4; points with ``x < 0`` (behind the scanner) are dropped; pixel
coordinates are ``round(u) - 1`` and ``round(v) - 1`` (NumPy round-half-to-even, then the MATLAB 1-based offset),
kept when inside ``S_rect``; several points on one pixel keep the smallest depth; negative depths become 0.

Rectified cameras share one rotation, so ``P_rect_0c = K [I | t_c]`` with ``t_c = -C_c`` (camera centre in the
rectified camera-0 frame): ``P_rect_0c[0, 3] = fx t_c,x`` and the stereo baseline of cameras 2 and 3 is
``(P_rect_02[0, 3] - P_rect_03[0, 3]) / fx`` (about 0.54 m; camera 3 sits at +baseline along x).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import DataError

__all__ = [
    "KittiCalibration",
    "load_calibration",
    "read_calib_file",
    "read_velodyne",
    "velodyne_depth_map",
]

PathLike = str | os.PathLike


def read_calib_file(path: PathLike) -> dict[str, np.ndarray]:
    """Parse a KITTI ``key: v v v`` calibration file into float64 arrays (non-numeric lines skipped).

    Raises:
        DataError: the file is missing or holds no numeric entry.
    """
    p = Path(path)
    if not p.is_file():
        raise DataError(
            f"KITTI calibration file {os.fspath(path)!r} does not exist; unpack the <date>_calib.zip archive of "
            f"that date into the KITTI raw root (it holds calib_cam_to_cam.txt and calib_velo_to_cam.txt)"
        )
    out: dict[str, np.ndarray] = {}
    for line in p.read_text().splitlines():
        key, sep, value = line.partition(":")
        if not sep:
            continue
        try:
            out[key.strip()] = np.array([float(v) for v in value.split()], dtype=np.float64)
        except ValueError:
            continue  # e.g. calib_time: 09-Jan-2012 13:57:47
    if not out:
        raise DataError(f"KITTI calibration file {os.fspath(path)!r} has no 'key: numbers' line; re-extract it")
    return out


def _entry(calib: dict[str, np.ndarray], key: str, size: int, path: Path) -> np.ndarray:
    if key not in calib:
        raise DataError(f"KITTI calibration file {os.fspath(path)!r} has no {key!r} entry; re-extract it")
    value = calib[key]
    if value.size != size:
        raise DataError(
            f"KITTI calibration entry {key!r} in {os.fspath(path)!r} has {value.size} values, expected {size}"
        )
    return value


@dataclass(frozen=True)
class KittiCalibration:
    """The calibration of one KITTI raw recording date (colour cameras 2 and 3 and the velodyne).

    Attributes:
        p_rect: camera id (2 or 3) -> 3x4 rectified projection matrix ``P_rect_0c``.
        r_rect: 3x3 ``R_rect_00``.
        velo_to_cam: 4x4 ``[R|T]`` from velodyne to (unrectified) camera 0.
        image_size: camera id -> rectified image size ``(H, W)`` from ``S_rect_0c``.
    """

    p_rect: dict[int, np.ndarray]
    r_rect: np.ndarray
    velo_to_cam: np.ndarray
    image_size: dict[int, tuple[int, int]]

    def intrinsics(self, cam: int) -> np.ndarray:
        """3x3 pinhole K of camera ``cam`` at the native rectified resolution (float64)."""
        return self.p_rect[cam][:, :3].copy()

    @property
    def baseline(self) -> float:
        """Stereo baseline of cameras 2 -> 3 in metres: ``(P_rect_02[0, 3] - P_rect_03[0, 3]) / fx``."""
        return float((self.p_rect[2][0, 3] - self.p_rect[3][0, 3]) / self.p_rect[2][0, 0])

    def velo_to_image(self, cam: int) -> np.ndarray:
        """3x4 projection of homogeneous velodyne points into rectified camera ``cam``'s pixels."""
        r_rect = np.eye(4)
        r_rect[:3, :3] = self.r_rect
        return self.p_rect[cam] @ r_rect @ self.velo_to_cam


def load_calibration(date_dir: PathLike) -> KittiCalibration:
    """Read ``calib_cam_to_cam.txt`` and ``calib_velo_to_cam.txt`` from a KITTI raw ``<date>/`` directory.

    Raises:
        DataError: a file or a needed key is missing or malformed (the message names it).
    """
    cam_path = Path(date_dir) / "calib_cam_to_cam.txt"
    velo_path = Path(date_dir) / "calib_velo_to_cam.txt"
    cam = read_calib_file(cam_path)
    velo = read_calib_file(velo_path)
    p_rect = {c: _entry(cam, f"P_rect_0{c}", 12, cam_path).reshape(3, 4) for c in (2, 3)}
    sizes = {}
    for c in (2, 3):
        w, h = _entry(cam, f"S_rect_0{c}", 2, cam_path)
        sizes[c] = (int(round(h)), int(round(w)))
    velo_to_cam = np.eye(4)
    velo_to_cam[:3, :3] = _entry(velo, "R", 9, velo_path).reshape(3, 3)
    velo_to_cam[:3, 3] = _entry(velo, "T", 3, velo_path)
    if not p_rect[2][0, 0] > 0:
        raise DataError(f"P_rect_02 in {os.fspath(cam_path)!r} has fx = {p_rect[2][0, 0]}; the file is corrupt")
    return KittiCalibration(p_rect, _entry(cam, "R_rect_00", 9, cam_path).reshape(3, 3), velo_to_cam, sizes)


def read_velodyne(path: PathLike) -> np.ndarray:
    """Read a velodyne scan ``.bin`` as float32 ``(N, 4)``: x forward, y left, z up (metres), reflectance.

    Raises:
        DataError: the file is missing or its size is not a multiple of 16 bytes (truncated).
    """
    p = Path(path)
    if not p.is_file():
        raise DataError(
            f"velodyne file {os.fspath(path)!r} does not exist; unpack the drive's velodyne_points into the KITTI "
            f"raw tree, or ask for no velodyne ground truth (depth=None / depth='improved')"
        )
    raw = p.read_bytes()
    if len(raw) % 16:
        raise DataError(
            f"velodyne file {os.fspath(path)!r} has {len(raw)} bytes, not a multiple of 16 (4 float32 per point); "
            f"it is truncated: re-extract it"
        )
    return np.frombuffer(raw, dtype="<f4").reshape(-1, 4).copy()


def velodyne_depth_map(
    points: np.ndarray,
    calib: KittiCalibration,
    cam: int = 2,
    *,
    forward_depth: bool = False,
    image_size: tuple[int, int] | None = None,
) -> np.ndarray:
    """Project velodyne points to a sparse depth map of camera ``cam`` (see the module docstring).

    Args:
        points: ``(N, 3+)`` velodyne points (x forward, y left, z up; extra columns ignored).
        calib: the recording date's calibration.
        cam: 2 (left colour camera, ``image_02``) or 3 (right, ``image_03``).
        forward_depth: store the velodyne forward distance ``x`` instead of the camera ``z`` (monodepth2's
            ``vel_depth=True``, used to export the Eigen test ground truth); camera ``z`` is the training GT.
        image_size: ``(H, W)`` of the map; default ``S_rect_0c``.

    Returns:
        float32 ``(H, W)`` depth in metres, 0 = no point.
    """
    if cam not in (2, 3):
        raise DataError(f"KITTI colour camera must be 2 or 3, got {cam!r}")
    h, w = image_size if image_size is not None else calib.image_size[cam]
    pts = np.asarray(points, dtype=np.float64)
    pts = pts[pts[:, 0] >= 0]
    homog = np.concatenate([pts[:, :3], np.ones((len(pts), 1))], axis=1)
    proj = homog @ calib.velo_to_image(cam).T  # (N, 3)
    with np.errstate(divide="ignore", invalid="ignore"):
        u = np.round(proj[:, 0] / proj[:, 2]) - 1
        v = np.round(proj[:, 1] / proj[:, 2]) - 1
    depth = pts[:, 0] if forward_depth else proj[:, 2]
    keep = (u >= 0) & (v >= 0) & (u < w) & (v < h)
    out = np.full((h, w), np.inf)
    np.minimum.at(out, (v[keep].astype(np.int64), u[keep].astype(np.int64)), depth[keep])
    out[~np.isfinite(out) | (out < 0)] = 0.0
    return out.astype(np.float32)
