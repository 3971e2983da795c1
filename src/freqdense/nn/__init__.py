"""Parameterised modules, one concept per file."""

from __future__ import annotations

from .acfm import AttentionCrossFusion
from .dct_disentangle import FrequencyDisentanglement, FrequencyOutput
from .distillation import MultiTaskDistillation, SABlock, SEBlock
from .fafe import FAFEBlock, FAFEConvBlock, FAFEOptions
from .flow_align import FlowAlignment, flow_warp
from .freq_fusion import FreqFusion, FreqFusionOutput
from .local_sim_sampler import LocalSimGuidedSampler
from .pre_interaction import DualPreInteraction, PreInteraction, PreInteractionOutput
from .recalibration import FeatureRecalibration, RecalibrationOutput
from .rgbd_fuse import RGBDFuse, RGBDFuseOutput, flow_to_pixels, pixels_to_flow
from .sa_gate import SAGate, SAGateOutput

__all__ = [
    "AttentionCrossFusion",
    "FlowAlignment",
    "flow_warp",
    "FreqFusion",
    "FreqFusionOutput",
    "LocalSimGuidedSampler",
    "DualPreInteraction",
    "PreInteraction",
    "PreInteractionOutput",
    "FrequencyDisentanglement",
    "FrequencyOutput",
    "FeatureRecalibration",
    "RecalibrationOutput",
    "MultiTaskDistillation",
    "SABlock",
    "SEBlock",
    "FAFEBlock",
    "FAFEConvBlock",
    "FAFEOptions",
    "RGBDFuse",
    "RGBDFuseOutput",
    "flow_to_pixels",
    "pixels_to_flow",
    "SAGate",
    "SAGateOutput",
]
