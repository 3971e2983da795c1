"""HHA depth encoding (Gupta, Girshick, Arbelaez, Malik, ECCV 2014), vectorised in torch.

Three channels per pixel, in the order the public Depth2HHA code yields when its image is read back as RGB:

0. **horizontal disparity** ``31000 / max(Z_cm, 100)`` (Z in centimetres, clamped at 1 m, so it saturates at 255
   for anything closer than 1.216 m);
1. **height above ground** in centimetres: the projection of each 3-D point on the estimated "up" direction,
   minus the lowest valid point; if that lowest point is less than ``min_floor_drop`` (0.9 m) below the camera,
   the floor is assumed at ``default_floor_drop`` (1.3 m) below it instead (Gupta's heuristic for views without floor);
2. **angle** between the local surface normal and "up", in degrees, plus ``128 - 90`` (floor 38, wall 128,
   ceiling 218).

Each channel is rounded to the nearest integer and clipped to [0, 255] (``quantize=True``, as the uint8 images
of Depth2HHA), optionally divided by 255 (``unit_range=True``).

Algorithm (Depth2HHA ``processDepthImage`` / ``computeNormalsSquareSupport`` / ``getYDir``):

- Normals: at every pixel a plane ``a X + b Y + c Z = 1`` is least-squares fitted over the (2r+1)^2 window, written
  as ``a u + b v + c = 1/Z`` with ``u = (x - cx)/fx``, ``v = (y - cy)/fy``; missing pixels (``depth == 0`` or
  ``raw_depth == 0``) contribute nothing and the window is chopped at the border (zero padding). The normal is
  ``-(a, b, c)/|(a, b, c)|``, i.e. oriented towards the camera. Radius 3 (7x7) for the angle channel, radius 10
  (21x21) for the gravity estimate. The window sums use integral images, so the cost does not depend on r.
- Gravity: starting from up = (0, -1, 0) (camera y axis points down in the image; this is Depth2HHA's
  ``y0 = [0, 1, 0]`` in its y-up sign convention), repeat 5 times at 45 deg then 5 times at 15 deg: normals within
  the threshold of +-up are "floor/ceiling" (set F), normals within the threshold of perpendicular are "walls" (W);
  the new up is the eigenvector with the smallest eigenvalue of ``sum_W n n^T - sum_F n n^T``, sign-matched to the
  previous one. All images of the batch are processed together.
- Height is ``p . up`` directly (Depth2HHA rotates the point cloud by the matrix that maps up to the y axis and reads
  the y coordinate: the same number).

Choices where we differ from Depth2HHA, all deliberate:

- Pixel centres at integer coordinates, 0-based (the repo's intrinsics convention); Depth2HHA uses a 1-based
  meshgrid with the MATLAB calibration, which is the same thing for MATLAB-calibrated K.
- Pixels with ``depth == 0`` get 0 in all three channels (Depth2HHA expects an in-painted depth and would give 255
  disparity there); pixels whose normal window is degenerate get angle 0. The lowest point for the height is taken
  over valid pixels only. Skew in K is ignored.
- Computation in float64 internally; the output has the dtype of ``depth``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .._checks import check_shape
from ..errors import ConfigError, ShapeError

__all__ = ["depth_to_hha", "surface_normals", "estimate_gravity"]


def _box_sums(x: torch.Tensor, radii: tuple[int, ...]) -> list[torch.Tensor]:
    """Sums over the (2r+1)^2 window centred at each pixel for each r, zero outside the image.

    One integral image serves every radius: with padding R = max(radii), window rows i-r..i+r are
    ``I[i + R + r + 1] - I[i + R - r]``.
    """
    height, width = x.shape[-2:]
    big = max(radii)
    integral = F.pad(x, (big + 1, big, big + 1, big)).cumsum(-1).cumsum(-2)
    sums = []
    for r in radii:
        hi, lo = big + r + 1, big - r
        sums.append(
            integral[..., hi : hi + height, hi : hi + width]
            - integral[..., lo : lo + height, hi : hi + width]
            - integral[..., hi : hi + height, lo : lo + width]
            + integral[..., lo : lo + height, lo : lo + width]
        )
    return sums


def _ray_coordinates(shape: tuple[int, int, int], intrinsics: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """u = (x - cx)/fx and v = (y - cy)/fy, each (B, H, W)."""
    batch, height, width = shape
    xs = torch.arange(width, dtype=intrinsics.dtype, device=intrinsics.device)
    ys = torch.arange(height, dtype=intrinsics.dtype, device=intrinsics.device)
    fx, fy = intrinsics[:, 0, 0, None, None], intrinsics[:, 1, 1, None, None]
    cx, cy = intrinsics[:, 0, 2, None, None], intrinsics[:, 1, 2, None, None]
    u = (xs.view(1, 1, width) - cx) / fx
    v = (ys.view(1, height, 1) - cy) / fy
    return u.expand(batch, height, width), v.expand(batch, height, width)


def surface_normals(
    depth: torch.Tensor, intrinsics: torch.Tensor, radius: int, *, valid: torch.Tensor | None = None
) -> torch.Tensor:
    """Unit normals from a square-window plane fit, oriented towards the camera (Gupta et al.).

    Args:
        depth: (B, 1, H, W) metres, 0 = invalid.
        intrinsics: (B, 3, 3) pinhole K, pixel centres at integers.
        radius: window half size r (window 2r+1).
        valid: optional (B, 1, H, W) bool mask of pixels used in the fits (default ``depth > 0``).

    Returns:
        (B, 3, H, W) normals in the camera frame (x right, y down, z forward); zero where the fit is degenerate.
    """
    check_shape(depth, "B C H W", name="depth", C=1)
    return _normals(depth, intrinsics, (radius,), valid)[0].to(depth.dtype)


def _normals(
    depth: torch.Tensor, intrinsics: torch.Tensor, radii: tuple[int, ...], valid: torch.Tensor | None
) -> list[torch.Tensor]:
    """float64 normals for several window radii sharing one integral image."""
    work = torch.float64
    z = depth[:, 0].to(work)
    mask = (z > 0) if valid is None else (valid[:, 0] & (z > 0))
    u, v = _ray_coordinates(z.shape, intrinsics.to(device=z.device, dtype=work))
    m = mask.to(work)
    inv_z = torch.where(mask, 1.0 / z.clamp_min(1e-12), torch.zeros_like(z))
    mu, mv = m * u, m * v
    stack = torch.stack([mu * u, mu * v, mu, mv * v, mv, m, u * inv_z, v * inv_z, inv_z], 1)
    results = []
    for sums in _box_sums(stack, radii):
        s_uu, s_uv, s_u, s_vv, s_v, s_1, b_u, b_v, b_1 = sums.unbind(1)
        # adjugate of the symmetric normal matrix [[s_uu, s_uv, s_u], [s_uv, s_vv, s_v], [s_u, s_v, s_1]]
        c00 = s_vv * s_1 - s_v * s_v
        c01 = s_u * s_v - s_uv * s_1
        c02 = s_uv * s_v - s_u * s_vv
        c11 = s_uu * s_1 - s_u * s_u
        c12 = s_uv * s_u - s_uu * s_v
        c22 = s_uu * s_vv - s_uv * s_uv
        det = s_uu * c00 + s_uv * c01 + s_u * c02
        p_x = c00 * b_u + c01 * b_v + c02 * b_1
        p_y = c01 * b_u + c11 * b_v + c12 * b_1
        p_z = c02 * b_u + c12 * b_v + c22 * b_1
        norm = (p_x * p_x + p_y * p_y + p_z * p_z).sqrt()  # componentwise: much faster than norm(dim=1) on CPU
        scale = (s_uu + s_vv + s_1).clamp_min(1e-300) ** 3
        ok = (det > 1e-12 * scale) & (norm > 0)
        factor = torch.where(ok, -1.0 / norm.clamp_min(1e-300), torch.zeros_like(norm))
        results.append(torch.stack([p_x * factor, p_y * factor, p_z * factor], 1))
    return results


def estimate_gravity(
    normals: torch.Tensor,
    *,
    angle_thresholds: tuple[float, ...] = (45.0, 15.0),
    iterations: tuple[int, ...] = (5, 5),
    initial_up: tuple[float, float, float] = (0.0, -1.0, 0.0),
) -> torch.Tensor:
    """Up direction (B, 3) from normals (B, 3, H, W) by Gupta's floor/wall eigen-iteration (zero normals ignored)."""
    check_shape(normals, "B C H W", name="normals", C=3)
    if len(angle_thresholds) != len(iterations):
        raise ConfigError(f"angle_thresholds {angle_thresholds} and iterations {iterations} must have the same length")
    n = normals.to(torch.float64).flatten(2)  # (B, 3, N)
    present = n.abs().sum(1) > 0
    up = torch.tensor(initial_up, dtype=torch.float64, device=n.device).expand(n.shape[0], 3).clone()
    for thresh_deg, count in zip(angle_thresholds, iterations):
        cos_t, sin_t = math.cos(math.radians(thresh_deg)), math.sin(math.radians(thresh_deg))
        for _ in range(count):
            sim = torch.einsum("bcn,bc->bn", n, up).abs()
            weight = ((sim < sin_t) & present).double() - ((sim > cos_t) & present).double()
            matrix = torch.einsum("bcn,bdn->bcd", n * weight.unsqueeze(1), n)
            _, vectors = torch.linalg.eigh(matrix)
            new = vectors[..., 0]
            new = new * torch.where((new * up).sum(-1, keepdim=True) < 0, -1.0, 1.0)
            empty = weight.abs().sum(-1, keepdim=True) == 0
            up = torch.where(empty, up, new)
    return up.to(normals.dtype)


