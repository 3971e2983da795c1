"""Run a trained detector on image files: boxes drawn on each image, and the detections as JSON.

For every input image ``<stem>.<ext>`` the output directory gets

* ``<stem>_det.png``: the image (enlarged by an integer factor when small, see :func:`freqdense.viz.boxes.
  drawing_scale`) with one rectangle per detection in its class colour, labelled ``<class name> <score>``;
* ``<stem>_det.json``: ``{"input", "size": [H, W], "detections": [{"box": [x1, y1, x2, y2], "score", "label",
  "class"}, ...]}``, boxes in pixels of the input image (``x2 = x1 + width``), best score first;

and ``predictions.json`` lists every image, the classes, the palette and the inference settings. As
:func:`freqdense.predict.predict_images`, files are staged and moved into place only after every image was
predicted (``predictions.json`` last); a refused input or a NaN output leaves the directory as it was.

The network input is the image resized to ``size`` when given, else transformed by the run's evaluation transforms
(``data.val_transforms``: e.g. COCO's 1333x800 keep-ratio resize), else the image as it is (FCOS is fully
convolutional). Detections are mapped back to the input image's pixels. Settings (``score_thr``, ``nms_iou``,
``max_per_image``, ...) default to the run's ``task.detection``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ._progress import Progress
from .data.io import atomic_write, read_image, write_png_atomic
from .errors import ConfigError, NonFiniteError

__all__ = ["predict_detections", "DETECTION_SUMMARY_FORMAT"]

log = logging.getLogger(__name__)

#: ``format`` of the ``predictions.json`` this writes.
DETECTION_SUMMARY_FORMAT = "freqdense-detections"


def _network_transform(meta: Mapping[str, Any], size: Sequence[int] | None):
    from .data.transforms import Resize, build_transforms
    from .predict import _resolve_size

    resolved = _resolve_size(size)
    if resolved is not None:
        return Resize(resolved), f"resize to {list(resolved)}"
    data = (meta.get("config") or {}).get("data") or {}
    transforms = build_transforms(data.get("val_transforms") or {}, train=False)
    if transforms.transforms:
        return transforms, f"the run's data.val_transforms {data.get('val_transforms')}"
    return None, "the image as it is"


def _task_options(meta: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    task = (meta.get("config") or {}).get("task") or {}
    options = dict(task.get("detection") or {})
    options.update({k: v for k, v in overrides.items() if v is not None})
    return options


def predict_detections(
    model: nn.Module,
    inputs: Sequence[str | Path],
    out_dir: str | Path,
    *,
    meta: Mapping[str, Any],
    size: Sequence[int] | None = None,
    device: str | torch.device = "cpu",
    batch_size: int = 4,
    score_thr: float | None = None,
    nms_iou: float | None = None,
    max_per_image: int | None = None,
) -> list[Path]:
    """Detect objects in every image of ``inputs`` and write the files of the module docstring.

    Args:
        model: a detector (the registered ``fcos``) taking RGB in [0, 1].
        inputs: image files and/or directories (see :func:`freqdense.predict.find_images`).
        out_dir: output directory (created if missing).
        meta: checkpoint metadata: ``classes`` (detection class names), ``palette``, ``config``.
        size: network input size ``(H, W)`` (default: the run's evaluation transforms).
        device: torch device.
        batch_size: images per forward pass (consecutive images of the same network size are batched).
        score_thr, nms_iou, max_per_image: override the run's ``task.detection`` settings.

    Returns:
        The paths written, per image in input order, then ``predictions.json``.

    Raises:
        DataError: a missing or unreadable input. NonFiniteError: NaN/inf in the detector's outputs for an image.
        ConfigError: bad settings, a model that is not a detector, or one taking more inputs than the image.
    """
    from .predict import SUMMARY_NAME, _commit, _Staging, find_images, model_input_keys
    from .tasks.detection import DetectionTask, _refuse_non_finite

    keys = model_input_keys(meta)
    if keys != ("image",):
        raise ConfigError(f"predict for detection feeds the image only, but the model's inputs are {list(keys)}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigError(f"batch_size must be an integer >= 1, got {batch_size!r}")
    num_classes = getattr(model, "num_classes", None)
    classes = [str(c) for c in (meta.get("classes") or [])]
    if not isinstance(num_classes, int):
        raise ConfigError(f"predict for detection needs a detector with num_classes, got {type(model).__name__}")
    if classes and len(classes) != num_classes:
        raise ConfigError(
            f"the checkpoint lists {len(classes)} classes but the detector predicts {num_classes}; fix meta['classes']"
        )
    names = classes or [str(i) for i in range(num_classes)]
    overrides = {"score_thr": score_thr, "nms_iou": nms_iou, "max_per_image": max_per_image}
    task = DetectionTask.from_options(_task_options(meta, overrides), num_classes=num_classes, class_names=names)
    palette = _palette(meta, num_classes)
    transform, how = _network_transform(meta, size)
    files = find_images(inputs)
    out_dir = Path(out_dir)
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ConfigError(f"invalid device {device!r}: {err}; use e.g. 'cpu' or 'cuda:0'") from err
    model.to(device).eval()
    settings = {"network_input": how, **task.postprocess_settings}
    with _Staging(out_dir) as stage:
        written: list[Path] = []
        records: list[dict[str, Any]] = []
        pending: list[tuple[Path, torch.Tensor, torch.Tensor]] = []

        def flush() -> None:
            batch = torch.stack([net_in for _, _, net_in in pending]).to(device)
            with torch.inference_mode():
                outputs = model(batch)
                try:
                    _refuse_non_finite(outputs)
                except NonFiniteError as err:
                    bad = [str(pending[i][0]) for i in getattr(err, "batch_items", [])] or [
                        str(p) for p, _, _ in pending
                    ]
                    raise NonFiniteError(
                        f"the detector's outputs for {', '.join(bad)} hold NaN/inf; nothing was written. The weights "
                        "or the image are broken"
                    ) from None
                sizes = [tuple(int(v) for v in net_in.shape[-2:]) for _, _, net_in in pending]
                detections = task.predict(model, outputs, sizes)
            for (path, image, net_in), det in zip(pending, detections):
                sy = net_in.shape[-2] / image.shape[-2]
                sx = net_in.shape[-1] / image.shape[-1]
                boxes = det["boxes"].double().cpu() / torch.tensor([sx, sy, sx, sy], dtype=torch.float64)
                boxes[:, 0::2] = boxes[:, 0::2].clamp(0, image.shape[-1])
                boxes[:, 1::2] = boxes[:, 1::2].clamp(0, image.shape[-2])
                written.extend(_write_image(stage, path, image, boxes, det, names, palette, records))
            pending.clear()

        with Progress("predict", len(files), unit="img") as bar:
            for path in files:
                image = read_image(path)
                net_in = image if transform is None else transform({"image": image})["image"]
                if pending and (len(pending) == batch_size or pending[0][2].shape != net_in.shape):
                    n = len(pending)
                    flush()
                    bar.update(n)
                pending.append((path, image, net_in))
            if pending:
                n = len(pending)
                flush()
                bar.update(n)
        summary = stage / SUMMARY_NAME
        payload = {
            "format": DETECTION_SUMMARY_FORMAT,
            "format_version": 1,
            "classes": names,
            "palette": palette.tolist(),
            "inference": settings,
            "files": {
                "det": "RGB PNG: the image (enlarged by 'drawn_scale') with the detections in their class colours",
                "det_json": "detections: box [x1, y1, x2, y2] in pixels of the input image, score, label, class",
            },
            "images": records,
        }
        with atomic_write(summary, "w", encoding="utf-8") as f:
            json.dump(payload, f, indent=2)
            f.write("\n")
        written.append(summary)
        final = _commit(stage, out_dir, written)
    log.info("wrote detections for %d images to %s", len(files), out_dir)
    return final


def _palette(meta: Mapping[str, Any], num_classes: int) -> np.ndarray:
    from .viz import default_palette

    given = meta.get("palette")
    if given:
        colours = np.asarray(given, dtype=np.int64).reshape(-1, 3).clip(0, 255).astype(np.uint8)
        if len(colours) == num_classes:
            return colours
    return default_palette(num_classes)


def _write_image(
    stage: Path,
    path: Path,
    image: torch.Tensor,
    boxes: torch.Tensor,
    det: Mapping[str, torch.Tensor],
    names: Sequence[str],
    palette: np.ndarray,
    records: list[dict[str, Any]],
) -> list[Path]:
    from .viz.boxes import draw_detections, drawing_scale

    scores = det["scores"].double().cpu()
    labels = det["labels"].long().cpu()
    order = torch.argsort(-scores, stable=True)
    boxes, scores, labels = boxes[order], scores[order], labels[order]
    h, w = int(image.shape[-2]), int(image.shape[-1])
    entries = [
        {
            "box": [round(float(v), 3) for v in box],
            "score": round(float(score), 6),
            "label": int(label),
            "class": names[int(label)],
        }
        for box, score, label in zip(boxes.tolist(), scores.tolist(), labels.tolist())
    ]
    scale = drawing_scale(h, w)
    drawn = draw_detections(image, boxes, labels, scores, class_names=names, palette=palette, scale=scale)
    png = stage / f"{path.stem}_det.png"
    write_png_atomic(drawn, png)
    js = stage / f"{path.stem}_det.json"
    with atomic_write(js, "w", encoding="utf-8") as f:
        json.dump({"input": str(path), "size": [h, w], "detections": entries}, f, indent=2)
        f.write("\n")
    records.append(
        {
            "input": str(path),
            "size": [h, w],
            "num_detections": len(entries),
            "drawn_scale": scale,
            "outputs": {"det": png.name, "det_json": js.name},
        }
    )
    return [png, js]
