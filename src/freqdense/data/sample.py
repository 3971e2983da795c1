"""The data sample contract shared by every dataset, transform, task and model in freqdense.

A sample is a plain ``dict[str, Tensor | dict]`` (collates with torch's default collate). Keys and conventions:

============== ================ ======================================================================
key            shape / dtype    meaning
============== ================ ======================================================================
image          (3, H, W) f32    RGB in [0, 1]; normalisation happens inside models
semantic       (H, W) int64     class ids in [0, num_classes), 255 = ignore
depth          (1, H, W) f32    metric depth in metres, 0 = invalid
depth_valid    (1, H, W) bool   ``depth > 0`` (and finite); explicit so no code re-derives it differently
intrinsics     (3, 3) f32       pinhole K in pixels at the current resolution; pixel centres at integers
image_right    (3, H, W) f32    stereo partner (right camera)
pose_right     (4, 4) f32       T_{target->right}: maps 3-D points from the target camera frame to the right one
baseline       () f32           stereo baseline in metres (right camera at +baseline along x)
image_prev     (3, H, W) f32    previous video frame (t-1)
image_next     (3, H, W) f32    next video frame (t+1)
pose_prev      (4, 4) f32       T_{t->t-1}: target camera frame -> previous camera frame
pose_next      (4, 4) f32       T_{t->t+1}: target camera frame -> next camera frame
sensor_depth   (1, H, W) f32    consumer RGB-D style depth (noise, holes = 0, quantised, misaligned)
sensor_flow    (2, H, W) f32    true misalignment in pixels: sensor_depth[y, x] images the scene point seen
                                by RGB at (x + flow_x, y + flow_y)
meta           dict             ``id`` (str), ``index`` (int), ``split`` (str); never used by the math
============== ================ ======================================================================

Camera conventions follow Monodepth2: x right, y down, z forward; ``p_src ~ K @ T_{t->src} @ (depth * K^-1 @ p_t)``.
"""

from __future__ import annotations

from typing import Any

import torch

__all__ = [
    "IGNORE_INDEX",
    "IMAGE_KEYS",
    "DENSE_FLOAT_KEYS",
    "LABEL_KEYS",
    "POSE_KEYS",
    "SPATIAL_KEYS",
    "Sample",
    "depth_valid_mask",
]

IGNORE_INDEX = 255

#: RGB images: bilinear/bicubic resampling, photometric augmentation applies.
IMAGE_KEYS = ("image", "image_right", "image_prev", "image_next")
#: Dense float maps resampled with nearest neighbour (depth must never be blended across edges).
DENSE_FLOAT_KEYS = ("depth", "sensor_depth")
#: Integer/bool maps, nearest neighbour.
LABEL_KEYS = ("semantic", "depth_valid")
#: Relative camera poses (4x4).
POSE_KEYS = ("pose_right", "pose_prev", "pose_next")
#: Everything with an (..., H, W) spatial layout.
SPATIAL_KEYS = IMAGE_KEYS + DENSE_FLOAT_KEYS + LABEL_KEYS + ("sensor_flow",)

Sample = dict[str, Any]


def depth_valid_mask(depth: torch.Tensor) -> torch.Tensor:
    """The one definition of a valid depth pixel: finite and strictly positive."""
    return torch.isfinite(depth) & (depth > 0)
