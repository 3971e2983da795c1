"""FreqFusion (nn/freq_fusion.py) and its offset generator: official keys, forward order, kernel properties."""

from __future__ import annotations

import logging

import pytest
import torch
import torch.nn.functional as F

from freqdense.errors import ConfigError, ShapeError
from freqdense.nn import FreqFusion, FreqFusionOutput, LocalSimGuidedSampler
from freqdense.ops import carafe_unfold, hamming2d

# docs/reference_code.md#freqfusion-state-dicts (a), hr = lr = 256, Cc = 64, defaults, in state-dict order.
KEYS_DEFAULT = {
    "hamming_lowpass": (1, 1, 5, 5),
    "hamming_highpass": (1, 1, 3, 3),
    "hr_channel_compressor.weight": (64, 256, 1, 1),
    "hr_channel_compressor.bias": (64,),
    "lr_channel_compressor.weight": (64, 256, 1, 1),
    "lr_channel_compressor.bias": (64,),
    "content_encoder.weight": (25, 64, 3, 3),
    "content_encoder.bias": (25,),
    "content_encoder2.weight": (9, 64, 3, 3),
    "content_encoder2.bias": (9,),
}
# docs/reference_code.md#freqfusion-state-dicts (b): feature_resample=True, G=4, 'sim_concat'; inserted between
# content_encoder and content_encoder2.
DYSAMPLER_SIM_CONCAT = {
    "dysampler.init_pos": (1, 32, 1, 1),
    "dysampler.offset.weight": (32, 72, 3, 3),
    "dysampler.offset.bias": (32,),
    "dysampler.direct_scale.weight": (32, 72, 3, 3),
    "dysampler.direct_scale.bias": (32,),
    "dysampler.hr_offset.weight": (8, 72, 3, 3),
    "dysampler.hr_offset.bias": (8,),
    "dysampler.hr_direct_scale.weight": (8, 72, 3, 3),
    "dysampler.hr_direct_scale.bias": (8,),
    "dysampler.norm_hr.weight": (64,),
    "dysampler.norm_hr.bias": (64,),
    "dysampler.norm_lr.weight": (64,),
    "dysampler.norm_lr.bias": (64,),
}


def _with_dysampler(dysampler: dict[str, tuple[int, ...]], **overrides) -> dict[str, tuple[int, ...]]:
    keys = list(KEYS_DEFAULT.items())
    at = [k for k, _ in keys].index("content_encoder.bias") + 1
    table = dict(keys[:at] + list(dysampler.items()) + keys[at:])
    table.update(overrides)
    return {k: v for k, v in table.items() if v is not None}


def _spec_tables():
    no_norm = {k: v for k, v in DYSAMPLER_SIM_CONCAT.items() if ".norm_" not in k}
    sim = dict(DYSAMPLER_SIM_CONCAT)
    sim.update(
        {
            "dysampler.offset.weight": (32, 8, 3, 3),
            "dysampler.direct_scale.weight": (32, 64, 3, 3),
            "dysampler.hr_offset.weight": (8, 8, 3, 3),
            "dysampler.hr_direct_scale.weight": (8, 64, 3, 3),
        }
    )
    return [  # (constructor kwargs, expected table, parameter count from the reference tables)
        ({}, KEYS_DEFAULT, 52_514),
        ({"hamming_window": False}, {**KEYS_DEFAULT, "hamming_lowpass": (1,), "hamming_highpass": (1,)}, 52_514),
        ({"feature_resample": True}, _with_dysampler(DYSAMPLER_SIM_CONCAT), 104_690),
        (
            {"feature_resample": True, "hamming_window": False, "feature_resample_norm": False},
            _with_dysampler(no_norm, hamming_lowpass=(1,), hamming_highpass=(1,)),
            104_434,
        ),
        ({"feature_resample": True, "direction_feat": "sim"}, _with_dysampler(sim), 78_770),
    ]


