"""FADE in the up-sampler family (nn/upsamplers/fade.py): official keys and counts, the semi-shift convolution,
closed-form degenerate cases, odd sizes, gradients, ONNX."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from _onnx_check import assert_dynamo_onnx_matches

from freqdense.errors import ConfigError
from freqdense.nn.upsamplers import build_upsampler
from freqdense.nn.upsamplers.fade import FADEUpsampler, fade_state_dict_from_eccv
from freqdense.ops.reassemble import carafe_reference

# Keys and shapes of the official modules (poppinace/fade FADE_L2H.py, the IJCV release used by its SegFormer head)
# for C_hr = C_lr = 8: FADE(8), FADELite(8) and SemiShiftUp(8), in state-dict order.
FADE_KEYS = {
    "gate_generator.conv.weight": (1, 8, 1, 1),
    "gate_generator.conv.bias": (1,),
    "ker_generator.compressor_en.weight": (64, 8, 1, 1),
    "ker_generator.compressor_en.bias": (64,),
    "ker_generator.compressor_de.weight": (64, 8, 1, 1),
    "ker_generator.content_encoder.weight": (25, 64, 3, 3),
    "ker_generator.content_encoder.bias": (25,),
}
LITE_KEYS = {
    "gate_generator.conv.weight": (1, 8, 1, 1),
    "gate_generator.conv.bias": (1,),
    "ker_generator.compressor_en.weight": (25, 8, 1, 1),
    "ker_generator.compressor_en.bias": (25,),
    "ker_generator.compressor_de.weight": (25, 8, 1, 1),
    "ker_generator.content_encoder.weight": (25, 1, 3, 3),
    "ker_generator.content_encoder.bias": (25,),
}
SEMISHIFT_KEYS = {k: v for k, v in FADE_KEYS.items() if not k.startswith("gate_generator")}
# The ECCV release (FADE_H2L.py) names the kernel generator's tensors differently, in this order.
ECCV_KEYS = {
    "gate_generator.conv.weight": (1, 8, 1, 1),
    "gate_generator.conv.bias": (1,),
    "kernel_generator.conv2_kernels": (25, 64, 3, 3),
    "kernel_generator.conv2_bias": (25,),
    "kernel_generator.conv1_en.weight": (64, 8, 1, 1),
    "kernel_generator.conv1_en.bias": (64,),
    "kernel_generator.conv1_de.weight": (64, 8, 1, 1),
}


def _randomise(module: torch.nn.Module, std: float = 0.3, seed: int = 0) -> torch.nn.Module:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=gen, dtype=p.dtype) * std)
    return module


def _nearest2(x: torch.Tensor) -> torch.Tensor:
    return x.repeat_interleave(2, dim=-2).repeat_interleave(2, dim=-1)


def _semi_shift_reference(hr, lr, w_en, b_en, w_de, phi_w, phi_b):
    """The ECCV formulation: a stride-2 3x3 window over the compressed encoder feature, padded four ways so the
    window centres on each sub-pixel, plus the same window on the decoder feature (both with phi's bias)."""
    en, de = F.conv2d(hr, w_en, b_en), F.conv2d(lr, w_de)
    b, _, h, w = lr.shape
    out = hr.new_empty(b, phi_w.shape[0], 2 * h, 2 * w)
    dec = F.conv2d(de, phi_w, phi_b, padding=1)
    for a in (0, 1):
        for c in (0, 1):
            shifted = F.pad(en, (1 - c, c, 1 - a, a))  # left, right, top, bottom
            out[:, :, a::2, c::2] = F.conv2d(shifted, phi_w, phi_b, stride=2) + dec
    return out


@pytest.mark.parametrize(
    ("kwargs", "channels", "keys", "count"),
    [
        ({}, (256, 256), None, 47_514),  # official FADE(256): +0.29M for the 6 of the SegFormer-B1 head
        ({"lite": True}, (256, 256), None, 13_332),  # official FADELite(256): +80K for 6
        ({"gate": False}, (256, 256), None, 47_257),  # official SemiShiftUp(256)
        ({}, (64, 64), None, 22_746),
        ({}, (32, 48), None, 19_609),  # channels differ: gate off = official SemiShiftUp(32, 48)
        ({"lite": True}, (32, 48), None, 2_324 - 49),  # official FADELite(32, 48) less its gate (48 + 1)
        ({}, (8, 8), FADE_KEYS, None),
        ({"lite": True}, (8, 8), LITE_KEYS, None),
        ({"gate": False}, (8, 8), SEMISHIFT_KEYS, None),
    ],
)
def test_parameter_counts_and_state_dict_keys_equal_the_official_modules(kwargs, channels, keys, count):
    m = build_upsampler("fade", *channels, **kwargs)
    assert isinstance(m, FADEUpsampler)
    if count is not None:
        assert sum(p.numel() for p in m.parameters()) == count
    if keys is not None:
        assert {k: tuple(v.shape) for k, v in m.state_dict().items()} == keys
        assert list(m.state_dict()) == list(keys)  # the official order too
        official = {k: torch.randn(shape) for k, shape in keys.items()}
        m.load_state_dict(official, strict=True)
        for k, v in m.state_dict().items():
            assert torch.equal(v, official[k])


def test_parameter_count_closed_form():
    for c in (3, 16, 256):
        assert sum(p.numel() for p in FADEUpsampler(c, c).parameters()) == 129 * c + 14_490
        assert sum(p.numel() for p in FADEUpsampler(c, c, lite=True).parameters()) == 51 * c + 276


def test_kernels_equal_the_eccv_semi_shift_convolution_and_eccv_state_dicts_load():
    torch.manual_seed(0)
    eccv = {k: torch.randn(shape, dtype=torch.float64) * 0.3 for k, shape in ECCV_KEYS.items()}
    m = FADEUpsampler(8, 8).double()
    m.load_state_dict(fade_state_dict_from_eccv(eccv), strict=True)
    hr, lr = torch.randn(2, 8, 6, 10, dtype=torch.float64), torch.randn(2, 8, 3, 5, dtype=torch.float64)
    logits = _semi_shift_reference(
        hr,
        lr,
        eccv["kernel_generator.conv1_en.weight"],
        eccv["kernel_generator.conv1_en.bias"],
        eccv["kernel_generator.conv1_de.weight"],
        eccv["kernel_generator.conv2_kernels"],
        eccv["kernel_generator.conv2_bias"],
    )
    torch.testing.assert_close(m.kernels(hr, lr), torch.softmax(logits, dim=1))
    # Prefixed keys (a FADE inside a decoder) keep their prefix; unrelated keys pass through.
    nested = fade_state_dict_from_eccv({"head.up.0.kernel_generator.conv2_bias": eccv["kernel_generator.conv2_bias"]})
    assert list(nested) == ["head.up.0.ker_generator.content_encoder.bias"]
    assert list(fade_state_dict_from_eccv({"x.weight": torch.zeros(1)})) == ["x.weight"]


def test_forward_equals_a_per_pixel_reference_with_the_gate():
    m = _randomise(FADEUpsampler(3, 3, up_kernel_size=3, embedding_dim=4).double())
    hr, lr = torch.randn(1, 3, 6, 8, dtype=torch.float64), torch.randn(1, 3, 3, 4, dtype=torch.float64)
    gen = m.ker_generator
    logits = _semi_shift_reference(
        hr,
        lr,
        gen.compressor_en.weight,
        gen.compressor_en.bias,
        gen.compressor_de.weight,
        gen.content_encoder.weight,
        gen.content_encoder.bias,
    )
    up = carafe_reference(lr, torch.softmax(logits, dim=1), 3, 1, 2)  # zero outside the map, as mmcv
    gate = _nearest2(torch.sigmoid(F.conv2d(lr, m.gate_generator.conv.weight, m.gate_generator.conv.bias)))
    hr_out, lr_up = m(hr, lr)
    assert torch.equal(hr_out, hr)
    torch.testing.assert_close(lr_up, gate * hr + (1 - gate) * up)


@pytest.mark.parametrize("lite", [False, True])
def test_constant_logits_give_a_zero_padded_box_filter_mixed_half_and_half(lite):
    # All weights and biases zero: uniform kernels (1/k^2 over the window, zero outside the map) and gate 1/2.
    m = FADEUpsampler(2, 2, lite=lite).double()
    with torch.no_grad():
        for p in m.parameters():
            p.zero_()
    hr, lr = torch.randn(1, 2, 8, 10, dtype=torch.float64), torch.randn(1, 2, 4, 5, dtype=torch.float64)
    box = F.avg_pool2d(lr, 5, stride=1, padding=2, count_include_pad=True)
    torch.testing.assert_close(m(hr, lr).lr_feat, 0.5 * hr + 0.5 * _nearest2(box))


def test_a_dominant_centre_tap_is_nearest_and_the_gate_saturates_to_either_input():
    m = FADEUpsampler(2, 2).double()
    with torch.no_grad():
        for p in m.parameters():
            p.zero_()
        m.ker_generator.content_encoder.bias[12] = 40.0  # centre of the 5x5 window (counted twice: 80)
        m.gate_generator.conv.bias.fill_(-80.0)
    hr = torch.tensor([[[[1.0, -2.0], [3.0, 0.5]], [[0.0, 1.0], [2.0, -1.0]]]], dtype=torch.float64)
    lr = torch.tensor([[[[7.0]], [[-3.0]]]], dtype=torch.float64)
    torch.testing.assert_close(m(hr, lr).lr_feat, lr.expand(1, 2, 2, 2), atol=1e-12, rtol=0)
    with torch.no_grad():
        m.gate_generator.conv.bias.fill_(80.0)
    torch.testing.assert_close(m(hr, lr).lr_feat, hr, atol=1e-12, rtol=0)


@pytest.mark.parametrize(("hr_size", "lr_size"), [((9, 13), (5, 7)), ((10, 14), (5, 7))])
@pytest.mark.parametrize("kwargs", [{}, {"lite": True}])
def test_odd_sizes_pad_replicate_and_crop(hr_size, lr_size, kwargs):
    m = _randomise(FADEUpsampler(4, 4, **kwargs).double(), seed=2)
    hr = torch.randn(2, 4, *hr_size, dtype=torch.float64)
    lr = torch.randn(2, 4, *lr_size, dtype=torch.float64)
    out = m(hr, lr)
    assert torch.equal(out.hr_feat, hr) and tuple(out.lr_feat.shape) == (2, 4, *hr_size)
    hr_pad = F.pad(hr, (0, 14 - hr_size[1], 0, 10 - hr_size[0]), mode="replicate")
    ref = m(hr_pad, lr).lr_feat[..., : hr_size[0], : hr_size[1]]
    torch.testing.assert_close(out.lr_feat, ref)


@pytest.mark.parametrize("kwargs", [{}, {"lite": True}, {"gate": False}])
def test_gradients_reach_every_parameter_and_both_inputs(kwargs):
    torch.manual_seed(3)
    m = FADEUpsampler(4, 4, **kwargs).double()
    hr = torch.randn(1, 4, 9, 11, dtype=torch.float64, requires_grad=True)
    lr = torch.randn(1, 4, 5, 6, dtype=torch.float64, requires_grad=True)
    out = m(hr, lr).lr_feat
    (out * torch.randn_like(out)).sum().backward()
    for name, p in m.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, f"no gradient reaches {name}"
    assert hr.grad.abs().sum() > 0 and lr.grad.abs().sum() > 0


def test_gradcheck_float64():
    m = _randomise(FADEUpsampler(2, 2, up_kernel_size=3, embedding_dim=3).double(), seed=4)
    hr = torch.randn(1, 2, 3, 4, dtype=torch.float64, requires_grad=True)  # odd: through the padding too
    lr = torch.randn(1, 2, 2, 2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b: m(a, b).lr_feat, (hr, lr), fast_mode=True)


@pytest.mark.parametrize(
    ("kwargs", "channels", "match"),
    [
        ({"gate": True}, (8, 4), "gate mixes hr into the output"),
        ({"lite": True, "embedding_dim": 32}, (8, 8), "has no embedding_dim"),
        ({"up_kernel_size": 4}, (8, 8), "up_kernel_size must be an odd integer"),
        ({"kernel_size": 0}, (8, 8), "kernel_size must be an odd integer"),
        ({"embedding_dim": 0}, (8, 8), "embedding_dim must be an integer >= 1"),
    ],
)
def test_bad_options_raise_config_error(kwargs, channels, match):
    with pytest.raises(ConfigError, match=match):
        build_upsampler("fade", *channels, **kwargs)


def test_guided_module_refuses_plain_upsampling_and_reports_its_options():
    m = build_upsampler("fade", 8, 8, lite=True)
    with pytest.raises(ConfigError, match="guided by the high-resolution feature"):
        m.upsample(torch.randn(1, 8, 3, 3))
    assert "lite=True" in repr(m) and "gate=True" in repr(m)
    assert not build_upsampler("fade", 8, 6).gated


@pytest.mark.export
def test_onnx_export_at_an_odd_size_matches_onnxruntime():
    # odd sizes: the padding and the crop are in the graph; dynamic H/W (hr = 2 lr - 1) exports too
    assert_dynamo_onnx_matches(_randomise(FADEUpsampler(4, 4).float().eval(), seed=5), (1, 4, 9, 13), (1, 4, 5, 7))
