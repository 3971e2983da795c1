"""FAFE Pre-Interaction (nn/pre_interaction.py): CSTrack CCN semantics and the dual-input reading
(docs/reference_code.md#cstrack-ccn, #fafe-pre-interaction)."""

from __future__ import annotations

import pytest
import torch

from freqdense.errors import ConfigError, ShapeError
from freqdense.nn.pre_interaction import DualPreInteraction, PreInteraction, PreInteractionOutput


def _hand_ccn(x: torch.Tensor, sd: dict[str, torch.Tensor], grid=(6, 10), slope=0.3) -> tuple[torch.Tensor, ...]:
    """Steps 1-5 of docs/reference_code.md#cstrack-ccn written out with elementary ops (float64), independent of the
    module."""
    b, c, h, w = x.shape
    gh, gw = grid
    # 1. adaptive average pool; with H, W divisible by the grid it is a plain block mean
    y = x.view(b, c, gh, h // gh, gw, w // gw).mean(dim=(3, 5))

    def branch(k: int) -> torch.Tensor:
        weight, bias = sd[f"c_attention{k}.0.weight"], sd[f"c_attention{k}.0.bias"]
        pad = torch.zeros(b, c, gh + 2, gw + 2, dtype=x.dtype)
        pad[:, :, 1:-1, 1:-1] = y
        out = torch.zeros(b, c, gh, gw, dtype=x.dtype)
        for dy in range(3):
            for dx in range(3):
                out += torch.einsum("oi,bihw->bohw", weight[:, :, dy, dx], pad[:, :, dy : dy + gh, dx : dx + gw])
        out += bias.view(1, c, 1, 1)
        mean = out.mean(dim=(2, 3), keepdim=True)
        var = ((out - mean) ** 2).mean(dim=(2, 3), keepdim=True)
        out = (out - mean) / torch.sqrt(var + 1e-5)
        out = torch.where(out >= 0, out, slope * out)
        return out.reshape(b, c, gh * gw)

    # 2.
    y1, y2 = branch(1), branch(2)

    def softmax_rows(m: torch.Tensor) -> torch.Tensor:
        e = torch.exp(m - m.max(dim=-1, keepdim=True).values)
        return e / e.sum(dim=-1, keepdim=True)

    # 3.-4.
    w1, w2 = sd["w1"], sd["w2"]
    a1 = w1 * softmax_rows(torch.einsum("bcn,bdn->bcd", y1, y1)) + (1 - w1) * softmax_rows(
        torch.einsum("bcn,bdn->bcd", y1, y2)
    )
    a2 = w2 * softmax_rows(torch.einsum("bcn,bdn->bcd", y2, y2)) + (1 - w2) * softmax_rows(
        torch.einsum("bcn,bdn->bcd", y2, y1)
    )
    # 5.
    flat = x.reshape(b, c, h * w)
    out1 = torch.einsum("bcd,bdn->bcn", a1, flat).reshape(b, c, h, w) + x
    out2 = torch.einsum("bcd,bdn->bcn", a2, flat).reshape(b, c, h, w) + x
    return out1, out2, a1, a2


def _ccn_state_dict(c: int, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {
        "w1": torch.tensor([0.3]),
        "w2": torch.tensor([0.8]),
        "c_attention1.0.weight": torch.randn(c, c, 3, 3, generator=g) * 0.3,
        "c_attention1.0.bias": torch.randn(c, generator=g) * 0.1,
        "c_attention2.0.weight": torch.randn(c, c, 3, 3, generator=g) * 0.3,
        "c_attention2.0.bias": torch.randn(c, generator=g) * 0.1,
    }


def test_ccn_state_dict_loads_strictly_and_matches_hand_recomputation():
    c = 5
    sd = _ccn_state_dict(c)
    pi = PreInteraction(c)
    assert set(pi.state_dict()) == set(sd)
    pi.load_state_dict(sd, strict=True)
    pi.double()
    x = torch.randn(2, c, 12, 30, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    out = pi(x)
    assert isinstance(out, PreInteractionOutput)
    ref1, ref2, a1, a2 = _hand_ccn(x, {k: v.double() for k, v in sd.items()})
    torch.testing.assert_close(out.first, ref1, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(out.second, ref2, rtol=1e-10, atol=1e-10)
    m1, m2 = pi.attention(x)
    torch.testing.assert_close(m1, a1, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(m2, a2, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("order", ["pool_conv", "conv_pool"])
def test_attention_rows_sum_to_one(order):
    torch.manual_seed(0)
    pi = DualPreInteraction(6, order=order)
    a1, a2 = pi.attention(torch.randn(3, 6, 13, 17), torch.randn(3, 6, 9, 11))
    assert a1.shape == a2.shape == (3, 6, 6)
    for a in (a1, a2):
        assert (a >= 0).all()
        torch.testing.assert_close(a.sum(-1), torch.ones(3, 6))


@pytest.mark.parametrize("order", ["pool_conv", "conv_pool"])
def test_dual_with_equal_inputs_equals_single(order):
    torch.manual_seed(0)
    single = PreInteraction(4, order=order, grid=(3, 5))
    dual = DualPreInteraction(4, order=order, grid=(3, 5))
    sd = single.state_dict()
    sd["w1"], sd["w2"] = torch.tensor([0.2]), torch.tensor([0.7])
    single.load_state_dict(sd)
    dual.load_state_dict(sd)
    x = torch.randn(2, 4, 9, 15)
    for got, want in zip(dual(x, x), single(x), strict=True):
        torch.testing.assert_close(got, want)


def test_orders_differ_and_conv_pool_is_conv_then_pool():
    torch.manual_seed(0)
    pi = PreInteraction(3, grid=(2, 2), order="conv_pool")
    x = torch.randn(1, 3, 8, 8)
    v = pi._embed(x, pi.c_attention1)
    ref = torch.nn.functional.adaptive_avg_pool2d(pi.c_attention1(x), (2, 2)).flatten(2)
    torch.testing.assert_close(v, ref)
    pi.order = "pool_conv"
    assert not torch.allclose(pi._embed(x, pi.c_attention1), ref)


@pytest.mark.parametrize("cls", [PreInteraction, DualPreInteraction])
def test_param_count_and_every_param_gets_a_gradient(cls):
    c = 7
    pi = cls(c)
    assert sum(p.numel() for p in pi.parameters()) == 2 * (9 * c * c + c) + 2
    x = torch.randn(2, c, 12, 20)
    out = pi(x) if cls is PreInteraction else pi(x, torch.randn(2, c, 6, 10))
    (out.first.square().mean() + out.second.sin().mean()).backward()
    for name, p in pi.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name


def test_small_inputs_and_odd_sizes():
    pi = PreInteraction(2)
    out = pi(torch.randn(1, 2, 3, 5))  # smaller than the 6x10 grid: adaptive pooling replicates
    assert out.first.shape == (1, 2, 3, 5)


def test_errors():
    with pytest.raises(ConfigError, match="order"):
        PreInteraction(4, order="bad")
    with pytest.raises(ShapeError, match="C=4"):
        PreInteraction(4)(torch.randn(1, 3, 6, 10))
    with pytest.raises(ShapeError, match="batch"):
        DualPreInteraction(4)(torch.randn(1, 4, 6, 10), torch.randn(2, 4, 6, 10))
