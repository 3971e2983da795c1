"""NYUv2 segmentation: the official labelled .mat (HDF5) + splits/classMapping .mat files, and the SA-Gate and
ESANet folder layouts, all written here in their on-disk formats from the same frames
(docs/conventions.md#nyuv2-official-labeled-file)."""

from __future__ import annotations

import logging
from pathlib import Path

import h5py
import numpy as np
import pytest
import scipy.io
import torch
from PIL import Image

from freqdense.data import create_dataset
from freqdense.data.nyuv2_seg import NYUv2Folders, NYUv2Segmentation
from freqdense.errors import ConfigError, DataError
from freqdense.ops.hha import depth_to_hha

N, H, W = 4, 6, 8
TRAIN, TEST = (3, 1), (2, 4)  # 1-based frame numbers in splits.mat order
# 894 -> 40 (values 1..40) and 40 -> 13 (values 1..13): arbitrary but fixed.
MAP40 = (np.arange(894) * 7) % 40 + 1
MAP13 = (np.arange(40) * 5) % 13 + 1


def frames() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    images = np.zeros((N, H, W, 3), np.uint8)
    for n in range(N):
        images[n] = (30 * (n + 1), 120, 200 - 20 * n)  # flat colours (SA-Gate's copy is JPEG)
    labels = rng.choice(np.array([0, 1, 7, 40, 500, 894], np.uint16), size=(N, H, W))
    labels[:, 0, :6] = (0, 1, 7, 40, 500, 894)
    depths = (rng.integers(500, 9900, size=(N, H, W)) / 1000).astype(np.float32)  # whole millimetres
    raw = depths.copy()
    raw[:, 1, 2] = 0.0  # a sensor hole (in-painted in depths)
    return {"images": images, "labels": labels, "depths": depths, "raw": raw}


def expected_label(raw: np.ndarray, num_classes: int = 40) -> np.ndarray:
    """Independent reference: a per-pixel dictionary walk, no lookup tables."""
    out = np.empty(raw.shape, np.int64)
    for idx, r in np.ndenumerate(raw):
        if r == 0:
            out[idx] = 255
            continue
        c40 = int(MAP40[r - 1])
        out[idx] = (c40 if num_classes == 40 else int(MAP13[c40 - 1])) - 1
    return out


def write_mat(root: Path, f: dict[str, np.ndarray]) -> None:
    root.mkdir(parents=True, exist_ok=True)
    with h5py.File(root / "nyu_depth_v2_labeled.mat", "w") as h:  # MATLAB (H, W, 3, N) -> h5py (N, 3, W, H)
        h["images"] = f["images"].transpose(0, 3, 2, 1)
        h["depths"] = f["depths"].transpose(0, 2, 1)
        h["rawDepths"] = f["raw"].transpose(0, 2, 1)
        h["labels"] = f["labels"].transpose(0, 2, 1)
    scipy.io.savemat(
        root / "splits.mat", {"trainNdxs": np.array(TRAIN).reshape(-1, 1), "testNdxs": np.array(TEST).reshape(-1, 1)}
    )
    names = np.array([f"class{i}" for i in range(40)], dtype=object)
    scipy.io.savemat(root / "classMapping40.mat", {"mapClass": MAP40.reshape(1, -1), "className": names})
    scipy.io.savemat(
        root / "class13Mapping.mat",
        {"classMapping13": {"labels": MAP13.reshape(1, -1).astype(np.uint8), "labelName": np.array(["bed"] * 13)}},
    )


def to40(raw: np.ndarray) -> np.ndarray:
    return np.where(raw == 0, 0, MAP40[np.maximum(raw.astype(np.int64), 1) - 1]).astype(np.uint8)


def write_sagate(root: Path, f: dict[str, np.ndarray]) -> None:
    for d in ("RGB", "HHA", "Depth", "Label"):
        (root / d).mkdir(parents=True)
    for n in range(N):  # 0-based names: official frame n + 1
        Image.fromarray(f["images"][n]).save(root / "RGB" / f"{n}.jpg", quality=95)
        Image.fromarray(to40(f["labels"][n]), mode="L").save(root / "Label" / f"{n}.png")
        Image.fromarray(np.rint(f["depths"][n] * 1000).astype(np.uint16)).save(root / "Depth" / f"{n}.png")
        hha = np.zeros((H, W, 3), np.uint8)
        hha[...] = (50 + n, 150, 240)
        Image.fromarray(hha).save(root / "HHA" / f"{n}.jpg", quality=95)
    for split, ids in (("train", TRAIN), ("test", TEST)):
        (root / f"{split}.txt").write_text("".join(f"RGB/{i - 1}.jpg\tLabel/{i - 1}.png\n" for i in ids))


