"""Boxes through the joint transforms: flip, resize, scale, crop, zoom, keep-ratio resize; rows stay aligned."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from freqdense.data.transforms import (
    CenterZoom,
    RandomCrop,
    RandomHorizontalFlip,
    RandomScale,
    ResizeKeepRatio,
    build_transforms,
    crop,
    crop_boxes,
    hflip,
    resize,
)
from freqdense.data.validate import validate_sample
from freqdense.errors import ConfigError, DataError, ShapeError


def _sample(h: int = 10, w: int = 13) -> dict:
    """An image with two boxes and an instance map painting exactly the boxes' pixels (ids 1 and 2)."""
    inst = torch.zeros(h, w, dtype=torch.int64)
    inst[1:4, 2:6] = 1  # box 1: x in [2, 6), y in [1, 4)
    inst[5:9, 7:12] = 2  # box 2: x in [7, 12), y in [5, 9)
    return {
        "image": torch.rand(3, h, w, dtype=torch.float64).float(),
        "instance": inst,
        "boxes": torch.tensor([[2.0, 1.0, 6.0, 4.0], [7.0, 5.0, 12.0, 9.0]]),
        "labels": torch.tensor([3, 0]),
        "instance_ids": torch.tensor([1, 2]),
        "meta": {"id": "toy"},
    }


def _boxes_of(instance: torch.Tensor, ids) -> torch.Tensor:
    """Boxes of the pixels of each id (x2 = max x + 1), the instances' own convention."""
    out = []
    for i in ids:
        ys, xs = torch.nonzero(instance == i, as_tuple=True)
        out.append([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])
    return torch.tensor(out, dtype=torch.float32)


def test_hflip_mirrors_boxes_with_the_pixels_and_twice_is_identity():
    s = _sample()
    out = hflip(s)
    # x -> W - x on the continuous edges: [2, 6) -> [7, 11), [7, 12) -> [1, 6)
    assert out["boxes"].tolist() == [[7.0, 1.0, 11.0, 4.0], [1.0, 5.0, 6.0, 9.0]]
    assert torch.equal(out["boxes"], _boxes_of(out["instance"], [1, 2]))
    assert torch.equal(out["labels"], s["labels"]) and torch.equal(out["instance_ids"], s["instance_ids"])
    back = hflip(out)
    assert torch.equal(back["boxes"], s["boxes"]) and torch.equal(back["instance"], s["instance"])
    assert torch.equal(s["boxes"], torch.tensor([[2.0, 1.0, 6.0, 4.0], [7.0, 5.0, 12.0, 9.0]]))  # input untouched


def test_resize_scales_boxes_records_the_factor_and_resamples_instances_nearest():
    s = _sample(10, 13)
    out = resize(s, (20, 26))  # exact x2: instance pixels double
    assert out["boxes"].tolist() == [[4.0, 2.0, 12.0, 8.0], [14.0, 10.0, 24.0, 18.0]]
    assert torch.equal(out["boxes"], _boxes_of(out["instance"], [1, 2]))
    assert out["image_scale"].tolist() == [2.0, 2.0] and out["image_scale"].dtype == torch.float64
    assert out["instance"].dtype == torch.int64 and set(out["instance"].unique().tolist()) == {0, 1, 2}
    # odd factors: (sx, sy) = (7 / 13, 5 / 10); a second resize multiplies image_scale
    odd = resize(out, (5, 7))
    assert odd["image_scale"].tolist() == pytest.approx([7 / 13, 0.5])
    assert odd["boxes"][0].tolist() == pytest.approx([2 * 7 / 13, 0.5, 6 * 7 / 13, 2.0])


def test_crop_shifts_clips_and_drops_with_rows():
    s = _sample()
    out = crop(s, 2, 4, 6, 6)  # window x in [4, 10), y in [2, 8)
    # box 1 [2, 6) x [1, 4) -> [0, 2) x [0, 2); box 2 [7, 12) x [5, 9) -> [3, 6) x [3, 6)
    assert out["boxes"].tolist() == [[0.0, 0.0, 2.0, 2.0], [3.0, 3.0, 6.0, 6.0]]
    assert torch.equal(out["boxes"], _boxes_of(out["instance"], [1, 2]))
    # min_visible: box 1 keeps 4 of its 12 px^2 (1/3), box 2 keeps 9 of 20 (0.45)
    kept = crop(s, 2, 4, 6, 6, min_visible=0.4)
    assert kept["boxes"].tolist() == [[3.0, 3.0, 6.0, 6.0]]
    assert kept["labels"].tolist() == [0] and kept["instance_ids"].tolist() == [2]
    # a window that misses box 2 entirely; padding beyond the image (negative top) fills the instance map with 0
    miss = crop(s, -2, 0, 6, 7)
    assert miss["boxes"].tolist() == [[2.0, 3.0, 6.0, 6.0]] and miss["labels"].tolist() == [3]
    assert miss["instance"][:2].eq(0).all() and torch.equal(miss["boxes"], _boxes_of(miss["instance"], [1]))


