"""The feat_tool similarity protocol (analysis/official_similarity.py) against hand values and the official tool."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.ndimage as ndi
import torch

from freqdense.analysis.official_similarity import OfficialSimilarityAccumulator, boundary_band
from freqdense.errors import ConfigError, ShapeError


def test_hand_case_all_pixels():
    # Two identical 2x2 images, features at label size (no resizing). Class 0 pixels (1,0), (0,1) -> centre (.5,.5),
    # cos = 1/sqrt2 each; class 1 pixels (0,1), (0,1) -> centre (0,1), cos = 1. inter = cos((.5,.5), (0,1)) = 1/sqrt2.
    # Nearest centre: class-0 pixel (0,1) is closer to centre 1 (cos 1 > 1/sqrt2) -> wrong, 1 of 4 per image.
    feat = torch.tensor([[[1.0, 0.0], [0.0, 0.0]], [[0.0, 1.0], [1.0, 1.0]]])[None].repeat(2, 1, 1, 1)
    labels = torch.tensor([[0, 0], [1, 1]])[None].repeat(2, 1, 1)
    acc = OfficialSimilarityAccumulator(2, edge_k=0)
    acc.update(feat, labels)
    r = acc.compute()
    s = 1 / math.sqrt(2)
    assert r["intra"] == pytest.approx((s + 1) / 2, abs=1e-7)
    assert r["inter"] == pytest.approx(s, abs=1e-7)
    assert r["margin"] == pytest.approx((s + 1) / 2 - s, abs=1e-7)
    assert r["accuracy"] == pytest.approx(6 / 8) and r["class_accuracy"] == pytest.approx((0.5 + 1.0) / 2)
    assert r["accuracy_per_class"] == {"0": 0.5, "1": 1.0}


def test_class_seen_in_one_image_only_is_left_out():
    # The tool averages a class only when it has more than one entry: with a single image everything is NaN.
    acc = OfficialSimilarityAccumulator(2, edge_k=0)
    acc.update(torch.rand(1, 3, 4, 4), torch.tensor([[0, 0, 1, 1]] * 4)[None])
    r = acc.compute()
    assert math.isnan(r["intra"]) and math.isnan(r["inter"]) and math.isnan(r["accuracy"])


def _band_reference(lab: np.ndarray, k: int) -> np.ndarray:
    # The tool's band with scipy: Laplacian (ksize 1, reflect-101 = scipy "mirror"), k x k dilation, minus dilated void.
    lap = ndi.convolve(lab.astype(np.float64), np.array([[0, 1, 0], [1, -4, 1], [0, 1, 0]], float), mode="mirror")
    square = np.ones((k, k), bool)
    return ndi.binary_dilation(lap != 0, square) & ~ndi.binary_dilation(lab == 255, square)


@pytest.mark.parametrize("k", [1, 3, 5])
def test_boundary_band_matches_scipy(k):
    rng = np.random.default_rng(3)
    lab = np.repeat(np.repeat(rng.integers(0, 4, (4, 6)), 4, 0), 3, 1)
    lab[:3, :5] = 255
    lab[10, 10] = 2  # an isolated pixel; and a junction where the Laplacian cancels:
    lab[5, 0:3], lab[4, 1], lab[6, 1] = (1, 2, 3), 2, 2
    got = boundary_band(torch.from_numpy(lab), k).numpy()
    np.testing.assert_array_equal(got, _band_reference(lab, k))


def _official_case():
    # The fixed case of the comparison with the official tool (3 images, 5 classes + void, 8-channel features at
    # 8x12 upsampled to 32x48), rebuilt with numpy's seeded PCG64 generator.
    g = np.random.default_rng(0)
    labels, feats = [], []
    for i in range(3):
        lab = np.zeros((32, 48), np.uint8)
        lab[:, 16:] = 1
        lab[16:, 24:] = 2
        lab[:8, :12] = 3
        lab[28:, :6] = 255
        if i == 1:
            lab[5:12, 30:40] = 4
        labels.append(lab)
        base = g.normal(size=(5, 8))
        f = np.zeros((8, 8, 12), np.float32)
        small = lab[::4, ::4]
        for c in range(5):
            f[:, small == c] = base[c][:, None]
        f += 0.8 * g.normal(size=f.shape)
        feats.append(f.astype(np.float32))
    return torch.from_numpy(np.stack(feats)), torch.from_numpy(np.stack(labels)).long()


# Printed by the FreqFusion authors' tool (feat_tool/tpami2024-feature_similarity_analysis_released.py,
# feat_sim_analysis_with_edge, run on this case with gt_size = label size and identity id mapping; its two OpenCV
# calls, Laplacian ksize 1 and dilate, replaced by the scipy equivalents above since OpenCV is not installed):
# intra ("intra class ... avg"), inter, "category average" (pixel-weighted accuracy), "pixel average" (class mean).
OFFICIAL = {
    (5, "bilinear"): (0.672776, 0.057561, 0.820542, 0.737285),
    (0, "bilinear"): (0.790343, 0.218647, 0.921630, 0.902937),
    (0, "nearest"): (0.702029, 0.133832, 0.897895, 0.874324),
    (3, "nearest"): (0.671494, 0.051110, 0.868204, 0.806655),
}


@pytest.mark.parametrize("setting", sorted(OFFICIAL))
def test_reproduces_the_official_tool(setting):
    feats, labels = _official_case()
    acc = OfficialSimilarityAccumulator(5, edge_k=setting[0], upsample=setting[1])
    acc.update(feats[:2], labels[:2])  # batches accumulate like single images
    acc.update(feats[2:], labels[2:])
    r = acc.compute()
    got = (r["intra"], r["inter"], r["accuracy"], r["class_accuracy"])
    assert got == pytest.approx(OFFICIAL[setting], abs=2e-6)  # the tool prints float32 means
    assert r["num_images"] == 3


def test_bad_inputs_are_named():
    with pytest.raises(ConfigError, match="edge_k"):
        OfficialSimilarityAccumulator(3, edge_k=-1)
    with pytest.raises(ConfigError, match="upsample"):
        OfficialSimilarityAccumulator(3, upsample="bicubic")
    acc = OfficialSimilarityAccumulator(3)
    with pytest.raises(ShapeError, match=r"labels must be in \[0, 3\)"):
        acc.update(torch.rand(1, 2, 4, 4), torch.full((1, 8, 8), 7))
    with pytest.raises(ShapeError, match="same B"):
        acc.update(torch.rand(2, 2, 4, 4), torch.zeros(1, 8, 8))
