"""Visualisation: depth/label colour maps, overlays, indexed label PNGs, prediction panels and training curves.

matplotlib (a runtime dependency) and PIL are imported inside the functions that use them.
"""

from __future__ import annotations

from .colormaps import (
    cityscapes_palette,
    colorize_depth,
    colorize_labels,
    default_palette,
    disparity_limits,
    label_boundaries,
    overlay,
    save_indexed_png,
)
from .panels import compose_prediction_panel, plot_loss_curves, prediction_panel

__all__ = [
    "colorize_depth",
    "disparity_limits",
    "colorize_labels",
    "overlay",
    "label_boundaries",
    "default_palette",
    "cityscapes_palette",
    "save_indexed_png",
    "prediction_panel",
    "compose_prediction_panel",
    "plot_loss_curves",
]
