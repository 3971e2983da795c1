"""Cityscapes multi-task use: the 7 categories, metric depth from uint16 disparity, MTAN's 128x256 resize."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from freqdense.data import create_dataset
from freqdense.data.cityscapes import (
    CITYSCAPES_CATEGORIES,
    CITYSCAPES_CATEGORY_PALETTE,
    LABEL_ID_TO_CATEGORY,
    LABEL_ID_TO_TRAIN_ID,
    TRAIN_ID_TO_CATEGORY,
    CityscapesSegmentation,
)
from freqdense.data.transforms import build_transforms
from freqdense.errors import ConfigError, DataError

BASELINE, FX, FY, U0, V0 = 0.22, 2250.0, 2251.5, 1050.25, 500.75
# labelId -> expected category, written down from cityscapesScripts' labels.py (name: catId) by hand:
# unlabeled 0: void; road 7: flat 1; parking 9: flat 1; building 11: construction 2; guard rail 14: construction 2;
# pole 17: object 3; traffic sign 20: object 3; vegetation 21: nature 4; sky 23: sky 5; rider 25: human 6;
# car 26, trailer 30, bicycle 33: vehicle 7. Category index = catId - 1, void -> 255.
HAND_CATEGORY = {0: 255, 7: 0, 9: 0, 11: 1, 14: 1, 17: 2, 20: 2, 21: 3, 23: 4, 25: 5, 26: 6, 30: 6, 33: 6}


def write_frame(root: Path, split: str, city: str, stem: str, label: np.ndarray, disparity: np.ndarray) -> None:
    for top in ("leftImg8bit", "gtFine", "disparity", "camera"):
        (root / top / split / city).mkdir(parents=True, exist_ok=True)
    h, w = label.shape
    rgb = np.random.default_rng(len(stem)).integers(0, 256, (h, w, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(root / "leftImg8bit" / split / city / f"{stem}_leftImg8bit.png")
    Image.fromarray(label).save(root / "gtFine" / split / city / f"{stem}_gtFine_labelIds.png")
    Image.fromarray(disparity).save(root / "disparity" / split / city / f"{stem}_disparity.png")
    camera = {
        "extrinsic": {"baseline": BASELINE, "pitch": 0.04, "roll": 0.0, "x": 1.7, "y": 0.1, "yaw": 0.0, "z": 1.2},
        "intrinsic": {"fx": FX, "fy": FY, "u0": U0, "v0": V0},
    }
    (root / "camera" / split / city / f"{stem}_camera.json").write_text(json.dumps(camera))


def odd_label(h: int = 13, w: int = 21) -> np.ndarray:
    ids = np.array(sorted(HAND_CATEGORY), dtype=np.uint8)
    return ids[(np.arange(h)[:, None] * 3 + np.arange(w)[None, :]) % len(ids)]


def odd_disparity(h: int = 13, w: int = 21) -> np.ndarray:
    values = np.array([0, 257, 513, 0, 1, 12345, 40000, 2], dtype=np.uint16)  # zeros and p = 1 are invalid
    return values[(np.arange(h)[:, None] + 2 * np.arange(w)[None, :]) % len(values)]


@pytest.fixture
def odd_root(tmp_path: Path) -> Path:
    root = tmp_path / "cityscapes"
    write_frame(root, "val", "lindau", "lindau_000000_000019", odd_label(), odd_disparity())
    return root


def test_category_tables_match_the_hand_written_ones():
    assert CITYSCAPES_CATEGORIES == ("flat", "construction", "object", "nature", "sky", "human", "vehicle")
    assert len(CITYSCAPES_CATEGORY_PALETTE) == 7
    for label_id, category in HAND_CATEGORY.items():
        assert LABEL_ID_TO_CATEGORY.get(label_id, 255) == category, label_id
    # Every train id falls into the category of its label id (road 0 -> flat, sky 10 -> sky, bicycle 18 -> vehicle).
    assert TRAIN_ID_TO_CATEGORY[0] == 0 and TRAIN_ID_TO_CATEGORY[10] == 4 and TRAIN_ID_TO_CATEGORY[18] == 6
    assert TRAIN_ID_TO_CATEGORY[11] == TRAIN_ID_TO_CATEGORY[12] == 5  # person, rider
    assert sorted(TRAIN_ID_TO_CATEGORY) == sorted(LABEL_ID_TO_TRAIN_ID.values())
    assert all(LABEL_ID_TO_CATEGORY.get(i, 255) == 255 for i in range(7))  # catId 0 (void)


def test_seven_class_labels_and_metric_depth(odd_root):
    ds = create_dataset("cityscapes", root=odd_root, split="val", classes=7, with_depth=True)
    assert ds.num_classes == 7 and ds.classes == CITYSCAPES_CATEGORIES and ds.palette == CITYSCAPES_CATEGORY_PALETTE
    s = ds[0]
    raw = odd_label()
    expected = np.vectorize(HAND_CATEGORY.__getitem__)(raw)
    assert s["semantic"].dtype == torch.int64 and s["semantic"].shape == (13, 21)
    assert torch.equal(s["semantic"], torch.from_numpy(expected.astype(np.int64)))
    # The fixture's label ids {0, 7, 26, 33} by hand: void, flat, vehicle, vehicle.
    for label_id, category in ((0, 255), (7, 0), (26, 6), (33, 6)):
        assert set(s["semantic"][torch.from_numpy(raw == label_id)].tolist()) == {category}

    p = odd_disparity().astype(np.float64)
    disparity = (p - 1.0) / 256.0
    hand = np.where(disparity > 0, BASELINE * FX / np.where(disparity > 0, disparity, 1.0), 0.0)
    depth, valid = s["depth"], s["depth_valid"]
    assert depth.shape == (1, 13, 21) and depth.dtype == torch.float32
    np.testing.assert_allclose(depth[0].numpy(), hand, rtol=1e-6)
    assert torch.equal(valid[0], torch.from_numpy(p > 1))  # p = 0 (no match) and p = 1 (d = 0) are invalid
    # p = 12345 by hand: d = 12344 / 256 = 48.21875 px, depth = 0.22 * 2250 / 48.21875 = 10.2657...
    row, col = np.argwhere(odd_disparity() == 12345)[0]
    assert depth[0, row, col].item() == pytest.approx(495.0 / 48.21875, rel=1e-6)


def test_nineteen_classes_stay_the_default(odd_root):
    s = CityscapesSegmentation(root=odd_root, split="val")[0]
    expected = np.vectorize(lambda i: LABEL_ID_TO_TRAIN_ID.get(int(i), 255))(odd_label())
    assert torch.equal(s["semantic"], torch.from_numpy(expected.astype(np.int64)))
    assert set(s["semantic"].unique().tolist()) == {0, 2, 5, 7, 8, 10, 12, 13, 18, 255}  # parking, trailer -> 255


def test_seven_classes_from_train_id_files(tmp_path):
    root = tmp_path / "cs"
    (root / "leftImg8bit" / "train" / "ulm").mkdir(parents=True)
    (root / "gtFine" / "train" / "ulm").mkdir(parents=True)
    Image.fromarray(np.zeros((3, 5, 3), np.uint8)).save(
        root / "leftImg8bit/train/ulm/ulm_000000_000019_leftImg8bit.png"
    )
    train_ids = np.array([[0, 1, 2, 5, 8], [10, 11, 12, 13, 18], [255, 9, 7, 3, 16]], np.uint8)
    Image.fromarray(train_ids).save(root / "gtFine/train/ulm/ulm_000000_000019_gtFine_labelTrainIds.png")
    s = CityscapesSegmentation(root=root, split="train", classes=7)[0]
    # road, sidewalk -> flat; building -> construction; pole -> object; vegetation -> nature; sky; person, rider ->
    # human; car, bicycle -> vehicle; 255 stays; terrain -> nature; traffic sign -> object; wall -> construction;
    # train -> vehicle.
    assert s["semantic"].tolist() == [[0, 0, 1, 2, 3], [4, 5, 5, 6, 6], [255, 3, 2, 1, 6]]


def test_resize_to_mtan_resolution_is_nearest_for_labels_and_depth(tmp_path):
    h, w = 256, 512
    rng = np.random.default_rng(0)
    label = rng.choice(np.array(sorted(HAND_CATEGORY), np.uint8), size=(h, w))
    disparity = rng.integers(0, 30000, size=(h, w)).astype(np.uint16)
    disparity[rng.random((h, w)) < 0.2] = 0
    root = tmp_path / "cs_big"
    write_frame(root, "train", "zurich", "zurich_000000_000019", label, disparity)
    transform = build_transforms({"resize": [128, 256]}, train=False)
    ds = create_dataset("cityscapes", root=root, split="train", classes=7, with_depth=True, transform=transform)
    full = CityscapesSegmentation(root=root, split="train", classes=7, with_depth=True)[0]
    s = ds[0]
    assert s["image"].shape == (3, 128, 256) and s["semantic"].shape == (128, 256) and s["depth"].shape == (1, 128, 256)
    # A 2x nearest-neighbour shrink keeps the source pixel whose centre is nearest: row 2i+1, column 2j+1
    # (output centre i + 0.5 maps to input 2i + 1, the boundary between rows 2i and 2i + 1, which rounds up).
    assert torch.equal(s["semantic"], full["semantic"][1::2, 1::2])
    assert torch.equal(s["depth"], full["depth"][:, 1::2, 1::2])
    assert torch.equal(s["depth_valid"], full["depth_valid"][:, 1::2, 1::2])
    # Intrinsics follow the pixel map x' = (x + 0.5) / 2 - 0.5.
    k = s["intrinsics"]
    assert k[0, 0].item() == pytest.approx(FX / 2) and k[1, 1].item() == pytest.approx(FY / 2)
    assert k[0, 2].item() == pytest.approx((U0 + 0.5) / 2 - 0.5) and k[1, 2].item() == pytest.approx(
        (V0 + 0.5) / 2 - 0.5
    )


def test_errors(odd_root):
    for bad in (8, 20, True, "7"):
        with pytest.raises(ConfigError, match="classes must be 19"):
            CityscapesSegmentation(root=odd_root, split="val", classes=bad)
    (odd_root / "disparity" / "val" / "lindau" / "lindau_000000_000019_disparity.png").unlink()
    ds = CityscapesSegmentation(root=odd_root, split="val", classes=7, with_depth=True)
    with pytest.raises(DataError, match="lindau_000000_000019_disparity.png"):
        ds[0]
