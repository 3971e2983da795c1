from __future__ import annotations

import math

import torch

from freqdense.losses import EdgeAwareSmoothness, smoothness_loss


def test_constant_disparity_is_smooth():
    assert smoothness_loss(torch.full((2, 1, 5, 7), 0.3), torch.rand(2, 3, 5, 7)) == 0


def test_hand_case_and_edge_awareness():
    # disp ramp along x with step 1 (mean 1.5 over 0..3) on a flat image: x term = mean |dx d*| = 1 / 1.5, y term 0.
    disp = torch.arange(4.0).view(1, 1, 1, 4).repeat(1, 1, 3, 1)
    flat = torch.zeros(1, 3, 3, 4)
    assert math.isclose(float(smoothness_loss(disp, flat)), 1 / (1.5 + 1e-7), rel_tol=1e-6)
    assert math.isclose(float(smoothness_loss(disp, flat, normalize=False)), 1.0, rel_tol=1e-6)
    edges = torch.zeros(1, 3, 3, 4)
    edges[..., 1::2] = 1.0  # every x-step is an image edge of mean gradient 1 -> weight exp(-1)
    assert math.isclose(float(smoothness_loss(disp, edges)), math.exp(-1) / 1.5, rel_tol=1e-5)


def test_scale_invariance_and_module():
    d, img = torch.rand(1, 1, 6, 6) + 0.1, torch.rand(1, 3, 6, 6)
    assert torch.allclose(smoothness_loss(d, img), smoothness_loss(5 * d, img), rtol=1e-5)
    assert torch.equal(EdgeAwareSmoothness()(d, img), smoothness_loss(d, img))
