"""Pinhole back-projection, projection and view warping with Monodepth2's conventions.

Conventions (see docs/reference_code.md#monodepth2-layers and ``data/sample.py``):

- camera frame x right, y down, z forward; pixel centres at integer coordinates, x then y;
- ``backproject`` returns homogeneous points (B, 4, H*W) = [depth * K^-1 [x, y, 1]^T; 1] (``BackprojectDepth``);
- ``project`` maps them with P = (K @ T)[:3] to pixels and normalises for ``grid_sample(align_corners=True)``:
  x_norm = 2 x / (W - 1) - 1, y_norm = 2 y / (H - 1) - 1, no clamping (``Project3D``);
- ``T`` is T_{target->source}, so ``p_src ~ K T (depth K^-1 p_target)``, and warping the *source* image with
  the grid gives the source seen from the target view. Upstream Monodepth2 omits ``align_corners`` (False
  since torch 1.3, a half-pixel error); we pass True as freq-aware-depth and manydepth do.

Everything is differentiable (gradcheck-able in float64).
"""

from __future__ import annotations

from typing import Literal, NamedTuple

import torch
import torch.nn.functional as F

from .._checks import check_shape
from ..errors import ShapeError

__all__ = ["backproject", "project", "warp", "WarpResult"]


def _check_matrix(m: torch.Tensor, name: str, sizes: tuple[int, ...]) -> None:
    check_shape(m, "B R C", name=name)
    if tuple(m.shape[1:]) not in [(s, s) for s in sizes]:
        raise ShapeError(
            f"{name} must have shape (B, {sizes[0]}, {sizes[0]})"
            + (f" or (B, {sizes[1]}, {sizes[1]})" if len(sizes) > 1 else "")
            + f", got {tuple(m.shape)}"
        )


def _pixel_grid(height: int, width: int, like: torch.Tensor) -> torch.Tensor:
    """Homogeneous pixel coordinates (3, H*W): x then y, pixel centres at integers."""
    ys, xs = torch.meshgrid(
        torch.arange(height, dtype=like.dtype, device=like.device),
        torch.arange(width, dtype=like.dtype, device=like.device),
        indexing="ij",
    )
    return torch.stack([xs.reshape(-1), ys.reshape(-1), torch.ones_like(xs).reshape(-1)])


def backproject(depth: torch.Tensor, inv_K: torch.Tensor) -> torch.Tensor:
    """Lift every pixel to a homogeneous 3-D point in its camera frame (Monodepth2 ``BackprojectDepth``).

    Args:
        depth: (B, 1, H, W) z-depth in metres.
        inv_K: (B, 3, 3) or (B, 4, 4) inverse intrinsics (only the top-left 3x3 is used).

    Returns:
        (B, 4, H*W) points [X, Y, Z, 1] with pixel index y * W + x.

    Examples:
        >>> K = torch.tensor([[[2.0, 0, 1], [0, 2.0, 1], [0, 0, 1]]])
        >>> backproject(torch.full((1, 1, 3, 3), 4.0), torch.linalg.inv(K))[0, :, 0]
        tensor([-2., -2.,  4.,  1.])
    """
    check_shape(depth, "B C H W", name="depth", C=1)
    _check_matrix(inv_K, "inv_K", (3, 4))
    batch, _, height, width = depth.shape
    if inv_K.shape[0] != batch:
        raise ShapeError(f"inv_K has batch {inv_K.shape[0]} but depth has batch {batch}; pass one matrix per image")
    rays = inv_K[:, :3, :3] @ _pixel_grid(height, width, depth)
    points = depth.reshape(batch, 1, height * width) * rays
    return torch.cat([points, torch.ones_like(points[:, :1])], dim=1)


def _project_pixels(
    points: torch.Tensor, K: torch.Tensor, T: torch.Tensor, eps: float
) -> tuple[torch.Tensor, torch.Tensor]:
    if points.dim() == 4:
        points = points.reshape(points.shape[0], points.shape[1], -1)
    check_shape(points, "B C N", name="points", C=4)
    _check_matrix(K, "K", (3, 4))
    _check_matrix(T, "T", (4,))
    P = K[:, :3, :3] @ T[:, :3, :]
    cam = P @ points
    pixels = cam[:, :2] / (cam[:, 2:3] + eps)
    return pixels, cam[:, 2:3]


