"""``freqdense convert``: an official checkpoint becomes a folder that ``eval``, ``predict`` and ``export`` accept."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from freqdense.cli.main import main
from freqdense.engine.checkpoint import load_model
from freqdense.models import create_model

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    root = tmp_path_factory.mktemp("convert")
    torch.manual_seed(0)
    source = create_model("multitask_baseline", backbone="hrnet_w18_small", num_classes=10).eval()
    official = {
        "module." + k.replace("heads.", "decoders.").replace(".semantic.", ".semseg."): v
        for k, v in source.state_dict().items()
    }
    torch.save(
        {"model": official, "epoch": 7, "optimizer": {"state": {}, "param_groups": []}}, root / "checkpoint.pth.tar"
    )
    out = root / "converted"
    assert (
        main(
            [
                "convert",
                "mtl-pytorch",
                str(root / "checkpoint.pth.tar"),
                "--out",
                str(out),
                "--config",
                "synthetic/multitask_baseline_hrnet18s",
            ]
        )
        == 0
    )
    return source, root, out


def test_the_folder_holds_the_weights_metadata_and_the_mapping_report(converted):
    source, root, out = converted
    assert sorted(p.name for p in out.iterdir()) == ["config.yaml", "convert.json", "meta.json", "model.safetensors"]
    meta = json.loads((out / "meta.json").read_text())
    assert meta["converted_from"]["format"] == "mtl-pytorch"
    assert (
        list(meta["converted_from"]["files"].values())[0]
        == __import__("hashlib").sha256((root / "checkpoint.pth.tar").read_bytes()).hexdigest()
    )
    assert meta["config"]["model"] == {
        "name": "multitask_baseline",
        "backbone": "hrnet_w18_small",
        "num_classes": 10,
        "tasks": ["semantic", "depth"],
    }
    assert len(meta["classes"]) == 10 and meta["tasks"] == ["semantic", "depth"]
    report = json.loads((out / "convert.json").read_text())
    assert {"from": "decoders", "to": "heads", "keys": 18} in report["renamed"]
    model, _ = load_model(out)
    x = torch.rand(1, 3, 64, 96)
    with torch.no_grad():
        assert torch.equal(model(x)["semantic"], source(x)["semantic"])


def test_eval_predict_and_export_accept_the_converted_folder(converted, tmp_path):
    _, _, out = converted
    metrics = tmp_path / "metrics.json"
    overrides = ["data.args.size=[64,96]", "data.val_args.num_samples=2", "data.val_batch_size=2"]
    assert main(["eval", str(out), *overrides, "--out", str(metrics)]) == 0
    assert "semantic/miou" in json.loads(metrics.read_text())["metrics"]
    image = tmp_path / "img.png"
    Image.fromarray((np.random.default_rng(0).random((64, 96, 3)) * 255).astype(np.uint8)).save(image)
    assert main(["predict", str(out), str(image), "--out", str(tmp_path / "pred")]) == 0
    assert any((tmp_path / "pred").rglob("*.png"))


def test_converting_into_an_existing_folder_is_refused_and_leaves_it_alone(converted, caplog):
    _, root, out = converted
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert main(["convert", "mtl-pytorch", str(root / "checkpoint.pth.tar"), "--out", str(out)]) == 1
    assert "already exists" in caplog.text and str(out) in caplog.text
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert not list(root.glob(".tmp-convert-*"))
