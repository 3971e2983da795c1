"""`freqdense predict` on bad images, bad second inputs and non-finite model outputs.

The model is a small convolution network (so one NaN input pixel spreads, as in a real network), handed to the CLI
through ``predict_cmd._load_model``. Every refusal must leave the output location as it was.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from _harness import api_refused, refused
from PIL import Image
from torch import nn

from freqdense.cli import predict_cmd
from freqdense.errors import NonFiniteError
from freqdense.predict import predict_images

PALETTE = [[200, 10, 10], [10, 200, 10], [10, 10, 200]]


class ConvNet(nn.Module):
    """A 3x3 convolution over the concatenated inputs: ``semantic`` (3 classes) and positive ``depth``.

    ``poison``: an image whose pixel (0, 0) is pure white (1, 1, 1) gets a NaN ``poison`` output there.
    """

    def __init__(self, in_channels: int = 3, poison: str | None = None) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(in_channels, 4, 3, padding=1)
        self.poison = poison

    def forward(self, image, *extra):
        y = self.conv(torch.cat([image, *extra], dim=1))
        out = {"semantic": y[:, :3], "depth": nn.functional.softplus(y[:, 3:]) + 0.5}
        if self.poison is not None:
            marked = (image[:, :, 0, 0] == 1.0).all(dim=1)
            value = float("nan") if self.poison == "semantic" else float("inf")
            out[self.poison] = out[self.poison].clone()
            out[self.poison][marked, :, 0, 0] = value
        return out


def _meta(inputs=("image",)):
    return {
        "classes": ["a", "b", "c"],
        "palette": PALETTE,
        "input_size": None,
        "config": {"task": {"inputs": list(inputs)}},
    }


@pytest.fixture
def use_model(monkeypatch):
    def install(model, inputs=("image",)):
        monkeypatch.setattr(predict_cmd, "_load_model", lambda path: (model, _meta(inputs)))

    return install


def _png(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)
    return path


@pytest.fixture
def good(tmp_path):
    rng = np.random.default_rng(0)
    return _png(tmp_path / "in" / "good.png", rng.integers(0, 255, (25, 40, 3), dtype=np.uint8))


def _truncated_png(path):
    _png(path, np.full((20, 20, 3), 90, np.uint8))
    path.write_bytes(path.read_bytes()[:60])


def _corrupt_png(path):
    _png(path, np.random.default_rng(1).integers(0, 255, (20, 20, 3), dtype=np.uint8))
    data = bytearray(path.read_bytes())
    data[40:200] = bytes(160)
    path.write_bytes(bytes(data))


def _truncated_jpg(path):
    Image.fromarray(np.full((30, 30, 3), 60, np.uint8)).save(path, format="JPEG")
    path.write_bytes(path.read_bytes()[:100])


BAD_IMAGES = {
    "truncated.png": _truncated_png,
    "corrupt.png": _corrupt_png,
    "text.png": lambda p: p.write_text("this is not an image\n"),
    "empty.png": lambda p: p.write_bytes(b""),
    "depth16.png": lambda p: Image.fromarray(np.full((8, 8), 4000, np.uint16)).save(p),
    "array.npy": lambda p: np.save(p, np.zeros((8, 8, 3), np.float32)),
    "truncated.jpg": _truncated_jpg,
    "html.jpg": lambda p: p.write_text("<html><body>404 not found</body></html>"),
}


@pytest.mark.parametrize("name", sorted(BAD_IMAGES))
def test_a_bad_image_is_refused_and_nothing_is_written(name, cli, good, tmp_path, use_model, unchanged):
    use_model(ConvNet())
    bad = tmp_path / "in" / name
    BAD_IMAGES[name](bad)
    out = tmp_path / "out"
    with unchanged(tmp_path / "in"):
        message = refused(cli("predict", "run", good, bad, "--out", out, "--batch-size", "1"), name)
    assert not out.exists(), f"predict left {sorted(out.rglob('*'))}: {message}"


def test_a_refusal_leaves_an_existing_output_folder_as_it_was(cli, good, tmp_path, use_model, unchanged):
    use_model(ConvNet())
    out = tmp_path / "out"
    (out / "keep.txt").parent.mkdir(parents=True)
    (out / "keep.txt").write_text("earlier results")
    bad = tmp_path / "in" / "bad.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    with unchanged(out):
        refused(cli("predict", "run", good, bad, "--out", out), "bad.png")
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]  # no staging folder left behind


def test_missing_input_and_an_empty_folder_are_refused(cli, tmp_path, use_model):
    use_model(ConvNet())
    refused(cli("predict", "run", tmp_path / "nope.png", "--out", tmp_path / "out"), "nope.png")
    (tmp_path / "empty").mkdir()
    refused(cli("predict", "run", tmp_path / "empty", "--out", tmp_path / "out"), "empty")
    assert not (tmp_path / "out").exists()


ODD_IMAGES = {
    "w3": np.random.default_rng(2).integers(0, 255, (7, 3, 3), dtype=np.uint8),  # 3 px wide
    "h3": np.random.default_rng(3).integers(0, 255, (3, 7, 3), dtype=np.uint8),  # 3 px high
    "one": np.random.default_rng(4).integers(0, 255, (1, 1, 3), dtype=np.uint8),
    "grey": np.random.default_rng(5).integers(0, 255, (6, 9), dtype=np.uint8),
    "rgba": np.random.default_rng(6).integers(0, 255, (6, 9, 4), dtype=np.uint8),
}


@pytest.mark.parametrize("name", sorted(ODD_IMAGES))
def test_odd_but_valid_images_are_predicted_at_their_size(name, cli, tmp_path, use_model):
    use_model(ConvNet())
    array = ODD_IMAGES[name]
    path = _png(tmp_path / "in" / f"{name}.png", array)
    outcome = cli("predict", "run", path, "--out", tmp_path / "out")
    assert outcome.code == 0 and "Traceback" not in outcome.output, str(outcome)
    h, w = array.shape[:2]
    for suffix in ("_seg.png", "_seg_overlay.png", "_depth.png"):
        assert Image.open(tmp_path / "out" / f"{name}{suffix}").size == (w, h)
    assert np.load(tmp_path / "out" / f"{name}_depth.npy").shape == (h, w)
    summary = json.loads((tmp_path / "out" / "predictions.json").read_text())
    assert summary["images"][0]["size"] == [h, w]


def test_the_overlay_of_a_3x3_image_is_not_transposed(tmp_path):
    # Top row red, the rest blue; a model predicting the dominant channel: class 0 on row 0, class 2 below.
    class Dominant(nn.Module):
        def forward(self, image):
            return {"semantic": 10 * image}

    array = np.zeros((3, 3, 3), np.uint8)
    array[0, :, 0] = 255
    array[1:, :, 2] = 255
    path = _png(tmp_path / "in" / "sq.png", array)
    predict_images(Dominant(), [path], tmp_path / "out", meta=_meta())
    labels = np.asarray(Image.open(tmp_path / "out" / "sq_seg.png"))
    assert labels.tolist() == [[0, 0, 0], [2, 2, 2], [2, 2, 2]]
    blend = np.asarray(Image.open(tmp_path / "out" / "sq_seg_overlay.png")).astype(int)
    # rows 1-2 are not boundaries except row 1 -> row 2? no: labels equal there, so row 2 is the plain blend:
    # 0.5 * blue image (0, 0, 255) + 0.5 * class-2 colour (10, 10, 200) = (5, 5, 228) (rounded half to even)
    assert blend[2].tolist() == [[5, 5, 228]] * 3
    assert (blend[0] == 255).all()  # row 0 borders row 1 (different labels): white boundary, along the row


def _patch(shape, share_pixels, value):
    array = np.full(shape, 2.0, np.float32)
    flat = array.reshape(-1)
    flat[:share_pixels] = value
    return array


DEPTH_INPUTS = {
    "nan_patch": (lambda p: np.save(p, _patch((25, 40), 8, np.nan)), ["0.8 %", "NaN"]),
    "inf": (lambda p: np.save(p, _patch((25, 40), 3, np.inf)), ["0.3 %"]),
    "minus_inf": (lambda p: np.save(p, _patch((1, 25, 40), 1, -np.inf)), ["0.1 %"]),
    "all_nan": (lambda p: np.save(p, np.full((25, 40), np.nan, np.float32)), ["100 %"]),
    "truncated": (lambda p: p.write_bytes(b"\x93NUMPY\x01\x00v\x00{'descr': '<f4'"), ["corrupt"]),
    "pickled": (lambda p: np.save(p, np.array([{"x": 1}], dtype=object), allow_pickle=True), ["pickled"]),
    "wrong_shape": (lambda p: np.save(p, np.ones((2, 25, 40), np.float32)), ["(2, 25, 40)"]),
    "wrong_size": (lambda p: np.save(p, np.ones((24, 40), np.float32)), ["(24, 40)"]),
    "npz_as_npy": (lambda p: p.write_bytes(_npz()), ["npz"]),
}


def _npz() -> bytes:
    import io

    buffer = io.BytesIO()
    np.savez(buffer, depth=np.ones((25, 40), np.float32))
    return buffer.getvalue()


@pytest.mark.parametrize("kind", sorted(DEPTH_INPUTS))
def test_a_bad_depth_input_is_refused_naming_its_file(kind, cli, good, tmp_path, use_model, unchanged):
    use_model(ConvNet(in_channels=4), inputs=("image", "depth"))
    depth_dir = tmp_path / "depth"
    depth_dir.mkdir()
    write, words = DEPTH_INPUTS[kind]
    write(depth_dir / "good.npy")
    out = tmp_path / "out"
    with unchanged(tmp_path / "in", depth_dir):
        message = refused(cli("predict", "run", good, "--depth", depth_dir, "--out", out), "good.npy", *words)
    assert not out.exists(), message


def test_a_missing_depth_file_is_refused(cli, good, tmp_path, use_model):
    use_model(ConvNet(in_channels=4), inputs=("image", "depth"))
    (tmp_path / "depth").mkdir()
    refused(cli("predict", "run", good, "--depth", tmp_path / "depth", "--out", tmp_path / "out"), "good")
    assert not (tmp_path / "out").exists()


def test_a_nan_hha_input_is_refused(cli, good, tmp_path, use_model):
    use_model(ConvNet(in_channels=6), inputs=("image", "hha"))
    (tmp_path / "hha").mkdir()
    hha = np.full((3, 25, 40), 0.5, np.float32)
    hha[1, 10, 10] = np.nan
    np.save(tmp_path / "hha" / "good.npy", hha)
    refused(cli("predict", "run", good, "--depth", tmp_path / "hha", "--out", tmp_path / "out"), "good.npy", "'hha'")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("output", ["semantic", "depth"])
def test_a_non_finite_model_output_is_refused_naming_the_image(output, cli, good, tmp_path, use_model):
    use_model(ConvNet(poison=output))
    white = np.full((25, 40, 3), 40, np.uint8)
    white[0, 0] = 255
    bad = _png(tmp_path / "in" / "marked.png", white)
    out = tmp_path / "out"
    message = refused(cli("predict", "run", good, bad, "--out", out, "--batch-size", "1"), "marked.png", output)
    assert "good.png" not in message.split("batch:")[0]
    assert not out.exists()


def test_the_api_refuses_a_nan_depth_input_with_non_finite_error(good, tmp_path):
    (tmp_path / "d").mkdir()
    np.save(tmp_path / "d" / "good.npy", _patch((25, 40), 8, np.nan))
    api_refused(
        lambda: predict_images(
            ConvNet(in_channels=4),
            [good],
            tmp_path / "out",
            meta=_meta(("image", "depth")),
            extra_inputs={"depth": tmp_path / "d"},
        ),
        NonFiniteError,
        "good.npy",
        "0.8 %",
    )
    assert not (tmp_path / "out").exists()
