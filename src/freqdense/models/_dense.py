"""Checks and output activations shared by the dense-prediction models (one definition, used by every model)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .._checks import check_shape
from ..errors import ConfigError, ShapeError

__all__ = [
    "DEPTH_ACTIVATIONS",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "register_normalization",
    "check_depth_activation",
    "activate_depth",
    "check_image",
]

#: Activations a depth head may apply to its (upsampled) output; "none" is the reference's raw regression.
DEPTH_ACTIVATIONS = ("none", "relu", "softplus", "exp")


IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def register_normalization(module: torch.nn.Module, mean=IMAGENET_MEAN, std=IMAGENET_STD) -> None:
    """Give ``module`` the non-persistent ``mean``/``std`` buffers (1, 3, 1, 1) it normalises its RGB input with.

    Models normalise inside (inputs are RGB in [0, 1]); checkpoint metadata reads these buffers.
    """
    module.register_buffer(
        "mean", torch.as_tensor(mean, dtype=torch.float32).expand(3).reshape(1, 3, 1, 1).clone(), persistent=False
    )
    module.register_buffer(
        "std", torch.as_tensor(std, dtype=torch.float32).expand(3).reshape(1, 3, 1, 1).clone(), persistent=False
    )


def check_depth_activation(kind: str) -> str:
    if kind not in DEPTH_ACTIVATIONS:
        raise ConfigError(f"depth_activation must be one of {DEPTH_ACTIVATIONS}, got {kind!r}")
    return kind


def activate_depth(y: torch.Tensor, kind: str) -> torch.Tensor:
    """Apply a depth activation of :data:`DEPTH_ACTIVATIONS` to ``y``."""
    if kind == "relu":
        return F.relu(y)
    if kind == "softplus":
        return F.softplus(y)
    if kind == "exp":
        return torch.exp(y)
    return y


def check_image(image: torch.Tensor) -> None:
    """The model entry contract: ``image`` is float RGB ``(B, 3, H, W)`` in [0, 1]."""
    check_shape(image, "B C H W", name="image", C=3)
    if not image.is_floating_point():
        raise ShapeError(f"image must be float RGB in [0, 1], got dtype {image.dtype}; use image.float() / 255")
