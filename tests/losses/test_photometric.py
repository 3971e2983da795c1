from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from freqdense.errors import ShapeError
from freqdense.losses import AmbiguityMask, AutoBlur, PhotometricLoss, min_reprojection, photometric_error, ssim


def test_identical_images_zero_error_and_ssim_one():
    x = torch.rand(2, 3, 9, 11)
    assert torch.allclose(ssim(x, x), torch.ones_like(x), atol=1e-5)
    assert photometric_error(x, x).abs().max() < 1e-6


def test_constant_shift_closed_form():
    a, c = 0.3, 0.2
    target = torch.full((1, 3, 5, 6), a, dtype=torch.float64)
    pred = target + c
    # L1 part alone: |c|; full: 0.85 * (1 - SSIM) / 2 + 0.15 * c with SSIM of constants (sigma = 0):
    assert torch.allclose(
        photometric_error(pred, target, ssim_weight=0.0), torch.full((1, 1, 5, 6), c, dtype=torch.float64)
    )
    c1, c2 = 0.01**2, 0.03**2
    s = (2 * a * (a + c) + c1) * c2 / ((a * a + (a + c) ** 2 + c1) * c2)
    expected = 0.85 * (1 - s) / 2 + 0.15 * c
    assert torch.allclose(photometric_error(pred, target), torch.full((1, 1, 5, 6), expected, dtype=torch.float64))


def test_error_orders_good_below_bad():
    x = torch.rand(1, 3, 16, 16)
    good = photometric_error(x + 0.01 * torch.randn_like(x), x).mean()
    bad = photometric_error(torch.rand_like(x), x).mean()
    assert good < bad


def test_gradcheck_photometric_error():
    pred = torch.rand(1, 2, 4, 5, dtype=torch.float64, requires_grad=True)
    target = torch.rand(1, 2, 4, 5, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda p: photometric_error(p, target), (pred,))


def test_shape_mismatch_raises():
    with pytest.raises(ShapeError):
        photometric_error(torch.rand(1, 3, 4, 4), torch.rand(1, 3, 4, 5))


def test_min_reprojection_hand_case_and_identity_ties():
    e0 = torch.tensor([[[[0.5, 0.1, 0.3]]]])
    e1 = torch.tensor([[[[0.2, 0.4, 0.3]]]])
    ident = torch.tensor([[[[0.3, 0.1, 0.9]]]])
    out = min_reprojection([e0, e1], [ident])
    assert out.loss.flatten().tolist() == pytest.approx([0.2, 0.1, 0.3])
    assert out.index.flatten().tolist() == [1, 0, 0]  # argmin among warped; first on ties
    assert out.index.dtype == torch.int64
    assert out.automask.flatten().tolist() == [True, False, True]  # tie 0.1 == 0.1 -> identity wins
    assert min_reprojection([e0, e1]).automask.all()


def _identity_grid(b, h, w):
    return F.affine_grid(torch.eye(2, 3).expand(b, 2, 3), (b, 3, h, w), align_corners=True)


def test_static_scene_automask_picks_identity():
    img = torch.rand(2, 3, 12, 16)
    loss_fn = PhotometricLoss()
    grid = _identity_grid(2, 12, 16)
    out = loss_fn(img, [img.clone(), img.clone()], grids=[grid, grid])
    assert not out.min_reprojection.automask.any()  # warped == identity everywhere -> identity chosen
    assert out.loss.abs() < 1e-5


def test_moving_scene_warp_beats_identity():
    torch.manual_seed(0)
    scene = torch.rand(1, 3, 12, 20)
    target, source = scene[..., 2:18], scene[..., :16]  # source shifted by 2 px
    ys, xs = torch.meshgrid(torch.arange(12.0), torch.arange(16.0), indexing="ij")
    grid = torch.stack([2 * (xs + 2).clamp(max=15) / 15 - 1, 2 * ys / 11 - 1], -1)[None]
    out = PhotometricLoss(automask=True)(target, [source], grids=[grid])
    inner = out.min_reprojection.automask[..., 1:-1, 1:-3]
    assert inner.float().mean() > 0.95


@pytest.mark.parametrize("blur,amb", [(False, False), (True, False), (False, True), (True, True)])
def test_switches_independent_and_gradient_reaches_grid(blur, amb):
    torch.manual_seed(1)
    target, src = torch.rand(1, 3, 24, 32), torch.rand(1, 3, 24, 32)
    grid = (_identity_grid(1, 24, 32) + 0.01 * torch.randn(1, 24, 32, 2)).requires_grad_()
    fn = PhotometricLoss(auto_blur=AutoBlur() if blur else None, ambiguity_mask=AmbiguityMask() if amb else None)
    images = fn.prepare(target, [src])
    out = fn(images, grids=[grid])
    out.loss.backward()
    assert grid.grad is not None and torch.isfinite(grid.grad).all() and grid.grad.abs().sum() > 0
    assert (out.weights is not None) == amb
