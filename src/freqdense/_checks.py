"""Input checks for public entry points. Messages name the tensor and the expected layout."""

from __future__ import annotations

import torch

from .errors import ShapeError

__all__ = ["check_shape", "check_finite"]


def check_shape(x: object, layout: str, *, name: str = "input", **sizes: int) -> None:
    """Check ``x`` is a tensor whose rank matches ``layout`` (e.g. ``"B C H W"``) and named sizes match.

    Example: ``check_shape(img, "B C H W", name="image", C=3)``.
    """
    if torch.compiler.is_compiling():
        return
    dims = layout.split()
    if not isinstance(x, torch.Tensor):
        raise ShapeError(f"{name} must be a torch.Tensor of shape ({', '.join(dims)}), got {type(x).__name__}")
    if x.dim() != len(dims):
        raise ShapeError(
            f"{name} must have shape ({', '.join(dims)}) ({len(dims)} dims), got {tuple(x.shape)}"
            + (" - add a batch dimension with x[None]" if x.dim() == len(dims) - 1 else "")
        )
    for dim_name, expected in sizes.items():
        if dim_name not in dims:
            raise ValueError(f"check_shape: {dim_name!r} is not in layout {layout!r}")
        actual = x.shape[dims.index(dim_name)]
        if actual != expected:
            raise ShapeError(
                f"{name} must have {dim_name}={expected} in ({', '.join(dims)}), got shape {tuple(x.shape)}"
            )


def check_finite(x: torch.Tensor, *, name: str) -> None:
    """Raise ShapeError naming ``name`` if ``x`` holds NaN or inf."""
    if torch.compiler.is_compiling():
        return
    if not torch.isfinite(x).all():
        n_bad = int((~torch.isfinite(x)).sum())
        raise ShapeError(f"{name} holds {n_bad} NaN/inf values; clean the input (e.g. set invalid depth to 0)")
