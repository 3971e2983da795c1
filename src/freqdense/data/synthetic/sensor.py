"""A consumer RGB-D depth sensor (Kinect-v1-like), simulated from exact geometry.

Model, applied to the exact z-depth seen through slightly misaligned pixels:

1. **Misalignment** (FAFNet's problem): the depth map is registered to RGB with a small error, an affine
   warp ``flow(x, y) = M @ [x, y, 1]`` (shift up to ~1.5 % of the width, rotation up to 0.5 deg, scale
   up to 1 %, times ``misalignment``). Pixel (x, y) of the sensor depth images the scene point seen by RGB at
   (x + flow_x, y + flow_y); the value is that point's z in the RGB camera frame. The dense flow is returned
   as ``sensor_flow`` so learned alignment can be checked against the truth.
2. **Holes** (value 0): out of range (< 0.35 m or > 7 m); the projector's occlusion shadow left of
   foreground objects (width = disparity difference at a 7.5 cm IR baseline); mixed pixels at depth edges;
   dark surfaces (low albedo absorbs the IR pattern); grazing angles; glossy surfaces facing the camera
   (specular saturation); random speckle grown into small blobs. Probabilities scale with ``sensor_holes``.
3. **Noise**: axial Gaussian noise with sigma(z) = 0.0012 + 0.0019 (z - 0.4)^2 m (Nguyen et al., 3DIMPVT 2012),
   times ``sensor_noise``.
4. **Quantisation**: disparity in 1/8 px steps of a 580 px x 7.5 cm sensor, then millimetres.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = [
    "IR_BASELINE",
    "NATIVE_FOCAL_BASELINE",
    "sample_misalignment",
    "flow_field",
    "simulate_sensor_depth",
]

#: Baseline between the IR projector and the IR camera (metres).
IR_BASELINE = 0.075
#: f * b of the native 640-px sensor (pixel metres); sets the disparity quantisation.
NATIVE_FOCAL_BASELINE = 580.0 * IR_BASELINE
MIN_RANGE, MAX_RANGE = 0.35, 7.0


def sample_misalignment(rng: np.random.Generator, height: int, width: int, scale: float) -> np.ndarray:
    """Affine flow (2, 3): ``flow = M @ [x, y, 1]`` in pixels; a shift, rotation and scale about the centre.

    Magnitudes are relative to the image size, so the same sample has the same physical misalignment at
    every resolution.
    """
    shift = rng.uniform(-0.015, 0.015, 2) * width * scale
    angle = math.radians(rng.uniform(-0.5, 0.5) * scale)
    zoom = 1.0 + rng.uniform(-0.01, 0.01) * scale
    a = zoom * np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]]) - np.eye(2)
    center = np.array([(width - 1) / 2.0, (height - 1) / 2.0])
    return np.concatenate([a, (shift - a @ center)[:, None]], axis=1)


def flow_field(affine: np.ndarray, height: int, width: int) -> np.ndarray:
    """Dense flow (2, H, W) float32 of an affine misalignment (see :func:`sample_misalignment`)."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    flow = np.stack([affine[i, 0] * x + affine[i, 1] * y + affine[i, 2] for i in range(2)])
    return flow.astype(np.float32)


def _neighbourhood(z: np.ndarray, reduce) -> np.ndarray:
    padded = np.pad(z, 1, mode="edge")
    h, w = z.shape
    stack = [padded[dy : dy + h, dx : dx + w] for dy in range(3) for dx in range(3)]
    return reduce(np.stack(stack), axis=0)


def simulate_sensor_depth(
    depth: np.ndarray,
    luminance: np.ndarray,
    glossy: np.ndarray,
    cos_view: np.ndarray,
    rng: np.random.Generator,
    *,
    focal: float,
    noise: float,
    holes: float,
    quantize: bool,
) -> np.ndarray:
    """Sensor depth (H, W) float32 with 0 = hole, from the exact (misaligned) depth and surface properties.

    Args:
        depth: exact z-depth in metres (H, W), 0 where there is no surface (windows).
        luminance: surface albedo luminance (H, W), a proxy of IR reflectivity.
        glossy: (H, W) bool, glossy material.
        cos_view: |cos| of the angle between the surface normal and the viewing ray (H, W).
        rng: the sample's sensor stream; the same number of draws is taken whatever the knobs.
        focal: fx of the current image size (sets the occlusion-shadow width in pixels).
        noise: multiplies the axial noise.
        holes: multiplies the hole probabilities; 0 keeps every valid pixel.
        quantize: apply disparity and millimetre quantisation.
    """
    z = depth.astype(np.float64)
    h, w = z.shape
    u_holes = rng.random((h, w))
    u_grow = rng.random((h, w))
    gauss = rng.standard_normal((h, w))
    valid = z > 0

    if holes > 0:
        p_keep = np.ones((h, w))
        # Projector occlusion shadow: background pixels whose right neighbours (within the disparity
        # difference) are foreground are not lit by the pattern.
        fb = focal * IR_BASELINE
        zz = np.where(valid, z, np.inf)
        shadow = np.zeros((h, w), dtype=bool)
        for k in range(1, 9):
            right = np.full_like(zz, np.inf)
            right[:, :-k] = zz[:, k:]
            gap = fb * (1.0 / np.maximum(right, 1e-6) - 1.0 / zz)
            shadow |= (right < zz - 0.05) & (gap >= k - 0.5)
        p_keep *= np.where(shadow, 1.0 - min(1.0, 0.9 * holes), 1.0)
        # Mixed pixels on both sides of depth discontinuities. Inverse depth is affine in the image on a
        # plane, so its second differences flag discontinuities but not slanted surfaces.
        inv = np.where(valid, 1.0 / np.maximum(z, 1e-6), 0.0)
        padded = np.pad(inv, 1, mode="edge")
        curvature = np.zeros((h, w))
        for (ay, ax), (by, bx) in (((0, 1), (2, 1)), ((1, 0), (1, 2)), ((0, 0), (2, 2)), ((0, 2), (2, 0))):
            second = padded[ay : ay + h, ax : ax + w] + padded[by : by + h, bx : bx + w] - 2.0 * inv
            curvature = np.maximum(curvature, np.abs(second))
        edge = curvature > 0.05 * inv
        p_keep *= np.where(edge, 1.0 - min(1.0, 0.4 * holes), 1.0)
        p_dark = np.clip((0.1 - luminance) / 0.05, 0.0, 1.0) * holes
        p_grazing = np.clip((0.2 - cos_view) / 0.15, 0.0, 1.0) * holes
        p_glossy = np.where(glossy & (cos_view > 0.97), 0.9 * holes, 0.0)
        for p in (p_dark, p_grazing, p_glossy, np.full((h, w), 0.001 * holes)):
            p_keep *= 1.0 - np.clip(p, 0.0, 1.0)
        drop = u_holes >= p_keep
        drop |= (z < MIN_RANGE) | (z > MAX_RANGE)
        grown = _neighbourhood(drop.astype(np.uint8), np.max).astype(bool)
        drop |= grown & (u_grow < 0.3 * min(holes, 1.0))
        valid &= ~drop

    if noise > 0:
        sigma = 0.0012 + 0.0019 * (z - 0.4) ** 2
        z = z + noise * sigma * gauss
    if quantize:
        disparity = NATIVE_FOCAL_BASELINE / np.maximum(z, 1e-6)
        disparity = np.maximum(np.round(disparity * 8.0), 1.0) / 8.0
        z = np.round(NATIVE_FOCAL_BASELINE / disparity * 1000.0) / 1000.0
    z = np.where(valid & (z > 0), z, 0.0)
    return z.astype(np.float32)
