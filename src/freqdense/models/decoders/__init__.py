"""Multi-scale decoders with a switchable upsampler: bilinear or FreqFusion (paper 002)."""

from __future__ import annotations

from ._fusion import FUSIONS, Fusion
from .fpn import FPNDecoder
from .segformer_head import SegFormerHead, interleave_concat

__all__ = ["FUSIONS", "FPNDecoder", "Fusion", "SegFormerHead", "interleave_concat"]