def depth_to_hha(
    depth: torch.Tensor,
    intrinsics: torch.Tensor,
    *,
    raw_depth: torch.Tensor | None = None,
    normal_radius: int = 3,
    gravity_radius: int = 10,
    angle_thresholds: tuple[float, ...] = (45.0, 15.0),
    iterations: tuple[int, ...] = (5, 5),
    min_floor_drop: float = 0.9,
    default_floor_drop: float = 1.3,
    quantize: bool = True,
    unit_range: bool = False,
) -> torch.Tensor:
    """HHA encoding (disparity, height, angle) of metric depth; see the module docstring for every choice.

    Args:
        depth: (B, 1, H, W) metres, 0 = invalid (in-painted depth if you have it).
        intrinsics: (B, 3, 3) pinhole K in pixels, pixel centres at integers.
        raw_depth: optional (B, 1, H, W) raw sensor depth; its zeros are excluded from the normal fits
            (Depth2HHA's ``missingMask``).
        normal_radius: plane-fit window half size for the angle channel (3 -> 7x7).
        gravity_radius: window half size of the normals used for the gravity estimate (10 -> 21x21).
        angle_thresholds: degrees of the floor/wall classification, one stage each.
        iterations: eigen-iterations per stage.
        min_floor_drop: metres; if the lowest point is less than this below the camera ...
        default_floor_drop: ... the floor is assumed this many metres below the camera.
        quantize: round and clip to [0, 255] like Depth2HHA's uint8 output; otherwise raw float values.
        unit_range: divide by 255.

    Returns:
        (B, 3, H, W) [disparity, height (cm), angle (deg + 38)] on the 0..255 scale (or [0, 1]).

    Examples:
        >>> K = torch.tensor([[[50.0, 0, 16], [0, 50.0, 12], [0, 0, 1]]])
        >>> depth_to_hha(torch.full((1, 1, 24, 32), 3.1), K)[0, 0, 12, 16].item()  # 31000 / 310
        100.0
    """
    check_shape(depth, "B C H W", name="depth", C=1)
    check_shape(intrinsics, "B R C", name="intrinsics", R=3, C=3)
    if intrinsics.shape[0] != depth.shape[0]:
        raise ShapeError(
            f"intrinsics has batch {intrinsics.shape[0]} but depth has batch {depth.shape[0]}; pass one K per image"
        )
    valid = depth > 0
    fit_mask = valid if raw_depth is None else valid & (raw_depth > 0)
    z = depth.to(torch.float64)
    k64 = intrinsics.to(device=depth.device, dtype=torch.float64)

    normals, coarse = _normals(z, k64, (normal_radius, gravity_radius), fit_mask)
    up = estimate_gravity(coarse, angle_thresholds=angle_thresholds, iterations=iterations)

    u, v = _ray_coordinates((z.shape[0], z.shape[2], z.shape[3]), k64)
    points = torch.stack([u * z[:, 0], v * z[:, 0], z[:, 0]], 1)
    height = torch.einsum("bchw,bc->bhw", points, up).unsqueeze(1)
    lowest = torch.where(valid, height, torch.full_like(height, math.inf)).flatten(1).amin(1)
    lowest = torch.where(lowest > -min_floor_drop, torch.full_like(lowest, -default_floor_drop), lowest)
    height_cm = (height - lowest.view(-1, 1, 1, 1)) * 100.0

    cos_angle = torch.einsum("bchw,bc->bhw", normals, up).clamp(-1.0, 1.0).unsqueeze(1)
    angle = torch.rad2deg(torch.acos(cos_angle)) + (128.0 - 90.0)
    angle = torch.where(normals.abs().sum(1, keepdim=True) > 0, angle, torch.zeros_like(angle))
    disparity = 31000.0 / (z * 100.0).clamp_min(100.0)

    out = torch.cat([disparity, height_cm, angle], 1)
    if quantize:
        out = out.round().clamp(0.0, 255.0)
    out = torch.where(valid, out, torch.zeros_like(out))
    if unit_range:
        out = out / 255.0
    return out.to(depth.dtype)
