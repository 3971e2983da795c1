"""FAFE Feature Re-calibration (nn/recalibration.py): SE closed form and cross-task wiring."""

from __future__ import annotations

import pytest
import torch

from freqdense.errors import ShapeError
from freqdense.nn.recalibration import FeatureRecalibration, SqueezeExcitation


def test_se_closed_form():
    se = SqueezeExcitation(4, reduction=2)
    with torch.no_grad():
        se.fc2.weight.zero_()
        se.fc2.bias.copy_(torch.tensor([0.0, 1.0, -1.0, 2.0]))
    x = torch.randn(2, 4, 3, 5)
    gate = 1 / (1 + torch.exp(-torch.tensor([0.0, 1.0, -1.0, 2.0])))
    torch.testing.assert_close(se(x), x * gate.view(1, 4, 1, 1))


def test_each_band_receives_the_other_tasks_same_band():
    torch.manual_seed(0)
    fr = FeatureRecalibration(8, reduction=4)
    with torch.no_grad():
        for se in (fr.seg_to_depth_low, fr.seg_to_depth_high, fr.depth_to_seg_low, fr.depth_to_seg_high):
            se.fc2.weight.zero_()
            se.fc2.bias.zero_()  # gate = 1/2
    sl, sh, dl, dh = (torch.randn(2, 8, 4, 6) for _ in range(4))
    out = fr(sl, sh, dl, dh)
    torch.testing.assert_close(out.seg_low, sl + 0.5 * dl)
    torch.testing.assert_close(out.seg_high, sh + 0.5 * dh)
    torch.testing.assert_close(out.depth_low, dl + 0.5 * sl)
    torch.testing.assert_close(out.depth_high, dh + 0.5 * sh)


def test_every_param_gets_a_gradient_and_shape_errors():
    torch.manual_seed(0)
    fr = FeatureRecalibration(16, reduction=4)  # hidden 4: a 1-unit ReLU can be dead for a random input
    out = fr(*(torch.randn(2, 16, 4, 6) for _ in range(4)))
    sum(t.sin().sum() for t in out).backward()
    for name, p in fr.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    with pytest.raises(ShapeError, match="same shape"):
        fr(torch.randn(1, 16, 4, 6), torch.randn(1, 16, 4, 6), torch.randn(1, 16, 2, 3), torch.randn(1, 16, 4, 6))
