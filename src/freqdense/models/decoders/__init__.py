"""Multi-scale decoders with a switchable upsampler: bilinear or FreqFusion."""

from __future__ import annotations

from ._fusion import FUSIONS, Fusion
from .fpn import FPNDecoder
from .fpn_neck import OFFICIAL_DETECTION_FUSION, OFFICIAL_PANOPTIC_FUSION, FreqFusionFPNNeck
from .segformer_head import SegFormerHead, interleave_concat
from .uper_align import PyramidPooling, UPerAlignHead, UPerAlignOutput

__all__ = [
    "FUSIONS",
    "FPNDecoder",
    "FreqFusionFPNNeck",
    "OFFICIAL_DETECTION_FUSION",
    "OFFICIAL_PANOPTIC_FUSION",
    "Fusion",
    "PyramidPooling",
    "SegFormerHead",
    "UPerAlignHead",
    "UPerAlignOutput",
    "interleave_concat",
]
