"""Readers raise DataError naming the file; writers are atomic; round trips are exact."""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageFile

from freqdense.data.io import atomic_write, read_depth_png, read_image, read_label, read_npy, write_png_atomic
from freqdense.errors import DataError


def rgb_array(h: int = 5, w: int = 7) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, size=(h, w, 3), dtype=np.uint8)


def test_truncated_images_are_not_tolerated_globally():
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


def test_read_image_roundtrip_and_conversions(tmp_path: Path):
    arr = rgb_array()
    write_png_atomic(arr, tmp_path / "a.png")
    img = read_image(tmp_path / "a.png")
    assert img.dtype == torch.float32 and img.shape == (3, 5, 7)
    torch.testing.assert_close(img, torch.from_numpy(arr).permute(2, 0, 1).float() / 255)
    Image.fromarray(arr[..., 0]).save(tmp_path / "grey.png")
    grey = read_image(tmp_path / "grey.png")
    assert grey.shape == (3, 5, 7) and torch.equal(grey[0], grey[2])
    rgba = np.concatenate([arr, np.full((5, 7, 1), 7, np.uint8)], 2)
    Image.fromarray(rgba).save(tmp_path / "rgba.png")
    torch.testing.assert_close(read_image(tmp_path / "rgba.png"), img)


@pytest.mark.parametrize("fmt,suffix", [("PNG", ".png"), ("JPEG", ".jpg")])
def test_truncated_image_raises_naming_the_path(tmp_path: Path, fmt: str, suffix: str):
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(buf, format=fmt)
    data = buf.getvalue()
    path = tmp_path / f"broken{suffix}"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match="broken") as err:
        read_image(path)
    assert str(path) in str(err.value) and "truncated" in str(err.value)


def test_missing_and_garbage_files(tmp_path: Path):
    with pytest.raises(DataError, match="does not exist") as err:
        read_image(tmp_path / "nope.jpg")
    assert "nope.jpg" in str(err.value)
    (tmp_path / "junk.png").write_bytes(b"this is not an image")
    with pytest.raises(DataError, match="junk.png"):
        read_label(tmp_path / "junk.png")


def test_reader_refuses_when_truncated_loading_was_switched_on(tmp_path: Path, monkeypatch):
    write_png_atomic(rgb_array(), tmp_path / "a.png")
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    with pytest.raises(DataError, match="LOAD_TRUNCATED_IMAGES"):
        read_image(tmp_path / "a.png")


def test_read_label_modes(tmp_path: Path):
    ids = np.array([[0, 1, 7], [40, 255, 3]], dtype=np.uint8)
    write_png_atomic(ids, tmp_path / "l.png")
    lab = read_label(tmp_path / "l.png")
    assert lab.dtype == torch.int64 and lab.tolist() == ids.tolist()
    # Palette PNG: indices come back, not colours.
    palette = [v for i in range(256) for v in (i, 255 - i, (7 * i) % 256)]
    write_png_atomic(ids, tmp_path / "p.png", palette=palette)
    with Image.open(tmp_path / "p.png") as im:
        assert im.mode == "P"
    assert read_label(tmp_path / "p.png").tolist() == ids.tolist()
    big = np.array([[0, 300], [1000, 65535]], dtype=np.uint16)
    write_png_atomic(big, tmp_path / "i16.png")
    assert read_label(tmp_path / "i16.png").tolist() == big.tolist()
    Image.fromarray(rgb_array()).save(tmp_path / "colour.png")
    with pytest.raises(DataError, match="mode 'RGB'") as err:
        read_label(tmp_path / "colour.png")
    assert "colour.png" in str(err.value)


def test_read_depth_png(tmp_path: Path):
    raw = np.array([[0, 1000, 65535], [1, 2500, 4]], dtype=np.uint16)
    write_png_atomic(raw, tmp_path / "d.png")
    depth = read_depth_png(tmp_path / "d.png", scale=1000.0)
    assert depth.dtype == torch.float32 and depth.shape == (1, 2, 3)
    np.testing.assert_allclose(depth[0].numpy(), [[0.0, 1.0, 65.535], [0.001, 2.5, 0.004]], rtol=1e-6)
    write_png_atomic(raw.astype(np.uint8), tmp_path / "d8.png")
    with pytest.raises(DataError, match="16-bit"):
        read_depth_png(tmp_path / "d8.png", scale=1000.0)
    with pytest.raises(DataError, match="positive"):
        read_depth_png(tmp_path / "d.png", scale=0)


def test_read_npy(tmp_path: Path):
    arr = np.arange(12, dtype=np.float32).reshape(3, 4)
    np.save(tmp_path / "a.npy", arr)
    np.testing.assert_array_equal(read_npy(tmp_path / "a.npy"), arr)
    np.testing.assert_array_equal(read_npy(tmp_path / "a.npy", mmap=True), arr)
    data = (tmp_path / "a.npy").read_bytes()
    (tmp_path / "cut.npy").write_bytes(data[:-10])
    with pytest.raises(DataError, match="cut.npy"):
        read_npy(tmp_path / "cut.npy")
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(DataError, match="obj.npy"):
        read_npy(tmp_path / "obj.npy")
    with pytest.raises(DataError, match="does not exist"):
        read_npy(tmp_path / "missing.npy")


def test_atomic_write_replaces_or_keeps(tmp_path: Path):
    target = tmp_path / "sub" / "m.json"
    with atomic_write(target, "w") as f:
        f.write('{"a": 1}')
    assert target.read_text() == '{"a": 1}'
    with pytest.raises(RuntimeError), atomic_write(target, "w") as f:
        f.write("half")
        raise RuntimeError("crash in the middle")
    assert target.read_text() == '{"a": 1}'
    assert sorted(p.name for p in target.parent.iterdir()) == ["m.json"], "temporary file left behind"


def test_atomic_write_honours_umask(tmp_path: Path):
    old = os.umask(0o027)
    try:
        with atomic_write(tmp_path / "f.bin") as f:
            f.write(b"x")
    finally:
        os.umask(old)
    assert (tmp_path / "f.bin").stat().st_mode & 0o777 == 0o640


def test_write_png_atomic_layouts_and_errors(tmp_path: Path):
    chw = torch.from_numpy(rgb_array()).permute(2, 0, 1).contiguous()
    write_png_atomic(chw, tmp_path / "t.png")
    assert torch.equal((read_image(tmp_path / "t.png") * 255).round().byte(), chw)
    with pytest.raises(DataError, match="Convert floats first") as err:
        write_png_atomic(np.zeros((4, 4), np.float32), tmp_path / "f.png")
    assert "f.png" in str(err.value)
    assert not (tmp_path / "f.png").exists()
    with pytest.raises(DataError, match="palette"):
        write_png_atomic(rgb_array(), tmp_path / "x.png", palette=[0, 0, 0])
