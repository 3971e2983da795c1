"""FAFE local-aware consistency loss (losses/consistency.py): hand cases of Eq. (4), mask, modes, gradients."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage

from freqdense.errors import ConfigError, ShapeError
from freqdense.losses.consistency import (
    SEG_MODES,
    LocalConsistencyLoss,
    consistency_edge_mask,
    local_consistency_loss,
    local_variance_map,
)


def _one_hot_logits() -> torch.Tensor:
    # 1 x 4 image, classes [0, 0, 1, 1]; logits of +-50 make the softmax one-hot to ~1e-22.
    labels = torch.tensor([0, 0, 1, 1])
    return (torch.nn.functional.one_hot(labels, 2).T.double() * 100 - 50).view(1, 2, 1, 4)


def _depth(values) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float64).view(1, 1, 1, 4)


def test_local_variance_map_hand_case():
    # 1 x 4 row [1, 1, 1, 2]: in-image 3x3 means 1, 1, 4/3, 3/2 -> squared deviations 0, 0, 1/9, 1/4
    got = local_variance_map(_depth([1, 1, 1, 2]))
    torch.testing.assert_close(got.flatten(), torch.tensor([0, 0, 1 / 9, 1 / 4], dtype=torch.float64))


@pytest.mark.parametrize(
    ("seg_mode", "expected"),
    [
        # one-hot C_s (summed over both classes) = [0, 2/9, 2/9, 0]; scaled by 9: [0, 18, 18, 0] -> the two
        # boundary pixels are masked; C_d = [0, 0, 1/9, 1/4] -> kept |.| = [0, 1/4] -> 1/8
        ("scaled_onehot", 1 / 8),
        # class-index map [0, 0, 1, 1]: in-image means [0, 1/3, 2/3, 1] -> C_s = [0, 1/9, 1/9, 0], all kept
        # -> |C_s - C_d| = [0, 1/9, 0, 1/4] -> 13/144
        ("index", 13 / 144),
        # unscaled: C_s = [0, 2/9, 2/9, 0], all kept -> [0, 2/9, 1/9, 1/4] -> 7/48
        ("probs", 7 / 48),
        ("argmax", 7 / 48),
        # max prob is 1 everywhere -> C_s = 0 -> mean C_d = 13/144
        ("max_prob", 13 / 144),
    ],
)
def test_hand_case(seg_mode, expected):
    got = local_consistency_loss(_one_hot_logits(), _depth([1, 1, 1, 2]), seg_mode=seg_mode)
    torch.testing.assert_close(got, torch.tensor(expected, dtype=torch.float64))


def test_threshold_masks_large_values():
    # depth [1, 1, 1, 4]: C_d = [0, 0, 1, 2.25]; the last pixel is dropped, C_d = 1 is kept (<= threshold)
    # with seg_mode="probs" (C_s = [0, 2/9, 2/9, 0]): kept |C_s - C_d| = [0, 2/9, 7/9] -> 1/3
    seg, depth = _one_hot_logits(), _depth([1, 1, 1, 4])
    torch.testing.assert_close(
        local_consistency_loss(seg, depth, seg_mode="probs"), torch.tensor(1 / 3, dtype=torch.float64)
    )
    torch.testing.assert_close(
        local_consistency_loss(seg, depth, threshold=10.0, seg_mode="probs"),
        torch.tensor((1 + 2.25) / 4, dtype=torch.float64),
    )
    # default: the boundary pixels 1, 2 (C_s = 18) and pixel 3 (C_d = 2.25) are dropped; pixel 0 has C_s = C_d = 0
    assert float(local_consistency_loss(seg, depth)) == 0.0
    # nothing kept -> 0, still differentiable
    d = depth.clone().requires_grad_()
    loss = local_consistency_loss(seg, d, threshold=-1.0)
    assert loss == 0
    loss.backward()


def test_module_weight_and_gradients():
    torch.manual_seed(0)
    seg = torch.randn(2, 5, 8, 9)
    seg[:, 1, :, :4] += 10.0  # two predicted regions, so the default keeps the interior pixels
    seg[:, 3, :, 4:] += 10.0
    seg.requires_grad_()
    depth = torch.rand(2, 1, 8, 9, requires_grad=True)
    loss = LocalConsistencyLoss()(seg, depth)
    torch.testing.assert_close(loss, 0.1 * local_consistency_loss(seg, depth))
    loss.backward()
    assert depth.grad.abs().sum() > 0
    assert seg.grad is None  # the default uses the argmax: no gradient to the segmentation
    for mode in ("probs", "max_prob"):
        seg.grad = depth.grad = None
        local_consistency_loss(seg, depth, seg_mode=mode).backward()
        assert seg.grad.abs().sum() > 0 and depth.grad.abs().sum() > 0, mode
    for mode in ("argmax", "index"):
        seg.grad = None
        local_consistency_loss(seg, depth, seg_mode=mode).backward()
        assert seg.grad is None or seg.grad.abs().sum() == 0, mode


def test_errors():
    with pytest.raises(ShapeError, match="spatial"):
        local_consistency_loss(torch.randn(1, 3, 4, 4), torch.rand(1, 1, 4, 5))
    with pytest.raises(ShapeError, match="C=1"):
        local_consistency_loss(torch.randn(1, 3, 4, 4), torch.rand(1, 2, 4, 4))
    with pytest.raises(ConfigError, match="seg_mode"):
        LocalConsistencyLoss(seg_mode="labels")
    with pytest.raises(ConfigError, match="scaled_onehot"):
        local_consistency_loss(torch.randn(1, 3, 4, 4), torch.rand(1, 1, 4, 4), seg_mode="labels")


def _block_labels(num_classes: int = 40, seed: int = 0) -> np.ndarray:
    """A 30 x 37 label map of random rectangles (odd size, so borders and corners are exercised)."""
    rng = np.random.default_rng(seed)
    labels = np.full((30, 37), rng.integers(num_classes), dtype=np.int64)
    for _ in range(14):
        y, x = rng.integers(0, 26), rng.integers(0, 33)
        h, w = rng.integers(2, 12), rng.integers(2, 14)
        labels[y : y + h, x : x + w] = rng.integers(num_classes)
    return labels


def _perfect_logits(labels: np.ndarray, num_classes: int = 40) -> torch.Tensor:
    one_hot = torch.nn.functional.one_hot(torch.from_numpy(labels), num_classes).permute(2, 0, 1)[None]
    return one_hot.double() * 20.0


def _boundary(labels: np.ndarray) -> np.ndarray:
    """Pixels whose in-image 3x3 window holds another label (replicated borders add no new label)."""
    return ndimage.maximum_filter(labels, size=3, mode="nearest") != ndimage.minimum_filter(
        labels, size=3, mode="nearest"
    )


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_default_masks_exactly_the_boundary_of_a_perfect_segmentation(seed):
    labels = _block_labels(seed=seed)
    boundary = _boundary(labels)
    assert 0.05 < boundary.mean() < 0.6  # a real mix of edge and interior pixels
    masked = consistency_edge_mask(_perfect_logits(labels))[0, 0].numpy()
    np.testing.assert_array_equal(masked, boundary)
    # the class-index map masks a subset of the boundary (only where the index jump is large enough) ...
    by_index = consistency_edge_mask(_perfect_logits(labels), seg_mode="index")[0, 0].numpy()
    assert not (by_index & ~boundary).any() and by_index.sum() < boundary.sum()
    # ... and the probability modes mask no boundary pixel of a confident segmentation
    for mode in ("probs", "max_prob", "argmax"):
        assert not consistency_edge_mask(_perfect_logits(labels), seg_mode=mode).any(), mode


def test_masked_boundary_passes_no_depth_gradient():
    """Depth constant per object with jumps of 3-20 m at every boundary: L_c and its depth gradient are 0."""
    labels = _block_labels(seed=3)
    per_class = torch.linspace(2.0, 40.0, 40, dtype=torch.float64)
    depth = per_class[torch.from_numpy(labels)][None, None].clone().requires_grad_()
    loss = local_consistency_loss(_perfect_logits(labels), depth)
    loss.backward()
    # zero up to the rounding of the 3x3 mean of a constant (float64)
    assert float(loss.detach()) < 1e-20
    assert float(depth.grad.abs().max()) < 1e-12
    # the old default (all probabilities) keeps the boundary and pulls depth there
    depth.grad = None
    local_consistency_loss(_perfect_logits(labels), depth, seg_mode="probs").backward()
    boundary = torch.from_numpy(_boundary(labels))
    assert float(depth.grad[0, 0][boundary].abs().max()) > 1e-4
    # inside objects the default still smooths depth: noise there gets a gradient
    noisy = depth.detach() + 0.05 * torch.randn(depth.shape, generator=torch.Generator().manual_seed(0))
    noisy.requires_grad_()
    local_consistency_loss(_perfect_logits(labels), noisy).backward()
    interior = ~boundary
    assert float(noisy.grad[0, 0][interior].abs().sum()) > 0


def test_seg_modes_are_the_documented_set():
    assert SEG_MODES[0] == "scaled_onehot" and LocalConsistencyLoss().seg_mode == "scaled_onehot"
    assert set(SEG_MODES) == {"scaled_onehot", "index", "probs", "max_prob", "argmax"}
