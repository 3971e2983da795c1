"""Pinhole intrinsics, camera rotations and relative poses (Monodepth2 conventions: x right, y down, z forward).

All matrices here are float64 numpy arrays; the dataset casts them to float32 at the end.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["intrinsics", "rotation_ypr", "pose_matrix", "relative_pose", "pixel_directions"]


def intrinsics(height: int, width: int, hfov_deg: float) -> np.ndarray:
    """K (3, 3) with square pixels, the principal point at the image centre and pixel centres at integers."""
    fx = (width / 2.0) / math.tan(math.radians(hfov_deg) / 2.0)
    return np.array([[fx, 0.0, (width - 1) / 2.0], [0.0, fx, (height - 1) / 2.0], [0.0, 0.0, 1.0]])


def rotation_ypr(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """Camera-to-world rotation R = R_y(yaw) R_x(pitch) R_z(roll).

    With y pointing down, positive yaw turns the optical axis (+z) towards +x and positive pitch tilts it
    up (towards -y).
    """
    cy, sy = math.cos(yaw), math.sin(yaw)
    cp, sp = math.cos(pitch), math.sin(pitch)
    cr, sr = math.cos(roll), math.sin(roll)
    r_yaw = np.array([[cy, 0.0, sy], [0.0, 1.0, 0.0], [-sy, 0.0, cy]])
    r_pitch = np.array([[1.0, 0.0, 0.0], [0.0, cp, -sp], [0.0, sp, cp]])
    r_roll = np.array([[cr, -sr, 0.0], [sr, cr, 0.0], [0.0, 0.0, 1.0]])
    return r_yaw @ r_pitch @ r_roll


def pose_matrix(rotation: np.ndarray, translation: np.ndarray) -> np.ndarray:
    """4x4 rigid transform [R t; 0 1]."""
    out = np.eye(4)
    out[:3, :3] = rotation
    out[:3, 3] = translation
    return out


def relative_pose(target_to_world: np.ndarray, source_to_world: np.ndarray) -> np.ndarray:
    """T_{target->source}: maps points from the target camera frame to the source camera frame."""
    return np.linalg.inv(source_to_world) @ target_to_world


def pixel_directions(K: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Camera-frame ray directions (..., 3) with z = 1 through pixel coordinates (u, v), so ray t = depth."""
    u, v = np.broadcast_arrays(u, v)
    out = np.empty(u.shape + (3,), dtype=np.float64)
    out[..., 0] = (u - K[0, 2]) / K[0, 0]
    out[..., 1] = (v - K[1, 2]) / K[1, 1]
    out[..., 2] = 1.0
    return out
