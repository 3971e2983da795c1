"""FlowAlignment / flow_warp: SFNet semantics (docs/reference_code.md#fam-forward) and the FAFNet variant."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from freqdense.errors import ConfigError, ShapeError
from freqdense.nn import FlowAlignment, flow_warp


def _bilinear_zero_pad(img: np.ndarray, px: np.ndarray, py: np.ndarray) -> np.ndarray:
    """Independent per-pixel bilinear sampler, out-of-range taps contribute 0. img (C, H, W); px, py (h, w)."""
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


@pytest.mark.parametrize("align_corners", [True, False])
def test_zero_flow_matches_closed_form_sampling(align_corners):
    torch.manual_seed(0)
    high = torch.randn(1, 3, 5, 7, dtype=torch.float64)
    h, w = 10, 13
    out = flow_warp(high, torch.zeros(1, 2, h, w, dtype=torch.float64), align_corners=align_corners)
    # normalised grid g = -1 + 2k/(n-1); input pixel = (g+1)/2 (W-1) (True) or ((g+1) W - 1)/2 (False)
    gx = -1 + 2 * np.arange(w) / (w - 1)
    gy = -1 + 2 * np.arange(h) / (h - 1)
    if align_corners:
        px, py = (gx + 1) / 2 * (7 - 1), (gy + 1) / 2 * (5 - 1)
    else:
        px, py = ((gx + 1) * 7 - 1) / 2, ((gy + 1) * 5 - 1) / 2
    ref = _bilinear_zero_pad(high[0].numpy(), *np.meshgrid(px, py))
    np.testing.assert_allclose(out[0].numpy(), ref, atol=1e-12)


def test_zero_flow_is_bilinear_upsampling_align_corners_true():
    torch.manual_seed(0)
    fam = FlowAlignment(6, 3)
    torch.nn.init.zeros_(fam.flow_make.weight)
    low, high = torch.randn(2, 6, 16, 20), torch.randn(2, 6, 8, 10)
    expected = F.interpolate(high, size=(16, 20), mode="bilinear", align_corners=True)
    torch.testing.assert_close(fam(low, high), expected, atol=1e-5, rtol=0)


def test_zero_flow_align_corners_false_is_not_identity():
    # FAFNet's variant: same-size zero-flow warp stretches by w/(w-1) and half-blends the border with zeros.
    x = torch.ones(1, 1, 4, 4)
    out = flow_warp(x, torch.zeros(1, 2, 4, 4), align_corners=False)
    assert out[0, 0, 0, 0].item() == pytest.approx(0.25)  # corner: half outside in x and y
    assert out[0, 0, 1, 1].item() == pytest.approx(1.0)


def test_constant_flow_shifts_by_expected_pixels():
    torch.manual_seed(0)
    size, shift = 9, 2  # same resolution: one flow unit = (w - 1) / (2 w) pixels (align_corners=True)
    x = torch.randn(1, 2, size, size, dtype=torch.float64)
    flow = torch.zeros(1, 2, size, size, dtype=torch.float64)
    flow[:, 0] = shift * 2 * size / (size - 1)  # +2 px in x: output[j] = input[j + 2]
    flow[:, 1] = -1 * 2 * size / (size - 1)  # -1 px in y: output[i] = input[i - 1]
    out = flow_warp(x, flow)
    expected = torch.zeros_like(x)
    expected[..., 1:, : size - shift] = x[..., :-1, shift:]
    torch.testing.assert_close(out, expected, atol=1e-12, rtol=0)


def test_sfnet_state_dict_loads_strictly_and_param_count():
    sd = {
        "down_h.weight": torch.randn(128, 256, 1, 1),
        "down_l.weight": torch.randn(128, 256, 1, 1),
        "flow_make.weight": torch.randn(2, 256, 3, 3),
    }
    fam = FlowAlignment(256, 128)
    fam.load_state_dict(sd, strict=True)
    assert sum(p.numel() for p in fam.parameters()) == 70_144  # docs/reference_code.md#fam-layers
    assert set(fam.state_dict()) == set(sd)


def test_flow_input_order_high_first():
    # flow_make sees cat([up(down_h(high)), down_l(low)]): weights on the first half only must react to `high`.
    fam = FlowAlignment(2, 1, align_corners=True)
    with torch.no_grad():
        fam.down_h.weight.fill_(1.0)
        fam.down_l.weight.fill_(1.0)
        fam.flow_make.weight.zero_()
        fam.flow_make.weight[:, 0, 1, 1] = 1.0
    low, high = torch.zeros(1, 2, 4, 4), torch.ones(1, 2, 2, 2)
    torch.testing.assert_close(fam.compute_flow(low, high), torch.full((1, 2, 4, 4), 2.0))


def test_every_parameter_gets_a_gradient():
    torch.manual_seed(0)
    fam = FlowAlignment(4, 2)
    low, high = torch.randn(2, 4, 8, 8), torch.randn(2, 4, 4, 4)
    fam(low, high).square().sum().backward()
    for name, p in fam.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_errors():
    with pytest.raises(ConfigError):
        FlowAlignment(4, 2, kernel_size=2)
    with pytest.raises(ShapeError):
        FlowAlignment(4, 2)(torch.randn(1, 3, 8, 8), torch.randn(1, 4, 4, 4))
    with pytest.raises(ShapeError):
        flow_warp(torch.randn(2, 1, 4, 4), torch.zeros(1, 2, 4, 4))
