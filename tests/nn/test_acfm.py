"""AttentionCrossFusion (FAFNet Eq. 4-9) against a hand-written reference."""

from __future__ import annotations

import pytest
import torch

from freqdense.errors import ConfigError, ShapeError
from freqdense.nn import AttentionCrossFusion


def _mlp(g, lin1, lin2):
    return torch.sigmoid(lin2.weight @ torch.relu(lin1.weight @ g + lin1.bias) + lin2.bias)


@pytest.mark.parametrize("mode", ["paper", "fafnet"])
def test_matches_equations(mode):
    torch.manual_seed(0)
    acfm = AttentionCrossFusion(16, reduction=4, mode=mode).double()
    rgb, dep = torch.randn(2, 16, 5, 6, dtype=torch.float64), torch.randn(2, 16, 5, 6, dtype=torch.float64)
    rgb_fused, dep_fused = acfm(rgb, dep)
    for b in range(2):
        g = torch.cat([rgb[b].mean((1, 2)), dep[b].mean((1, 2))])  # Eq. 4
        l_rgb = _mlp(g, acfm.mlp_rgb[0], acfm.mlp_rgb[2])[:, None, None]  # Eq. 5
        l_dep = _mlp(g, acfm.mlp_depth[0], acfm.mlp_depth[2])[:, None, None]
        if mode == "paper":
            exp_rgb, exp_dep = l_rgb * rgb[b] + dep[b], l_dep * dep[b] + rgb[b]  # Eq. 6-9
        else:
            exp_rgb, exp_dep = l_rgb * (rgb[b] + dep[b]), l_dep * (rgb[b] + dep[b])
        torch.testing.assert_close(rgb_fused[b], exp_rgb)
        torch.testing.assert_close(dep_fused[b], exp_dep)


def test_zeroed_attention_gives_pure_cross_addition():
    acfm = AttentionCrossFusion(8, reduction=2)
    for mlp in (acfm.mlp_rgb, acfm.mlp_depth):
        torch.nn.init.zeros_(mlp[2].weight)
        torch.nn.init.constant_(mlp[2].bias, -1e4)  # sigmoid -> 0
    rgb, dep = torch.randn(1, 8, 3, 3), torch.randn(1, 8, 3, 3)
    rgb_fused, dep_fused = acfm(rgb, dep)
    torch.testing.assert_close(rgb_fused, dep)
    torch.testing.assert_close(dep_fused, rgb)


def test_fafnet_keys_and_param_count():
    # docs/reference_code.md#fafnet-official-code: RGBDAlignModule(256) has 43,552 params: the two FSP MLPs,
    # 2 * (512*16 + 16 + 16*256 + 256) = 25,120, plus the two bias-free 3x3 flow convs (2C -> 2), 2 * 9,216 = 18,432.
    acfm = AttentionCrossFusion(256)
    assert sum(p.numel() for p in acfm.parameters()) + 2 * 2 * 512 * 9 == 43_552
    official = {
        "flow_make.weight": torch.zeros(2, 512, 3, 3),
        "fsp1.filter.fc.0.weight": torch.randn(16, 512),
        "fsp1.filter.fc.0.bias": torch.randn(16),
        "fsp1.filter.fc.2.weight": torch.randn(256, 16),
        "fsp1.filter.fc.2.bias": torch.randn(256),
        "fsp2.filter.fc.0.weight": torch.randn(16, 512),
        "fsp2.filter.fc.0.bias": torch.randn(16),
        "fsp2.filter.fc.2.weight": torch.randn(256, 16),
        "fsp2.filter.fc.2.bias": torch.randn(256),
    }
    acfm.load_state_dict(AttentionCrossFusion.convert_fafnet_state_dict(official), strict=True)
    torch.testing.assert_close(acfm.mlp_depth[2].bias, official["fsp2.filter.fc.2.bias"])


def test_gradients_reach_every_parameter():
    torch.manual_seed(0)
    acfm = AttentionCrossFusion(8, reduction=2)
    rgb, dep = torch.randn(2, 8, 4, 4), torch.randn(2, 8, 4, 4)
    sum(o.square().sum() for o in acfm(rgb, dep)).backward()
    for name, p in acfm.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_errors():
    with pytest.raises(ConfigError):
        AttentionCrossFusion(8, mode="concat")
    with pytest.raises(ShapeError):
        AttentionCrossFusion(8)(torch.randn(1, 8, 4, 4), torch.randn(1, 8, 4, 5))
