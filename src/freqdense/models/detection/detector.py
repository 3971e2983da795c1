"""An FCOS one-stage detector on a freqdense backbone and the FreqFusion FPN neck.

FCOS (Tian et al., "FCOS: Fully Convolutional One-Stage Object Detection", ICCV 2019) on P3..P7, as the FCOS
repository and mmdetection's ``fcos_r50-caffe_fpn_gn-head*_1x_coco`` configs build it: the backbone returns
C2..C5, the neck uses C3..C5 (its ``start_level=1``, mmdetection's meaning) and adds two stride-2 levels
(``num_outs=5``, strides 8, 16, 32, 64, 128); the :class:`~freqdense.models.detection.fcos.FCOSHead` predicts per
point.

**Losses** (FCOS Eq. 2, with the repository's normalisation): over all ``N_pos`` positive points of the batch
(mean over DDP ranks, floored at 1),

* ``loss_cls = sum_{points, classes} FL / N_pos`` (sigmoid focal loss, alpha 0.25, gamma 2, background = all-zero
  one-hot);
* ``loss_bbox = sum_pos c* (1 - GIoU) / sum_pos c*`` (or ``-log IoU``), weighted by the centerness target ``c*``;
* ``loss_centerness = sum_pos BCE(c, c*) / N_pos``.

Checked against the FCOS repository's ``FCOSLossComputation`` on a two-image float64 case (with and without center
sampling): identical labels and regression targets, ``loss_cls`` and ``loss_centerness`` equal to 1e-14,
``loss_bbox`` equal once the repository's ``(I + 1) / (U + 1)`` smoothing of its IoU is removed (mmdetection's
``GIoULoss``, which this follows, has none).

**Inference** (the FCOS repository's post-processing): per level, the (point, class) pairs with sigmoid score
``> score_thr``, the ``pre_nms_top_k`` best by ``score * centerness``; boxes decoded, clipped to the image;
score ``= sigmoid(cls) * sigmoid(centerness)`` (the FCOS repository reports its square root, ``sqrt_scores=True``:
same ranking); class-wise NMS at ``nms_iou`` (0.6); the ``max_per_image`` best.

The neck differs from FCOS's FPN as :class:`~freqdense.models.decoders.FreqFusionFPNNeck` is built (the official
FreqFusion detection neck): the two extra levels come from C5 (FCOS: from P5, with a ReLU before the second), and
they take part in the top-down pathway (P5 receives the fused P6).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, TypedDict

import torch
import torch.nn as nn
import torch.nn.functional as F

if TYPE_CHECKING:
    from typing_extensions import Unpack

from ..._checks import check_shape
from ...errors import ConfigError, ShapeError
from ...losses.detection import centerness_loss, giou_loss, iou_loss, sigmoid_focal_loss
from ...ops.boxes import batched_nms, clip_boxes, distances_to_boxes, remove_small_boxes
from .fcos import FCOSHead, FCOSOutputs
from .targets import centerness_target, fcos_targets, level_points

__all__ = ["FCOSDetector", "fcos_detector"]


def _mean_over_ranks(value: torch.Tensor) -> torch.Tensor:
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return value
    value = value.clone()
    dist.all_reduce(value, op=dist.ReduceOp.SUM)
    return value / dist.get_world_size()


def _flatten(maps: Sequence[torch.Tensor]) -> torch.Tensor:
    """Per-level ``(B, C, H, W)`` -> ``(B, sum H * W, C)`` in level order, row-major."""
    return torch.cat([m.permute(0, 2, 3, 1).reshape(m.shape[0], -1, m.shape[1]) for m in maps], dim=1)


class FCOSDetector(nn.Module):
    """``backbone -> neck -> FCOSHead`` with FCOS's losses and post-processing.

    Args:
        backbone: returns a list of feature maps, finest first (a freqdense backbone).
        neck: maps the backbone levels from ``start_level`` on to ``len(head.strides)`` maps of ``head.in_channels``.
        head: an :class:`FCOSHead` (holds the assignment options: regress ranges, center sampling, box loss).
        start_level: the first backbone level the detection uses (mmdetection's FPN ``start_level``: 1 drops C2 of a
            ResNet). A neck with its own ``start_level`` attribute (:class:`FreqFusionFPNNeck`) receives every
            level and drops the finer ones itself; ``start_level`` then defaults to, and must equal, the neck's.
            A neck without one receives only the levels from ``start_level`` on (default 0).
        normalize: images are RGB in [0, 1], normalised inside with ImageNet mean / std (non-persistent buffers
            ``mean``, ``std``); False: images arrive normalised.

    Example:
        >>> det = fcos_detector(3, "resnet18", neck_out_channels=32, backbone_kwargs={"base_width": 8},
        ...                     head_kwargs={"num_groups": 8})
        >>> out = det(torch.randn(2, 3, 64, 64))
        >>> losses = det.loss(out, [{"boxes": torch.tensor([[8.0, 8.0, 40.0, 40.0]]), "labels": torch.tensor([1])},
        ...                         {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.long)}])
        >>> sorted(losses)
        ['loss_bbox', 'loss_centerness', 'loss_cls']
    """

    def __init__(
        self,
        backbone: nn.Module,
        neck: nn.Module,
        head: FCOSHead,
        *,
        start_level: int | None = None,
        normalize: bool = False,
    ) -> None:
        super().__init__()
        if not isinstance(head, FCOSHead):
            raise ConfigError(f"FCOSDetector head must be an FCOSHead, got {type(head).__name__}")
        if start_level is not None and (isinstance(start_level, bool) or int(start_level) < 0):
            raise ConfigError(f"FCOSDetector start_level must be >= 0, got {start_level!r}")
        self.backbone, self.neck, self.head = backbone, neck, head
        neck_start = getattr(neck, "start_level", None)
        if neck_start is not None:
            # The neck drops the finest backbone levels itself (FreqFusionFPNNeck(start_level=...)).
            if start_level is not None and int(start_level) != int(neck_start):
                raise ConfigError(
                    f"FCOSDetector start_level={start_level} but the neck was built with start_level={neck_start}; "
                    "leave start_level unset (the neck's is used) or build the neck with the same value"
                )
            self.start_level = int(neck_start)
            self._drop_levels = 0
        else:
            self.start_level = int(start_level or 0)
            self._drop_levels = self.start_level
        self.normalize = bool(normalize)
        if self.normalize:
            from .._dense import register_normalization

            register_normalization(self)
        b_strides = getattr(backbone, "strides", None)
        num_outs = getattr(neck, "num_outs", None)
        if b_strides is not None and num_outs is not None:
            used = tuple(int(s) for s in b_strides)[self.start_level :]
            if not used:
                raise ConfigError(
                    f"FCOSDetector start_level={self.start_level} drops all {len(b_strides)} backbone levels; lower it"
                )
            extra = int(num_outs) - len(used)
            expected = used + tuple(used[-1] * 2 ** (k + 1) for k in range(max(extra, 0)))
            if expected != head.strides:
                raise ConfigError(
                    f"FCOSDetector: the neck outputs have strides {expected} (backbone strides {tuple(b_strides)} "
                    f"from start_level={self.start_level}, {num_outs} outputs) but the head was built with strides "
                    f"{head.strides}; build FCOSHead(strides={expected})"
                )

    @property
    def num_classes(self) -> int:
        return self.head.num_classes

    @property
    def strides(self) -> tuple[int, ...]:
        return self.head.strides

    def forward(self, images: torch.Tensor) -> FCOSOutputs:
        """``(B, C, H, W)`` images -> per-level :class:`FCOSOutputs` (logits, pixel distances, centerness logits).

        With ``normalize=True`` the images are RGB in [0, 1] and are normalised here with the ``mean`` / ``std``
        buffers (ImageNet statistics), as every registered freqdense model does.
        """
        check_shape(images, "B C H W", name="FCOSDetector images")
        if self.normalize:
            if not images.is_floating_point():
                raise ShapeError(
                    f"FCOSDetector images must be float RGB in [0, 1], got dtype {images.dtype}; use "
                    "image.float() / 255"
                )
            images = (images - self.mean) / self.std
        features = list(self.backbone(images))[self._drop_levels :]
        return self.head(self.neck(features))

    def loss(self, outputs: FCOSOutputs, targets: Sequence[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        """FCOS losses of a batch.

        Args:
            outputs: :meth:`forward`'s result.
            targets: per image ``{"boxes": (G, 4) xyxy image pixels, "labels": (G,) int64 in [0, num_classes)}``.

        Returns:
            ``{"loss_cls", "loss_bbox", "loss_centerness"}``, each normalised as the module docstring says.
        """
        k = self.head.num_classes
        batch = outputs.cls_logits[0].shape[0]
        if len(targets) != batch:
            raise ShapeError(f"FCOSDetector.loss got {len(targets)} targets for a batch of {batch} images")
        dist_dtype = outputs.distances[0].dtype
        device = outputs.distances[0].device
        points = level_points(
            [tuple(m.shape[-2:]) for m in outputs.cls_logits], outputs.strides, dtype=dist_dtype, device=device
        )
        t = fcos_targets(
            points,
            outputs.strides,
            [{"boxes": d["boxes"].to(device), "labels": d["labels"].to(device)} for d in targets],
            k,
            regress_ranges=self.head.regress_ranges,
            center_sampling=self.head.center_sampling,
            center_radius=self.head.center_radius,
        )
        cls = _flatten(outputs.cls_logits)  # (B, P, K)
        dist = _flatten(outputs.distances)  # (B, P, 4)
        ctr = _flatten(outputs.centerness)[..., 0]  # (B, P)
        pos = t.labels < k
        num_pos = _mean_over_ranks(pos.sum().to(cls.dtype)).clamp(min=1.0)
        one_hot = F.one_hot(t.labels, k + 1)[..., :k].to(cls.dtype)
        loss_cls = sigmoid_focal_loss(cls, one_hot, alpha=0.25, gamma=2.0, reduction="sum") / num_pos

        pos_dist, pos_ctr = dist[pos], ctr[pos]
        if pos_dist.shape[0] == 0:
            zero = pos_dist.sum() + pos_ctr.sum()  # keeps the graph (and DDP's view of the used parameters)
            return {"loss_cls": loss_cls, "loss_bbox": zero, "loss_centerness": zero.clone()}
        pos_points = torch.cat(points, dim=0)[None].expand(batch, -1, -1)[pos]
        target_dist = t.distances[pos]
        ctr_target = centerness_target(target_dist)
        pred_boxes = distances_to_boxes(pos_points, pos_dist)
        target_boxes = distances_to_boxes(pos_points, target_dist)
        box_loss_fn = giou_loss if self.head.box_loss == "giou" else iou_loss
        denom = _mean_over_ranks(ctr_target.sum().detach()).clamp(min=1e-6)
        loss_bbox = box_loss_fn(pred_boxes, target_boxes, ctr_target, reduction="sum") / denom
        loss_ctr = centerness_loss(pos_ctr, ctr_target, reduction="sum") / num_pos
        return {"loss_cls": loss_cls, "loss_bbox": loss_bbox, "loss_centerness": loss_ctr}

    @torch.no_grad()
    def predict(
        self, outputs: FCOSOutputs, image_sizes: Sequence[tuple[int, int]], **settings: Unpack[PostprocessSettings]
    ) -> list[dict[str, torch.Tensor]]:
        """Detections per image: ``{"boxes": (D, 4) xyxy image pixels, "scores": (D,), "labels": (D,) int64}``.

        Args:
            outputs: :meth:`forward`'s result.
            image_sizes: ``(height, width)`` of each image (boxes are clipped to it; padding excluded).
            settings: the inference keywords of :func:`postprocess_detections` (``score_thr``, ``nms_iou``,
                ``max_per_image``, ``pre_nms_top_k``, ``min_size``, ``sqrt_scores``), which holds their defaults.
        """
        return postprocess_detections(outputs, image_sizes, **settings)


class PostprocessSettings(TypedDict, total=False):
    """The inference keywords of :func:`postprocess_detections`, which :meth:`FCOSDetector.predict` and
    :func:`~freqdense.models.detection.decode_detections` pass through (type checkers see them there)."""

    score_thr: float
    nms_iou: float
    max_per_image: int
    pre_nms_top_k: int
    min_size: float
    sqrt_scores: bool


@torch.no_grad()
def postprocess_detections(
    outputs: FCOSOutputs,
    image_sizes: Sequence[tuple[int, int]],
    *,
    score_thr: float = 0.05,
    nms_iou: float = 0.6,
    max_per_image: int = 100,
    pre_nms_top_k: int = 1000,
    min_size: float = 0.0,
    sqrt_scores: bool = False,
) -> list[dict[str, torch.Tensor]]:
    """FCOS inference post-processing of per-level head outputs (the module docstring lists the steps).

    :meth:`FCOSDetector.predict` and, for exported graphs' outputs,
    :func:`freqdense.models.detection.decode_detections` run this function; the keywords and their defaults live
    only here.

    Args:
        outputs: :meth:`FCOSDetector.forward`'s result.
        image_sizes: ``(height, width)`` of each image (boxes are clipped to it; padding excluded).
        score_thr: minimum sigmoid classification score of a candidate (0.05).
        nms_iou: class-wise NMS IoU threshold (0.6, the FCOS repository and the improved mmdetection config).
        max_per_image: detections kept per image after NMS (100).
        pre_nms_top_k: candidates kept per level before NMS (1000).
        min_size: boxes narrower or lower than this are dropped (0).
        sqrt_scores: report ``sqrt(cls * centerness)`` as the FCOS repository does (same order).

    Returns:
        Per image ``{"boxes": (D, 4) xyxy image pixels, "scores": (D,), "labels": (D,) int64}``.
    """
    batch = outputs.cls_logits[0].shape[0]
    if len(image_sizes) != batch or any(len(s) != 2 for s in image_sizes):
        raise ShapeError(f"FCOSDetector.predict needs one (height, width) per image ({batch}), got {image_sizes!r}")
    if not 0.0 <= float(nms_iou) <= 1.0 or int(max_per_image) < 1 or int(pre_nms_top_k) < 1:
        raise ConfigError(
            f"predict needs 0 <= nms_iou <= 1, max_per_image >= 1, pre_nms_top_k >= 1; got {nms_iou!r}, "
            f"{max_per_image!r}, {pre_nms_top_k!r}"
        )
    points = level_points(
        [tuple(m.shape[-2:]) for m in outputs.cls_logits],
        outputs.strides,
        dtype=outputs.distances[0].dtype,
        device=outputs.distances[0].device,
    )
    results = []
    for b in range(batch):
        boxes, scores, labels = [], [], []
        for level, pts in enumerate(points):
            cls = outputs.cls_logits[level][b].flatten(1).t().sigmoid()  # (P_l, K)
            ctr = outputs.centerness[level][b].flatten().sigmoid()  # (P_l,)
            dist = outputs.distances[level][b].flatten(1).t()  # (P_l, 4)
            point_idx, class_idx = torch.nonzero(cls > score_thr, as_tuple=True)
            score = cls[point_idx, class_idx] * ctr[point_idx]
            if score.numel() > pre_nms_top_k:
                top = score.topk(int(pre_nms_top_k)).indices
                point_idx, class_idx, score = point_idx[top], class_idx[top], score[top]
            boxes.append(distances_to_boxes(pts[point_idx], dist[point_idx]))
            scores.append(score)
            labels.append(class_idx)
        box = clip_boxes(torch.cat(boxes), (int(image_sizes[b][0]), int(image_sizes[b][1])))
        score, label = torch.cat(scores), torch.cat(labels)
        keep = remove_small_boxes(box, min_size)
        box, score, label = box[keep], score[keep], label[keep]
        keep = batched_nms(box, score, label, float(nms_iou))[: int(max_per_image)]
        score = score[keep].sqrt() if sqrt_scores else score[keep]
        results.append({"boxes": box[keep], "scores": score, "labels": label[keep]})
    return results


def fcos_detector(
    num_classes: int,
    backbone: str | nn.Module = "resnet50",
    *,
    neck_fusion: str = "freqfusion",
    neck_out_channels: int = 256,
    num_outs: int = 5,
    start_level: int = 1,
    backbone_kwargs: dict[str, Any] | None = None,
    neck_kwargs: dict[str, Any] | None = None,
    head_kwargs: dict[str, Any] | None = None,
    normalize: bool = False,
) -> FCOSDetector:
    """FCOS on a registered backbone and :class:`~freqdense.models.decoders.FreqFusionFPNNeck`.

    Args:
        num_classes: foreground classes.
        backbone: a registered backbone name (``"resnet18"`` .. ``"resnet101"``) or a built backbone module with
            ``out_channels`` and ``strides``.
        neck_fusion: the neck's top-down upsampler (``"freqfusion"`` or ``"bilinear"``; passed through).
        neck_out_channels: neck width (256), also the head's input and default tower width.
        num_outs: neck outputs (5: P3..P7 from C3..C5 and two extra levels).
        start_level: first backbone level given to the neck (1: C3 of a ResNet returning C2..C5).
        backbone_kwargs, neck_kwargs: extra keywords of the backbone factory and the neck.
        head_kwargs: extra :class:`FCOSHead` keywords (``feat_channels`` defaults to ``neck_out_channels``;
            ``regress_ranges`` is needed when ``num_outs != 5``).
        normalize: the detector takes RGB in [0, 1] and normalises with ImageNet mean / std inside (what the
            registered model ``fcos`` sets); False: it takes already normalised images.
    """
    from ..backbones import create_backbone
    from ..decoders.fpn_neck import FreqFusionFPNNeck

    if isinstance(backbone, str):
        bb = create_backbone(backbone, **dict(backbone_kwargs or {}))
    elif isinstance(backbone, nn.Module):
        if backbone_kwargs:
            raise ConfigError("fcos_detector: backbone_kwargs only apply when the backbone is given by name")
        bb = backbone
    else:
        raise ConfigError(
            f"fcos_detector backbone must be a registered name or a module, got {type(backbone).__name__}"
        )
    channels = tuple(int(c) for c in bb.out_channels)
    strides = tuple(int(s) for s in bb.strides)
    if isinstance(start_level, bool) or not 0 <= int(start_level) < len(channels):
        raise ConfigError(
            f"fcos_detector start_level must be in [0, {len(channels)}) for a backbone with {len(channels)} levels, "
            f"got {start_level!r}"
        )
    neck_kwargs = dict(neck_kwargs or {})
    if "start_level" in neck_kwargs:
        raise ConfigError("fcos_detector: pass start_level= to fcos_detector, not inside neck_kwargs")
    # The neck takes every backbone level and drops those before start_level itself (mmdetection's FPN).
    neck = FreqFusionFPNNeck(
        channels, int(neck_out_channels), int(num_outs), fusion=neck_fusion, start_level=int(start_level), **neck_kwargs
    )
    used_strides = strides[neck.start_level :]
    extra = int(num_outs) - len(used_strides)
    head_strides = used_strides + tuple(used_strides[-1] * 2 ** (k + 1) for k in range(extra))
    kwargs = {"feat_channels": int(neck_out_channels), **dict(head_kwargs or {})}
    if "strides" in kwargs:
        raise ConfigError(
            "fcos_detector sets the head strides from the backbone and the neck; drop head_kwargs['strides']"
        )
    head = FCOSHead(num_classes, int(neck_out_channels), strides=head_strides, **kwargs)
    return FCOSDetector(bb, neck, head, normalize=normalize)
