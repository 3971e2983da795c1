"""NYUv2 labeled .mat (HDF5, MATLAB axis order) + splits.mat (1-based) depth loader and its evaluation crop."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
import scipy.io
import torch

from freqdense.data import create_dataset
from freqdense.data.nyuv2 import NYUv2Depth
from freqdense.errors import ConfigError, DataError
from freqdense.metrics.depth import DepthMetrics, crop_mask

N, H, W = 4, 6, 8


@pytest.fixture()
def nyu_root(tmp_path: Path) -> Path:
    images = np.zeros((N, H, W, 3), np.uint8)  # MATLAB order (H, W, 3, N) -> h5py sees (N, 3, W, H)
    depths = np.zeros((N, H, W), np.float32)
    for n in range(N):
        images[n, ..., 0] = 10 * (n + 1)
        images[n, 1, 2, 1] = 200  # a marker at row 1, column 2
        depths[n] = 1.0 + n
        depths[n, 4, 7] = 9.5
    raw = depths.copy()
    raw[:, 0, 0] = 0.0
    with h5py.File(tmp_path / "nyu_depth_v2_labeled.mat", "w") as f:
        f["images"] = images.transpose(0, 3, 2, 1)
        f["depths"] = depths.transpose(0, 2, 1)
        f["rawDepths"] = raw.transpose(0, 2, 1)
    scipy.io.savemat(tmp_path / "splits.mat", {"trainNdxs": np.array([[1], [2]]), "testNdxs": np.array([[3], [4]])})
    return tmp_path


def test_sample_undoes_matlab_axis_order_and_one_based_indices(nyu_root: Path) -> None:
    ds = create_dataset("nyuv2_depth", root=nyu_root, split="test")
    assert len(ds) == 2
    s = ds[0]  # testNdxs[0] = 3 (1-based) -> frame n = 2
    assert s["image"].shape == (3, H, W) and s["depth"].shape == (1, H, W)
    assert round(float(s["image"][0, 0, 0]) * 255) == 30 and round(float(s["image"][1, 1, 2]) * 255) == 200
    assert float(s["depth"][0, 0, 0]) == 3.0 and float(s["depth"][0, 4, 7]) == 9.5
    assert bool(s["depth_valid"].all()) and s["meta"]["id"] == "0003"
    assert float(s["intrinsics"][0, 0]) == pytest.approx(518.8579)
    raw = NYUv2Depth(root=nyu_root, split="train", raw_depth=True)[1]
    assert float(raw["depth"][0, 0, 0]) == 0.0 and int(raw["depth_valid"].sum()) == H * W - 1
    assert raw["meta"]["id"] == "0002"


def test_errors(nyu_root: Path) -> None:
    with pytest.raises(ConfigError, match="val"):
        NYUv2Depth(root=nyu_root, split="val")
    scipy.io.savemat(nyu_root / "splits.mat", {"trainNdxs": np.array([[1]]), "testNdxs": np.array([[9]])})
    with pytest.raises(DataError, match="frame 9"):
        NYUv2Depth(root=nyu_root, split="test")
    (nyu_root / "nyu_depth_v2_labeled.mat").unlink()
    with pytest.raises(DataError, match="nyu_depth_v2_labeled.mat"):
        NYUv2Depth(root=nyu_root)


def test_nyu_eigen_crop_and_protocol() -> None:
    mask = crop_mask(480, 640, "nyu_eigen")  # Eigen crop [45:471, 41:601]
    rows, cols = mask.any(1).nonzero().flatten(), mask.any(0).nonzero().flatten()
    assert (int(rows[0]), int(rows[-1]), int(cols[0]), int(cols[-1])) == (45, 470, 41, 600)
    m = DepthMetrics.from_protocol("nyuv2_eigen_mono")
    gt = torch.full((1, 1, 480, 640), 4.0)
    gt[..., 100, 100] = 12.0  # above the 10 m cap: ignored
    m.update(gt * 2.0, gt)
    assert m.compute()["abs_rel"] == pytest.approx(0.0, abs=1e-12) and m.num_pixels == 426 * 560 - 1
