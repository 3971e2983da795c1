"""Stateless tensor math shared by nn/, losses/ and spectral/."""

from __future__ import annotations

from .geometry import WarpResult, backproject, project, warp

__all__ = [
    "WarpResult",
    "backproject",
    "project",
    "warp",
]
