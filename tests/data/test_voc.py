"""PASCAL VOC 2012 (+ SBD aug) loader on a tiny tree in the real on-disk format (P-mode PNG labels, list files)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from freqdense.data import create_dataset
from freqdense.data.voc import VOC_CLASSES, VOC_PALETTE, VOCSegmentation
from freqdense.errors import ConfigError, DataError

H, W = 15, 23  # odd on purpose
IDS = ("2007_000032", "2007_000039", "2008_000002")


def flat_palette() -> list[int]:
    return [c for rgb in VOC_PALETTE for c in rgb] + [224, 224, 192] * (256 - len(VOC_PALETTE))


def label_array(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    arr = rng.choice(np.array([0, 1, 15, 20, 255], dtype=np.uint8), size=(H, W))
    arr[0, 0], arr[0, 1], arr[0, 2] = 0, 15, 255
    return arr


def write_voc(root: Path, *, aug_list_name: str = "train_aug.txt") -> dict[str, np.ndarray]:
    base = root / "VOCdevkit" / "VOC2012"
    for d in ("JPEGImages", "SegmentationClass", "SegmentationClassAug", "ImageSets/Segmentation"):
        (base / d).mkdir(parents=True, exist_ok=True)
    labels = {}
    for k, sample_id in enumerate((*IDS, "2009_aug_only")):
        rgb = np.random.default_rng(k).integers(0, 256, (H, W, 3), dtype=np.uint8)
        Image.fromarray(rgb).save(base / "JPEGImages" / f"{sample_id}.jpg", quality=95)
        labels[sample_id] = label_array(k)
        if sample_id in IDS:  # the official GT: palettised, so the file's colours differ from its indices
            img = Image.fromarray(labels[sample_id], mode="L")
            img.putpalette(flat_palette())
            assert img.mode == "P"
            img.save(base / "SegmentationClass" / f"{sample_id}.png")
        # SBD-converted labels are plain greyscale (mode L) PNGs.
        Image.fromarray(labels[sample_id], mode="L").save(base / "SegmentationClassAug" / f"{sample_id}.png")
    sets = base / "ImageSets" / "Segmentation"
    (sets / "train.txt").write_text(f"{IDS[0]}\n{IDS[1]}\n")
    (sets / "val.txt").write_text(f"{IDS[2]}\n")
    (sets / "trainval.txt").write_text("\n".join(IDS) + "\n")
    # DeepLab-style path lines and plain id lines are both accepted.
    (sets / aug_list_name).write_text(
        f"/JPEGImages/{IDS[0]}.jpg /SegmentationClassAug/{IDS[0]}.png\n{IDS[1]}\n\n2009_aug_only\n"
    )
    return labels


@pytest.fixture
def voc_root(tmp_path: Path) -> tuple[Path, dict[str, np.ndarray]]:
    return tmp_path, write_voc(tmp_path)


def test_official_palette_and_classes():
    assert len(VOC_CLASSES) == 21 and VOC_CLASSES[0] == "background" and VOC_CLASSES[15] == "person"
    # Published VOC colours: aeroplane, person, tvmonitor.
    assert VOC_PALETTE[1] == (128, 0, 0) and VOC_PALETTE[15] == (192, 128, 128) and VOC_PALETTE[20] == (0, 64, 128)


@pytest.mark.parametrize("split,expected", [("train", IDS[:2]), ("val", IDS[2:]), ("trainval", IDS)])
def test_splits_read_palette_indices(voc_root, split, expected):
    root, labels = voc_root
    ds = create_dataset("voc", root=root, split=split)
    assert isinstance(ds, VOCSegmentation) and len(ds) == len(expected)
    assert ds.num_classes == 21 and ds.ignore_index == 255 and len(ds.palette) == 21
    for i, sample_id in enumerate(expected):
        s = ds[i]
        assert s["meta"] == {"id": sample_id, "index": i, "split": split}
        assert s["image"].dtype == torch.float32 and s["image"].shape == (3, H, W)
        assert s["semantic"].dtype == torch.int64 and s["semantic"].shape == (H, W)
        # indices, not colours: 15 stays 15 (its colour would be (192, 128, 128)); 255 boundary stays 255
        assert s["semantic"][0, :3].tolist() == [0, 15, 255]
        assert torch.equal(s["semantic"], torch.from_numpy(labels[sample_id].astype(np.int64)))


@pytest.mark.parametrize("list_name", ["train_aug.txt", "trainaug.txt"])
def test_train_aug_reads_segmentation_class_aug(tmp_path, list_name):
    labels = write_voc(tmp_path, aug_list_name=list_name)
    ds = VOCSegmentation(root=tmp_path / "VOCdevkit" / "VOC2012", split="train_aug")
    assert [r.id for r in ds.records] == [IDS[0], IDS[1], "2009_aug_only"]
    s = ds[2]
    assert torch.equal(s["semantic"], torch.from_numpy(labels["2009_aug_only"].astype(np.int64)))


def test_train_aug_overlapping_val_warns(tmp_path, caplog):
    write_voc(tmp_path)
    sets = tmp_path / "VOCdevkit" / "VOC2012" / "ImageSets" / "Segmentation"
    (sets / "train_aug.txt").write_text(f"{IDS[0]}\n{IDS[2]}\n")
    with caplog.at_level(logging.WARNING, logger="freqdense.data.voc"):
        VOCSegmentation(root=tmp_path, split="train_aug")
    assert "leak" in caplog.text and IDS[2] in caplog.text


def test_num_samples_and_negative_index(voc_root):
    root, _ = voc_root
    ds = VOCSegmentation(root=root, split="trainval", num_samples=2)
    assert len(ds) == 2 and ds[-1]["meta"]["id"] == IDS[1]
    with pytest.raises(IndexError):
        ds[2]
    with pytest.raises(ConfigError, match="num_samples=5"):
        VOCSegmentation(root=root, split="trainval", num_samples=5)


def test_errors_name_the_path_and_layout(tmp_path, voc_root):
    missing = tmp_path / "nowhere"
    with pytest.raises(DataError, match=r"(?s)nowhere.*JPEGImages"):
        VOCSegmentation(root=missing)
    with pytest.raises(DataError, match="needs root="):
        VOCSegmentation()
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match=r"no JPEGImages/ folder under .*empty"):
        VOCSegmentation(root=empty)
    root, _ = voc_root
    with pytest.raises(ConfigError, match=r"Did you mean 'train'"):
        VOCSegmentation(root=root, split="trian")


def test_missing_image_and_bad_label_values(voc_root):
    root, _ = voc_root
    base = root / "VOCdevkit" / "VOC2012"
    (base / "JPEGImages" / f"{IDS[1]}.jpg").unlink()
    ds = VOCSegmentation(root=root, split="train")
    with pytest.raises(DataError, match=f"{IDS[1]}.jpg"):
        ds[1]
    Image.fromarray(np.full((H, W), 40, np.uint8), mode="L").save(base / "SegmentationClass" / f"{IDS[0]}.png")
    with pytest.raises(DataError, match="other than 0..20 and 255"):
        ds[0]