def test_crop_boxes_drops_zero_width_and_keeps_dtype():
    boxes = torch.tensor([[0.0, 0.0, 4.0, 4.0], [5.0, 0.0, 5.0, 3.0], [1.0, 1.0, 2.0, 2.0]], dtype=torch.float64)
    out, keep = crop_boxes(boxes, 0, 0, 10, 10)
    assert keep.tolist() == [True, False, True] and out.dtype == torch.float64
    out, keep = crop_boxes(boxes, 0, 2, 10, 10)  # box 3 ends at x = 0 after the shift: dropped
    assert keep.tolist() == [True, False, False] and out.tolist() == [[0.0, 0.0, 2.0, 4.0]]


def test_center_zoom_and_random_transforms_keep_boxes_on_their_pixels():
    rng = np.random.default_rng(0)
    s = resize(_sample(10, 13), (40, 52))  # big enough that nearest resampling keeps the instance boxes exact
    s.pop("image_scale")
    for transform in (
        CenterZoom((2.0,), divide_depth=False),
        RandomCrop((30, 33)),
        RandomHorizontalFlip(1.0),
        RandomScale((2.0,)),
    ):
        for _ in range(3):
            out = transform(s, rng=rng)
            assert out["boxes"].shape[0] == out["labels"].shape[0] == out["instance_ids"].shape[0]
            ids = out["instance_ids"].tolist()
            assert torch.equal(out["boxes"], _boxes_of(out["instance"], ids)), type(transform).__name__
            validate_sample(out, num_classes=None, num_box_classes=4, source="t")


def test_keep_ratio_resize_is_mmdetections():
    t = ResizeKeepRatio((1333, 800))
    assert t.output_size(480, 640) == (800, 1067)  # short side to 800
    assert t.output_size(300, 1200) == (333, 1333)  # long side to 1333
    out = t(
        {"image": torch.rand(3, 48, 64), "boxes": torch.tensor([[0.0, 0.0, 64.0, 48.0]]), "labels": torch.tensor([0])}
    )
    assert out["image"].shape[-2:] == (800, 1067)
    assert out["boxes"].tolist()[0] == pytest.approx([0.0, 0.0, 1067.0, 800.0])
    assert out["image_scale"].tolist() == pytest.approx([1067 / 64, 800 / 48])
    with pytest.raises(ConfigError, match="long >= short"):
        ResizeKeepRatio((800, 1333))


def test_build_transforms_box_options():
    steps = build_transforms({"resize_keep_ratio": [64, 32], "crop": [8, 8], "box_min_visible": 0.5}, train=True)
    names = [type(t).__name__ for t in steps.transforms]
    assert names == ["ResizeKeepRatio", "RandomCrop"] and steps.transforms[1].min_visible == 0.5
    assert [type(t).__name__ for t in build_transforms({"resize_keep_ratio": [64, 32]}, train=False).transforms] == [
        "ResizeKeepRatio"
    ]
    with pytest.raises(ConfigError, match="box_min_visible"):
        build_transforms({"box_min_visible": 1.5}, train=True)


def test_misaligned_rows_and_bad_boxes_are_refused():
    s = _sample()
    s["labels"] = torch.tensor([1, 2, 3])
    with pytest.raises(ShapeError, match="one row per box"):
        hflip(s)
    s = _sample()
    s["boxes"] = torch.tensor([1.0, 2.0, 3.0, 4.0])
    with pytest.raises(ShapeError, match=r"\(N, 4\)"):
        crop(s, 0, 0, 4, 4)


def test_validate_sample_names_bad_boxes_and_sanitises():
    s = _sample()
    s["boxes"] = torch.tensor([[2.0, 1.0, 6.0, 4.0], [7.0, 5.0, 7.0, 9.0]])  # zero width
    with pytest.raises(DataError, match=r"t \(id toy\): sample\['boxes'\] has 1 bad boxes of 2: box 1 .*x2 <= x1"):
        validate_sample(s, num_classes=None, num_box_classes=4, source="t")
    s = _sample()
    s["boxes"] = torch.tensor([[2.0, 1.0, 6.0, 4.0], [7.0, 5.0, 14.0, 9.0]])  # beyond W = 13
    with pytest.raises(DataError, match="outside the 13x10"):
        validate_sample(s, num_classes=None, num_box_classes=4, source="t")
    fixed = validate_sample(s, num_classes=None, num_box_classes=4, source="t", on_error="sanitize")
    assert fixed["boxes"].tolist() == [[2.0, 1.0, 6.0, 4.0], [7.0, 5.0, 13.0, 9.0]]
    s = _sample()
    with pytest.raises(DataError, match=r"label 3 not in \[0, 3\)"):
        validate_sample(s, num_classes=None, num_box_classes=3, source="t")
    dropped = validate_sample(s, num_classes=None, num_box_classes=3, source="t", on_error="sanitize")
    assert dropped["labels"].tolist() == [0] and dropped["instance_ids"].tolist() == [2]
    s = _sample()
    s["boxes"] = torch.tensor([[2.0, 1.0, float("nan"), 4.0], [7.0, 5.0, 12.0, 9.0]])
    with pytest.raises(DataError, match="NaN/inf"):
        validate_sample(s, num_classes=None, num_box_classes=4, source="t")
    s = _sample()
    del s["labels"]
    with pytest.raises(DataError, match="no 'labels'"):
        validate_sample(s, num_classes=None, num_box_classes=4, source="t")
    empty = {"image": torch.rand(3, 4, 4), "boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64)}
    assert validate_sample(empty, num_classes=None, num_box_classes=2, source="t") is empty
