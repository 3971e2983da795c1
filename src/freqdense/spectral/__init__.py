"""Spectral analysis of segmentation (Chen, Chiu, Wu, AAAI 2020): CE spectrum, truncated CE and R(nu_max),
spectral gradient, feature truncation and block-wise annotation. Method notes: docs/methods/spectral_analysis.md.
"""

from __future__ import annotations

from .annotation import BlockwiseAnnotation, block_labels, blockwise_annotation
from .gradient import SpectralGradient, spectral_gradient
from .plot import plot_ce_spectrum, plot_relative_iou, plot_spectral_gradient
from .spectrum import (
    CESpectrum,
    DatasetSpectrum,
    SpectrumAccumulator,
    ce_spectrum,
    label_energy_spectrum,
    oracle_logits,
)
from .truncation import (
    TruncatedDecoder,
    relative_discrepancy,
    resize_to_grid,
    run_at_grid,
    truncate_decoder,
    truncated_ce,
)

__all__ = [
    "CESpectrum",
    "DatasetSpectrum",
    "SpectrumAccumulator",
    "ce_spectrum",
    "label_energy_spectrum",
    "oracle_logits",
    "truncated_ce",
    "relative_discrepancy",
    "resize_to_grid",
    "run_at_grid",
    "TruncatedDecoder",
    "truncate_decoder",
    "SpectralGradient",
    "spectral_gradient",
    "block_labels",
    "blockwise_annotation",
    "BlockwiseAnnotation",
    "plot_ce_spectrum",
    "plot_spectral_gradient",
    "plot_relative_iou",
]