@pytest.mark.parametrize(("kwargs", "table", "n_params"), _spec_tables())
def test_state_dict_matches_official_keys_and_loads_strict(kwargs, table, n_params):
    ff = FreqFusion(256, 256, compressed_channels=64, **kwargs)
    sd = ff.state_dict()
    assert list(sd) == list(table)  # same keys, official order
    assert {k: tuple(v.shape) for k, v in sd.items()} == table
    assert sum(p.numel() for p in ff.parameters()) == n_params
    # An "official" state dict built from the reference table loads with strict=True and its values land.
    gen = torch.Generator().manual_seed(0)
    official = {k: torch.randn(shape, generator=gen) for k, shape in table.items()}
    ff.load_state_dict(official, strict=True)
    for key, value in ff.state_dict().items():
        torch.testing.assert_close(value, official[key], rtol=0, atol=0)


def test_segnext_head_parameter_counts():
    # docs/reference_code.md#freqfusion-state-dicts (d): SegNeXt-T head stages ('sim', G=4, GroupNorm on).
    stage1 = FreqFusion(160, 256, compressed_channels=104, feature_resample=True, direction_feat="sim")
    stage2 = FreqFusion(64, 416, compressed_channels=120, feature_resample=True, direction_feat="sim")
    assert sum(p.numel() for p in stage1.parameters()) == 116_146
    assert sum(p.numel() for p in stage2.parameters()) == 141_234


def test_buffers_and_initialisation_follow_spec():
    ff = FreqFusion(32, 32, compressed_channels=32, feature_resample=True)
    torch.testing.assert_close(ff.hamming_highpass[0, 0, 1], torch.tensor([0.08, 1.0, 0.08]))
    torch.testing.assert_close(ff.hamming_lowpass[0, 0, 2], torch.tensor([0.08, 0.54, 1.0, 0.54, 0.08]))
    assert ff.content_encoder.weight.std() < 0.002 and ff.content_encoder2.weight.std() < 0.002
    # The xavier pass overwrites the sampler's own zero init of direct_scale
    # (docs/reference_code.md#freqfusion-initialisation).
    w = ff.dysampler.direct_scale.weight
    bound = (6 / (w.shape[1] * 9 + w.shape[0] * 9)) ** 0.5
    assert 0.5 * bound < w.abs().max() <= bound
    assert all((m.bias == 0).all() for m in ff.modules() if isinstance(m, torch.nn.Conv2d))
    # init_pos: [x | y] x group x dy x dx, x = +-0.25 with dx, y = +-0.25 with dy.
    pos = ff.dysampler.init_pos.view(2, 4, 2, 2)
    torch.testing.assert_close(pos[0], torch.tensor([[-0.25, 0.25], [-0.25, 0.25]]).expand(4, 2, 2))
    torch.testing.assert_close(pos[1], torch.tensor([[-0.25, -0.25], [0.25, 0.25]]).expand(4, 2, 2))


