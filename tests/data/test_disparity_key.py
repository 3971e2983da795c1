"""The ``disparity`` sample key: transforms (hand-computed values), validation, and the depth task ignoring it."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from freqdense.data.sample import DENSE_FLOAT_KEYS, DISPARITY_KEYS, SPATIAL_KEYS, depth_valid_mask
from freqdense.data.transforms import CenterZoom, center_zoom, crop, hflip, resize
from freqdense.data.validate import validate_sample
from freqdense.errors import DataError
from freqdense.tasks.depth import DepthEstimation


def disp(rows: list[list[float]]) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.float32)[None]


def test_disparity_is_spatial_but_not_depth():
    assert DISPARITY_KEYS == ("disparity",)
    assert "disparity" in SPATIAL_KEYS and "disparity" not in DENSE_FLOAT_KEYS


def test_resize_is_nearest_neighbour_with_values_unchanged():
    d = disp([[1, 2, 3, 4], [5, 6, 0, 8]])
    out = resize({"image": torch.rand(3, 2, 4), "disparity": d}, (4, 2))
    # Source rows floor((i + 0.5) * 2 / 4) = 0, 0, 1, 1; columns floor((j + 0.5) * 4 / 2) = 1, 3.
    # Not multiplied by W'/W = 0.5: the values keep the pixel unit of their reference scale.
    assert out["disparity"].tolist() == [[[2, 4], [2, 4], [6, 8], [6, 8]]]
    assert out["disparity"].dtype == torch.float32
    up = resize({"disparity": disp([[1, 0], [3, 4]])}, (3, 3))["disparity"]  # rows/cols 0, 1, 1: no blending
    assert up.tolist() == [[[1, 0, 0], [3, 4, 4], [3, 4, 4]]]


def test_crop_pads_with_zero_invalid():
    d = disp([[1, 2, 3], [4, 5, 6]])
    out = crop({"disparity": d, "semantic": torch.zeros(2, 3, dtype=torch.int64)}, -1, 1, 3, 3)
    assert out["disparity"].tolist() == [[[0, 0, 0], [2, 3, 0], [5, 6, 0]]]
    assert out["semantic"][0].tolist() == [255, 255, 255]  # for contrast: labels pad with ignore


def test_hflip_mirrors_like_depth_without_changing_values():
    d = disp([[1, 2, 3], [4, 5, 0]])
    s = {"disparity": d, "depth": d.clone(), "sensor_flow": torch.ones(2, 2, 3)}
    out = hflip(s)
    assert out["disparity"].tolist() == [[[3, 2, 1], [0, 5, 4]]]  # not negated (unlike the flow's x)
    assert torch.equal(out["disparity"], out["depth"]) and out["sensor_flow"][0, 0, 0] == -1
    assert torch.equal(hflip(out)["disparity"], d)


def test_center_zoom_multiplies_disparity_where_it_divides_depth():
    d = disp([[1, 2, 3], [4, 0, 6], [7, 8, 9]])
    depth = torch.where(d > 0, 12.0 / d, torch.zeros_like(d))  # depth * disparity = 12 where valid
    s = {"image": torch.rand(3, 3, 3), "disparity": d, "depth": depth, "depth_valid": depth_valid_mask(depth)}
    out = center_zoom(s, 2.0)
    # Resize 3x3 -> 6x6 (source index floor((i + 0.5) / 2) = 0, 0, 1, 1, 2, 2), centre crop from row/col 1:
    # source rows and columns 0, 1, 1; then x 2.
    assert out["disparity"].tolist() == [[[2, 4, 4], [8, 0, 0], [8, 0, 0]]]
    valid = out["depth_valid"]
    assert torch.allclose((out["depth"] * out["disparity"])[valid], torch.tensor(12.0))  # inverse depth kept
    plain = center_zoom(s, 2.0, divide_depth=False)
    assert plain["disparity"].tolist() == [[[1, 2, 2], [4, 0, 0], [4, 0, 0]]]
    shrunk = center_zoom(s, 0.5)  # 3x3 -> 2x2 (source rows/cols 0, 2), padded to 3x3 with 0, then x 0.5
    assert shrunk["disparity"].tolist() == [[[0, 0, 0], [0, 0.5, 1.5], [0, 3.5, 4.5]]]
    drawn = CenterZoom([2.0])(s, rng=np.random.default_rng(0))  # the transform object goes through center_zoom
    assert torch.equal(drawn["disparity"], out["disparity"])


def test_validate_checks_disparity_and_its_size():
    base = {"image": torch.rand(3, 2, 3), "disparity": disp([[0.0, 1.5, 2.0], [0.0, 0.25, 9.0]])}
    assert validate_sample(base, num_classes=None, source="cityscapes_mtan/val") is base
    bad = {**base, "disparity": disp([[float("nan"), 1.0, -2.0], [0.0, 1.0, 1.0]])}
    with pytest.raises(DataError, match=r"'disparity'.*1 NaN, 0 inf and 1 negative"):
        validate_sample(bad, num_classes=None, source="cityscapes_mtan/val")
    fixed = validate_sample(bad, num_classes=None, source="x", on_error="sanitize")
    assert fixed["disparity"].tolist() == [[[0, 1, 0], [0, 1, 1]]]
    with pytest.raises(DataError, match=r"image: 2x3.*disparity: 2x2"):
        validate_sample({**base, "disparity": torch.ones(1, 2, 2)}, num_classes=None, source="x")
    with pytest.raises(DataError, match=r"'disparity'.*\(1, H, W\)"):
        validate_sample({**base, "disparity": torch.ones(2, 2, 3)}, num_classes=None, source="x")


def test_depth_task_ignores_disparity():
    torch.manual_seed(0)
    depth = torch.rand(2, 1, 4, 5) * 5 + 0.5
    batch = {"depth": depth, "depth_valid": depth_valid_mask(depth)}
    with_disp = {**batch, "disparity": 1.0 / depth}
    pred = torch.rand(2, 1, 4, 5) * 5
    task = DepthEstimation()
    assert torch.equal(task.loss(pred, batch), task.loss(pred, with_disp))
    m1, m2 = task.make_metric(), task.make_metric()
    task.update_metric(m1, pred, batch)
    task.update_metric(m2, pred, with_disp)
    assert m1.compute() == m2.compute()
    with pytest.raises(KeyError, match="depth"):  # disparity alone is never taken for depth
        task.loss(pred, {"disparity": 1.0 / depth})
