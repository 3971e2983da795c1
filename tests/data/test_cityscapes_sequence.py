"""Cityscapes self-supervised depth: preprocessed triplets, _cam.txt intrinsics and the ManyDepth test protocol."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from freqdense.data import create_dataset
from freqdense.data.cityscapes_sequence import CityscapesSequence, crop_ego_car, read_cam_file
from freqdense.errors import ConfigError, DataError
from freqdense.metrics.depth import DepthMetrics, crop_mask

FH, FW = 6, 8  # one frame of the triplet
CAM = "5.8e+02,0.0,4.0e+00,0.0,5.9e+02,3.0e+00,0.0,0.0,1.0\n"


def triplet(base: int) -> np.ndarray:
    strip = np.zeros((FH, 3 * FW, 3), np.uint8)
    for i in range(3):  # [t-1 | t | t+1]; red channel = base + 50 i
        strip[:, i * FW : (i + 1) * FW, 0] = base + 50 * i
    return strip


@pytest.fixture()
def triplet_root(tmp_path: Path) -> Path:
    root = tmp_path / "cityscapes_preprocessed"
    for city, frame, base in (("aachen", "aachen_000000_000019", 10), ("bochum", "bochum_000000_000313", 20)):
        (root / city).mkdir(parents=True)
        Image.fromarray(triplet(base)).save(root / city / f"{frame}.jpg", quality=100)
        (root / city / f"{frame}_cam.txt").write_text(CAM)
    Image.fromarray(triplet(0)).save(root / "aachen" / "no_camera.jpg")  # no _cam.txt -> not listed
    return root


def test_triplet_sample(triplet_root: Path) -> None:
    ds = create_dataset("cityscapes_sequence", root=triplet_root, split="train")
    assert len(ds) == 2
    s = ds[1]
    for key, red in (("image_prev", 20), ("image", 70), ("image_next", 120)):
        assert s[key].shape == (3, FH, FW)
        assert abs(float(s[key][0].mean()) * 255 - red) < 3  # jpg is lossy
    torch.testing.assert_close(s["intrinsics"], torch.tensor([[580.0, 0, 4], [0, 590, 3], [0, 0, 1]]))
    assert s["meta"] == {"id": "bochum/bochum_000000_000313", "index": 1, "split": "train"}


def test_split_file_and_errors(triplet_root: Path, tmp_path: Path) -> None:
    split = tmp_path / "val_files.txt"
    split.write_text("bochum bochum_000000_000313\n")
    ds = CityscapesSequence(root=triplet_root, split="val", split_file=split)
    assert len(ds) == 1 and ds[0]["meta"]["id"] == "bochum/bochum_000000_000313"
    with pytest.raises(ConfigError, match="split_file"):
        CityscapesSequence(root=triplet_root, split="val")
    split.write_text("bochum\n")
    with pytest.raises(DataError, match=r"val_files\.txt' line 1"):
        CityscapesSequence(root=triplet_root, split="val", split_file=split)
    (triplet_root / "aachen" / "aachen_000000_000019_cam.txt").write_text("1,2,3\n")
    with pytest.raises(DataError, match=r"aachen_000000_000019_cam\.txt.*9"):
        read_cam_file(triplet_root / "aachen" / "aachen_000000_000019_cam.txt")


def test_test_split_crops_ego_car_and_reads_gt(tmp_path: Path) -> None:
    root, gt_dir = tmp_path / "cityscapes", tmp_path / "gt_depths"
    gt_dir.mkdir()
    h, w = 12, 16  # round(0.75 * 12) = 9 rows kept
    for i, (city, stem) in enumerate((("berlin", "berlin_000000_000019"), ("bonn", "bonn_000000_000001"))):
        (root / "leftImg8bit" / "test" / city).mkdir(parents=True)
        img = np.zeros((h, w, 3), np.uint8)
        img[9:] = 255  # the bottom quarter (ego car) is white
        Image.fromarray(img).save(root / "leftImg8bit" / "test" / city / f"{stem}_leftImg8bit.png")
        gt = np.full((h, w), 5.0 + i, np.float32)
        gt[0, 0] = np.nan
        np.save(gt_dir / f"{i:03d}_depth.npy", gt)
    split = tmp_path / "test_files.txt"
    split.write_text("berlin berlin_000000_000019\nbonn bonn_000000_000001\n")
    ds = CityscapesSequence(root=root, split="test", split_file=split, gt_dir=gt_dir)
    s = ds[1]
    assert s["image"].shape == (3, 9, w) and float(s["image"].max()) == 0.0
    assert s["depth"].shape == (1, 9, w) and float(s["depth"][0, 5, 5]) == 6.0
    assert float(s["depth"][0, 0, 0]) == 0.0 and not bool(s["depth_valid"][0, 0, 0])
    assert crop_ego_car(torch.zeros(1, 1024, 2048)).shape[-2] == 768


def test_cityscapes_protocol_crop_matches_manydepth_indices() -> None:
    # ManyDepth: gt[:768] then [256:, 192:1856] at full resolution.
    mask = crop_mask(768, 2048, "cityscapes")
    rows, cols = mask.any(1).nonzero().flatten(), mask.any(0).nonzero().flatten()
    assert (int(rows[0]), int(rows[-1]), int(cols[0]), int(cols[-1])) == (256, 767, 192, 1855)
    m = DepthMetrics.from_protocol("cityscapes_mono")
    assert m.median_scaling and m.max_depth == 80.0 and m.min_depth == 1e-3 and m.aggregation == "image"
