"""DeepGlobe land cover loader on near-pure RGB colour masks (thresholded at 128) and its deterministic split."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from freqdense.data import create_dataset
from freqdense.data.deepglobe import DEEPGLOBE_CLASSES, DeepGlobeLandCover, deepglobe_split, mask_to_labels
from freqdense.errors import ConfigError, DataError

H, W = 9, 14
IDS = tuple(str(100000 + 37 * k) for k in range(8))
# (colour in the file, expected id with unknown ignored, expected id with keep_unknown)
COLOURS = (
    ((250, 5, 250), 2, 2),  # near-magenta -> rangeland
    ((5, 250, 250), 0, 0),  # urban
    ((128, 128, 0), 1, 1),  # exactly 128 counts as "on" -> agriculture
    ((127, 200, 127), 3, 3),  # 127 counts as "off" -> forest
    ((3, 3, 240), 4, 4),  # water
    ((240, 250, 255), 5, 5),  # barren
    ((3, 3, 3), 255, 6),  # unknown
    ((250, 0, 0), 255, 255),  # red is no DeepGlobe colour
)


def mask_array() -> np.ndarray:
    arr = np.zeros((H, W, 3), np.uint8)
    for k, (rgb, _, _) in enumerate(COLOURS):
        arr[k] = rgb
    return arr


def write_deepglobe(root: Path) -> Path:
    folder = root / "train"
    folder.mkdir(parents=True)
    for k, sample_id in enumerate(IDS):
        Image.fromarray(np.random.default_rng(k).integers(0, 256, (H, W, 3), dtype=np.uint8)).save(
            folder / f"{sample_id}_sat.jpg"
        )
        Image.fromarray(mask_array()).save(folder / f"{sample_id}_mask.png")
    return root


def test_colour_mask_threshold_and_unknown(tmp_path):
    root = write_deepglobe(tmp_path / "deepglobe")
    ds = create_dataset("deepglobe", root=root, split="trainval")
    assert len(ds) == 8 and ds.num_classes == 6 and ds.ignore_index == 255 and ds.classes == DEEPGLOBE_CLASSES[:6]
    s = ds[0]
    assert s["meta"]["id"] == IDS[0]
    assert s["image"].shape == (3, H, W) and s["semantic"].shape == (H, W) and s["semantic"].dtype == torch.int64
    assert s["semantic"][:, 0].tolist() == [c[1] for c in COLOURS] + [255]  # last row: black -> unknown
    assert (s["semantic"][0] == 2).all()  # (250, 5, 250) -> rangeland
    kept = DeepGlobeLandCover(root=root / "train", split="trainval", keep_unknown=True)
    assert kept.num_classes == 7 and len(kept.palette) == 7
    assert kept[0]["semantic"][:, 0].tolist() == [c[2] for c in COLOURS] + [6]


def test_mask_to_labels_uint8_and_float_agree():
    mask = torch.from_numpy(mask_array()).permute(2, 0, 1)
    assert torch.equal(mask_to_labels(mask), mask_to_labels(mask.float() / 255))
    assert mask_to_labels(mask)[:, 0].tolist() == [c[1] for c in COLOURS] + [255]


def test_default_split_is_a_disjoint_deterministic_partition(tmp_path):
    root = write_deepglobe(tmp_path)
    train = DeepGlobeLandCover(root=root, split="train")
    val = DeepGlobeLandCover(root=root, split="val")
    train_ids, val_ids = {r.id for r in train.records}, {r.id for r in val.records}
    assert len(val_ids) == 1 and len(train_ids) == 7  # round(8 * 102 / 803) = 1
    assert train_ids | val_ids == set(IDS) and not train_ids & val_ids
    fake = [f"{k:06d}" for k in range(803)]
    assert len(deepglobe_split(fake, "val")) == 102 and len(deepglobe_split(fake, "train")) == 701
    # independent of the input order
    assert deepglobe_split(fake[::-1], "val") == deepglobe_split(fake, "val")


def test_split_lists_take_precedence(tmp_path):
    root = write_deepglobe(tmp_path)
    (root / "splits").mkdir()
    (root / "splits" / "train.txt").write_text(f"{IDS[3]}\n{IDS[1]}\n")
    (root / "splits" / "val.txt").write_text(f"{IDS[0]}\n")
    assert [r.id for r in DeepGlobeLandCover(root=root, split="train").records] == [IDS[1], IDS[3]]
    assert len(DeepGlobeLandCover(root=root, split="trainval")) == 3
    (root / "splits" / "val.txt").write_text("999999\n")
    with pytest.raises(DataError, match="999999"):
        DeepGlobeLandCover(root=root, split="val")


def test_errors(tmp_path):
    with pytest.raises(DataError, match=r"(?s)not_here.*_sat.jpg"):
        DeepGlobeLandCover(root=tmp_path / "not_here")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no <id>_sat.jpg"):
        DeepGlobeLandCover(root=tmp_path / "empty")
    root = write_deepglobe(tmp_path / "dg")
    with pytest.raises(ConfigError, match=r"Did you mean 'val'"):
        DeepGlobeLandCover(root=root, split="valid")
    (root / "train" / f"{IDS[0]}_mask.png").unlink()
    with pytest.raises(DataError, match=f"{IDS[0]}_mask.png"):
        DeepGlobeLandCover(root=root, split="trainval")[0]
