"""Bad detection inputs through the engine: COCO files with unknown categories, degenerate boxes and images without
objects; detection configs on data without boxes or with the wrong class count. Refusals are one clear line and
write nothing; what COCO tolerates (degenerate boxes, empty images) is handled as COCO's pipelines do."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml
from _harness import refused

pytestmark = pytest.mark.slow

SIZE = (32, 40)


def _write_coco(root, annotations, *, categories=((1, "cat"), (3, "dog"))):
    from freqdense.data.io import write_png_atomic

    (root / "images").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    images = []
    for i in range(1, 5):
        write_png_atomic(rng.integers(0, 255, (*SIZE, 3), dtype=np.uint8), root / "images" / f"im{i}.png")
        images.append({"id": i, "file_name": f"im{i}.png", "height": SIZE[0], "width": SIZE[1]})
    data = {
        "images": images,
        "annotations": annotations,
        "categories": [{"id": c, "name": n} for c, n in categories],
    }
    path = root / "instances.json"
    path.write_text(json.dumps(data))
    return path


def _good_annotations():
    return [
        {"id": 1, "image_id": 1, "category_id": 1, "bbox": [2, 3, 15, 12], "area": 180, "iscrowd": 0},
        {"id": 2, "image_id": 2, "category_id": 3, "bbox": [10, 5, 20, 20], "area": 400, "iscrowd": 0},
        {"id": 3, "image_id": 3, "category_id": 1, "bbox": [0, 0, 8, 30], "area": 240, "iscrowd": 0},
    ]  # image 4 has no object


def _config(tmp_path, ann_file, **changes) -> dict:
    cfg = {
        "model": {
            "name": "fcos",
            "backbone": "resnet18",
            "num_classes": 2,
            "neck_fusion": "bilinear",
            "neck_out_channels": 16,
            "backbone_kwargs": {"base_width": 8},
            "head_kwargs": {"num_groups": 4, "stacked_convs": 1},
        },
        "data": {
            "dataset": "coco",
            "args": {"ann_file": str(ann_file), "image_dir": str(ann_file.parent / "images")},
            "batch_size": 2,
            "val_batch_size": 2,
            "train_transforms": {"hflip": True},
        },
        "task": {"name": "detection"},
        "optim": {"name": "adamw", "lr": 1.0e-3},
        "schedule": {"name": "constant", "total_steps": 2},
        "eval": {"every": 0, "metric": "detection/ap"},
        "train": {"seed": 0, "log_every": 1, "device": "cpu"},
    }
    for key, value in changes.items():
        section, name = key.split(".", 1)
        cfg[section][name] = value
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.fixture(scope="module")
def coco_run(tmp_path_factory):
    """A 2-step detection run on a COCO file with a degenerate box and an image without objects."""
    import logging

    from freqdense.cli.main import main

    root = tmp_path_factory.mktemp("coco")
    annotations = _good_annotations() + [
        {"id": 7, "image_id": 2, "category_id": 1, "bbox": [5, 5, 0, 10], "area": 0, "iscrowd": 0}  # width 0
    ]
    ann = _write_coco(root, annotations)
    cfg = _config(root, ann)
    records = []
    handler = logging.Handler()
    handler.emit = lambda record: records.append(record.getMessage())
    logging.getLogger("freqdense").addHandler(handler)
    try:
        code = main(["train", str(cfg), "--out", str(root / "run")])
    finally:
        logging.getLogger("freqdense").removeHandler(handler)
    return root, code, records


def test_degenerate_boxes_are_dropped_and_empty_images_kept_as_coco_does(coco_run):
    root, code, records = coco_run
    assert code == 0
    assert any("dropped 1 annotations" in r and "annotation id 7" in r for r in records), records
    metrics = json.loads((root / "run" / "metrics.json").read_text())["val"]
    assert "detection/ap" in metrics


def test_unknown_category_in_a_coco_file_is_refused_by_train(tmp_path, cli, unchanged):
    bad = _good_annotations()
    bad[1]["category_id"] = 99
    ann = _write_coco(tmp_path / "data", bad)
    cfg = _config(tmp_path, ann)
    with unchanged(tmp_path / "data"):
        refused(cli("train", cfg, "--out", tmp_path / "run"), "instances.json", "annotation id 2", "category_id 99")
    assert not (tmp_path / "run").exists()


def test_unknown_category_is_refused_by_eval(coco_run, tmp_path, cli, unchanged):
    root, _, _ = coco_run
    bad = _good_annotations()
    bad[0]["category_id"] = 5
    ann = _write_coco(tmp_path / "data", bad)
    with unchanged(root / "run"):
        refused(cli("eval", root / "run", f"data.args.ann_file={ann}"), "annotation id 1", "category_id 5")


def test_a_class_count_that_differs_from_the_coco_categories_is_refused(tmp_path, cli):
    ann = _write_coco(tmp_path / "data", _good_annotations())
    cfg = _config(tmp_path, ann)
    refused(cli("train", cfg, "--out", tmp_path / "run", "model.num_classes=80"), "model.num_classes=80", "2 detection")
    assert not (tmp_path / "run").exists()


def test_detection_on_scenes_without_boxes_is_refused_before_training(tmp_path, cli):
    ann = _write_coco(tmp_path / "data", _good_annotations())
    cfg = _config(
        tmp_path,
        ann,
        **{
            "data.dataset": "synthetic",
            "data.args": {"size": [32, 48], "cache_dir": str(tmp_path / "cache"), "modalities": ["image"]},
            "data.train_args": {"num_samples": 4},
            "data.val_args": {"num_samples": 2},
            "model.num_classes": 6,
        },
    )
    refused(cli("train", cfg, "--out", tmp_path / "run"), "['boxes', 'labels']", "modalities")
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_detection_options_that_cannot_work_are_refused_at_load(tmp_path, cli):
    ann = _write_coco(tmp_path / "data", _good_annotations())
    cfg = _config(tmp_path, ann)
    refused(cli("train", cfg, "--out", tmp_path / "run", "task.detection.nms_iou=2"), "task.detection.nms_iou=2")
    refused(cli("train", cfg, "--out", tmp_path / "run", "eval.metric=detection/map"), "detection/map", "detection/ap")
    refused(cli("train", cfg, "--out", tmp_path / "run", "eval.flip=true"), "eval.flip")
    assert not (tmp_path / "run").exists()


def test_predict_refuses_dense_options_for_a_detector(coco_run, tmp_path, cli):
    root, _, _ = coco_run
    out = tmp_path / "pred"
    refused(cli("predict", root / "run", root / "images", "--out", out, "--flip"), "--flip")
    assert not out.exists()
