"""Visualisation: depth/label colour maps, overlays, indexed label PNGs, prediction panels and training curves.

Every figure a reader sees is labelled: titles, axis labels, legends (class names and colours) and colour bars in
physical units (depth in metres on a stated, fixed range; :mod:`freqdense.viz.depth_scale`).

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
from .curves import loss_curves_figure, plot_loss_curves
from .depth_scale import colorize_depth_range, depth_range_of, save_depth_colorbar
from .panels import compose_prediction_panel, prediction_figure, prediction_panel, save_prediction_panels

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
    "prediction_figure",
    "save_prediction_panels",
    "plot_loss_curves",
    "loss_curves_figure",
    "colorize_depth_range",
    "depth_range_of",
    "save_depth_colorbar",
]