def project(
    points: torch.Tensor,
    K: torch.Tensor,
    T: torch.Tensor,
    *,
    size: tuple[int, int] | None = None,
    eps: float = 1e-7,
) -> torch.Tensor:
    """Project homogeneous points into a camera and return a ``grid_sample`` grid (Monodepth2 ``Project3D``).

    Args:
        points: (B, 4, H*W) from :func:`backproject` (needs ``size``), or (B, 4, H, W).
        K: (B, 3, 3) or (B, 4, 4) intrinsics of the camera projected into.
        T: (B, 4, 4) transform from the points' frame to that camera (T_{target->source}).
        size: (H, W) of the pixel layout of ``points`` when they are flattened.
        eps: added to z before the division, as upstream.

    Returns:
        (B, H, W, 2) coordinates normalised for ``grid_sample(..., align_corners=True)``; not clamped.

    Examples:
        >>> K = torch.tensor([[[2.0, 0, 1], [0, 2.0, 1], [0, 0, 1]]])
        >>> pts = backproject(torch.ones(1, 1, 3, 3), torch.linalg.inv(K))
        >>> torch.allclose(project(pts, K, torch.eye(4)[None], size=(3, 3))[0, 0, 0], torch.tensor([-1.0, -1.0]))
        True
    """
    if points.dim() == 4:
        height, width = points.shape[-2:]
    elif size is None:
        raise ShapeError("project got flattened points (B, 4, N); pass size=(H, W) or points shaped (B, 4, H, W)")
    else:
        height, width = size
        if points.dim() == 3 and points.shape[-1] != height * width:
            raise ShapeError(f"points have {points.shape[-1]} pixels but size={size} has {height * width}")
    pixels, _ = _project_pixels(points, K, T, eps)
    return _normalise(pixels, height, width)


def _normalise(pixels: torch.Tensor, height: int, width: int) -> torch.Tensor:
    batch = pixels.shape[0]
    grid = pixels.reshape(batch, 2, height, width).permute(0, 2, 3, 1)
    scale = torch.tensor([2.0 / max(width - 1, 1), 2.0 / max(height - 1, 1)], dtype=grid.dtype, device=grid.device)
    return grid * scale - 1.0


class WarpResult(NamedTuple):
    """Output of :func:`warp`.

    Attributes:
        image: (B, C, H, W) source resampled into the target view.
        valid: (B, 1, H, W) bool, the target pixel projects in front of the source camera and inside its image.
        grid: (B, H, W, 2) the ``grid_sample`` grid used (reuse it to warp other maps the same way).
    """

    image: torch.Tensor
    valid: torch.Tensor
    grid: torch.Tensor


def warp(
    source: torch.Tensor,
    depth: torch.Tensor,
    K: torch.Tensor,
    T: torch.Tensor,
    *,
    inv_K: torch.Tensor | None = None,
    padding_mode: Literal["border", "zeros", "reflection"] = "border",
    mode: Literal["bilinear", "nearest", "bicubic"] = "bilinear",
    eps: float = 1e-7,
) -> WarpResult:
    """Synthesise the target view from ``source`` using the target's ``depth`` and the pose T_{target->source}.

    Args:
        source: (B, C, H, W) source image (or any map).
        depth: (B, 1, H, W) depth of the target view in metres.
        K: (B, 3, 3) or (B, 4, 4) intrinsics shared by both views.
        T: (B, 4, 4) target-to-source transform (e.g. ``pose_next`` to warp ``image_next``).
        inv_K: inverse of K; computed when omitted.
        padding_mode: ``grid_sample`` padding; "border" as Monodepth2.
        mode: ``grid_sample`` interpolation.
        eps: added to the projected z before the division.

    Examples:
        >>> K = torch.tensor([[[2.0, 0, 1.5], [0, 2.0, 1.5], [0, 0, 1]]])
        >>> img = torch.rand(1, 3, 4, 4)
        >>> out = warp(img, torch.ones(1, 1, 4, 4), K, torch.eye(4)[None])
        >>> torch.allclose(out.image, img, atol=1e-6) and bool(out.valid.all())
        True
    """
    check_shape(source, "B C H W", name="source")
    check_shape(depth, "B C H W", name="depth", C=1)
    if source.shape[-2:] != depth.shape[-2:] or source.shape[0] != depth.shape[0]:
        raise ShapeError(
            f"source {tuple(source.shape)} and depth {tuple(depth.shape)} must share batch and size; resize one"
        )
    height, width = depth.shape[-2:]
    if inv_K is None:
        _check_matrix(K, "K", (3, 4))
        inv_K = torch.linalg.inv(K[:, :3, :3])
    points = backproject(depth, inv_K)
    pixels, z = _project_pixels(points, K, T, eps)
    grid = _normalise(pixels, height, width)
    image = F.grid_sample(source, grid, mode=mode, padding_mode=padding_mode, align_corners=True)
    inside = (grid.abs() <= 1.0).all(dim=-1).unsqueeze(1)
    valid = inside & (z.reshape(-1, 1, height, width) > eps)
    return WarpResult(image, valid, grid)
