"""Multi-scale decoders with a switchable upsampler: bilinear or FreqFusion."""

from __future__ import annotations

from ._fusion import FUSIONS, Fusion
from .fpn import FPNDecoder
from .segformer_head import SegFormerHead, interleave_concat
from .uper_align import PyramidPooling, UPerAlignHead, UPerAlignOutput

__all__ = [
    "FUSIONS",
    "FPNDecoder",
    "Fusion",
    "PyramidPooling",
    "SegFormerHead",
    "UPerAlignHead",
    "UPerAlignOutput",
    "interleave_concat",
]