def _official_forward(ff: FreqFusion, hr: torch.Tensor, lr: torch.Tensor):
    """Literal transcription of docs/reference_code.md#freqfusion-forward-default-path, with the unfold CARAFE and an
    explicit normaliser."""

    def norm(logits, k, window):
        b, _, h, w = logits.shape
        e = logits.view(b, k * k, h, w).softmax(1) * window.reshape(1, -1, 1, 1)
        return e / e.sum(1, keepdim=True)

    def up(x, like):
        return F.interpolate(x, size=like.shape[-2:], mode="nearest")

    mode = ff.carafe_padding
    ham_l, ham_h = ff.hamming_lowpass, ff.hamming_highpass
    chr_ = ff.hr_channel_compressor(hr)
    clr = ff.lr_channel_compressor(lr)
    m_hh = ff.content_encoder2(chr_)
    chr_ = chr_ + chr_ - carafe_unfold(chr_, norm(m_hh, 3, ham_h), 3, 1, 1, padding_mode=mode)
    m_lh = ff.content_encoder(chr_)
    m_ll = up(carafe_unfold(ff.content_encoder(clr), norm(m_lh, 5, ham_l), 5, 1, 2, padding_mode=mode), chr_)
    mask_lr = m_lh + m_ll
    mask_hr = m_hh + up(
        carafe_unfold(ff.content_encoder2(clr), norm(mask_lr, 5, ham_l), 5, 1, 2, padding_mode=mode), chr_
    )
    k_lp = norm(mask_lr, 5, ham_l)
    lr_up = carafe_unfold(lr, k_lp, 5, 1, 2, padding_mode=mode)
    hr_out = hr + (hr - carafe_unfold(hr, norm(mask_hr, 3, ham_h), 3, 1, 1, padding_mode=mode))
    if ff.feature_resample:
        lr_up = ff.dysampler(chr_, clr, lr_up)
    return k_lp, hr_out, lr_up


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"hamming_window": False, "carafe_padding": "reflect"},
        {"feature_resample": True},
        {"feature_resample": True, "direction_feat": "sim", "feature_resample_norm": False},
    ],
)
def test_forward_follows_official_order(kwargs):
    torch.manual_seed(0)
    ff = FreqFusion(8, 12, compressed_channels=16, feature_resample_group=4, **kwargs).double()
    # Larger kernel-generator weights than the init, so that the kernels are far from uniform.
    for conv in (ff.content_encoder, ff.content_encoder2):
        torch.nn.init.normal_(conv.weight, std=0.3)
        torch.nn.init.normal_(conv.bias, std=0.3)
    hr, lr = torch.randn(2, 8, 10, 12, dtype=torch.float64), torch.randn(2, 12, 5, 6, dtype=torch.float64)
    out = ff(hr, lr)
    assert isinstance(out, FreqFusionOutput) and out._fields == ("mask", "hr_feat", "lr_feat")
    for got, expected in zip(out, _official_forward(ff, hr, lr)):
        torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("hamming_window", [False, True])
