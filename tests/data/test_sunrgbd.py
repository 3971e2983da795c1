"""SUN RGB-D loader on tiny trees in the flattened community layout (bit-rotated depth PNGs, label37, lists)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from freqdense.data import create_dataset
from freqdense.data.sunrgbd import (
    SUNRGBD_CLASSES,
    SUNRGBD_DEFAULT_INTRINSICS,
    SUNRGBD_PALETTE,
    SUNRGBDSegmentation,
    decode_sunrgbd_depth,
    sunrgbd_intrinsics,
)
from freqdense.errors import ConfigError, DataError

# Stored PNG values and their decoding, worked out by hand with d = ((p >> 3) | (p << 13)) & 0xFFFF:
#   9872 = 0b10011010010000: p >> 3 = 1234, the low 3 bits are 0        -> 1234 mm = 1.234 m
#   8001 = 1000 * 8 + 1:     p >> 3 = 1000, low bit 1 -> 1 << 13 = 8192 -> 9192 mm (clamped to 8 m)
#   7:                       p >> 3 = 0,    7 << 13 = 57344             -> 57344 mm (clamped to 8 m)
#   16:                      p >> 3 = 2                                 -> 2 mm
#   24000 = 3000 * 8:                                                   -> 3.0 m
#   0:                                                                  -> invalid
STORED = np.array([0, 9872, 8001, 7, 16, 24000], dtype=np.uint16)
METRES_CAPPED = np.array([0.0, 1.234, 8.0, 8.0, 0.002, 3.0])
METRES_RAW = np.array([0.0, 1.234, 9.192, 57.344, 0.002, 3.0])
# Raw label values -> class ids: 0 (void) -> 255, 1 (wall) -> 0, 20 (floor mat) -> 19, 37 (bag) -> 36.
RAW_LABELS = np.array([0, 1, 20, 37], dtype=np.uint8)
CLASS_IDS = np.array([255, 0, 19, 36])
SIZES = {1: (9, 13), 2: (11, 7), 3: (5, 6)}  # number -> (H, W): sizes vary per image


def pattern(values: np.ndarray, h: int, w: int, shift: int) -> np.ndarray:
    return values[(np.arange(h)[:, None] + np.arange(w)[None, :] + shift) % len(values)]


def write_sun(root: Path, split: str, numbers: tuple[int, ...]) -> Path:
    for folder in ("image", "depth", "label37"):
        (root / folder / split).mkdir(parents=True, exist_ok=True)
    for n in numbers:
        h, w = SIZES[n]
        rgb = np.random.default_rng(n).integers(0, 256, (h, w, 3), dtype=np.uint8)
        Image.fromarray(rgb).save(root / "image" / split / f"img-{n:06d}.jpg", quality=95)
        Image.fromarray(pattern(STORED, h, w, n)).save(root / "depth" / split / f"{n:08d}.png")
        Image.fromarray(pattern(RAW_LABELS, h, w, n)).save(root / "label37" / split / f"img-{n:06d}.png")
    return root


@pytest.fixture
def sun_root(tmp_path: Path) -> Path:
    root = write_sun(tmp_path / "SUNRGBD", "train", (1, 2, 3))
    return write_sun(root, "test", (1, 2))


def test_classes_and_palette():
    assert len(SUNRGBD_CLASSES) == 37 == len(SUNRGBD_PALETTE)
    assert SUNRGBD_CLASSES[0] == "wall" and SUNRGBD_CLASSES[19] == "floor mat" and SUNRGBD_CLASSES[36] == "bag"
    assert SUNRGBD_PALETTE[0] == (128, 0, 0)  # VOC colour of raw value 1


def test_decode_depth_by_hand():
    assert decode_sunrgbd_depth(torch.from_numpy(STORED.astype(np.int64))).tolist() == pytest.approx(METRES_CAPPED)
    got = decode_sunrgbd_depth(torch.from_numpy(STORED.astype(np.int64)), max_depth=None)
    assert got.dtype == torch.float32 and got.tolist() == pytest.approx(METRES_RAW)
    assert decode_sunrgbd_depth(torch.tensor([8001.0]), max_depth=10.0).item() == pytest.approx(9.192)
    with pytest.raises(DataError, match="16-bit"):
        decode_sunrgbd_depth(torch.tensor([70000]))


def test_folder_pairing_and_sample_contract(sun_root, caplog):
    with caplog.at_level(logging.WARNING, logger="freqdense.data.sunrgbd"):
        ds = create_dataset("sunrgbd", root=sun_root, split="train")
    assert "has 3 samples, the official split has 5285" in caplog.text
    assert len(ds) == 3 and ds.num_classes == 37 and ds.ignore_index == 255
    for index, n in enumerate((1, 2, 3)):
        s = ds[index]
        h, w = SIZES[n]
        assert s["meta"] == {"id": f"img-{n:06d}", "index": index, "split": "train"}
        assert s["image"].shape == (3, h, w) and s["image"].dtype == torch.float32
        assert s["semantic"].dtype == torch.int64
        assert torch.equal(s["semantic"], torch.from_numpy(pattern(CLASS_IDS, h, w, n)))
        assert s["depth"].shape == (1, h, w) and s["depth"].dtype == torch.float32
        np.testing.assert_allclose(s["depth"][0].numpy(), pattern(METRES_CAPPED, h, w, n), rtol=1e-6)
        assert torch.equal(s["depth_valid"][0], torch.from_numpy(pattern(STORED, h, w, n) > 0))
        # NYU Kinect K with the principal point moved by ((W - 640) / 2, (H - 480) / 2).
        fx, fy, cx, cy = 518.8579, 519.4696, 325.5824 + (w - 640) / 2, 253.7362 + (h - 480) / 2
        np.testing.assert_allclose(s["intrinsics"].numpy(), [[fx, 0, cx], [0, fy, cy], [0, 0, 1]], rtol=1e-6)
        assert "hha" not in s
    assert len(SUNRGBDSegmentation(root=sun_root, split="test")) == 2


def test_options_max_depth_and_intrinsics(sun_root):
    ds = SUNRGBDSegmentation(root=sun_root, split="test", max_depth=None, intrinsics=(500, 510, 3.5, 4.5))
    s = ds[0]
    np.testing.assert_allclose(s["depth"][0].numpy(), pattern(METRES_RAW, 9, 13, 1), rtol=1e-6)
    assert s["intrinsics"].tolist() == [[500.0, 0.0, 3.5], [0.0, 510.0, 4.5], [0.0, 0.0, 1.0]]
    assert ds[1]["intrinsics"].tolist() == s["intrinsics"].tolist()  # the same K for every size


def test_default_intrinsics_follow_the_image_centre():
    assert SUNRGBD_DEFAULT_INTRINSICS == (518.8579, 519.4696, 325.5824, 253.7362)
    k = sunrgbd_intrinsics(480, 640)  # Kinect v1 size: the NYU values as they are
    np.testing.assert_allclose(k.numpy(), [[518.8579, 0, 325.5824], [0, 519.4696, 253.7362], [0, 0, 1]], rtol=1e-7)
    # 730 x 530 (Kinect v2): cx = 325.5824 + 45 = 370.5824, cy = 253.7362 + 25 = 278.7362, focal lengths kept.
    k = sunrgbd_intrinsics(530, 730)
    np.testing.assert_allclose(k.numpy(), [[518.8579, 0, 370.5824], [0, 519.4696, 278.7362], [0, 0, 1]], rtol=1e-7)


def test_list_file_order_and_paths(sun_root):
    lines = [
        "image/train/img-000003.jpg depth/train/00000003.png label37/train/img-000003.png",
        "",
        "/somewhere/SUNRGBD/image/train/img-000001.jpg /x/y/depth/train/00000001.png /z/label37/train/img-000001.png",
    ]
    (sun_root / "train37.txt").write_text("\n".join(lines) + "\n")
    ds = SUNRGBDSegmentation(root=sun_root, split="train")
    assert [ds[i]["meta"]["id"] for i in range(len(ds))] == ["img-000003", "img-000001"]
    assert torch.equal(ds[1]["semantic"], torch.from_numpy(pattern(CLASS_IDS, 9, 13, 1)))
    (sun_root / "train37.txt").write_text("image/train/img-000001.jpg depth/train/00000001.png\n")
    with pytest.raises(DataError, match=r"train37\.txt' line 1 has 2 fields"):
        SUNRGBDSegmentation(root=sun_root, split="train")


def hha_disparity(depth_m: np.ndarray) -> np.ndarray:
    """HHA channel 0 by the closed form 31000 / max(Z_cm, 100), rounded, clipped to 255, / 255; 0 where invalid."""
    z_cm = np.maximum(depth_m * 100.0, 100.0)
    return np.where(depth_m > 0, np.clip(np.rint(31000.0 / z_cm), 0, 255), 0.0) / 255.0


def test_hha_compute(sun_root):
    s = SUNRGBDSegmentation(root=sun_root, split="train", hha="compute")[0]
    hha = s["hha"]
    assert hha.shape == (3, 9, 13) and hha.dtype == torch.float32
    assert float(hha.min()) >= 0.0 and float(hha.max()) <= 1.0
    # 1.234 m -> 31000 / 123.4 = 251.2 -> 251; 3 m -> 103.3 -> 103; 8 m (clamped) -> 38.75 -> 39; 2 mm -> 255
    np.testing.assert_allclose(hha[0].numpy(), hha_disparity(pattern(METRES_CAPPED, 9, 13, 1)), atol=1e-6)
    assert torch.equal(hha[:, ~s["depth_valid"][0]], torch.zeros(3, int((~s["depth_valid"]).sum())))


def test_hha_load_from_the_default_folder_or_a_cache(sun_root, tmp_path):
    codes = {n: np.random.default_rng(10 + n).integers(0, 256, (*SIZES[n], 3), dtype=np.uint8) for n in (1, 2, 3)}
    (sun_root / "hha" / "train").mkdir(parents=True)
    for n, code in codes.items():
        Image.fromarray(code).save(sun_root / "hha" / "train" / f"img-{n:06d}.png")  # <root>/hha/<split>/<id>.png
    ds = SUNRGBDSegmentation(root=sun_root, split="train", hha="load")
    for index, n in enumerate((1, 2, 3)):
        assert torch.equal(ds[index]["hha"], torch.from_numpy(codes[n]).permute(2, 0, 1).float() / 255.0)
    # A `freqdense data hha` cache: <out>/<split>/meta.json and <index:06d>.png in dataset order.
    cache = tmp_path / "cache" / "train"
    cache.mkdir(parents=True)
    (cache / "meta.json").write_text('{"dataset": "sunrgbd", "split": "train"}')
    for index, n in enumerate((1, 2)):
        Image.fromarray(codes[n]).save(cache / f"{index:06d}.png")
    ds = SUNRGBDSegmentation(root=sun_root, split="train", hha="load", hha_root=tmp_path / "cache", num_samples=2)
    assert torch.equal(ds[1]["hha"], torch.from_numpy(codes[2]).permute(2, 0, 1).float() / 255.0)
    with pytest.raises(DataError, match=r"000002\.png"):  # the third sample has no cached image
        SUNRGBDSegmentation(root=sun_root, split="train", hha="load", hha_root=tmp_path / "cache")
    with pytest.raises(DataError, match=r"hha.*test"):  # no <root>/hha/test
        SUNRGBDSegmentation(root=sun_root, split="test", hha="load")


def test_errors(tmp_path, sun_root):
    with pytest.raises(ConfigError, match="Valid splits: train, test"):
        SUNRGBDSegmentation(root=sun_root, split="val")
    with pytest.raises(ConfigError, match="hha='cached' is not a valid choice"):
        SUNRGBDSegmentation(root=sun_root, hha="cached")
    with pytest.raises(ConfigError, match=r"intrinsics must be \(fx, fy, cx, cy\)"):
        SUNRGBDSegmentation(root=sun_root, intrinsics=(518.0, 519.0, 325.0))
    with pytest.raises(ConfigError, match="max_depth"):
        SUNRGBDSegmentation(root=sun_root, max_depth=0)
    with pytest.raises(DataError, match="nowhere"):
        SUNRGBDSegmentation(root=tmp_path / "nowhere")
    (sun_root / "depth" / "test" / "00000002.png").unlink()
    with pytest.raises(DataError, match=r"img-000002\.jpg' has no depth partner numbered 2"):
        SUNRGBDSegmentation(root=sun_root, split="test")
    bad = pattern(RAW_LABELS, 9, 13, 1).copy()
    bad[0, 0] = 38
    Image.fromarray(bad).save(sun_root / "label37" / "train" / "img-000001.png")
    with pytest.raises(DataError, match=r"img-000001\.png.*0\.\.37"):
        SUNRGBDSegmentation(root=sun_root, split="train")[0]
    Image.fromarray(np.zeros((4, 4), np.uint16)).save(sun_root / "depth" / "train" / "00000002.png")
    with pytest.raises(DataError, match=r"00000002\.png' is \(4, 4\)"):
        SUNRGBDSegmentation(root=sun_root, split="train")[1]
