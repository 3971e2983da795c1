"""FAFE local-aware consistency loss (losses/consistency.py): hand cases of Eq. (4), mask, modes, gradients."""

from __future__ import annotations

import pytest
import torch

from freqdense.errors import ConfigError, ShapeError
from freqdense.losses.consistency import LocalConsistencyLoss, local_consistency_loss, local_variance_map


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
        # C_s (sum over both one-hot classes) = [0, 2/9, 2/9, 0]; C_d = [0, 0, 1/9, 1/4] -> mean |.| = 7/48
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
    # kept |C_s - C_d| = [0, 2/9, 7/9] -> 1/3
    seg, depth = _one_hot_logits(), _depth([1, 1, 1, 4])
    torch.testing.assert_close(local_consistency_loss(seg, depth), torch.tensor(1 / 3, dtype=torch.float64))
    torch.testing.assert_close(
        local_consistency_loss(seg, depth, threshold=10.0), torch.tensor((1 + 2.25) / 4, dtype=torch.float64)
    )
    # nothing kept -> 0, still differentiable
    d = depth.clone().requires_grad_()
    loss = local_consistency_loss(seg, d, threshold=-1.0)
    assert loss == 0
    loss.backward()


def test_module_weight_and_gradients():
    torch.manual_seed(0)
    seg = torch.randn(2, 5, 8, 9, requires_grad=True)
    depth = torch.rand(2, 1, 8, 9, requires_grad=True)
    loss = LocalConsistencyLoss()(seg, depth)
    torch.testing.assert_close(loss, 0.1 * local_consistency_loss(seg, depth))
    loss.backward()
    assert seg.grad.abs().sum() > 0 and depth.grad.abs().sum() > 0
    seg.grad = None
    local_consistency_loss(seg, depth, seg_mode="argmax").backward()
    assert seg.grad is None or seg.grad.abs().sum() == 0


def test_errors():
    with pytest.raises(ShapeError, match="spatial"):
        local_consistency_loss(torch.randn(1, 3, 4, 4), torch.rand(1, 1, 4, 5))
    with pytest.raises(ShapeError, match="C=1"):
        local_consistency_loss(torch.randn(1, 3, 4, 4), torch.rand(1, 2, 4, 4))
    with pytest.raises(ConfigError, match="seg_mode"):
        LocalConsistencyLoss(seg_mode="labels")
