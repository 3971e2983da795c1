"""ADE20K (ADEChallengeData2016) loader on a tiny tree in the official layout; reduce_zero_label mapping."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from freqdense.data import create_dataset
from freqdense.data.ade20k import ADE20K_CLASSES, ADE20K_PALETTE, ADE20KSegmentation
from freqdense.errors import ConfigError, DataError

H, W = 17, 13


def raw_label(seed: int) -> np.ndarray:
    arr = np.random.default_rng(seed).integers(0, 151, (H, W), dtype=np.uint8)
    arr[0, :4] = [0, 1, 150, 13]
    return arr


def write_ade(root: Path) -> dict[str, np.ndarray]:
    base = root / "ADEChallengeData2016"
    labels = {}
    for folder, names in (
        ("training", ("ADE_train_00000002", "ADE_train_00000001")),
        ("validation", ("ADE_val_00000001",)),
    ):
        (base / "images" / folder).mkdir(parents=True)
        (base / "annotations" / folder).mkdir(parents=True)
        for k, name in enumerate(names):
            grey = k == 1  # ADE20K has a few greyscale JPEGs
            shape = (H, W) if grey else (H, W, 3)
            Image.fromarray(np.random.default_rng(k).integers(0, 256, shape, dtype=np.uint8)).save(
                base / "images" / folder / f"{name}.jpg"
            )
            labels[name] = raw_label(k)
            Image.fromarray(labels[name], mode="L").save(base / "annotations" / folder / f"{name}.png")
    return labels


def test_classes_and_palette():
    assert len(ADE20K_CLASSES) == 150 == len(set(ADE20K_CLASSES)) == len(ADE20K_PALETTE)
    assert ADE20K_CLASSES[0] == "wall" and ADE20K_CLASSES[12] == "person" and ADE20K_CLASSES[149] == "flag"


def test_reduce_zero_label(tmp_path):
    labels = write_ade(tmp_path)
    ds = create_dataset("ade20k", root=tmp_path, split="train")
    assert isinstance(ds, ADE20KSegmentation) and len(ds) == 2 and ds.num_classes == 150 and ds.ignore_index == 255
    s = ds[0]
    assert s["meta"]["id"] == "ADE_train_00000001"  # sorted
    assert s["image"].shape == (3, H, W) and s["image"].dtype == torch.float32
    assert s["semantic"].dtype == torch.int64 and s["semantic"].shape == (H, W)
    assert s["semantic"][0, :4].tolist() == [255, 0, 149, 12]  # 0 -> 255, k -> k - 1
    raw = torch.from_numpy(labels["ADE_train_00000001"].astype(np.int64))
    assert torch.equal(s["semantic"], torch.where(raw == 0, torch.tensor(255), raw - 1))
    grey = s["image"]  # ADE_train_00000001 was written as a greyscale JPEG: expanded to RGB
    assert torch.equal(grey[0], grey[2]) and not torch.equal(ds[1]["image"][0], ds[1]["image"][2])
    val = ADE20KSegmentation(root=tmp_path / "ADEChallengeData2016", split="val")
    assert len(val) == 1 and val[0]["meta"]["split"] == "val"


def test_errors(tmp_path):
    with pytest.raises(DataError, match=r"(?s)missing_ade.*annotations"):
        ADE20KSegmentation(root=tmp_path / "missing_ade")
    write_ade(tmp_path)
    with pytest.raises(ConfigError, match=r"Did you mean 'train'"):
        ADE20KSegmentation(root=tmp_path, split="training")
    bad = tmp_path / "ADEChallengeData2016" / "annotations" / "validation" / "ADE_val_00000001.png"
    Image.fromarray(np.full((H, W), 151, np.uint8), mode="L").save(bad)
    with pytest.raises(DataError, match="ADE_val_00000001.png"):
        ADE20KSegmentation(root=tmp_path, split="val")[0]
    bad.unlink()
    with pytest.raises(DataError, match="ADE_val_00000001.png"):
        ADE20KSegmentation(root=tmp_path, split="val")[0]
