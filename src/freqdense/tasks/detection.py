"""Object detection as an engine task: FCOS losses for training, COCO box AP for evaluation.

The model is a detector such as the registered ``fcos`` (:class:`freqdense.models.fcos.FCOS`): ``model(image)``
returns per-level raw maps, ``model.loss(outputs, targets)`` the FCOS losses (Tian et al., "FCOS: Fully
Convolutional One-Stage Object Detection", ICCV 2019, Eq. 2: focal loss, GIoU / IoU box loss, centerness BCE) and
``model.predict(outputs, image_sizes, ...)`` the decoded, class-wise NMS-ed boxes.

Batches come from :func:`freqdense.engine.data.collate_batch` (``collate_detection``): ``image`` (B, 3, H, W)
zero-padded at the bottom / right, ``image_size`` (B, 2) = (H, W) of each image before padding, and per image
``boxes`` (N_i, 4) xyxy pixels and ``labels`` (N_i,). An image without boxes is a valid training image (only
background). Evaluation clips the detections to each image's own size and, when the evaluation transform resized
the image (``image_scale`` = (sx, sy), e.g. COCO's 1333x800 keep-ratio resize), maps detections and ground truth
back to the original pixel frame first, so that the COCO area ranges (small / medium / large) refer to the original
image as in the official evaluation. Metrics (:class:`freqdense.metrics.detection.DetectionMetric`):
``detection/ap`` (AP@[.5:.95]), ``detection/ap50``, ``detection/ap75``, ``detection/ap_small|medium|large`` and
``detection/ap50_voc`` (VOC all-point AP@0.5).
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from .._finite import non_finite_count
from ..data.sample import Sample
from ..errors import ConfigError, DataError, NonFiniteError, ShapeError
from ..metrics.detection import DetectionMetric
from ..models.detection.detector import postprocess_detections
from .base import MetricSet

__all__ = ["DETECTION_OPTIONS", "POSTPROCESS_KEYS", "DetectionTask", "detection_classes"]

#: The FCOS inference keys of ``task.detection``: keywords of :func:`postprocess_detections`, whose defaults they take.
POSTPROCESS_KEYS = ("score_thr", "nms_iou", "max_per_image", "pre_nms_top_k", "min_size")
_POSTPROCESS = inspect.signature(postprocess_detections).parameters

#: ``task.detection`` keys and their defaults (FCOS inference settings and the loss weights).
DETECTION_OPTIONS: dict[str, Any] = {
    **{key: _POSTPROCESS[key].default for key in POSTPROCESS_KEYS},
    "loss_weights": {"cls": 1.0, "bbox": 1.0, "centerness": 1.0},
    "voc_ap50": True,
}
_LOSS_TERMS = {"cls": "loss_cls", "bbox": "loss_bbox", "centerness": "loss_centerness"}


def detection_classes(dataset: Any) -> tuple[str, ...] | None:
    """The detection class names of a dataset: ``thing_classes`` where it has them (the synthetic scenes: their
    ``classes`` are the semantic classes), else ``classes`` (COCO-format datasets: the categories)."""
    names = getattr(dataset, "thing_classes", None)
    if names is None:
        names = getattr(dataset, "classes", None)
    return tuple(str(n) for n in names) if names is not None else None


def _unwrap(model: nn.Module) -> nn.Module:
    return getattr(model, "module", model)


def _number(options: Mapping[str, Any], key: str, low: float, high: float | None, *, integer: bool = False) -> Any:
    value = options[key]
    kind = int if integer else (int, float)
    ok = isinstance(value, kind) and not isinstance(value, bool) and value >= low and (high is None or value <= high)
    if not ok:
        what = "an integer" if integer else "a number"
        bound = f">= {low}" if high is None else f"in [{low}, {high}]"
        raise ConfigError(f"task.detection.{key} must be {what} {bound}, got {value!r}")
    return int(value) if integer else float(value)


class DetectionTask:
    """Train and evaluate a detector (see the module docstring).

    Args:
        num_classes: detection classes of the dataset (the model's ``num_classes`` must match).
        class_names: their names (messages, predictions).
        score_thr: minimum classification score of a detection candidate (FCOS: 0.05).
        nms_iou: class-wise NMS IoU threshold (FCOS: 0.6).
        max_per_image: detections kept per image (COCO: 100).
        pre_nms_top_k: candidates per level before NMS (1000).
        min_size: detections narrower or lower than this many pixels are dropped (0).
        loss_weights: weights of the loss terms ``cls``, ``bbox``, ``centerness`` in the total (1 each).
        voc_ap50: also report ``detection/ap50_voc``.
    """

    key = "detection"
    inputs: tuple[str, ...] = ("image",)

    def __init__(
        self,
        num_classes: int,
        *,
        class_names: Sequence[str] | None = None,
        score_thr: float = DETECTION_OPTIONS["score_thr"],
        nms_iou: float = DETECTION_OPTIONS["nms_iou"],
        max_per_image: int = DETECTION_OPTIONS["max_per_image"],
        pre_nms_top_k: int = DETECTION_OPTIONS["pre_nms_top_k"],
        min_size: float = DETECTION_OPTIONS["min_size"],
        loss_weights: Mapping[str, float] | None = None,
        voc_ap50: bool = True,
    ) -> None:
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
            raise ConfigError(
                f"task detection needs a dataset with detection classes (got {num_classes!r}); use the synthetic "
                "scenes with data.args.modalities: [image, instance] or a COCO-format dataset"
            )
        self.num_classes = num_classes
        self.class_names = tuple(class_names) if class_names is not None else None
        options = {
            "score_thr": score_thr,
            "nms_iou": nms_iou,
            "max_per_image": max_per_image,
            "pre_nms_top_k": pre_nms_top_k,
            "min_size": min_size,
        }
        self.score_thr = _number(options, "score_thr", 0.0, 1.0)
        self.nms_iou = _number(options, "nms_iou", 0.0, 1.0)
        self.max_per_image = _number(options, "max_per_image", 1, None, integer=True)
        self.pre_nms_top_k = _number(options, "pre_nms_top_k", 1, None, integer=True)
        self.min_size = _number(options, "min_size", 0.0, None)
        weights = dict(DETECTION_OPTIONS["loss_weights"])
        for name, value in (loss_weights or {}).items():
            if name not in weights:
                raise ConfigError(
                    f"task.detection.loss_weights has the unknown term {name!r}; the terms are {sorted(weights)}"
                )
            weights[name] = _number({name: value}, name, 0.0, None)
        self.loss_weights = weights
        self.voc_ap50 = bool(voc_ap50)

    @classmethod
    def from_options(
        cls, options: Mapping[str, Any] | None, *, num_classes: int | None, class_names: Sequence[str] | None = None
    ) -> DetectionTask:
        """Build from the config's ``task.detection`` mapping (keys of :data:`DETECTION_OPTIONS`)."""
        options = dict(options or {})
        unknown = sorted(set(options) - set(DETECTION_OPTIONS))
        if unknown:
            import difflib

            close = difflib.get_close_matches(str(unknown[0]), list(DETECTION_OPTIONS), n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ConfigError(
                f"task.detection: unknown key(s) {unknown}.{hint} Valid keys: {', '.join(DETECTION_OPTIONS)}"
            )
        if "loss_weights" in options and not isinstance(options["loss_weights"], Mapping):
            raise ConfigError(
                f"task.detection.loss_weights must be a mapping such as {{cls: 1.0, bbox: 1.0, centerness: 1.0}}, got "
                f"{options['loss_weights']!r}"
            )
        return cls(num_classes, class_names=class_names, **options)  # type: ignore[arg-type]

    @property
    def keys(self) -> tuple[str, ...]:
        return (self.key,)

    # ------------------------------------------------------------------------------------------------ helpers
    def _detector(self, model: nn.Module) -> nn.Module:
        det = _unwrap(model)
        if not (callable(getattr(det, "loss", None)) and callable(getattr(det, "predict", None))):
            raise ConfigError(
                f"task detection needs a detector with loss() and predict() (model.name: fcos), got "
                f"{type(det).__name__}"
            )
        k = getattr(det, "num_classes", None)
        if isinstance(k, int) and k != self.num_classes:
            raise ConfigError(
                f"model.num_classes={k} but the dataset has {self.num_classes} detection classes "
                f"({', '.join(self.class_names or ())}); set model.num_classes={self.num_classes}"
            )
        return det

    @staticmethod
    def _targets(batch: Sample) -> list[dict[str, Tensor]]:
        missing = [k for k in ("boxes", "labels") if k not in batch]
        if missing:
            raise DataError(
                f"task detection needs {missing} in every batch but it has only {sorted(batch)}; use the synthetic "
                "scenes with data.args.modalities: [image, instance], or a COCO-format dataset (dataset: coco)"
            )
        boxes, labels = batch["boxes"], batch["labels"]
        if isinstance(boxes, Tensor):  # a batch stacked by torch's default collate (equal box counts)
            boxes, labels = list(boxes), list(labels)
        if len(boxes) != batch["image"].shape[0] or len(labels) != len(boxes):
            raise ShapeError(
                f"the batch has {batch['image'].shape[0]} images but {len(boxes)} box sets and {len(labels)} label "
                "sets; collate detection batches with freqdense.data.coco.collate_detection"
            )
        return [{"boxes": b, "labels": lab.long()} for b, lab in zip(boxes, labels)]

    @staticmethod
    def _image_sizes(batch: Sample) -> list[tuple[int, int]]:
        image = batch["image"]
        sizes = batch.get("image_size")
        if sizes is None:
            return [(int(image.shape[-2]), int(image.shape[-1]))] * int(image.shape[0])
        return [(int(h), int(w)) for h, w in torch.as_tensor(sizes).reshape(-1, 2).tolist()]

    # ------------------------------------------------------------------------------------------ Task interface
    def training_step(self, model: nn.Module, batch: Sample) -> dict[str, Tensor]:
        """FCOS losses of a batch: ``cls``, ``bbox``, ``centerness`` (unweighted) and their weighted ``total``."""
        det = self._detector(model)
        targets = self._targets(batch)
        outputs = model(batch["image"])  # through the (DDP) wrapper, so gradients synchronise
        raw = det.loss(outputs, targets)
        terms: dict[str, Tensor] = {}
        total = None
        for name, key in _LOSS_TERMS.items():
            value = raw[key]
            terms[name] = value.detach()
            weighted = value * self.loss_weights[name]
            total = weighted if total is None else total + weighted
        terms["total"] = total
        return terms

    def make_metrics(self) -> MetricSet:
        return MetricSet(
            {self.key: DetectionMetric(self.num_classes, class_names=self.class_names, voc_ap50=self.voc_ap50)}
        )

    def predict(
        self, model: nn.Module, outputs: Any, image_sizes: Sequence[tuple[int, int]]
    ) -> list[dict[str, Tensor]]:
        """Decoded detections with this task's inference settings (``score_thr``, ``nms_iou``, ...)."""
        return self._detector(model).predict(outputs, image_sizes, **self.postprocess_settings)

    @property
    def postprocess_settings(self) -> dict[str, Any]:
        """This task's :data:`POSTPROCESS_KEYS` values, the keywords of :func:`postprocess_detections`."""
        return {key: getattr(self, key) for key in POSTPROCESS_KEYS}

    @torch.no_grad()
    def evaluation_step(self, model: nn.Module, batch: Sample, metrics: MetricSet) -> Any:
        """Detect, map to the original pixel frame (``image_scale``) and add to the COCO metric."""
        targets = self._targets(batch)
        self._detector(model)
        outputs = model(batch["image"])
        _refuse_non_finite(outputs)
        detections = self.predict(model, outputs, self._image_sizes(batch))
        scale = batch.get("image_scale")
        if scale is not None:
            factors = torch.as_tensor(scale, dtype=torch.float64).reshape(-1, 2)
            detections = [_unscale(d, factors[i]) for i, d in enumerate(detections)]
            targets = [_unscale(t, factors[i]) for i, t in enumerate(targets)]
        metrics.metrics[self.key].update(detections, targets)
        return outputs


def _unscale(entry: dict[str, Tensor], factor: Tensor) -> dict[str, Tensor]:
    sx, sy = float(factor[0]), float(factor[1])
    divisor = torch.tensor([sx, sy, sx, sy], dtype=torch.float64, device=entry["boxes"].device)
    return {**entry, "boxes": entry["boxes"].to(torch.float64) / divisor}


def _refuse_non_finite(outputs: Any) -> None:
    """NaN/inf in the raw maps would silently give no detections (AP 0); refuse them naming the batch items."""
    maps = [m for group in (outputs.cls_logits, outputs.distances, outputs.centerness) for m in group]
    bad = sorted({int(i) for m in maps if non_finite_count(m) for i in torch.nonzero(~torch.isfinite(m))[:, 0]})
    if bad:
        error = NonFiniteError(
            f"the detector's outputs hold NaN/inf for batch items {bad[:10]}; NaN scores would silently give no "
            "detections (check the inputs and the weights)"
        )
        error.batch_items = bad
        raise error
