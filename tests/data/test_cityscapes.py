"""Cityscapes loader on a tiny tree in the official layout (labelIds / labelTrainIds, uint16 disparity, camera json)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from freqdense.data import create_dataset
from freqdense.data.cityscapes import (
    CITYSCAPES_CLASSES,
    CITYSCAPES_PALETTE,
    CityscapesSegmentation,
    disparity_to_depth,
)
from freqdense.errors import ConfigError, DataError

H, W = 16, 24
BASELINE, FX, FY, U0, V0 = 0.209313, 2262.52, 2265.30, 1096.98, 513.137
# (split, city, stem, label kind)
FRAMES = (
    ("train", "aachen", "aachen_000000_000019", "labelIds"),
    ("train", "bremen", "bremen_000001_000019", "labelIds"),
    ("val", "frankfurt", "frankfurt_000000_000294", "trainIds"),
)


def label_ids() -> np.ndarray:
    arr = np.zeros((H, W), np.uint8)  # 0 = unlabeled -> 255
    arr[:, 6:12] = 7  # road -> 0
    arr[:, 12:18] = 26  # car -> 13
    arr[:, 18:] = 33  # bicycle -> 18
    arr[0, 0] = 30  # trailer (no train id) -> 255
    return arr


def expected_train_ids() -> np.ndarray:
    arr = np.full((H, W), 255, np.int64)
    arr[:, 6:12], arr[:, 12:18], arr[:, 18:] = 0, 13, 18
    arr[0, 0] = 255
    return arr


def disparity() -> np.ndarray:
    arr = np.full((H, W), 257, np.uint16)  # d = 1 px
    arr[0, :4] = 0  # no match -> invalid
    arr[1, :4] = 1  # d = 0 -> infinitely far -> invalid
    arr[2, :4] = 513  # d = 2 px -> half the depth
    return arr


def write_cityscapes(root: Path) -> Path:
    for k, (split, city, stem, kind) in enumerate(FRAMES):
        for top in ("leftImg8bit", "gtFine", "disparity", "camera"):
            (root / top / split / city).mkdir(parents=True, exist_ok=True)
        rgb = np.random.default_rng(k).integers(0, 256, (H, W, 3), dtype=np.uint8)
        Image.fromarray(rgb).save(root / "leftImg8bit" / split / city / f"{stem}_leftImg8bit.png")
        if kind == "labelIds":
            Image.fromarray(label_ids()).save(root / "gtFine" / split / city / f"{stem}_gtFine_labelIds.png")
        else:
            trainids = expected_train_ids().astype(np.uint8)
            Image.fromarray(trainids).save(root / "gtFine" / split / city / f"{stem}_gtFine_labelTrainIds.png")
        Image.fromarray(disparity()).save(root / "disparity" / split / city / f"{stem}_disparity.png")
        camera = {
            "extrinsic": {
                "baseline": BASELINE,
                "pitch": 0.038,
                "roll": 0.0,
                "x": 1.7,
                "y": 0.1,
                "yaw": -0.02,
                "z": 1.2,
            },
            "intrinsic": {"fx": FX, "fy": FY, "u0": U0, "v0": V0},
        }
        (root / "camera" / split / city / f"{stem}_camera.json").write_text(json.dumps(camera))
    return root


@pytest.fixture
def cs_root(tmp_path: Path) -> Path:
    return write_cityscapes(tmp_path / "cityscapes")


def test_classes_and_palette():
    assert len(CITYSCAPES_CLASSES) == 19 == len(CITYSCAPES_PALETTE)
    assert CITYSCAPES_CLASSES[13] == "car" and CITYSCAPES_PALETTE[13] == (0, 0, 142)
    assert CITYSCAPES_PALETTE[0] == (128, 64, 128)  # road


def test_label_ids_map_to_train_ids(cs_root):
    ds = create_dataset("cityscapes", root=cs_root, split="train")
    assert len(ds) == 2 and ds.num_classes == 19 and ds.ignore_index == 255
    s = ds[0]
    assert s["meta"] == {"id": "aachen_000000_000019", "index": 0, "split": "train"}
    assert s["image"].shape == (3, H, W) and s["image"].dtype == torch.float32
    assert s["semantic"].dtype == torch.int64 and s["semantic"].shape == (H, W)
    assert int(s["semantic"][5, 13]) == 13  # labelId 26 (car) -> trainId 13
    assert int(s["semantic"][5, 0]) == 255 and int(s["semantic"][0, 0]) == 255  # unlabeled, trailer
    assert torch.equal(s["semantic"], torch.from_numpy(expected_train_ids()))
    assert "depth" not in s
    assert ds[1]["meta"]["id"] == "bremen_000001_000019"  # sorted by city


def test_label_train_ids_are_read_as_is(cs_root):
    ds = CityscapesSegmentation(root=cs_root, split="val")
    assert len(ds) == 1
    assert torch.equal(ds[0]["semantic"], torch.from_numpy(expected_train_ids()))
    with pytest.raises(DataError, match="frankfurt_000000_000294_gtFine_labelIds.png"):
        CityscapesSegmentation(root=cs_root, split="val", label_type="labelIds")


def test_depth_from_disparity_in_metres(cs_root):
    s = CityscapesSegmentation(root=cs_root, split="train", with_depth=True)[0]
    depth, valid = s["depth"], s["depth_valid"]
    assert depth.shape == (1, H, W) and depth.dtype == torch.float32 and valid.dtype == torch.bool
    # p = 257 -> d = (257 - 1) / 256 = 1 px -> depth = baseline * fx / 1 (about 473.6 m)
    assert depth[0, 5, 5].item() == pytest.approx(BASELINE * FX, rel=1e-6)
    assert depth[0, 2, 0].item() == pytest.approx(BASELINE * FX / 2, rel=1e-6)  # p = 513 -> d = 2
    assert depth[0, 0, :4].tolist() == [0.0] * 4 and not valid[0, 0, :4].any()  # p = 0
    assert depth[0, 1, :4].tolist() == [0.0] * 4 and not valid[0, 1, :4].any()  # p = 1 -> d = 0
    assert int(valid.sum()) == H * W - 8
    K = s["intrinsics"]
    assert K.shape == (3, 3) and K[0, 0].item() == pytest.approx(FX) and K[1, 2].item() == pytest.approx(V0)


def test_disparity_to_depth_examples():
    out = disparity_to_depth(torch.tensor([0, 1, 129, 257]), baseline=0.5, fx=100.0)
    assert out.tolist() == pytest.approx([0.0, 0.0, 100.0, 50.0])  # d = 0.5 px -> 100 m, d = 1 px -> 50 m


def test_errors(tmp_path, cs_root):
    with pytest.raises(DataError, match=r"(?s)no_such_dir.*leftImg8bit"):
        CityscapesSegmentation(root=tmp_path / "no_such_dir")
    with pytest.raises(ConfigError, match=r"Did you mean 'val'"):
        CityscapesSegmentation(root=cs_root, split="vall")
    with pytest.raises(DataError, match=r"leftImg8bit/test"):
        CityscapesSegmentation(root=cs_root, split="test")
    (cs_root / "camera" / "train" / "aachen" / "aachen_000000_000019_camera.json").unlink()
    ds = CityscapesSegmentation(root=cs_root, split="train", with_depth=True)
    with pytest.raises(DataError, match="aachen_000000_000019_camera.json"):
        ds[0]
    assert ds[1]["depth"].shape == (1, H, W)
    with pytest.raises(ConfigError, match="label_type"):
        CityscapesSegmentation(root=cs_root, label_type="color")
