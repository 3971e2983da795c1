"""RGBDFuse (FAFNet Eq. 1-13), flow_to_pixels / pixels_to_flow, and the official RGBDAlignModule conversion."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from freqdense.errors import CheckpointError, ConfigError, ShapeError
from freqdense.nn.flow_align import flow_warp
from freqdense.nn.rgbd_fuse import RGBDFuse, flow_to_pixels, pixels_to_flow

OFFICIAL = dict(
    acfm_mode="fafnet", fam_directions="depth_to_rgb", fam_reduction=None, align_corners=False, stream_update="average"
)
CONFIGS = {
    "paper": {},
    "no_acfm": {"acfm": False},
    "no_fam": {"fam": False},
    "official": OFFICIAL,
    "both_unreduced": {"fam_reduction": None},
}


def _bilinear_zero_pad(img: np.ndarray, px: np.ndarray, py: np.ndarray) -> np.ndarray:
    """Independent bilinear sampler (C, H, W) at pixel positions (h, w); out-of-range taps contribute 0."""
    chans, height, width = img.shape
    out = np.zeros((chans,) + px.shape)
    for i in range(px.shape[0]):
        for j in range(px.shape[1]):
            x0, y0 = int(np.floor(px[i, j])), int(np.floor(py[i, j]))
            ax, ay = px[i, j] - x0, py[i, j] - y0
            for yy, wy in ((y0, 1 - ay), (y0 + 1, ay)):
                for xx, wx in ((x0, 1 - ax), (x0 + 1, ax)):
                    if 0 <= yy < height and 0 <= xx < width:
                        out[:, i, j] += wy * wx * img[:, yy, xx]
    return out


@pytest.mark.parametrize("name", list(CONFIGS))
def test_shapes_flow_keys_and_every_parameter_gets_a_gradient(name):
    torch.manual_seed(0)
    kw = CONFIGS[name]
    block = RGBDFuse(32, **kw)
    # per-sample channel offsets spread the pooled descriptor, so no hidden ReLU of the small ACFM MLP stays dead
    rgb = torch.randn(4, 32, 7, 9) + 3 * torch.randn(4, 32, 1, 1)
    depth = torch.randn(4, 32, 7, 9) + 3 * torch.randn(4, 32, 1, 1)
    out = block(rgb, depth)
    for t in out[:3]:
        assert t.shape == (4, 32, 7, 9)
    expected_keys = {
        "paper": {"depth_to_rgb", "rgb_to_depth"},
        "no_acfm": {"depth_to_rgb", "rgb_to_depth"},
        "no_fam": set(),
        "official": {"depth_to_rgb"},
        "both_unreduced": {"depth_to_rgb", "rgb_to_depth"},
    }[name]
    assert set(out.flows) == expected_keys
    assert all(f.shape == (4, 2, 7, 9) for f in out.flows.values())
    (out.rgb.square().sum() + out.depth.square().sum() + out.fused.square().sum()).backward()
    params = list(block.named_parameters())
    assert params or name == "no_fam"
    for pname, p in params:
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, pname


def test_fam_false_matches_equations_with_known_attention():
    # ACFM MLPs with zero last-layer weights: L = sigmoid(bias) exactly (Eq. 5); then Eq. 6-9, 1, 2-3 by hand.
    torch.manual_seed(1)
    block = RGBDFuse(16, fam=False)
    for mlp, bias in ((block.acfm.mlp_rgb, 0.3), (block.acfm.mlp_depth, -1.2)):
        torch.nn.init.zeros_(mlp[2].weight)
        torch.nn.init.constant_(mlp[2].bias, bias)
    rgb, depth = torch.randn(2, 16, 5, 6), torch.randn(2, 16, 5, 6)
    l_rgb, l_depth = 1 / (1 + np.exp(-0.3)), 1 / (1 + np.exp(1.2))
    rgb_f = l_rgb * rgb + depth
    depth_f = l_depth * depth + rgb
    out = block(rgb, depth)
    torch.testing.assert_close(out.fused, rgb_f + depth_f)
    torch.testing.assert_close(out.rgb, rgb + rgb_f)
    torch.testing.assert_close(out.depth, depth + depth_f)


@settings(max_examples=8, deadline=None)
@given(
    seed=st.integers(0, 2**16),
    h=st.integers(2, 9),
    w=st.integers(2, 9),
    acfm=st.booleans(),
    directions=st.sampled_from(["both", "depth_to_rgb"]),
    reduction=st.sampled_from([2, None]),
)
def test_zero_flow_convs_equal_the_no_fam_path(seed, h, w, acfm, directions, reduction):
    # align_corners=True: a same-size warp with zero flow is the identity, so RGBDFuse == its fam=False twin.
    torch.manual_seed(seed)
    kw = dict(acfm=acfm, fam_directions=directions, fam_reduction=reduction)
    with_fam, without = RGBDFuse(8, **kw), RGBDFuse(8, fam=False, **kw)
    without.load_state_dict({k: v for k, v in with_fam.state_dict().items() if k.startswith("acfm.")})
    for fam in (with_fam.align_depth, with_fam.align_rgb):
        if fam is not None:
            torch.nn.init.zeros_(fam.flow_make.weight)
    rgb, depth = torch.randn(2, 8, h, w), torch.randn(2, 8, h, w)
    a, b = with_fam(rgb, depth), without(rgb, depth)
    for x, y in zip(a[:3], b[:3]):
        torch.testing.assert_close(x, y, atol=1e-5, rtol=1e-5)
    assert all(f.abs().max() == 0 for f in a.flows.values())


@pytest.mark.parametrize("align_corners", [True, False])
def test_flow_to_pixels_gives_where_the_warp_samples(align_corners):
    # warped(p) = src(p + d(p)), checked with an independent sampler for a random smooth flow.
    torch.manual_seed(2)
    h, w = 6, 8
    src = torch.randn(1, 3, h, w, dtype=torch.float64)
    flow = 3 * torch.randn(1, 2, h, w, dtype=torch.float64)
    warped = flow_warp(src, flow, align_corners=align_corners)
    d = flow_to_pixels(flow, align_corners=align_corners)[0].numpy()
    ys, xs = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    ref = _bilinear_zero_pad(src[0].numpy(), xs + d[0], ys + d[1])
    np.testing.assert_allclose(warped[0].numpy(), ref, atol=1e-10)


def test_flow_to_pixels_closed_form_and_inverse():
    flow = torch.zeros(1, 2, 5, 9)
    flow[:, 0], flow[:, 1] = 18.0, -10.0
    d = flow_to_pixels(flow)  # x: 18 * 8 / 18 = 8, y: -10 * 4 / 10 = -4
    assert torch.allclose(d[:, 0], torch.tensor(8.0)) and torch.allclose(d[:, 1], torch.tensor(-4.0))
    d0 = flow_to_pixels(torch.zeros(1, 2, 3, 5), align_corners=False)  # zero flow samples off-pixel: k/(n-1) - 1/2
    torch.testing.assert_close(d0[0, 0, 0], torch.tensor([-0.5, -0.25, 0.0, 0.25, 0.5]))
    torch.testing.assert_close(d0[0, 1, :, 0], torch.tensor([-0.5, 0.0, 0.5]))
    torch.manual_seed(3)
    for ac in (True, False):
        f = torch.randn(2, 2, 4, 7, dtype=torch.float64)
        torch.testing.assert_close(pixels_to_flow(flow_to_pixels(f, align_corners=ac), align_corners=ac), f)


def _official_forward(sd, rgb, hha):
    """The official RGBDAlignModule forward as described in docs/reference_code.md#fafnet-official-code, written from
    scratch."""

    def attention(prefix, pooled):
        hidden = torch.relu(pooled @ sd[f"{prefix}.fc.0.weight"].T + sd[f"{prefix}.fc.0.bias"])
        return torch.sigmoid(hidden @ sd[f"{prefix}.fc.2.weight"].T + sd[f"{prefix}.fc.2.bias"])[..., None, None]

    pooled = torch.cat([rgb, hha], dim=1).mean(dim=(2, 3))
    total = rgb + hha
    rgb_m = attention("fsp1.filter", pooled) * total
    hha_m = attention("fsp2.filter", pooled) * total
    flow = F.conv2d(torch.cat([rgb_m, hha_m], dim=1), sd["flow_make2.weight"], padding=1)
    n, _, h, w = hha_m.shape
    gx = torch.linspace(-1, 1, w, dtype=rgb.dtype).view(1, 1, w).expand(n, h, w)
    gy = torch.linspace(-1, 1, h, dtype=rgb.dtype).view(1, h, 1).expand(n, h, w)
    grid = torch.stack([gx + flow[:, 0] / w, gy + flow[:, 1] / h], dim=-1)
    hha_m = F.grid_sample(hha_m, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return (rgb + rgb_m) / 2, (hha + hha_m) / 2, rgb_m + hha_m


def test_official_state_dict_conversion_reproduces_the_official_block():
    torch.manual_seed(4)
    c, hidden = 32, 2
    sd = {
        "flow_make.weight": torch.randn(2, 2 * c, 3, 3),  # created but unused upstream
        "flow_make2.weight": 0.05 * torch.randn(2, 2 * c, 3, 3),
    }
    for k in ("fsp1", "fsp2"):
        sd[f"{k}.filter.fc.0.weight"] = torch.randn(hidden, 2 * c) / 4
        sd[f"{k}.filter.fc.0.bias"] = torch.randn(hidden)
        sd[f"{k}.filter.fc.2.weight"] = torch.randn(c, hidden)
        sd[f"{k}.filter.fc.2.bias"] = torch.randn(c)
    block = RGBDFuse(c, **OFFICIAL)
    converted = RGBDFuse.convert_fafnet_state_dict(sd)
    assert set(converted) == set(block.state_dict())
    block.load_state_dict(converted, strict=True)
    rgb, hha = torch.randn(2, c, 6, 7, dtype=torch.float64), torch.randn(2, c, 6, 7, dtype=torch.float64)
    block = block.double()
    out = block(rgb, hha)
    ref = _official_forward({k: v.double() for k, v in sd.items()}, rgb, hha)
    for got, want in zip(out[:3], ref):
        torch.testing.assert_close(got, want, atol=1e-10, rtol=1e-10)
    assert out.flows["depth_to_rgb"].abs().max() > 0.1  # a real, non-trivial warp was compared


def test_conversion_rejects_a_dict_without_flow_make2():
    with pytest.raises(CheckpointError, match="flow_make2"):
        RGBDFuse.convert_fafnet_state_dict({"fsp1.filter.fc.0.weight": torch.zeros(1, 4)})


def test_bad_inputs_and_options_raise():
    block = RGBDFuse(8)
    with pytest.raises(ShapeError, match="same shape"):
        block(torch.randn(1, 8, 4, 4), torch.randn(1, 8, 4, 5))
    with pytest.raises(ShapeError):
        block(torch.randn(1, 4, 4, 4), torch.randn(1, 4, 4, 4))
    with pytest.raises(ConfigError, match="fam_directions"):
        RGBDFuse(8, fam_directions="rgb_to_depth")
    with pytest.raises(ConfigError, match="stream_update"):
        RGBDFuse(8, stream_update="max")
    with pytest.raises(ConfigError, match="fam_reduction"):
        RGBDFuse(8, fam_reduction=0)
