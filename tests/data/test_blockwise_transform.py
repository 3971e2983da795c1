"""BlockwiseLabels: training on block-wise annotation (the spectral-analysis paper's Sec. 3.3) through the joint
transforms."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from freqdense.data.transforms import BlockwiseLabels, Compose, Resize, build_transforms
from freqdense.errors import ConfigError


def _sample(h: int = 24, w: int = 32, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    sem = torch.randint(0, 5, (h, w), generator=g)
    sem[:3, :4] = 255
    return {
        "image": torch.rand(3, h, w, generator=g),
        "semantic": sem,
        "depth": torch.rand(1, h, w, generator=g) + 0.5,
        "depth_valid": torch.ones(h, w, dtype=torch.bool),
        "intrinsics": torch.tensor([[20.0, 0, 15.5], [0, 20.0, 11.5], [0, 0, 1]]),
    }


@pytest.mark.parametrize("nu_max", [None, 16, 100])
def test_full_band_is_identity(nu_max):
    # 24 x 32 map: n = 2 nu + 1 >= 32 points per axis puts every pixel in its own block.
    s = _sample()
    out = BlockwiseLabels(nu_max)(s)
    assert torch.equal(out["semantic"], s["semantic"])


def test_hand_example_majority_and_nearest():
    # 5 x 5 map, nu_max = 1 -> 3 grid points per axis at pixels 0, 2, 4; blocks {0}, {1, 2}, {3, 4} per axis.
    lab = torch.zeros(5, 5, dtype=torch.int64)
    lab[1, 1] = lab[1, 2] = lab[2, 1] = 3  # 3 of the 4 pixels of the middle block; its grid pixel (2, 2) is 0
    expected = torch.zeros(5, 5, dtype=torch.int64)
    expected[1:3, 1:3] = 3
    assert torch.equal(BlockwiseLabels(1)({"semantic": lab})["semantic"], expected)
    assert torch.equal(BlockwiseLabels(1, "nearest")({"semantic": lab})["semantic"], torch.zeros(5, 5).long())


def test_only_semantic_changes_and_input_untouched():
    s = _sample()
    before = {k: v.clone() for k, v in s.items()}
    out = BlockwiseLabels(2)(s)
    for key in ("image", "depth", "depth_valid", "intrinsics"):
        assert out[key] is s[key]
    assert set(out) == set(s)
    assert not torch.equal(out["semantic"], s["semantic"])
    assert out["semantic"].dtype == torch.int64 and out["semantic"].shape == s["semantic"].shape
    for key, value in before.items():
        assert torch.equal(s[key], value)  # no mutation
    # 5 x 5 grid on 24 x 32: the top-left block (rows 0-2, cols 0-3) is all void and stays void.
    assert bool((out["semantic"][:3, :4] == 255).all())
    # With 5 x 5 blocks there are at most 25 distinct (row, column) block values per map.
    assert len({tuple(r.tolist()) for r in out["semantic"]}) <= 5


def test_sample_without_semantic_passes_through():
    s = {"image": torch.rand(3, 4, 4)}
    assert BlockwiseLabels(1)(s) is s


def test_applied_after_crop_in_config_order():
    cfg = {"hflip": True, "crop": [16, 20], "color_jitter": 0.1, "blockwise_labels": 3}
    pipe = build_transforms(cfg, train=True)
    assert isinstance(pipe.transforms[-1], BlockwiseLabels) and pipe.transforms[-1].nu_max == 3
    # Same random stream without the last step: the block labels are those of the crop.
    plain = Compose(pipe.transforms[:-1])
    s = _sample(seed=3)
    a = pipe(s, np.random.default_rng(7))
    b = plain(s, np.random.default_rng(7))
    assert a["semantic"].shape == (16, 20)
    assert torch.equal(a["semantic"], BlockwiseLabels(3)(b)["semantic"])
    assert torch.equal(a["image"], b["image"])


def test_build_transforms_dict_form_and_eval():
    pipe = build_transforms({"blockwise_labels": {"nu_max": 4, "method": "nearest"}}, train=True)
    (t,) = pipe.transforms
    assert (t.nu_max, t.method) == (4, "nearest")
    (only,) = build_transforms({"blockwise_labels": 4, "resize": [8, 8]}, train=False).transforms
    assert isinstance(only, Resize)  # evaluation keeps pixel-wise labels
    assert build_transforms({"blockwise_labels": 4}, train=False).transforms == []
    assert build_transforms({"blockwise_labels": None}, train=True).transforms == []


@pytest.mark.parametrize(
    "value",
    [-1, 2.5, "eight", True, {"nu_max": 4, "methd": "majority"}, {"nu_max": 4, "method": "mode"}, {"method": "x"}],
)
def test_build_transforms_rejects_bad_values(value):
    with pytest.raises(ConfigError):
        build_transforms({"blockwise_labels": value}, train=True)


def test_unknown_key_suggests_blockwise_labels():
    with pytest.raises(ConfigError, match="blockwise_labels"):
        build_transforms({"blockwise_label": 8}, train=True)
