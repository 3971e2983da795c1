"""Object detection: an FCOS one-stage detector (Tian et al., ICCV 2019) on a freqdense backbone and the FreqFusion
FPN neck, with its target assignment, losses and post-processing in plain torch (no torchvision ops)."""

from __future__ import annotations

from .decode import decode_detections, decode_onnx_outputs, head_output_names
from .detector import FCOSDetector, fcos_detector, postprocess_detections
from .fcos import FCOSHead, FCOSOutputs, Scale
from .targets import INF, REGRESS_RANGES, FCOSTargets, assign_targets, centerness_target, fcos_targets, level_points

__all__ = [
    "INF",
    "REGRESS_RANGES",
    "FCOSDetector",
    "FCOSHead",
    "FCOSOutputs",
    "FCOSTargets",
    "Scale",
    "assign_targets",
    "centerness_target",
    "decode_detections",
    "decode_onnx_outputs",
    "fcos_detector",
    "head_output_names",
    "postprocess_detections",
    "fcos_targets",
    "level_points",
]