def test_zero_kernel_generators_give_fixed_window_filters(hamming_window):
    """Zero logits -> every kernel is the normalised window w / sum(w) (the box filter without Hamming), so
    lr_up = nearest_2x(conv(lr, w_5 / sum w_5)) and hr_out = 2 hr - conv(hr, w_3 / sum w_3), zero-padded; zero
    offset convs make the resampler the identity.
    """
    torch.manual_seed(0)
    ff = FreqFusion(6, 8, compressed_channels=16, hamming_window=hamming_window, feature_resample=True).double()
    for name, module in ff.named_modules():
        if isinstance(module, torch.nn.Conv2d) and name != "hr_channel_compressor" and name != "lr_channel_compressor":
            torch.nn.init.zeros_(module.weight)
            torch.nn.init.zeros_(module.bias)
    hr, lr = torch.randn(1, 6, 14, 10, dtype=torch.float64), torch.randn(1, 8, 7, 5, dtype=torch.float64)
    out = ff(hr, lr)

    def window_filter(x, k):
        if hamming_window:
            w = hamming2d(k, dtype=torch.float64)
            w = (w / w.sum()).expand(x.shape[1], 1, k, k)
            return F.conv2d(x, w, padding=k // 2, groups=x.shape[1])
        return F.avg_pool2d(x, k, stride=1, padding=k // 2, count_include_pad=True)

    torch.testing.assert_close(out.lr_feat, F.interpolate(window_filter(lr, 5), scale_factor=2, mode="nearest"))
    torch.testing.assert_close(out.hr_feat, 2 * hr - window_filter(hr, 3))
    w5 = hamming2d(5, dtype=torch.float64).flatten() if hamming_window else torch.ones(25, dtype=torch.float64)
    torch.testing.assert_close(out.mask, (w5 / w5.sum()).view(1, 25, 1, 1).expand_as(out.mask))


def test_lowpass_kernels_are_nonnegative_and_sum_to_one():
    torch.manual_seed(1)
    ff = FreqFusion(8, 8, compressed_channels=16, up_group=2)
    for conv in (ff.content_encoder, ff.content_encoder2):
        torch.nn.init.normal_(conv.weight, std=1.0)
    out = ff(torch.randn(2, 8, 12, 10), torch.randn(2, 8, 6, 5))
    assert out.mask.shape == (2, 50, 12, 10)
    assert (out.mask >= 0).all()
    torch.testing.assert_close(out.mask.view(2, 2, 25, 12, 10).sum(2), torch.ones(2, 2, 12, 10))
    assert out.mask.amax() > 0.2  # really content-adaptive, not the uniform 1/25


def test_zero_offsets_are_identity_of_the_sampler():
    sampler = LocalSimGuidedSampler(16, groups=4, kernel_size=3)
    for conv in (sampler.offset, sampler.hr_offset, sampler.direct_scale, sampler.hr_direct_scale):
        torch.nn.init.zeros_(conv.weight)
        torch.nn.init.zeros_(conv.bias)
    feat = torch.randn(2, 12, 10, 14)
    out = sampler(torch.randn(2, 16, 10, 14), torch.randn(2, 16, 5, 7), feat)
    torch.testing.assert_close(out, feat, rtol=0, atol=1e-5)
    # A uniform offset of +1 LR pixel in x shifts each group by 2 HR pixels (border-clamped at the right).
    with torch.no_grad():
        sampler.offset.bias[: sampler.offset.bias.numel() // 2] = 2.0  # x half; sigmoid(0) = 0.5 -> +1
    shifted = sampler(torch.randn(2, 16, 10, 14), torch.randn(2, 16, 5, 7), feat)
    torch.testing.assert_close(shifted[..., :-2], feat[..., 2:], rtol=0, atol=1e-5)


def test_every_parameter_gets_a_finite_gradient():
    for kwargs in ({"feature_resample": True}, {"feature_resample": True, "direction_feat": "sim"}, {}):
        torch.manual_seed(0)
        ff = FreqFusion(8, 16, compressed_channels=16, **kwargs)
        out = ff(torch.randn(2, 8, 12, 14), torch.randn(2, 16, 6, 7))
        (out.mask.square().sum() + out.hr_feat.square().sum() + out.lr_feat.square().sum()).backward()
        for name, p in ff.named_parameters():
            assert p.grad is not None and torch.isfinite(p.grad).all(), name
            assert p.grad.abs().sum() > 0, name


@pytest.mark.parametrize("sizes", [((33, 47), (17, 24)), ((33, 47), (16, 23)), ((9, 8), (5, 4)), ((1, 3), (1, 1))])
def test_odd_sizes_pad_and_crop(sizes):
    (height, width), (h, w) = sizes
    torch.manual_seed(0)
    ff = FreqFusion(6, 12, compressed_channels=16, feature_resample=True).eval()
    hr, lr = torch.randn(1, 6, height, width), torch.randn(1, 12, h, w)
    out = ff(hr, lr)
    assert [tuple(t.shape[-2:]) for t in out] == [(height, width)] * 3
    # Policy: replicate-pad lr to ceil(H/2) x ceil(W/2), hr to twice that (bottom/right), fuse, crop.
    lh, lw = (height + 1) // 2, (width + 1) // 2
    lr_p = F.pad(lr, (0, lw - w, 0, lh - h), mode="replicate")
    hr_p = F.pad(hr, (0, 2 * lw - width, 0, 2 * lh - height), mode="replicate")
    for got, full in zip(out, ff(hr_p, lr_p)):
        torch.testing.assert_close(got, full[..., :height, :width])


def test_bad_inputs_raise_shape_errors_naming_the_tensor():
    ff = FreqFusion(6, 10, compressed_channels=16)
    with pytest.raises(ShapeError, match="lr_feat"):
        ff(torch.randn(1, 6, 32, 32), torch.randn(1, 10, 8, 8))
    with pytest.raises(ShapeError, match="hr_feat"):
        ff(torch.randn(1, 5, 32, 32), torch.randn(1, 10, 16, 16))
    with pytest.raises(ShapeError, match="batch"):
        ff(torch.randn(2, 6, 32, 32), torch.randn(1, 10, 16, 16))


def test_constructor_errors_and_ignored_kwargs(caplog):
    with pytest.raises(ConfigError, match="scale_factor"):
        FreqFusion(8, 8, scale_factor=2)
    with pytest.raises(ConfigError, match="feature_resample_group"):
        FreqFusion(8, 6, compressed_channels=16, feature_resample=True)
    with caplog.at_level(logging.WARNING, logger="freqdense.nn.freq_fusion"):
        FreqFusion(8, 8, compressed_channels=16, feature_align=True)
    assert "feature_align" in caplog.text


@pytest.mark.parametrize(
    "kwargs",
    [
        {"comp_feat_upsample": False},
        {"semi_conv": False, "upsample_mode": "bilinear"},
        {"use_high_pass": False},
        {"hr_residual": False},
    ],
)
def test_other_paths_run_and_backpropagate(kwargs):
    torch.manual_seed(0)
    ff = FreqFusion(8, 8, compressed_channels=16, **kwargs)
    hr = torch.randn(1, 8, 10, 10, requires_grad=True)
    out = ff(hr, torch.randn(1, 8, 5, 5))
    sum(t.sum() for t in out).backward()
    assert torch.isfinite(hr.grad).all()
    if kwargs.get("use_high_pass") is False:
        assert not hasattr(ff, "content_encoder2")
        torch.testing.assert_close(out.hr_feat, hr)


def test_eval_determinism_state_dict_round_trip_and_checkpointing():
    torch.manual_seed(0)
    ff = FreqFusion(8, 16, compressed_channels=16, feature_resample=True).eval()
    hr, lr = torch.randn(1, 8, 12, 12), torch.randn(1, 16, 6, 6)
    first, second = ff(hr, lr), ff(hr, lr)
    for a, b in zip(first, second):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    clone = FreqFusion(8, 16, compressed_channels=16, feature_resample=True).eval()
    clone.load_state_dict(ff.state_dict(), strict=True)
    for a, b in zip(first, clone(hr, lr)):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    hr.requires_grad_(True)
    plain = sum(t.sum() for t in ff(hr, lr))
    (g_plain,) = torch.autograd.grad(plain, hr)
    ckpt = sum(t.sum() for t in ff(hr, lr, use_checkpoint=True))
    (g_ckpt,) = torch.autograd.grad(ckpt, hr)
    torch.testing.assert_close(g_plain, g_ckpt)


def test_autocast_bfloat16_and_half_precision_modules():
    torch.manual_seed(0)
    ff = FreqFusion(8, 16, compressed_channels=16, feature_resample=True)
    hr, lr = torch.randn(1, 8, 8, 8), torch.randn(1, 16, 4, 4)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = ff(hr.bfloat16(), lr)
    assert all(torch.isfinite(t.float()).all() for t in out)
    out16 = ff.to(torch.bfloat16)(hr.bfloat16(), lr.bfloat16())
    assert all(t.dtype == torch.bfloat16 for t in out16)


def test_torch_compile_fullgraph():
    torch.manual_seed(0)
    ff = FreqFusion(8, 8, compressed_channels=16, feature_resample=True).eval()
    hr, lr = torch.randn(1, 8, 9, 12), torch.randn(1, 8, 5, 6)
    compiled = torch.compile(ff, fullgraph=True, backend="eager")
    for a, b in zip(compiled(hr, lr), ff(hr, lr)):
        torch.testing.assert_close(a, b)
