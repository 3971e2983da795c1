"""validate_sample: hand-made bad samples raise naming source, key and values; sanitize fixes value problems."""

from __future__ import annotations

import logging

import pytest
import torch

from freqdense.data.validate import validate_sample
from freqdense.errors import DataError


def good_sample(h: int = 4, w: int = 5) -> dict:
    depth = torch.linspace(0.0, 3.0, h * w).reshape(1, h, w)
    return {
        "image": torch.rand(3, h, w, generator=torch.Generator().manual_seed(0)),
        "image_next": torch.rand(3, h, w, generator=torch.Generator().manual_seed(1)),
        "semantic": torch.tensor([0, 1, 39, 255]).repeat(h * w // 4 + 1)[: h * w].reshape(h, w),
        "depth": depth,
        "depth_valid": depth > 0,
        "sensor_flow": torch.zeros(2, h, w),
        "intrinsics": torch.tensor([[10.0, 0.0, 2.0], [0.0, 10.0, 1.5], [0.0, 0.0, 1.0]]),
        "pose_next": torch.eye(4),
        "baseline": torch.tensor(0.1),
        "meta": {"id": "0003", "index": 0, "split": "train"},
    }


def check(sample: dict, **kw):
    return validate_sample(sample, num_classes=40, source="nyud_mt/train", **kw)


def test_good_sample_passes_unchanged():
    s = good_sample()
    assert check(s) is s
    assert check(s, on_error="sanitize") is s


def test_label_57_for_40_classes_names_the_value_and_fix():
    s = good_sample()
    s["semantic"][1, 2] = 57
    s["semantic"][0, 0] = -1
    with pytest.raises(DataError) as err:
        check(s)
    msg = str(err.value)
    assert "57 (1 px)" in msg and "-1 (1 px)" in msg
    assert "nyud_mt/train" in msg and "0003" in msg and "'semantic'" in msg
    assert "map them to 255 or fix num_classes" in msg


def test_ignore_index_is_accepted_and_configurable():
    s = good_sample()
    assert check(s) is s  # contains 255
    with pytest.raises(DataError, match="255"):
        validate_sample(s, num_classes=40, ignore_index=-1, source="x")


def test_nan_depth_raises_and_sanitizes(caplog):
    s = good_sample()
    s["depth"][0, 1, 1] = float("nan")
    s["depth"][0, 2, 2] = -1.0
    with pytest.raises(DataError, match="set invalid depth to 0") as err:
        check(s)
    assert "1 NaN" in str(err.value) and "1 negative" in str(err.value)
    with caplog.at_level(logging.WARNING, logger="freqdense.data.validate"):
        fixed = check(s, on_error="sanitize")
    assert "sanitised" in caplog.text
    assert fixed["depth"][0, 1, 1] == 0 and fixed["depth"][0, 2, 2] == 0
    assert torch.equal(fixed["depth_valid"], fixed["depth"] > 0)
    assert torch.isnan(s["depth"][0, 1, 1]), "input must not be modified"
    assert check(fixed) is fixed


def test_inf_depth_raises():
    s = good_sample()
    s["depth"][0, 0, 3] = float("inf")
    with pytest.raises(DataError, match="1 inf"):
        check(s)


def test_image_range_and_nan():
    s = good_sample()
    s["image"] = s["image"] * 255
    with pytest.raises(DataError, match=r"\[0, 1\].*divide 8-bit images by 255"):
        check(s)
    s = good_sample()
    s["image_next"][0, 0, 0] = float("nan")
    with pytest.raises(DataError, match="'image_next'.*1 NaN"):
        check(s)
    fixed = check(s, on_error="sanitize")
    assert fixed["image_next"][0, 0, 0] == 0 and torch.isfinite(fixed["image_next"]).all()


def test_sanitize_labels_and_dtype():
    s = good_sample()
    s["semantic"] = s["semantic"].to(torch.int32)
    with pytest.raises(DataError, match="int32"):
        check(s)
    s["semantic"][0, 1] = 57
    fixed = check(s, on_error="sanitize")
    assert fixed["semantic"].dtype == torch.int64 and fixed["semantic"][0, 1] == 255
    s["semantic"] = s["semantic"].float()
    with pytest.raises(DataError, match="int64"):
        check(s, on_error="sanitize")  # float labels are structural: no safe automatic fix


def test_shape_mismatch_names_the_keys():
    s = good_sample()
    s["depth"] = torch.ones(1, 3, 5)
    with pytest.raises(DataError, match=r"image: 4x5.*depth: 3x5"):
        check(s, on_error="sanitize")
    s = good_sample()
    s["image"] = torch.rand(4, 4, 5)
    with pytest.raises(DataError, match=r"'image'.*\(3, H, W\)"):
        check(s)


def test_depth_valid_must_agree_with_depth():
    s = good_sample()
    s["depth_valid"] = torch.ones_like(s["depth_valid"])
    with pytest.raises(DataError, match="depth_valid_mask"):
        check(s)
    assert torch.equal(check(s, on_error="sanitize")["depth_valid"], s["depth"] > 0)
    s["depth_valid"] = s["depth_valid"].float()
    with pytest.raises(DataError, match="bool"):
        check(s, on_error="sanitize")


def test_camera_checks():
    s = good_sample()
    s["intrinsics"] = torch.eye(3) * -1
    with pytest.raises(DataError, match="intrinsics"):
        check(s)
    s = good_sample()
    s["pose_next"] = torch.eye(4) * 2
    with pytest.raises(DataError, match="pose_next.*orthonormal"):
        check(s)
    s = good_sample()
    s["baseline"] = torch.tensor([0.1])
    with pytest.raises(DataError, match="baseline"):
        check(s)
    s = good_sample()
    s["sensor_flow"][0, 0, 0] = float("nan")
    with pytest.raises(DataError, match="sensor_flow"):
        check(s, on_error="sanitize")


def test_num_classes_required_only_with_semantic():
    s = good_sample()
    with pytest.raises(DataError, match="num_classes"):
        validate_sample(s, num_classes=None, source="x")
    del s["semantic"]
    assert validate_sample(s, num_classes=None, source="x") is s
