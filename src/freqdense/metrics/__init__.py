"""Evaluation metrics: segmentation (confusion matrix), depth (Eigen metrics) and multi-task Δm.

Every metric object follows one protocol: ``update(...)``, ``compute() -> dict[str, float]``, ``reset()``,
``merge(other)``, ``all_reduce()``, ``state_dict()``/``load_state_dict()``. See docs/metrics.md.
"""

from __future__ import annotations

from ._base import Metric
from .boundary import BoundaryFScore
from .depth import DEPTH_CROPS, DEPTH_METRIC_NAMES, DEPTH_PROTOCOLS, DepthMetrics, crop_mask
from .multitask import DEFAULT_DELTA_M_METRICS, HIGHER_IS_BETTER, delta_m, delta_m_terms
from .segmentation import ConfusionMatrix

__all__ = [
    "Metric",
    "BoundaryFScore",
    "ConfusionMatrix",
    "DepthMetrics",
    "DEPTH_CROPS",
    "DEPTH_METRIC_NAMES",
    "DEPTH_PROTOCOLS",
    "crop_mask",
    "delta_m",
    "delta_m_terms",
    "DEFAULT_DELTA_M_METRICS",
    "HIGHER_IS_BETTER",
]
