"""Two-input (RGB-D) prediction and ONNX export, multi-scale/flip predict, and their error messages."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from freqdense.cli import predict_cmd
from freqdense.cli.main import main
from freqdense.errors import ConfigError, DataError
from freqdense.predict import model_input_keys, predict_images, read_extra_input

CONFIG = {"task": {"inputs": ["image", "sensor_depth"]}}
META = {"classes": ["near", "far"], "palette": [[255, 0, 0], [0, 0, 255]], "config": CONFIG}


class DepthThreshold(nn.Module):
    """Class 1 ("far") where depth > 2 m, else 0; the image only adds a tiny tie-breaker. Pixelwise (flip-safe)."""

    def forward(self, image: torch.Tensor, depth: torch.Tensor) -> dict[str, torch.Tensor]:
        far = 10.0 * (depth - 2.0) + 1e-3 * image.mean(1, keepdim=True)
        return {"semantic": torch.cat([-far, far], dim=1)}


def _scene(tmp_path, h=12, w=16):
    rng = np.random.default_rng(0)
    img_dir, depth_dir = tmp_path / "img", tmp_path / "depth"
    img_dir.mkdir()
    depth_dir.mkdir()
    Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(img_dir / "a.png")
    Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(img_dir / "b.png")
    depth_a = np.full((h, w), 1.0, np.float32)
    depth_a[:, w // 2 :] = 3.0  # right half far
    np.save(depth_dir / "a.npy", depth_a)
    depth_b = np.full((h, w), 1000, np.uint16)  # millimetres: 1 m
    depth_b[: h // 2] = 3000  # top half far
    Image.fromarray(depth_b).save(depth_dir / "b.png")
    return img_dir, depth_dir, depth_a, depth_b


def _labels(path) -> np.ndarray:
    return np.asarray(Image.open(path))


def test_meta_inputs_and_reading_extra_inputs(tmp_path):
    assert model_input_keys(META) == ("image", "sensor_depth")
    assert model_input_keys({"config": {"task": {}}}) == ("image",) and model_input_keys({}) == ("image",)
    _, depth_dir, depth_a, depth_b = _scene(tmp_path)
    np.testing.assert_array_equal(read_extra_input(depth_dir, "a", "sensor_depth")[0].numpy(), depth_a)
    np.testing.assert_allclose(read_extra_input(depth_dir, "b", "sensor_depth")[0].numpy(), depth_b / 1000.0)
    hha = np.zeros((4, 5, 3), np.uint8)
    hha[..., 1] = 51
    Image.fromarray(hha).save(depth_dir / "c.png")
    np.testing.assert_allclose(read_extra_input(depth_dir, "c", "hha")[1].numpy(), 0.2)
    with pytest.raises(DataError, match="'zz'.*zz.npy"):
        read_extra_input(depth_dir, "zz", "sensor_depth")
    np.save(depth_dir / "bad.npy", np.zeros((2, 4, 5), np.float32))
    with pytest.raises(DataError, match=r"\(1, H, W\)"):
        read_extra_input(depth_dir, "bad", "sensor_depth")


@pytest.mark.parametrize("size", [None, (6, 8)])
def test_two_input_predictions_follow_the_depth(tmp_path, size):
    img_dir, depth_dir, _, _ = _scene(tmp_path)
    out = tmp_path / "out"
    predict_images(DepthThreshold(), [img_dir], out, meta=META, size=size, extra_inputs={"sensor_depth": depth_dir})
    a, b = _labels(out / "a_seg.png"), _labels(out / "b_seg.png")
    assert a.shape == (12, 16)
    assert (a[:, :8] == 0).all() and (a[:, 8:] == 1).all()
    assert (b[:6] == 1).all() and (b[6:] == 0).all()


def test_multiscale_flip_predict_matches_plain_for_a_pixelwise_model(tmp_path):
    img_dir, depth_dir, _, _ = _scene(tmp_path)
    plain, tta = tmp_path / "plain", tmp_path / "tta"
    kw = dict(meta=META, extra_inputs={"sensor_depth": depth_dir})
    predict_images(DepthThreshold(), [img_dir], plain, **kw)
    predict_images(DepthThreshold(), [img_dir], tta, scales=[0.5, 1.0], flip=True, **kw)
    for stem in ("a", "b"):
        np.testing.assert_array_equal(_labels(plain / f"{stem}_seg.png"), _labels(tta / f"{stem}_seg.png"))


def test_multiscale_predict_averages_as_the_run_evaluated(tmp_path, monkeypatch):
    # eval.average / eval.align_corners of the checkpoint's config reach the multi-scale wrapper (as in evaluate)
    # and are recorded in predictions.json.
    from freqdense.engine import multiscale

    seen = {}
    original = multiscale.MultiScaleFlip.__init__

    def spy(self, *args, **kwargs):
        seen.update(kwargs)
        original(self, *args, **kwargs)

    monkeypatch.setattr(multiscale.MultiScaleFlip, "__init__", spy)
    img_dir, depth_dir, _, _ = _scene(tmp_path)
    meta = {**META, "config": {**CONFIG, "eval": {"average": "logits", "align_corners": True}}}
    predict_images(
        DepthThreshold(), [img_dir], tmp_path / "o", meta=meta, extra_inputs={"sensor_depth": depth_dir}, scales=[1, 2]
    )
    assert (seen["average"], seen["align_corners"]) == ("logits", True)
    inference = json.loads((tmp_path / "o" / "predictions.json").read_text())["inference"]
    assert (inference["average"], inference["align_corners"]) == ("logits", True)


def test_missing_or_unexpected_extra_inputs_are_config_errors(tmp_path):
    img_dir, depth_dir, _, _ = _scene(tmp_path)
    with pytest.raises(ConfigError, match="sensor_depth"):
        predict_images(DepthThreshold(), [img_dir], tmp_path / "o", meta=META)
    with pytest.raises(ConfigError, match="hha"):
        predict_images(DepthThreshold(), [img_dir], tmp_path / "o", meta=META, extra_inputs={"hha": depth_dir})
    (depth_dir / "a.npy").unlink()
    np.save(depth_dir / "a.npy", np.ones((5, 5), np.float32))
    with pytest.raises(DataError, match="registered to the image"):
        predict_images(DepthThreshold(), [img_dir], tmp_path / "o", meta=META, extra_inputs={"sensor_depth": depth_dir})


def test_cli_depth_flag(tmp_path, monkeypatch):
    img_dir, depth_dir, _, _ = _scene(tmp_path)
    monkeypatch.setattr(predict_cmd, "_load_model", lambda path: (DepthThreshold(), dict(META)))
    out = tmp_path / "cli"
    assert main(["predict", "runs/x", str(img_dir), "--out", str(out), "--depth", str(depth_dir), "--flip"]) == 0
    assert (_labels(out / "a_seg.png")[:, 8:] == 1).all()
    summary = json.loads((out / "predictions.json").read_text())
    assert summary["classes"] == ["near", "far"]
    assert summary["inference"] == {
        "inputs": ["image", "sensor_depth"],
        "scales": [1.0],
        "flip": True,
        "average": "probs",
        "align_corners": False,
    }
    assert main(["predict", "runs/x", str(img_dir), "--out", str(out)]) == 1  # --depth missing: ConfigError


class TinyRGBD(nn.Module):
    """Conv on each input, summed; HHA/depth as the second input."""

    def __init__(self, depth_channels: int) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(0)
        self.rgb = nn.Conv2d(3, 3, 3, padding=1)
        self.depth = nn.Conv2d(depth_channels, 3, 3, padding=1)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=gen) * 0.3)

    def forward(self, image: torch.Tensor, depth: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"semantic": self.rgb(image) + self.depth(depth)}


@pytest.mark.export
def test_two_input_onnx_export_matches_onnxruntime(tmp_path):
    pytest.importorskip("onnx")
    pytest.importorskip("onnxscript")
    ort = pytest.importorskip("onnxruntime")
    from freqdense.export import export_onnx, input_channels_of

    assert (input_channels_of("image"), input_channels_of("hha"), input_channels_of("sensor_depth")) == (3, 3, 1)
    with pytest.raises(ConfigError, match="input_channels"):
        input_channels_of("mystery")
    model = TinyRGBD(1)
    report = export_onnx(model, tmp_path / "m.onnx", height=16, width=24, meta={"config": CONFIG})
    assert report.input_names == ("image", "sensor_depth") and report.dynamic_hw
    session = ort.InferenceSession(str(report.path), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["image", "sensor_depth"]
    image, depth = torch.rand(1, 3, 20, 30), torch.rand(1, 1, 20, 30) * 4
    got = session.run(["semantic"], {"image": image.numpy(), "sensor_depth": depth.numpy()})[0]
    with torch.no_grad():
        want = model(image, depth)["semantic"].numpy()
    np.testing.assert_allclose(got, want, atol=1e-4, rtol=1e-3)
    sidecar = json.loads(report.sidecar_path.read_text())
    assert sidecar["input"]["name"] == "image" and sidecar["extra_inputs"][0]["name"] == "sensor_depth"
