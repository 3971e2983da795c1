"""validate_sample on image-like keys (``hha``): layout, dtype, finiteness, range and the spatial-size check."""

from __future__ import annotations

import logging
import re

import pytest
import torch

from freqdense.data.sample import IMAGE_LIKE_KEYS
from freqdense.data.validate import validate_sample
from freqdense.errors import DataError


def rgbd_sample(h: int = 4, w: int = 6) -> dict:
    depth = torch.linspace(0.5, 3.0, h * w).reshape(1, h, w)
    return {
        "image": torch.rand(3, h, w, generator=torch.Generator().manual_seed(0)),
        "hha": torch.rand(3, h, w, generator=torch.Generator().manual_seed(1)),
        "semantic": torch.zeros(h, w, dtype=torch.int64),
        "depth": depth,
        "depth_valid": depth > 0,
        "meta": {"id": "0007", "index": 0, "split": "train"},
    }


def check(sample: dict, **kw):
    return validate_sample(sample, num_classes=40, source="nyud_mt/train", **kw)


def test_hha_is_an_image_like_key_and_a_good_one_passes():
    assert "hha" in IMAGE_LIKE_KEYS
    s = rgbd_sample()
    s["hha"][:, 0, 0] = 0.0  # invalid-depth code and both ends of the range are fine
    s["hha"][:, 1, 1] = 1.0
    assert check(s) is s and check(s, on_error="sanitize") is s


def test_hha_of_another_size_fails_the_spatial_check_even_alone():
    s = rgbd_sample()
    s["hha"] = torch.rand(3, 4, 5)
    with pytest.raises(DataError, match=r"image: 4x6.*hha: 4x5") as err:
        check(s, on_error="sanitize")  # structural: no sanitising
    assert "nyud_mt/train (id 0007)" in str(err.value)
    # With no other map the size check passes, so the layout check must still catch a wrong rank.
    with pytest.raises(DataError, match=r"'hha'.*\(3, H, W\)"):
        check({"hha": torch.rand(1, 4, 5)})


@pytest.mark.parametrize("shape", [(4, 4, 6), (1, 4, 6)])
def test_hha_needs_three_channels(shape):
    s = rgbd_sample()
    s["hha"] = torch.rand(*shape)
    with pytest.raises(DataError, match=re.escape(f"sample['hha'] must have shape (3, H, W) = (3, 4, 6), got {shape}")):
        check(s)


def test_hha_must_be_float():
    s = rgbd_sample()
    s["hha"] = (s["hha"] * 255).to(torch.uint8)
    with pytest.raises(DataError, match=r"'hha'.*float32, got torch.uint8"):
        check(s, on_error="sanitize")


def test_8bit_hha_names_the_range_and_the_fix():
    s = rgbd_sample()
    s["hha"] = torch.full((3, 4, 6), 38.0)
    s["hha"][0, 0, 0] = 255.0
    with pytest.raises(DataError) as err:
        check(s)
    msg = str(err.value)
    assert "sample['hha']" in msg and "HHA encoding / 255" in msg and "range [38, 255]" in msg
    assert "divide the 8-bit HHA image by 255" in msg


def test_non_finite_hha_raises_and_sanitizes_to_the_invalid_code(caplog):
    s = rgbd_sample()
    s["hha"][0, 2, 3] = float("nan")
    s["hha"][1, 0, 1] = float("inf")
    s["hha"][2, 3, 5] = -0.25
    with pytest.raises(DataError, match=r"'hha'.*2 NaN/inf values and range \[-0.25, "):
        check(s)
    with caplog.at_level(logging.WARNING, logger="freqdense.data.validate"):
        fixed = check(s, on_error="sanitize")
    assert "sanitised" in caplog.text and "'hha'" in caplog.text
    expected = s["hha"].clone()
    expected[0, 2, 3], expected[1, 0, 1], expected[2, 3, 5] = 0.0, 1.0, 0.0  # NaN -> 0, +inf -> 1, clamp
    assert torch.equal(fixed["hha"], expected)
    assert torch.isnan(s["hha"][0, 2, 3]), "input must not be modified"
    assert fixed["image"] is s["image"] and check(fixed) is fixed
