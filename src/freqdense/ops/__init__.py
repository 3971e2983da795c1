"""Stateless tensor math shared by nn/, losses/ and spectral/: geometry, DCT, FFT spectra, frequency maps, boxes."""

from __future__ import annotations

from .ambiguity import ambiguity_map
from .blur import auto_blur, auto_blur_weight
from .boxes import (
    batched_nms,
    box_area,
    box_convert,
    box_iou,
    boxes_to_distances,
    clip_boxes,
    distances_to_boxes,
    generalized_box_iou,
    nms,
    remove_small_boxes,
)
from .dct import dct2d, dct_matrix, idct2d
from .fft import (
    fft_frequencies,
    frequency_shells,
    onesided_multiplicity,
    power_profile,
    power_spectrum2d,
    shell_reduce,
    spectrum2d,
)
from .filters import hamming2d, normalize_kernels
from .frequency import (
    OneSidedDifferences,
    forward_gradient_magnitude,
    gaussian_blur2d,
    gaussian_kernel1d,
    gaussian_kernel2d,
    one_sided_differences,
    two_sided_gradient_magnitude,
)
from .geometry import WarpResult, backproject, project, warp
from .hha import depth_to_hha, estimate_gravity, surface_normals
from .reassemble import carafe, carafe_reference, carafe_unfold

__all__ = [
    "batched_nms",
    "box_area",
    "box_convert",
    "box_iou",
    "boxes_to_distances",
    "clip_boxes",
    "distances_to_boxes",
    "generalized_box_iou",
    "nms",
    "remove_small_boxes",
    "estimate_gravity",
    "depth_to_hha",
    "surface_normals",
    "OneSidedDifferences",
    "WarpResult",
    "ambiguity_map",
    "auto_blur",
    "auto_blur_weight",
    "backproject",
    "carafe",
    "carafe_reference",
    "carafe_unfold",
    "dct2d",
    "dct_matrix",
    "fft_frequencies",
    "forward_gradient_magnitude",
    "frequency_shells",
    "gaussian_blur2d",
    "gaussian_kernel1d",
    "gaussian_kernel2d",
    "hamming2d",
    "idct2d",
    "normalize_kernels",
    "one_sided_differences",
    "onesided_multiplicity",
    "power_profile",
    "power_spectrum2d",
    "project",
    "shell_reduce",
    "spectrum2d",
    "two_sided_gradient_magnitude",
    "warp",
]
