"""predict_images / find_images / `freqdense predict`: files, sizes, palettes and values against closed forms."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from freqdense.cli import predict_cmd
from freqdense.cli.main import main
from freqdense.errors import ConfigError, DataError
from freqdense.predict import find_images, predict_images
from freqdense.viz import default_palette

PALETTE = [[200, 10, 10], [10, 200, 10], [10, 10, 200]]
META = {"classes": ["red", "green", "blue"], "palette": PALETTE, "input_size": [16, 24], "depth_unit": "m"}


class ColourModel(nn.Module):
    """Per-pixel closed form: class = dominant RGB channel, depth = 1 + 2 * mean(RGB) metres."""

    def __init__(self, tasks: tuple[str, ...] = ("semantic", "depth")) -> None:
        super().__init__()
        self.tasks = tasks
        self.register_buffer("gain", torch.tensor(10.0))

    def forward(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        out = {"aux": image * 0}
        if "semantic" in self.tasks:
            out["semantic"] = self.gain * image
        if "depth" in self.tasks:
            out["depth"] = 1.0 + 2.0 * image.mean(dim=1, keepdim=True)
        return out


def _write(path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def _load_rgb(path) -> torch.Tensor:
    # Independent of freqdense.data.io: PIL -> float (3, H, W) in [0, 1].
    return torch.from_numpy(np.asarray(Image.open(path).convert("RGB"), dtype=np.float32) / 255.0).permute(2, 0, 1)


def _reference(model: nn.Module, path, net_hw: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """The documented pipeline: bilinear resize (antialias when shrinking) -> model -> bilinear back -> argmax."""
    img = _load_rgb(path)[None]
    h, w = img.shape[-2:]
    shrink = net_hw[0] < h or net_hw[1] < w
    x = img if (h, w) == net_hw else F.interpolate(img, net_hw, mode="bilinear", align_corners=False, antialias=shrink)
    out = model(x)
    back = {k: F.interpolate(v, (h, w), mode="bilinear", align_corners=False) for k, v in out.items()}
    return back["semantic"].argmax(1)[0].numpy(), back["depth"][0, 0].numpy()


@pytest.fixture
def images(tmp_path):
    rng = np.random.default_rng(0)
    root = tmp_path / "in"
    _write(root / "a.png", rng.integers(0, 256, (20, 30, 3), dtype=np.uint8))  # shrinks to 16x24
    _write(root / "b.jpg", rng.integers(0, 256, (16, 24, 3), dtype=np.uint8))  # already 16x24
    _write(root / "dir" / "c.png", rng.integers(0, 256, (9, 13, 3), dtype=np.uint8))  # grows to 16x24
    (root / "dir" / "notes.txt").write_text("not an image")
    return [root / "a.png", root / "b.jpg", root / "dir"]


def test_outputs_match_model_resized_back_to_each_image(images, tmp_path):
    model = ColourModel()
    out = tmp_path / "out"
    written = predict_images(model, images, out, meta=META, batch_size=2)

    sources = [images[0], images[1], images[2] / "c.png"]
    assert written[-1] == out / "predictions.json"
    assert written[-2] == out / "depth_colorbar.png"  # once per output directory
    assert written[:-2] == [out / f"{p.stem}{s}" for p in sources for s in _SUFFIXES]
    for src in sources:
        h, w = _load_rgb(src).shape[-2:]
        seg = Image.open(out / f"{src.stem}_seg.png")
        assert seg.mode == "P" and seg.size == (w, h)
        assert seg.getpalette()[:9] == [c for rgb in PALETTE for c in rgb]
        for name in ("_seg_overlay.png", "_depth.png"):
            img = Image.open(out / f"{src.stem}{name}")
            assert img.mode == "RGB" and img.size == (w, h)
        depth = np.load(out / f"{src.stem}_depth.npy")
        assert depth.dtype == np.float32 and depth.shape == (h, w)

        labels_ref, depth_ref = _reference(model, src, (16, 24))
        np.testing.assert_array_equal(np.asarray(seg), labels_ref)
        np.testing.assert_allclose(depth, depth_ref, rtol=0, atol=1e-6)

    # b.jpg is already at the network size: no resampling, so the closed form holds pixel by pixel.
    rgb = _load_rgb(sources[1])
    np.testing.assert_array_equal(np.asarray(Image.open(out / "b_seg.png")), rgb.argmax(0).numpy())
    np.testing.assert_allclose(np.load(out / "b_depth.npy"), 1 + 2 * rgb.mean(0).numpy(), atol=1e-6)

    summary = json.loads((out / "predictions.json").read_text())
    assert summary["depth_unit"] == "m" and summary["classes"] == META["classes"]
    assert [r["input"] for r in summary["images"]] == [str(p) for p in sources]
    assert summary["images"][0]["size"] == [20, 30]


_SUFFIXES = ("_seg.png", "_seg_overlay.png", "_depth.png", "_depth.npy")


def test_native_size_without_input_size_is_exact_closed_form(images, tmp_path):
    meta = {k: v for k, v in META.items() if k != "input_size"}
    out = tmp_path / "out"
    predict_images(ColourModel(), images, out, meta=meta, batch_size=4)
    for src in [images[0], images[1], images[2] / "c.png"]:
        rgb = _load_rgb(src)
        np.testing.assert_array_equal(np.asarray(Image.open(out / f"{src.stem}_seg.png")), rgb.argmax(0).numpy())
        np.testing.assert_allclose(np.load(out / f"{src.stem}_depth.npy"), 1 + 2 * rgb.mean(0).numpy(), atol=1e-6)


def test_two_colour_image_keeps_its_regions_through_the_resizes(tmp_path):
    arr = np.zeros((40, 60, 3), dtype=np.uint8)
    arr[:, :30] = (255, 40, 0)  # red half: class 0, depth 1 + 2 * (295 / 765)
    arr[:, 30:] = (0, 40, 255)  # blue half: class 2, same depth
    _write(tmp_path / "two.png", arr)
    out = tmp_path / "out"
    predict_images(ColourModel(), [tmp_path / "two.png"], out, meta=META, size=(8, 12))
    labels = np.asarray(Image.open(out / "two_seg.png"))
    assert (labels[:, :25] == 0).all() and (labels[:, 35:] == 2).all()
    depth = np.load(out / "two_depth.npy")
    np.testing.assert_allclose(depth, 1 + 2 * (295 / 765), atol=1e-5)  # both halves have the same mean


def test_segmentation_only_model_default_palette_and_no_npy(images, tmp_path):
    meta = {"classes": ["r", "g", "b"]}
    out = tmp_path / "out"
    written = predict_images(ColourModel(("semantic",)), images[:1], out, meta=meta, save_npy=False)
    assert [p.name for p in written] == ["a_seg.png", "a_seg_overlay.png", "predictions.json"]
    expected = default_palette(3).reshape(-1).tolist()
    assert Image.open(out / "a_seg.png").getpalette()[:9] == expected

    written = predict_images(ColourModel(("depth",)), images[:1], tmp_path / "d", meta=meta, save_npy=False)
    assert [p.name for p in written] == ["a_depth.png", "depth_colorbar.png", "predictions.json"]


def test_palette_shorter_than_classes_is_a_config_error(images, tmp_path):
    meta = {**META, "palette": PALETTE[:2]}
    with pytest.raises(ConfigError, match="palette has 2 colours but the model predicts 3"):
        predict_images(ColourModel(), images[:1], tmp_path / "out", meta=meta)


def test_unreadable_image_names_the_file(tmp_path):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    with pytest.raises(DataError, match="broken.png"):
        predict_images(ColourModel(), [bad], tmp_path / "out", meta=META)


def test_find_images_sorts_filters_and_rejects_problems(tmp_path):
    d = tmp_path / "d"
    for name in ("c.png", "A.JPG", "b.bmp", "e.jpeg"):
        _write(d / name, np.zeros((2, 2, 3), dtype=np.uint8))
    (d / "notes.txt").write_text("x")
    (d / "sub").mkdir()
    _write(d / "sub" / "deep.png", np.zeros((2, 2, 3), dtype=np.uint8))
    assert [p.name for p in find_images([d])] == ["A.JPG", "b.bmp", "c.png", "e.jpeg"]
    assert [p.name for p in find_images([d / "c.png", d])] == ["c.png", "A.JPG", "b.bmp", "e.jpeg"]

    with pytest.raises(DataError, match="does not exist"):
        find_images([tmp_path / "missing.png"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no images found"):
        find_images([tmp_path / "empty"])
    _write(tmp_path / "other" / "c.jpg", np.zeros((2, 2, 3), dtype=np.uint8))
    with pytest.raises(DataError, match="share the stem 'c'"):
        find_images([d, tmp_path / "other"])


def test_bad_arguments_are_config_errors(images, tmp_path):
    with pytest.raises(ConfigError, match="size must be two positive integers"):
        predict_images(ColourModel(), images[:1], tmp_path / "o", meta=META, size=(0, 4))
    with pytest.raises(ConfigError, match="batch_size"):
        predict_images(ColourModel(), images[:1], tmp_path / "o", meta=META, batch_size=0)

    class NoDense(nn.Module):
        def forward(self, image):
            return {"normals": image}

    with pytest.raises(ConfigError, match="'semantic' and/or 'depth'"):
        predict_images(NoDense(), images[:1], tmp_path / "o", meta=META)


def test_cli_predict_runs_load_model_then_predict(images, tmp_path, monkeypatch, capsys):
    calls = []

    def fake_load(path):
        calls.append(path)
        return ColourModel(), dict(META)

    monkeypatch.setattr(predict_cmd, "_load_model", fake_load)
    out = tmp_path / "cli"
    rc = main(["predict", "runs/x", str(images[0]), str(images[2]), "--out", str(out), "--size", "8", "12"])
    assert rc == 0 and calls == ["runs/x"]
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [f"{s}{suf}" for s in ("a", "c") for suf in _SUFFIXES] + ["depth_colorbar.png", "predictions.json"]
    )
    assert json.loads((out / "predictions.json").read_text())["network_input_size"] == [8, 12]
    assert "img/s" not in capsys.readouterr().err  # no progress bar when stderr is not a terminal

    assert main(["predict", "runs/x", str(tmp_path / "nope.png"), "--out", str(out)]) == 1


def test_depth_colours_use_one_stated_range_per_directory(images, tmp_path):
    from freqdense.viz import colorize_depth_range

    out = tmp_path / "fixed"
    predict_images(ColourModel(("depth",)), images, out, meta=META, save_npy=True, depth_range=(1.5, 2.5))
    summary = json.loads((out / "predictions.json").read_text())
    assert summary["depth_range_m"] == [1.5, 2.5] and "given" in summary["depth_range_source"]
    for stem in ("a", "b", "c"):  # every image coloured on the given range, not its own
        depth = np.load(out / f"{stem}_depth.npy")
        png = np.asarray(Image.open(out / f"{stem}_depth.png").convert("RGB"))
        np.testing.assert_array_equal(png, colorize_depth_range(depth, (1.5, 2.5)))
    with Image.open(out / "depth_colorbar.png") as bar:
        assert bar.width > 2 * bar.height  # a horizontal bar

    auto = tmp_path / "auto"
    predict_images(ColourModel(("depth",)), images, auto, meta=META, save_npy=True)
    summary = json.loads((auto / "predictions.json").read_text())
    near, far = summary["depth_range_m"]
    first = np.load(auto / "a_depth.npy")
    assert near <= np.percentile(first, 5) and far >= first.max()  # from the first image, rounded outwards
    assert "a.png" in summary["depth_range_source"]
    later = np.load(auto / "c_depth.npy")
    png = np.asarray(Image.open(auto / "c_depth.png").convert("RGB"))
    np.testing.assert_array_equal(png, colorize_depth_range(later, (near, far)))


def test_cli_depth_range_option(images, tmp_path, monkeypatch):
    monkeypatch.setattr(predict_cmd, "_load_model", lambda path: (ColourModel(("depth",)), dict(META)))
    out = tmp_path / "cli"
    assert main(["predict", "runs/x", str(images[0]), "--out", str(out), "--depth-range", "1", "3"]) == 0
    assert json.loads((out / "predictions.json").read_text())["depth_range_m"] == [1.0, 3.0]
    assert main(["predict", "runs/x", str(images[0]), "--out", str(out), "--depth-range", "3", "1"]) == 1
