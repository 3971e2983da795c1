"""Detection end to end through the CLI: train a tiny FCOS for 3 steps, evaluate, predict (boxes drawn, JSON),
export the head maps to ONNX and decode ONNX Runtime's outputs into the same detections as predict."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
import yaml

from freqdense.cli.main import main

SIZE = (48, 64)


def _config(cache) -> dict:
    return {
        "model": {
            "name": "fcos",
            "backbone": "resnet18",
            "num_classes": 6,
            "neck_fusion": "bilinear",
            "neck_out_channels": 16,
            "backbone_kwargs": {"base_width": 8},
            "head_kwargs": {"num_groups": 4, "stacked_convs": 1},
        },
        "data": {
            "dataset": "synthetic",
            "args": {"size": list(SIZE), "modalities": ["image", "instance"], "cache_dir": str(cache)},
            "train_args": {"num_samples": 8},
            "val_args": {"num_samples": 4},
            "batch_size": 4,
            "val_batch_size": 4,
            "train_transforms": {"hflip": True, "scale": [1.0, 1.25], "crop": list(SIZE)},
        },
        "task": {"name": "detection", "detection": {"score_thr": 0.0, "max_per_image": 5}},
        "optim": {"name": "adamw", "lr": 1.0e-3},
        "schedule": {"name": "constant", "total_steps": 3},
        "eval": {"every": 0, "metric": "detection/ap", "mode": "max"},
        "train": {"seed": 0, "log_every": 1, "device": "cpu"},
    }


def test_train_eval_predict_export_decode(tmp_path, capsys):
    onnxruntime = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    from freqdense.data import create_dataset
    from freqdense.data.io import write_png_atomic
    from freqdense.data.synthetic.instances import THING_CLASSES
    from freqdense.models.detection import decode_onnx_outputs
    from freqdense.viz import default_palette

    cfg, run = tmp_path / "cfg.yaml", tmp_path / "run"
    cfg.write_text(yaml.safe_dump(_config(tmp_path / "cache")))
    assert main(["train", str(cfg), "--out", str(run)]) == 0
    final = json.loads((run / "metrics.json").read_text())["val"]
    assert {"detection/ap", "detection/ap50", "detection/ap75", "detection/ap50_voc"} <= set(final)
    assert all(0.0 <= v <= 1.0 for v in final.values() if v is not None and not math.isnan(v))  # NaN: null

    capsys.readouterr()
    assert main(["eval", str(run)]) == 0
    printed = capsys.readouterr().out
    metrics = json.loads(printed.replace("NaN", "null"))["metrics"]
    assert metrics["detection/ap"] == pytest.approx(final["detection/ap"])

    images = tmp_path / "images"
    images.mkdir()
    val = create_dataset("synthetic", split="val", size=SIZE, num_samples=2, cache_dir=str(tmp_path / "cache"))
    for i in range(2):
        rgb = (val[i]["image"].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
        write_png_atomic(rgb, images / f"scene{i}.png")
    pred = tmp_path / "pred"
    assert main(["predict", str(run), str(images), "--out", str(pred)]) == 0
    summary = json.loads((pred / "predictions.json").read_text())
    assert summary["format"] == "freqdense-detections" and summary["classes"] == list(THING_CLASSES)
    record = json.loads((pred / "scene0_det.json").read_text())
    dets = record["detections"]
    assert len(dets) == 5 and record["size"] == list(SIZE)  # score_thr 0: max_per_image detections
    assert all(d["class"] == THING_CLASSES[d["label"]] for d in dets)
    assert [d["score"] for d in dets] == sorted((d["score"] for d in dets), reverse=True)
    from PIL import Image

    drawn = np.asarray(Image.open(pred / "scene0_det.png").convert("RGB"))
    scale = summary["images"][0]["drawn_scale"]
    assert drawn.shape == (SIZE[0] * scale, SIZE[1] * scale, 3)
    # the lowest-scored box is drawn first, the best last: the best box's left edge carries its class colour
    best = dets[0]
    colour = default_palette(len(THING_CLASSES))[best["label"]]
    x1, y1, x2, y2 = (round(v * scale) for v in best["box"])
    column = drawn[min(y1 + 2, y2) : max(y2 - 2, y1 + 3), max(x1 - 1, 0) : x1 + 2]
    assert (column == colour).all(axis=-1).any()

    onnx_path = tmp_path / "model.onnx"
    assert main(["export", str(run), "--out", str(onnx_path), "--static", "--no-check"]) == 0
    sidecar = json.loads((tmp_path / "model.onnx.json").read_text())
    assert sidecar["detection"]["strides"] == [8, 16, 32, 64, 128]
    assert sidecar["detection"]["inference"]["max_per_image"] == 5
    session = onnxruntime.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    from freqdense.data.io import read_image

    image = read_image(images / "scene0.png")[None].numpy()
    outputs = session.run(None, {"image": image})
    decoded = decode_onnx_outputs(outputs, sidecar, [SIZE])[0]
    assert decoded["labels"].tolist() == [d["label"] for d in dets]
    assert np.allclose(decoded["boxes"], np.array([d["box"] for d in dets]), atol=2e-3)
    assert np.allclose(decoded["scores"], [d["score"] for d in dets], atol=1e-5)
    # and the torch model's own predict on the same maps
    from freqdense.engine.checkpoint import load_model

    model, _ = load_model(run, map_location="cpu")
    with torch.no_grad():
        expected = model.predict(model.eval()(torch.from_numpy(image)), [SIZE], score_thr=0.0, max_per_image=5)[0]
    assert decoded["labels"].tolist() == expected["labels"].tolist()
    assert np.allclose(decoded["boxes"], expected["boxes"].numpy(), atol=1e-3)
