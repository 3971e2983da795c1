"""The detection task: the registered fcos model, losses and gradients, evaluation in the original pixel frame,
config validation, decoding outside the model."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from freqdense.config.load import build_config
from freqdense.config.schema import TaskConfig
from freqdense.errors import ConfigError, DataError, NonFiniteError
from freqdense.models import create_model
from freqdense.models.detection import FCOSOutputs, decode_detections, postprocess_detections
from freqdense.tasks import DetectionTask, build_task, task_classes

TINY = {
    "num_classes": 3,
    "backbone": "resnet18",
    "backbone_kwargs": {"base_width": 8},
    "neck_out_channels": 16,
    "compress_ratio": 4,  # FreqFusion's compressed width 8 (its GroupNorm needs >= 8)
    "head_kwargs": {"num_groups": 4, "stacked_convs": 1},
}


def _batch() -> dict:
    return {
        "image": torch.rand(2, 3, 45, 61),
        "image_size": torch.tensor([[45, 61], [40, 50]]),
        "boxes": [torch.tensor([[3.0, 4.0, 30.0, 40.0], [20.0, 2.0, 60.0, 20.0]]), torch.zeros(0, 4)],
        "labels": [torch.tensor([0, 2]), torch.zeros(0, dtype=torch.int64)],
    }


def test_build_task_reads_the_detection_options():
    task = build_task(TaskConfig(name="detection", detection={"score_thr": 0.1, "max_per_image": 7}), num_classes=3)
    assert isinstance(task, DetectionTask) and task.keys == ("detection",)
    assert (task.score_thr, task.nms_iou, task.max_per_image) == (0.1, 0.6, 7)
    with pytest.raises(ConfigError, match="Did you mean 'nms_iou'"):
        build_task(TaskConfig(name="detection", detection={"nms_iuo": 0.5}), num_classes=3)
    with pytest.raises(ConfigError, match="loss_weights has the unknown term 'box'"):
        build_task(TaskConfig(name="detection", detection={"loss_weights": {"box": 2.0}}), num_classes=3)
    with pytest.raises(ConfigError, match="task.inputs"):
        build_task(TaskConfig(name="detection", inputs=["image", "hha"]), num_classes=3)
    with pytest.raises(ConfigError, match="detection classes"):
        build_task(TaskConfig(name="detection"), num_classes=None)
    with pytest.raises(ConfigError, match="need task.name: detection"):
        build_task(TaskConfig(name="segmentation", detection={"score_thr": 0.1}), num_classes=3)


def test_task_classes_are_the_thing_classes_of_the_synthetic_scenes():
    class Scenes:
        classes = ("floor", "wall", "table")
        num_classes = 3
        thing_classes = ("table",)

    class Coco:
        classes = ("cat", "dog")
        num_classes = 2

    assert task_classes(TaskConfig(name="detection"), Scenes()) == (1, ("table",))
    assert task_classes(TaskConfig(name="detection"), Coco()) == (2, ("cat", "dog"))
    assert task_classes(TaskConfig(name="segmentation"), Scenes()) == (3, ("floor", "wall", "table"))


@pytest.mark.parametrize("fusion", ["bilinear", "freqfusion"])
def test_training_step_weights_the_terms_and_reaches_every_parameter(fusion):
    torch.manual_seed(0)
    model = create_model("fcos", neck_fusion=fusion, **TINY)
    weights = {"cls": 0.7, "bbox": 1.3, "centerness": 0.4}
    task = DetectionTask(3, loss_weights=weights)
    losses = task.training_step(model, _batch())
    assert set(losses) == {"cls", "bbox", "centerness", "total"}
    expected = sum(weights[k] * losses[k] for k in weights)
    assert losses["total"].item() == pytest.approx(expected.item(), rel=1e-6)
    out = model(_batch()["image"])  # the random-weighted sum also reaches maps the losses leave at zero weight
    total = losses["total"] + sum((torch.randn_like(m) * m).sum() for g in out[:3] for m in g)
    total.backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not bool(p.grad.abs().sum() > 0)]
    assert missing == []


def test_fcos_normalises_inside_and_freezes_like_mmdetection():
    torch.manual_seed(0)
    model = create_model("fcos", **TINY)
    assert model.mean.flatten().tolist() == pytest.approx([0.485, 0.456, 0.406])
    x = torch.rand(1, 3, 32, 40)
    raw = model.head(model.neck(model.backbone((x - model.mean) / model.std)))
    assert torch.equal(model(x).cls_logits[0], raw.cls_logits[0])
    frozen = create_model("fcos", frozen_stages=1, norm_eval=True, **TINY).train()
    bb = frozen.backbone
    assert not any(p.requires_grad for p in [*bb.conv1.parameters(), *bb.layer1.parameters()])
    assert all(p.requires_grad for p in bb.layer2[0].conv1.parameters())
    assert not bb.layer3[0].bn1.training and not bb.layer3[0].bn1.weight.requires_grad
    assert frozen.neck.training and frozen.head.training
    with pytest.raises(ConfigError, match="frozen_stages"):
        create_model("fcos", frozen_stages=7, **TINY)


def test_registered_fcos_has_the_detector_helpers_parameter_counts():
    # R50 + FreqFusion FPN neck + FCOS head, 80 classes: 38,025,058 (bilinear neck: 37,606,298)
    for fusion, count in (("freqfusion", 38_025_058), ("bilinear", 37_606_298)):
        model = create_model("fcos", num_classes=80, neck_fusion=fusion)
        assert sum(p.numel() for p in model.parameters()) == count


class _Oracle(nn.Module):
    """A stand-in detector whose predict returns fixed detections (for the evaluation path)."""

    num_classes = 2

    def __init__(self, detections, maps=None):
        super().__init__()
        self.detections = detections
        self.maps = maps
        self.sizes = None

    def forward(self, image):
        m = self.maps if self.maps is not None else torch.zeros(image.shape[0], 2, 2, 2)
        return FCOSOutputs((m,), (torch.zeros(image.shape[0], 4, 2, 2),), (m[:, :1],), (8,))

    def loss(self, outputs, targets):  # pragma: no cover - not used here
        raise AssertionError

    def predict(self, outputs, image_sizes, **kwargs):
        self.sizes = list(image_sizes)
        return self.detections


def test_evaluation_maps_back_to_the_original_frame_for_area_ranges():
    # a 20x20 object (small, 400 px^2) seen through a 4x resize: 80x80 (medium) in the network's frame
    gt = torch.tensor([[40.0, 40.0, 120.0, 120.0]])
    det = {"boxes": gt.clone(), "scores": torch.tensor([0.9]), "labels": torch.tensor([1])}
    batch = {
        "image": torch.rand(1, 3, 160, 160),
        "boxes": [gt],
        "labels": [torch.tensor([1])],
        "image_scale": torch.tensor([[4.0, 4.0]], dtype=torch.float64),
    }
    task = DetectionTask(2)
    metrics = task.make_metrics()
    task.evaluation_step(_Oracle([det]), batch, metrics)
    out = metrics.compute()
    assert out["detection/ap"] == pytest.approx(1.0) and out["detection/ap_small"] == pytest.approx(1.0)
    assert math.isnan(out["detection/ap_medium"]) and out["detection/ap50_voc"] == pytest.approx(1.0)
    # without image_scale the same object counts as medium
    metrics = task.make_metrics()
    task.evaluation_step(_Oracle([det]), {k: v for k, v in batch.items() if k != "image_scale"}, metrics)
    assert math.isnan(metrics.compute()["detection/ap_small"])


def test_evaluation_clips_to_each_image_size_and_refuses_nan_maps():
    oracle = _Oracle([{"boxes": torch.zeros(0, 4), "scores": torch.zeros(0), "labels": torch.zeros(0).long()}] * 2)
    task = DetectionTask(2)
    batch = {k: v for k, v in _batch().items()}
    batch["labels"] = [torch.tensor([0, 1]), torch.zeros(0, dtype=torch.int64)]
    task.evaluation_step(oracle, batch, task.make_metrics())
    assert oracle.sizes == [(45, 61), (40, 50)]
    maps = torch.zeros(2, 2, 2, 2)
    maps[1, 0, 1, 1] = float("nan")
    with pytest.raises(NonFiniteError, match=r"batch items \[1\]"):
        task.evaluation_step(_Oracle(oracle.detections, maps), batch, task.make_metrics())


def test_mismatched_classes_missing_boxes_and_non_detectors_are_refused():
    model = create_model("fcos", **TINY)
    with pytest.raises(ConfigError, match="model.num_classes=3 but the dataset has 4"):
        DetectionTask(4).training_step(model, _batch())
    no_boxes = {"image": torch.rand(1, 3, 16, 16)}
    with pytest.raises(DataError, match="modalities: \\[image, instance\\]"):
        DetectionTask(3).training_step(model, no_boxes)
    with pytest.raises(ConfigError, match="model.name: fcos"):
        DetectionTask(3).training_step(nn.Conv2d(3, 3, 1), _batch())


def _config(**task) -> dict:
    return {
        "model": {"name": "fcos", **TINY},
        "task": {"name": "detection", **task},
        "eval": {"metric": "detection/ap"},
    }


def test_config_validation_of_detection():
    cfg = build_config(_config(detection={"score_thr": 0.02}))
    assert cfg.task.detection == {"score_thr": 0.02}
    raw = _config()
    raw["eval"] = {"metric": "detection/map"}
    with pytest.raises(ConfigError, match="Did you mean 'detection/ap"):
        build_config(raw)
    raw["eval"] = {"metric": "detection/ap", "flip": True}
    with pytest.raises(ConfigError, match="eval.flip"):
        build_config(raw)
    with pytest.raises(ConfigError, match="task.detection.nms_iou=1.5"):
        build_config(_config(detection={"nms_iou": 1.5}))
    with pytest.raises(ConfigError, match="task.detection.max_per_image=0"):
        build_config(_config(detection={"max_per_image": 0}))
    raw = _config(detection={"voc_ap50": False})
    raw["eval"] = {"metric": "detection/ap50_voc"}
    with pytest.raises(ConfigError, match="not a metric"):
        build_config(raw)


@pytest.mark.parametrize("as_numpy", [True, False])
def test_decode_detections_equals_predict(as_numpy):
    torch.manual_seed(3)
    strides = (8, 16, 32)
    sizes = [(20, 29), (10, 15), (5, 8)]
    cls = tuple(torch.randn(2, 4, h, w) * 2 for h, w in sizes)
    dist = tuple(torch.rand(2, 4, h, w) * 40 for h, w in sizes)
    ctr = tuple(torch.randn(2, 1, h, w) for h, w in sizes)
    image_sizes = [(157, 230), (140, 200)]
    expected = postprocess_detections(FCOSOutputs(cls, dist, ctr, strides), image_sizes, score_thr=0.3, nms_iou=0.5)
    maps = [[m.numpy() for m in group] if as_numpy else list(group) for group in (cls, dist, ctr)]
    got = decode_detections(*maps, strides, image_sizes, score_thr=0.3, nms_iou=0.5)
    assert sum(len(e["scores"]) for e in expected) > 20
    for e, g in zip(expected, got):
        assert isinstance(g["boxes"], np.ndarray if as_numpy else torch.Tensor)
        for key in ("boxes", "scores", "labels"):
            assert np.array_equal(np.asarray(g[key]), e[key].numpy()), key


def test_runs_from_before_task_detection_existed_resume_without_a_difference():
    from freqdense.engine.run_config import config_differences

    old = {"task": {"name": "segmentation"}, "model": {"name": "fpn"}}
    new = {"task": {"name": "segmentation", "detection": {}}, "model": {"name": "fpn"}}
    assert config_differences(old, new) == {}
    changed = {"task": {"name": "segmentation", "detection": {"score_thr": 0.1}}, "model": {"name": "fpn"}}
    assert config_differences(old, changed) == {"task.detection.score_thr": ("<absent>", 0.1)}


def test_the_detector_takes_start_level_from_the_neck():
    from freqdense.models.detection import FCOSDetector

    model = create_model("fcos", **TINY)
    assert model.start_level == model.neck.start_level == 1 and model.neck.in_channels == (8, 16, 32, 64)
    FCOSDetector(model.backbone, model.neck, model.head, start_level=1)  # equal: accepted
    with pytest.raises(ConfigError, match="neck was built with start_level=1"):
        FCOSDetector(model.backbone, model.neck, model.head, start_level=0)
