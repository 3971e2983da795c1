"""NYUD_MT (Multi-Task-Learning-PyTorch layout) on a tiny tree in the exact on-disk formats
(docs/conventions.md#nyud-v2-multi-task-learning-pytorch-layout)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from freqdense.data import create_dataset
from freqdense.data.nyud_mt import NYUDMultiTask
from freqdense.data.nyuv2 import NYU_COLOR_INTRINSICS
from freqdense.data.transforms import compute_hha, hflip, resize
from freqdense.errors import ConfigError, DataError

H, W = 17, 25  # odd, and not 480x640: the loader must not hard-code the size
IDS = ("0003", "0004", "0005")
TRAIN, VAL = ("0005", "0003"), ("0004",)  # list order, not sorted order


def write_nyud_mt(root: Path) -> dict[str, dict[str, np.ndarray]]:
    for d in ("images", "segmentation", "depth", "gt_sets"):
        (root / d).mkdir(parents=True)
    data = {}
    for k, i in enumerate(IDS):
        rng = np.random.default_rng(k)
        rgb = np.zeros((H, W, 3), np.uint8)
        rgb[..., 0], rgb[..., 1], rgb[..., 2] = 40 * (k + 1), 200, 90  # flat colours survive JPEG closely
        label = rng.choice(np.array([0, 1, 7, 40], np.uint8), size=(H, W))
        label[0, :4] = (0, 1, 7, 40)
        depth = rng.uniform(0.5, 9.9, size=(H, W)).astype(np.float32)
        depth[1, 2] = depth[5, 7] = 0.0  # missing
        Image.fromarray(rgb).save(root / "images" / f"{i}.jpg", quality=95)
        Image.fromarray(label, mode="L").save(root / "segmentation" / f"{i}.png")
        np.save(root / "depth" / f"{i}.npy", depth)
        data[i] = {"rgb": rgb, "label": label, "depth": depth}
    (root / "gt_sets" / "train.txt").write_text("\n".join(TRAIN) + "\n")
    (root / "gt_sets" / "val.txt").write_text("\n".join(VAL) + "\n")
    return data


@pytest.fixture
def nyud(tmp_path: Path) -> tuple[Path, dict]:
    root = tmp_path / "NYUD_MT"
    return root, write_nyud_mt(root)


def test_sample_keys_label_mapping_depth_and_split_order(nyud, caplog: pytest.LogCaptureFixture) -> None:
    root, data = nyud
    with caplog.at_level(logging.WARNING):
        ds = create_dataset("nyud_mt", root=root, split="train")
    assert any("795" in r.message for r in caplog.records)  # fixture split size differs from the official one
    assert len(ds) == 2 and [ds[i]["meta"]["id"] for i in range(2)] == list(TRAIN)
    assert ds.num_classes == 40 and ds.classes[0] == "wall" and ds.classes[39] == "otherprop"
    s = ds[1]
    assert set(s) == {"image", "semantic", "depth", "depth_valid", "intrinsics", "meta"}
    raw = data["0003"]["label"]
    expected = np.where(raw == 0, 255, raw.astype(np.int64) - 1)  # 0 -> void, 1..40 -> 0..39
    assert s["semantic"].dtype == torch.int64 and np.array_equal(s["semantic"].numpy(), expected)
    assert s["semantic"][0, :4].tolist() == [255, 0, 6, 39]
    assert s["depth"].shape == (1, H, W) and s["depth"].dtype == torch.float32
    assert np.array_equal(s["depth"][0].numpy(), data["0003"]["depth"])  # metres, untouched
    assert np.array_equal(s["depth_valid"][0].numpy(), data["0003"]["depth"] > 0)
    assert int((~s["depth_valid"]).sum()) == 2
    assert s["image"].shape == (3, H, W)
    assert float((s["image"] * 255 - torch.from_numpy(data["0003"]["rgb"]).permute(2, 0, 1)).abs().max()) <= 3.0
    assert create_dataset("nyud_mt", root=root, split="val")[0]["meta"] == {"id": "0004", "index": 0, "split": "val"}


def test_intrinsics_are_the_nyu_camera_resampled_to_the_image_size(nyud) -> None:
    root, _ = nyud
    k = NYUDMultiTask(root=root)[0]["intrinsics"]
    fx, fy, cx, cy = NYU_COLOR_INTRINSICS
    full = torch.tensor([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])
    # Independent route: resize a 480x640 sample to H x W with the joint transform.
    ref = resize({"depth": torch.ones(1, 480, 640), "intrinsics": full}, (H, W))["intrinsics"]
    assert torch.allclose(k, ref, atol=1e-4)
    own = NYUDMultiTask(root=root, intrinsics=(10.0, 11.0, 12.0, 8.0))[0]["intrinsics"]
    assert own.tolist() == [[10.0, 0.0, 12.0], [0.0, 11.0, 8.0], [0.0, 0.0, 1.0]]
    with pytest.raises(ConfigError, match="fx, fy, cx, cy"):
        NYUDMultiTask(root=root, intrinsics=(10.0, 11.0))


def hha_png(k: int) -> np.ndarray:
    arr = np.zeros((H, W, 3), np.uint8)
    arr[..., 0], arr[..., 1], arr[..., 2] = 10 + k, 100 + k, 200 + k  # distinct per channel: order is checked
    arr[3, 4] = (1, 2, 3)
    return arr


def test_hha_load_from_the_hha_folder_and_from_a_freqdense_cache(nyud) -> None:
    root, _ = nyud
    (root / "hha").mkdir()
    for k, i in enumerate(IDS):
        Image.fromarray(hha_png(k)).save(root / "hha" / f"{i}.png")
    s = NYUDMultiTask(root=root, split="train", hha="load")[0]  # id 0005 -> hha_png(2)
    assert s["hha"].dtype == torch.float32 and s["hha"].shape == (3, H, W)
    assert torch.equal(s["hha"] * 255, torch.from_numpy(hha_png(2)).permute(2, 0, 1).float())

    cache = root.parent / "cache" / "train"  # `freqdense data hha --out cache` layout: <index:06d>.png + meta.json
    cache.mkdir(parents=True)
    for index in range(2):
        Image.fromarray(hha_png(10 + index)).save(cache / f"{index:06d}.png")
    meta = {"dataset": "nyud_mt", "split": "train", "num": 2}
    (cache / "meta.json").write_text(json.dumps(meta))
    ds = NYUDMultiTask(root=root, split="train", hha="load", hha_root=root.parent / "cache")
    assert torch.equal(ds[1]["hha"] * 255, torch.from_numpy(hha_png(11)).permute(2, 0, 1).float())
    (cache / "meta.json").write_text(json.dumps({**meta, "dataset": "nyuv2"}))
    with pytest.raises(DataError, match="nyuv2"):
        NYUDMultiTask(root=root, split="train", hha="load", hha_root=root.parent / "cache")
    (cache / "meta.json").write_text(json.dumps(meta))
    (cache / "000001.png").unlink()
    with pytest.raises(DataError, match="000001.png"):
        NYUDMultiTask(root=root, split="train", hha="load", hha_root=root.parent / "cache")
    with pytest.raises(DataError, match="000001.png"):
        NYUDMultiTask(root=root, split="train", hha="load", hha_root=cache)  # pointing at the split folder works too
    assert len(NYUDMultiTask(root=root, split="train", hha="load", hha_root=cache, num_samples=1)) == 1


def test_hha_compute_encodes_depth_before_the_transform(nyud) -> None:
    root, data = nyud
    plain = NYUDMultiTask(root=root, split="val")[0]
    s = NYUDMultiTask(root=root, split="val", hha="compute")[0]
    assert torch.equal(s["hha"], compute_hha(plain, depth_key="depth")["hha"])
    z = data["0004"]["depth"].astype(np.float64)
    disparity = np.minimum(np.rint(31000.0 / np.maximum(100.0 * z, 100.0)), 255.0)  # Gupta et al., 8 bits
    assert np.allclose(s["hha"][0].numpy()[z > 0] * 255, disparity[z > 0], atol=1e-4)
    assert float(s["hha"][:, 1, 2].abs().sum()) == 0.0  # missing depth -> 0 in all channels
    flipped = NYUDMultiTask(root=root, split="val", hha="compute", transform=hflip)[0]
    assert torch.equal(flipped["hha"], s["hha"].flip(-1))


def test_errors_name_the_file_and_the_choices(nyud) -> None:
    root, _ = nyud
    with pytest.raises(ConfigError, match="'train', 'val'|train, val"):
        NYUDMultiTask(root=root, split="test")
    with pytest.raises(ConfigError, match="compute"):
        NYUDMultiTask(root=root, hha="yes")
    with pytest.raises(DataError, match="hha"):
        NYUDMultiTask(root=root, hha="load")  # no <root>/hha and no hha_root
    bad = np.full((H, W), 41, np.uint8)
    Image.fromarray(bad, mode="L").save(root / "segmentation" / "0004.png")
    with pytest.raises(DataError, match=r"0004\.png.*41"):
        NYUDMultiTask(root=root, split="val")[0]
    np.save(root / "depth" / "0004.npy", np.ones((H, W + 1), np.float32))
    Image.fromarray(np.ones((H, W), np.uint8), mode="L").save(root / "segmentation" / "0004.png")
    with pytest.raises(DataError, match=r"0004\.npy"):
        NYUDMultiTask(root=root, split="val")[0]
    (root / "depth" / "0003.npy").unlink()
    with pytest.raises(DataError, match=r"0003\.npy"):
        NYUDMultiTask(root=root, split="train")
    with pytest.raises(DataError, match="root"):
        NYUDMultiTask(root=root / "missing")
