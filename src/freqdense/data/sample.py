"""The data sample contract shared by every dataset, transform, task and model in freqdense.

A sample is a plain ``dict[str, Tensor | dict]`` (collates with torch's default collate). Keys and conventions:

============== ================ ======================================================================
key            shape / dtype    meaning
============== ================ ======================================================================
image          (3, H, W) f32    RGB in [0, 1]; normalisation happens inside models
hha            (3, H, W) f32    HHA depth encoding / 255, in [0, 1]: channels (disparity, height, angle) as
                                :func:`freqdense.ops.depth_to_hha` returns them; 0 where depth is invalid.
                                Resampled like an image (bilinear/bicubic) but never colour-jittered
semantic       (H, W) int64     class ids in [0, num_classes), 255 = ignore
depth          (1, H, W) f32    metric depth in metres, 0 = invalid
depth_valid    (1, H, W) bool   ``depth > 0`` (and finite); explicit so no code re-derives it differently
disparity      (1, H, W) f32    stereo disparity (inverse depth) in pixels of some reference scale (e.g. the
                                stored resolution of MTAN's Cityscapes files), 0 = invalid. Not depth: no task,
                                loss or metric reads it (train on it with ``depth="disparity_as_depth"``).
                                Nearest-neighbour resampling with values unchanged (they keep the reference
                                scale's pixel unit); multiplied by the scale where a zoom divides depth
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
instance       (H, W) int64     instance ids (0 = no thing); resampled like a label map (nearest, crops pad 0)
boxes          (N, 4) f32       object boxes ``x1, y1, x2, y2`` in continuous pixels (pixel ``(x, y)`` covers
                                ``[x, x + 1) x [y, y + 1)``); the joint transforms move, clip and drop them
labels         (N,) int64       detection class of each box, in [0, number of detection classes)
instance_ids   (N,) int64       id of each box in ``instance`` (kept aligned with ``boxes`` by the transforms)
crowd_boxes    (M, 4) f32       crowd regions (COCO ``iscrowd``), moved and clipped like ``boxes``
image_scale    (2,) f64         ``(sx, sy)`` of the resizes applied to a sample with boxes (original = boxes / s)
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
    "IMAGE_LIKE_KEYS",
    "DENSE_FLOAT_KEYS",
    "DISPARITY_KEYS",
    "LABEL_KEYS",
    "BOX_KEYS",
    "BOX_ROW_KEYS",
    "POSE_KEYS",
    "SPATIAL_KEYS",
    "Sample",
    "depth_valid_mask",
]

IGNORE_INDEX = 255

#: RGB images: bilinear/bicubic resampling, photometric augmentation applies.
IMAGE_KEYS = ("image", "image_right", "image_prev", "image_next")
#: Image-like (C, H, W) float maps in [0, 1] that are not photographs: resampled, cropped and flipped like images,
#: but photometric augmentation must not touch them (a "brighter" HHA would encode a different geometry).
IMAGE_LIKE_KEYS = ("hha",)
#: Dense float maps resampled with nearest neighbour (depth must never be blended across edges).
DENSE_FLOAT_KEYS = ("depth", "sensor_depth")
#: Inverse-depth maps (pixels of a fixed reference scale, 0 = invalid): nearest neighbour with values unchanged like
#: depth, but a zoom that divides depth by ``s`` multiplies them by ``s``. Kept apart from DENSE_FLOAT_KEYS so that
#: nothing treats them as metres.
DISPARITY_KEYS = ("disparity",)
#: Integer/bool maps, nearest neighbour.
LABEL_KEYS = ("semantic", "depth_valid", "instance")
#: Box sets (N, 4) xyxy in pixels, moved with the image by the joint transforms.
BOX_KEYS = ("boxes", "crowd_boxes")
#: Per-box rows aligned with ``boxes`` (first dimension N): dropped together with their box. ``masks`` is
#: (N, H, W) bool and is resampled like a label map.
BOX_ROW_KEYS = ("labels", "instance_ids", "annotation_ids", "masks")
#: Relative camera poses (4x4).
POSE_KEYS = ("pose_right", "pose_prev", "pose_next")
#: Everything with an (..., H, W) spatial layout.
SPATIAL_KEYS = IMAGE_KEYS + IMAGE_LIKE_KEYS + DENSE_FLOAT_KEYS + DISPARITY_KEYS + LABEL_KEYS + ("sensor_flow",)

Sample = dict[str, Any]


def depth_valid_mask(depth: torch.Tensor) -> torch.Tensor:
    """The one definition of a valid depth pixel: finite and strictly positive."""
    return torch.isfinite(depth) & (depth > 0)
