"""Decode raw FCOS head maps into boxes outside the network: for exported (ONNX) detectors.

``freqdense export`` writes a detector's graph up to the head: per level ``cls_logits_s<stride>`` (B, K, H_l, W_l),
``distances_s<stride>`` (B, 4, H_l, W_l, pixels) and ``centerness_s<stride>`` (B, 1, H_l, W_l), finest level first.
Decoding and NMS are data-dependent (a variable number of boxes per image), so they stay outside the graph:
:func:`decode_detections` runs :meth:`FCOSDetector.predict`'s post-processing (the same function,
:func:`~freqdense.models.detection.detector.postprocess_detections`) on numpy or torch arrays, e.g. ONNX Runtime's
outputs; :func:`decode_onnx_outputs` takes the output dict and the export's sidecar JSON (strides, output names,
the run's inference settings).

Steps (FCOS repository post-processing): points at ``stride * i + stride // 2``; per level the (point, class) pairs
with ``sigmoid(cls) > score_thr``, the best ``pre_nms_top_k`` by ``sigmoid(cls) * sigmoid(centerness)``; boxes
``(x - l, y - t, x + r, y + b)`` clipped to the image; class-wise NMS at ``nms_iou``; the ``max_per_image`` best.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ...errors import ConfigError, ShapeError
from .detector import postprocess_detections
from .fcos import FCOSOutputs

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from .detector import PostprocessSettings

__all__ = ["decode_detections", "decode_onnx_outputs", "head_output_names"]


def head_output_names(strides: Sequence[int]) -> list[str]:
    """The exported graph's output names, in graph order: every level's cls, then distances, then centerness."""
    return (
        [f"cls_logits_s{s}" for s in strides]
        + [f"distances_s{s}" for s in strides]
        + [f"centerness_s{s}" for s in strides]
    )


def _tensor(value: Any, name: str) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        out = value
    else:
        try:
            out = torch.from_numpy(np.ascontiguousarray(np.asarray(value, dtype=np.float32)))
        except (TypeError, ValueError) as err:
            raise ShapeError(f"decode_detections: {name} is not a numeric array ({err})") from None
    if out.dim() != 4:
        raise ShapeError(f"decode_detections: {name} must be (B, C, H, W), got shape {tuple(out.shape)}")
    return out


def decode_detections(
    cls_logits: Sequence[Any],
    distances: Sequence[Any],
    centerness: Sequence[Any],
    strides: Sequence[int],
    image_sizes: Sequence[tuple[int, int]],
    **settings: Unpack[PostprocessSettings],
) -> list[dict[str, Any]]:
    """Detections per image from per-level head maps (numpy arrays or tensors), finest level first.

    Args:
        cls_logits: per level ``(B, K, H_l, W_l)`` classification logits.
        distances: per level ``(B, 4, H_l, W_l)`` ``(l, t, r, b)`` distances in input pixels.
        centerness: per level ``(B, 1, H_l, W_l)`` centerness logits.
        strides: stride of each level (the sidecar's ``detection.strides``).
        image_sizes: ``(height, width)`` of each image of the batch (boxes are clipped to it).
        settings: the inference keywords of :func:`~freqdense.models.detection.postprocess_detections`
            (``score_thr``, ``nms_iou``, ...; the run's ``task.detection`` settings are in the sidecar).

    Returns:
        Per image ``{"boxes": (D, 4) xyxy, "scores": (D,), "labels": (D,)}``: numpy arrays when the maps are numpy,
        tensors when they are tensors; equal to ``FCOSDetector.predict`` on the same maps.
    """
    levels = len(strides)
    if not (len(cls_logits) == len(distances) == len(centerness) == levels) or levels == 0:
        raise ShapeError(
            f"decode_detections needs one map per level for each of cls_logits, distances, centerness; got "
            f"{len(cls_logits)}, {len(distances)}, {len(centerness)} for {levels} strides"
        )
    as_numpy = not isinstance(cls_logits[0], torch.Tensor)
    cls = tuple(_tensor(m, f"cls_logits[{i}]") for i, m in enumerate(cls_logits))
    dist = tuple(_tensor(m, f"distances[{i}]") for i, m in enumerate(distances))
    ctr = tuple(_tensor(m, f"centerness[{i}]") for i, m in enumerate(centerness))
    for i in range(levels):
        if dist[i].shape[1] != 4 or ctr[i].shape[1] != 1 or cls[i].shape[-2:] != dist[i].shape[-2:]:
            raise ShapeError(
                f"decode_detections: level {i} maps disagree: cls {tuple(cls[i].shape)}, distances "
                f"{tuple(dist[i].shape)} (needs 4 channels), centerness {tuple(ctr[i].shape)} (needs 1)"
            )
    outputs = FCOSOutputs(cls, dist, ctr, tuple(int(s) for s in strides))
    results = postprocess_detections(outputs, image_sizes, **settings)
    if as_numpy:
        return [{k: v.cpu().numpy() for k, v in r.items()} for r in results]
    return results


def decode_onnx_outputs(
    outputs: Mapping[str, Any] | Sequence[Any],
    sidecar: Mapping[str, Any] | str | os.PathLike,
    image_sizes: Sequence[tuple[int, int]],
    **overrides: Any,
) -> list[dict[str, Any]]:
    """:func:`decode_detections` on an exported detector's outputs.

    Args:
        outputs: ONNX Runtime's outputs: a dict name -> array, or the list ``session.run(None, ...)`` returns (in
            graph order, :func:`head_output_names`).
        sidecar: the export's ``model.onnx.json`` (path or loaded dict); gives the strides, the output names and
            the run's inference settings.
        image_sizes: ``(height, width)`` of each image as fed to the graph.
        overrides: replace any inference setting (``score_thr``, ``nms_iou``, ``max_per_image``, ...).
    """
    if not isinstance(sidecar, Mapping):
        sidecar = json.loads(Path(sidecar).read_text(encoding="utf-8"))
    info = sidecar.get("detection")
    if not isinstance(info, Mapping) or "strides" not in info:
        raise ConfigError("the sidecar has no 'detection' section with strides; export the detector with freqdense")
    strides = [int(s) for s in info["strides"]]
    names = head_output_names(strides)
    if not isinstance(outputs, Mapping):
        if len(outputs) != len(names):
            raise ShapeError(f"expected {len(names)} outputs {names}, got {len(outputs)}")
        outputs = dict(zip(names, outputs))
    missing = [n for n in names if n not in outputs]
    if missing:
        raise ShapeError(f"the outputs lack {missing}; pass every output of the exported graph")
    settings = {**dict(info.get("inference") or {}), **overrides}
    levels = len(strides)
    return decode_detections(
        [outputs[n] for n in names[:levels]],
        [outputs[n] for n in names[levels : 2 * levels]],
        [outputs[n] for n in names[2 * levels :]],
        strides,
        image_sizes,
        **settings,
    )