def write_esanet(root: Path, f: dict[str, np.ndarray]) -> None:
    for split, ids in (("train", TRAIN), ("test", TEST)):
        for d in ("rgb", "depth", "depth_raw", "labels_40", "labels_13"):
            (root / split / d).mkdir(parents=True)
        for i in ids:  # 1-based 4-digit names
            n = i - 1
            name = f"{i:04d}.png"
            Image.fromarray(f["images"][n]).save(root / split / "rgb" / name)
            Image.fromarray(np.rint(f["depths"][n] * 1000).astype(np.uint16)).save(root / split / "depth" / name)
            Image.fromarray(np.rint(f["raw"][n] * 1000).astype(np.uint16)).save(root / split / "depth_raw" / name)
            c40 = to40(f["labels"][n])
            Image.fromarray(c40, mode="L").save(root / split / "labels_40" / name)
            c13 = np.where(c40 == 0, 0, MAP13[np.maximum(c40.astype(np.int64), 1) - 1]).astype(np.uint8)
            Image.fromarray(c13, mode="L").save(root / split / "labels_13" / name)
        (root / f"{split}.txt").write_text("".join(f"{i:04d}\n" for i in ids))


@pytest.fixture(scope="module")
def trees(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, np.ndarray]]:
    base = tmp_path_factory.mktemp("nyuv2")
    f = frames()
    write_mat(base / "mat", f)
    write_sagate(base / "sagate", f)
    write_esanet(base / "esanet", f)
    return base, f


def test_mat_labels_depth_split_order_and_axis_order(trees, caplog: pytest.LogCaptureFixture) -> None:
    base, f = trees
    with caplog.at_level(logging.WARNING):
        ds = create_dataset("nyuv2", root=base / "mat", split="train")
    assert any("795" in r.message for r in caplog.records)
    assert len(ds) == 2 and [ds[i]["meta"]["id"] for i in range(2)] == ["0003", "0001"]
    assert ds.num_classes == 40 and ds.ignore_index == 255
    s = ds[0]  # frame 3 -> h5py index 2
    assert set(s) == {"image", "semantic", "depth", "depth_valid", "intrinsics", "meta"}
    assert np.array_equal(s["semantic"].numpy(), expected_label(f["labels"][2]))
    assert s["semantic"][0, :6].tolist() == [
        255,
        0,
        int(MAP40[6]) - 1,
        int(MAP40[39]) - 1,
        int(MAP40[499]) - 1,
        int(MAP40[893]) - 1,
    ]
    assert np.array_equal(s["depth"][0].numpy(), f["depths"][2]) and bool(s["depth_valid"].all())
    assert np.array_equal((s["image"] * 255).round().byte().permute(1, 2, 0).numpy(), f["images"][2])
    test = NYUv2Segmentation(root=base / "mat", split="test", raw_depth=True)
    assert len(test) == 2 and test[1]["meta"]["id"] == "0004"
    assert float(test[1]["depth"][0, 1, 2]) == 0.0 and int((~test[1]["depth_valid"]).sum()) == 1


def test_mat_13_classes(trees) -> None:
    base, f = trees
    ds = NYUv2Segmentation(root=base / "mat", split="test", num_classes=13)
    assert ds.num_classes == 13 and ds.classes[0] == "bed"
    assert np.array_equal(ds[0]["semantic"].numpy(), expected_label(f["labels"][1], 13))


def test_mat_hha_compute_uses_inpainted_depth_with_the_raw_holes(trees) -> None:
    base, f = trees
    s = NYUv2Segmentation(root=base / "mat", split="train", hha="compute", raw_depth=True)[1]  # frame 1
    ref = depth_to_hha(
        torch.from_numpy(f["depths"][0])[None, None],
        s["intrinsics"][None],
        raw_depth=torch.from_numpy(f["raw"][0])[None, None],
        unit_range=True,
    )[0]
    assert torch.equal(s["hha"], ref)
    assert float(s["hha"][0, 1, 2]) > 0  # the in-painted depth encodes the raw hole's disparity


