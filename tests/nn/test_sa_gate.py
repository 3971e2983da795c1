"""SA-Gate (docs/reference_code.md#sa-gate): a hand-computed tiny case, shapes, gradients, errors."""

from __future__ import annotations

import math

import pytest
import torch

from freqdense.errors import ConfigError, ShapeError
from freqdense.nn.sa_gate import SAGate


def _sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x))


def test_hand_computed_one_channel_two_pixels():
    # C = 1 (hidden 1), rgb = [1, 3] (mean 2), depth = [2, -6] (mean -2), one row of two pixels.
    gate = SAGate(1)
    with torch.no_grad():
        # filter_rgb sees cat(mean depth, mean rgb) = [-2, 2]: first Linear picks the depth mean -> ReLU(-2) = 0,
        # so w_rgb = sigmoid(0 * 1 + 0.5). (With the order swapped it would be sigmoid(2.5).)
        gate.filter_rgb[0].weight.copy_(torch.tensor([[1.0, 0.0]]))
        gate.filter_rgb[0].bias.zero_()
        gate.filter_rgb[2].weight.fill_(1.0)
        gate.filter_rgb[2].bias.fill_(0.5)
        # filter_depth sees cat(mean rgb, mean depth) = [2, -2]: ReLU(2) = 2, w_depth = sigmoid(2 - 1).
        gate.filter_depth[0].weight.copy_(torch.tensor([[1.0, 0.0]]))
        gate.filter_depth[0].bias.zero_()
        gate.filter_depth[2].weight.fill_(1.0)
        gate.filter_depth[2].bias.fill_(-1.0)
        # gate logits: rgb gate = rec_rgb, depth gate = rec_depth
        gate.gate_rgb.weight.copy_(torch.tensor([1.0, 0.0]).view(1, 2, 1, 1))
        gate.gate_rgb.bias.zero_()
        gate.gate_depth.weight.copy_(torch.tensor([0.0, 1.0]).view(1, 2, 1, 1))
        gate.gate_depth.bias.zero_()
    rgb = torch.tensor([1.0, 3.0], dtype=torch.float64).view(1, 1, 1, 2)
    depth = torch.tensor([2.0, -6.0], dtype=torch.float64).view(1, 1, 1, 2)
    out = gate.double()(rgb, depth)

    w_rgb, w_depth = _sigmoid(0.5), _sigmoid(1.0)
    expected_rgb, expected_depth, expected_merge = [], [], []
    for r, d in ((1.0, 2.0), (3.0, -6.0)):
        rec_rgb, rec_depth = r + w_rgb * d, d + w_depth * r  # feature separation
        a = math.exp(rec_rgb) / (math.exp(rec_rgb) + math.exp(rec_depth))  # softmax over the two gates
        merge = a * r + (1 - a) * d
        expected_merge.append(merge)
        expected_rgb.append(max(0.0, (r + merge) / 2))
        expected_depth.append(max(0.0, (d + merge) / 2))
    # the numbers (python, same formulas): merge = [1.61920, 2.60153], depth' = [1.80960, 0 (ReLU clips -1.699)]
    assert expected_merge == pytest.approx([1.6191966745977324, 2.6015319485367003], abs=1e-12)
    assert expected_depth[1] == 0.0
    torch.testing.assert_close(out.fused.flatten(), torch.tensor(expected_merge, dtype=torch.float64))
    torch.testing.assert_close(out.rgb.flatten(), torch.tensor(expected_rgb, dtype=torch.float64))
    torch.testing.assert_close(out.depth.flatten(), torch.tensor(expected_depth, dtype=torch.float64))


def test_gates_sum_to_one_so_equal_inputs_pass_through():
    # rgb == depth: merge = (a + b) * x = x whatever the gates; outputs ReLU(x).
    torch.manual_seed(0)
    gate = SAGate(32)
    x = torch.randn(2, 32, 5, 6)
    out = gate(x, x.clone())
    torch.testing.assert_close(out.fused, x, atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(out.rgb, torch.relu(x), atol=1e-6, rtol=1e-6)


def test_shapes_and_every_parameter_gets_a_gradient():
    torch.manual_seed(1)
    gate = SAGate(32)
    rgb = torch.randn(4, 32, 5, 7) + 3 * torch.randn(4, 32, 1, 1)
    depth = torch.randn(4, 32, 5, 7) + 3 * torch.randn(4, 32, 1, 1)
    rgb_next, depth_next, merge = gate(rgb, depth)
    assert rgb_next.shape == depth_next.shape == merge.shape == (4, 32, 5, 7)
    (rgb_next.square().sum() + depth_next.square().sum() + merge.square().sum()).backward()
    for name, p in gate.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name


def test_errors():
    with pytest.raises(ConfigError):
        SAGate(0)
    gate = SAGate(8)
    with pytest.raises(ShapeError, match="same shape"):
        gate(torch.randn(1, 8, 4, 4), torch.randn(1, 8, 3, 4))
    with pytest.raises(ShapeError):
        gate(torch.randn(1, 4, 4, 4), torch.randn(1, 4, 4, 4))
