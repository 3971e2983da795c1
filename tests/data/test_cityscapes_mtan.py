"""MTAN's preprocessed Cityscapes (.npy): labels with -1, the rescaled disparity and what ``depth`` means."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch

from freqdense.data import create_dataset
from freqdense.data.cityscapes import CITYSCAPES_CATEGORIES, CITYSCAPES_CLASSES
from freqdense.data.cityscapes_mtan import CityscapesMTAN
from freqdense.data.transforms import build_transforms
from freqdense.errors import ConfigError, DataError

H, W = 7, 11


def arrays(index: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(index)
    image = rng.random((H, W, 3))  # float64 in [0, 1], as MTAN stores it
    label_7 = (np.arange(H * W).reshape(H, W) % 8 - 1).astype(np.float64)  # -1..6, float like MTAN's files
    label_19 = (np.arange(H * W).reshape(H, W) % 20 - 1).astype(np.float64)  # -1..18
    depth = np.full((H, W, 1), 0.25)
    depth[0, :3, 0] = 0.0  # invalid
    depth[1, 0, 0] = 0.49  # about MTAN's maximum
    depth[2, 0, 0] = 0.01
    return {"image": image, "label_7": label_7, "label_19": label_19, "depth": depth}


def write_mtan(root: Path, counts: dict[str, int]) -> Path:
    for split, n in counts.items():
        for index in range(n):
            for folder, arr in arrays(index).items():
                (root / split / folder).mkdir(parents=True, exist_ok=True)
                np.save(root / split / folder / f"{index}.npy", arr)
    return root


@pytest.fixture
def mtan_root(tmp_path: Path) -> Path:
    return write_mtan(tmp_path / "mtan", {"train": 12, "val": 2})


def test_default_gives_disparity_not_depth(mtan_root):
    ds = create_dataset("cityscapes_mtan", root=mtan_root, split="train")
    assert len(ds) == 12 and ds.num_classes == 7 and ds.classes == CITYSCAPES_CATEGORIES
    s = ds[0]
    assert "depth" not in s and "depth_valid" not in s
    a = arrays(0)
    assert s["disparity"].shape == (1, H, W) and s["disparity"].dtype == torch.float32
    assert s["disparity"][0, 1, 0].item() == pytest.approx(0.49) and s["disparity"][0, 0, :3].tolist() == [0.0] * 3
    assert s["image"].shape == (3, H, W) and s["image"].dtype == torch.float32
    np.testing.assert_allclose(s["image"].permute(1, 2, 0).numpy(), a["image"], rtol=1e-6)
    # -1 -> 255, 0..6 unchanged.
    expected = np.where(a["label_7"] < 0, 255, a["label_7"]).astype(np.int64)
    assert s["semantic"].dtype == torch.int64 and torch.equal(s["semantic"], torch.from_numpy(expected))
    assert s["semantic"][0, 0].item() == 255 and s["semantic"][0, 7].item() == 6
    assert s["meta"] == {"id": "0", "index": 0, "split": "train"}


def test_indices_are_numeric_order(mtan_root):
    ds = CityscapesMTAN(root=mtan_root, split="train")
    assert [ds[i]["meta"]["id"] for i in range(len(ds))] == [str(i) for i in range(12)]  # 10 after 9, not after 1
    assert len(CityscapesMTAN(root=mtan_root, split="train", num_samples=3)) == 3


def test_nineteen_classes(mtan_root):
    ds = CityscapesMTAN(root=mtan_root, split="val", classes=19, depth="none")
    s = ds[1]
    assert ds.classes == CITYSCAPES_CLASSES and ds.num_classes == 19 and "disparity" not in s
    assert s["semantic"][0, 0].item() == 255 and s["semantic"][1, 8].item() == 18  # flat index 19 -> 19 - 1
    expected = np.where(arrays(1)["label_19"] < 0, 255, arrays(1)["label_19"]).astype(np.int64)
    assert torch.equal(s["semantic"], torch.from_numpy(expected))


def test_metric_depth_with_a_factor(mtan_root):
    ds = CityscapesMTAN(root=mtan_root, split="val", depth="metric", depth_factor=118.4)
    s = ds[0]
    assert "disparity" not in s
    assert s["depth"][0, 1, 0].item() == pytest.approx(118.4 / 0.49, rel=1e-6)  # 241.63 m
    assert s["depth"][0, 2, 0].item() == pytest.approx(11840.0, rel=1e-6)
    assert s["depth"][0, 5, 5].item() == pytest.approx(473.6, rel=1e-6)
    assert s["depth"][0, 0, :3].tolist() == [0.0] * 3 and not s["depth_valid"][0, 0, :3].any()
    assert int(s["depth_valid"].sum()) == H * W - 3


def test_disparity_as_depth_is_explicit_and_warns(mtan_root, caplog):
    with caplog.at_level(logging.WARNING, logger="freqdense.data.cityscapes_mtan"):
        ds = CityscapesMTAN(root=mtan_root, split="val", depth="disparity_as_depth")
    assert "not metres" in caplog.text
    s = ds[0]
    assert s["depth"][0, 1, 0].item() == pytest.approx(0.49) and int(s["depth_valid"].sum()) == H * W - 3


def test_count_warning_and_transform(mtan_root, caplog):
    with caplog.at_level(logging.WARNING, logger="freqdense.data.cityscapes_mtan"):
        ds = CityscapesMTAN(
            root=mtan_root,
            split="val",
            depth="disparity_as_depth",
            transform=build_transforms({"resize": [14, 22]}, train=False),
        )
    assert "has 2 samples, MTAN's has 500" in caplog.text
    s = ds[0]
    # 2x nearest upsampling repeats each pixel: output (i, j) comes from (i // 2, j // 2).
    assert s["semantic"].shape == (14, 22) and s["depth"].shape == (1, 14, 22)
    raw = CityscapesMTAN(root=mtan_root, split="val", depth="disparity_as_depth")[0]
    assert torch.equal(s["semantic"], raw["semantic"].repeat_interleave(2, 0).repeat_interleave(2, 1))
    assert torch.equal(s["depth"], raw["depth"].repeat_interleave(2, 1).repeat_interleave(2, 2))


def test_errors(tmp_path, mtan_root):
    with pytest.raises(ConfigError, match="depth_factor > 0"):
        CityscapesMTAN(root=mtan_root, depth="metric")
    with pytest.raises(ConfigError, match="only used with depth='metric'"):
        CityscapesMTAN(root=mtan_root, depth_factor=1.0)
    with pytest.raises(ConfigError, match="classes must be 7"):
        CityscapesMTAN(root=mtan_root, classes=8)
    with pytest.raises(ConfigError, match="depth must be one of"):
        CityscapesMTAN(root=mtan_root, depth="inverse")
    with pytest.raises(ConfigError, match=r"Did you mean 'val'"):
        CityscapesMTAN(root=mtan_root, split="vall")
    with pytest.raises(DataError, match="nowhere"):
        CityscapesMTAN(root=tmp_path / "nowhere")
    (mtan_root / "train" / "depth" / "10.npy").unlink()
    with pytest.raises(DataError, match=r"depth/10\.npy"):
        CityscapesMTAN(root=mtan_root, split="train")
    assert len(CityscapesMTAN(root=mtan_root, split="train", depth="none")) == 12
    np.save(mtan_root / "val" / "label_7" / "1.npy", np.full((H, W), 7.0))  # 7 is not a 7-class id
    with pytest.raises(DataError, match=r"label_7/1\.npy' holds 7\.0, not an id in -1\.\.6"):
        CityscapesMTAN(root=mtan_root, split="val")[1]
    np.save(mtan_root / "val" / "image" / "0.npy", np.full((H, W, 3), 200.0))  # 8-bit values
    with pytest.raises(DataError, match=r"image/0\.npy.*not \[0, 1\]"):
        CityscapesMTAN(root=mtan_root, split="val")[0]
    np.save(mtan_root / "val" / "depth" / "1.npy", np.zeros((H + 1, W, 1)))
    with pytest.raises(DataError, match=r"depth/1\.npy.*shape"):
        CityscapesMTAN(root=mtan_root, split="val", classes=19)[1]
