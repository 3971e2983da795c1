from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from freqdense.errors import ConfigError
from freqdense.losses import AmbiguityMask, ambiguity_mask
from freqdense.ops import ambiguity_map


def test_constant_image_has_no_ambiguity():
    assert ambiguity_map(torch.full((1, 3, 6, 7), 0.4)).abs().max() == 0


def test_antialiased_step_edge_closed_form():
    # grey 0 | a | 1 horizontally: only the mixed pixel is ambiguous, A = sum_c (a + (1 - a)) / 2 = 1.5.
    for a in (0.2, 0.5, 0.9):
        row = torch.tensor([0.0, 0.0, a, 1.0, 1.0]).expand(1, 3, 4, 5)
        amb = ambiguity_map(row)[0, 0]
        assert torch.allclose(amb[:, 2], torch.full((4,), 1.5))
        assert amb[:, [0, 1, 3, 4]].abs().max() == 0
    # a 1-px sharp step or a thin line (local extremum) is not "mixed"
    assert ambiguity_map(torch.tensor([0.0, 0, 1, 1]).expand(1, 3, 3, 4)).abs().max() == 0
    assert ambiguity_map(torch.tensor([0.0, 0, 1, 0, 0]).expand(1, 3, 3, 5)).abs().max() == 0


def test_ambiguity_uses_both_axes_in_magnitude():
    # a diagonal ramp: monotone along x and y; G_u = G_v = 3 * 0.1 -> A = 0.3 * sqrt(2) inside.
    ramp = (0.1 * (torch.arange(5.0).view(1, 5) + torch.arange(5.0).view(5, 1))).expand(1, 3, 5, 5)
    assert math.isclose(float(ambiguity_map(ramp)[0, 0, 2, 2]), 0.3 * math.sqrt(2), rel_tol=1e-5)


def test_hard_and_soft_mask_values():
    t = torch.tensor([[[[0.0, 0.29, 0.31, 0.1]]]])
    s0 = torch.tensor([[[[0.2, 0.0, 0.0, 1.0]]]])
    s1 = torch.tensor([[[[0.5, 0.0, 0.0, 0.0]]]])
    idx = torch.tensor([[[[0, 1, 0, 1]]]])
    synthetic = torch.tensor([0.2, 0.29, 0.31, 0.1])
    hard = ambiguity_mask(t, [s0, s1], idx)
    assert hard.flatten().tolist() == [1.0, 1.0, 0.0, 1.0]
    soft = ambiguity_mask(t, [s0, s1], idx, mode="soft", gamma=3.0)
    assert torch.allclose(soft.flatten(), torch.exp(-3.0 * synthetic))
    with pytest.raises(ConfigError):
        ambiguity_mask(t, [s0], torch.zeros_like(idx), mode="fuzzy")


def test_module_warps_source_with_grid():
    # shifting the source by one pixel with the grid moves its ambiguity onto the target pixel.
    h, w = 3, 6
    src_amb = torch.zeros(1, 1, h, w)
    src_amb[..., 3] = 1.0
    ys, xs = torch.meshgrid(torch.arange(float(h)), torch.arange(float(w)), indexing="ij")
    grid = torch.stack([2 * (xs + 1).clamp(max=w - 1) / (w - 1) - 1, 2 * ys / (h - 1) - 1], -1)[None]
    weights = AmbiguityMask()(torch.zeros(1, 1, h, w), [src_amb], [grid], torch.zeros(1, 1, h, w, dtype=torch.long))
    expected = torch.ones(1, 1, h, w)
    expected[..., 2] = 0.0
    assert torch.equal(weights, expected)
    # soft mask with detach=False lets gradients reach the grid; detach=True (default) does not
    g = grid.clone().requires_grad_()
    AmbiguityMask("soft", detach=False)(
        torch.zeros(1, 1, h, w), [F.avg_pool2d(src_amb, 3, 1, 1)], [g], torch.zeros(1, 1, h, w, dtype=torch.long)
    ).sum().backward()
    assert g.grad is not None and g.grad.abs().sum() > 0


def _reference_ambiguity(image):
    """The ambiguity map composed from the generic frequency ops (the implementation before the fused one)."""
    from freqdense.ops import one_sided_differences, two_sided_gradient_magnitude

    d = one_sided_differences(image)
    same = ((d.u_plus * d.u_minus) < 0).any(dim=1, keepdim=True) | ((d.v_plus * d.v_minus) < 0).any(dim=1, keepdim=True)
    return two_sided_gradient_magnitude(image, mode="mean_abs", channels="sum") * same


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("shape", [(2, 3, 24, 40), (1, 1, 5, 6), (1, 3, 2, 5), (1, 3, 1, 1), (2, 2, 3, 2)])
def test_fused_ambiguity_equals_reference_composition(dtype, shape):
    gen = torch.Generator().manual_seed(sum(shape))
    img = torch.rand(shape, generator=gen, dtype=dtype)
    img = torch.where(torch.rand(shape, generator=gen) > 0.6, img.round(), img)  # ties and flat runs too
    assert torch.equal(ambiguity_map(img), _reference_ambiguity(img))


def test_fused_ambiguity_gradient_equals_reference():
    img = torch.rand(1, 3, 9, 11, dtype=torch.float64)
    a, b = img.clone().requires_grad_(), img.clone().requires_grad_()
    ambiguity_map(a).sum().backward()
    _reference_ambiguity(b).sum().backward()
    assert torch.allclose(a.grad, b.grad, rtol=0, atol=1e-12)
