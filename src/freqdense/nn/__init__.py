"""Parameterised modules, one concept per file."""

from __future__ import annotations

from .freq_fusion import FreqFusion, FreqFusionOutput
from .local_sim_sampler import LocalSimGuidedSampler

__all__ = [
    "FreqFusion",
    "FreqFusionOutput",
    "LocalSimGuidedSampler",
]