def test_mat_errors(trees, tmp_path: Path) -> None:
    base, f = trees
    with pytest.raises(ConfigError, match="train, test"):
        NYUv2Segmentation(root=base / "mat", split="val")
    with pytest.raises(ConfigError, match="40, 13"):
        NYUv2Segmentation(root=base / "mat", num_classes=37)
    with pytest.raises(DataError, match="hha_root"):
        NYUv2Segmentation(root=base / "mat", hha="load")
    bad = dict(f, labels=f["labels"].copy())
    bad["labels"][1, 0, 0] = 895  # beyond the 894 raw classes
    write_mat(tmp_path / "bad", bad)
    ds = NYUv2Segmentation(root=tmp_path / "bad", split="test")
    with pytest.raises(DataError, match="nyu_depth_v2_labeled.mat"):
        ds[0]
    (tmp_path / "bad" / "classMapping40.mat").unlink()
    with pytest.raises(DataError, match="classMapping40.mat"):
        NYUv2Segmentation(root=tmp_path / "bad")


def test_sagate_layout_zero_based_names(trees) -> None:
    base, f = trees
    ds = create_dataset("nyuv2_folders", root=base / "sagate", split="train", hha="load")
    assert ds.layout == "sagate" and [ds[i]["meta"]["id"] for i in range(2)] == ["2", "0"]
    s = ds[0]  # SA-Gate "2" = official frame 3
    assert set(s) == {"image", "semantic", "depth", "depth_valid", "intrinsics", "hha", "meta"}
    assert np.array_equal(s["semantic"].numpy(), expected_label(f["labels"][2]))
    assert np.array_equal(s["depth"][0].numpy(), f["depths"][2])  # uint16 mm -> metres
    assert (
        s["hha"].shape == (3, H, W)
        and float((s["hha"][:, 2, 3] * 255 - torch.tensor([52.0, 150, 240])).abs().max()) <= 3
    )
    with pytest.raises(ConfigError, match="ESANet"):
        NYUv2Folders(root=base / "sagate", raw_depth=True)
    with pytest.raises(ConfigError, match="40"):
        NYUv2Folders(root=base / "sagate", num_classes=13)


def test_esanet_layout_one_based_names_raw_depth_and_13_classes(trees) -> None:
    base, f = trees
    ds = NYUv2Folders(root=base / "esanet", split="test")
    assert ds.layout == "esanet" and [ds[i]["meta"]["id"] for i in range(2)] == ["0002", "0004"]
    s = ds[1]
    assert np.array_equal(s["semantic"].numpy(), expected_label(f["labels"][3]))
    assert np.array_equal(s["depth"][0].numpy(), f["depths"][3])
    assert np.array_equal((s["image"] * 255).round().byte().permute(1, 2, 0).numpy(), f["images"][3])
    raw = NYUv2Folders(root=base / "esanet", split="test", raw_depth=True)[1]
    assert float(raw["depth"][0, 1, 2]) == 0.0
    c13 = NYUv2Folders(root=base / "esanet", split="test", num_classes=13)[1]
    assert np.array_equal(c13["semantic"].numpy(), expected_label(f["labels"][3], 13))
    hha = NYUv2Folders(root=base / "esanet", split="test", hha="compute")[1]["hha"]
    assert torch.equal(hha, depth_to_hha(s["depth"][None], s["intrinsics"][None], unit_range=True)[0])


def test_three_numbering_schemes_agree_on_the_same_frame(trees) -> None:
    base, _ = trees
    mat = NYUv2Segmentation(root=base / "mat", split="train")[0]  # splits.mat frame 3
    esanet = NYUv2Folders(root=base / "esanet", split="train")[0]  # 0003.png
    sagate = NYUv2Folders(root=base / "sagate", split="train")[0]  # 2.jpg
    assert (mat["meta"]["id"], esanet["meta"]["id"], sagate["meta"]["id"]) == ("0003", "0003", "2")
    for other in (esanet, sagate):
        assert torch.equal(mat["semantic"], other["semantic"]) and torch.equal(mat["depth"], other["depth"])
        assert torch.allclose(mat["intrinsics"], other["intrinsics"], atol=1e-4)


def test_layout_detection_and_errors(trees, tmp_path: Path) -> None:
    base, f = trees
    with pytest.raises(DataError, match="no known layout"):
        NYUv2Folders(root=tmp_path)
    write_sagate(tmp_path / "both", f)
    (tmp_path / "both" / "train" / "rgb").mkdir(parents=True)
    with pytest.raises(ConfigError, match="layout='sagate'"):
        NYUv2Folders(root=tmp_path / "both")
    assert NYUv2Folders(root=tmp_path / "both", layout="sagate").layout == "sagate"
    with pytest.raises(ConfigError, match="layout"):
        NYUv2Folders(root=base / "sagate", layout="dformer")
    (tmp_path / "both" / "Label" / "2.png").unlink()
    with pytest.raises(DataError, match=r"Label/2\.png"):
        NYUv2Folders(root=tmp_path / "both", layout="sagate")
