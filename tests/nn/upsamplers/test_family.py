"""The up-sampler family as a whole: one interface, odd sizes, gradients, decoders that take any member."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from freqdense.errors import ConfigError, ShapeError
from freqdense.models import create_model
from freqdense.nn.upsamplers import UPSAMPLERS, build_upsampler, upsampler_class

C = 16  # divisible by every member's groups (DySample's 4 groups, FreqFusion's compressed channels)


def _build(name: str, hr_channels: int = C, lr_channels: int = C):
    kwargs = {"compressed_channels": 8} if name == "freqfusion" else {}
    return build_upsampler(name, hr_channels, lr_channels, **kwargs)


@pytest.mark.parametrize("name", UPSAMPLERS)
@pytest.mark.parametrize(("hr_size", "lr_size"), [((12, 16), (6, 8)), ((9, 13), (5, 7)), ((10, 14), (5, 7))])
def test_every_member_fuses_to_the_guide_size_with_the_same_fields(name, hr_size, lr_size):
    torch.manual_seed(0)
    m = _build(name, C, 2 * C)
    hr, lr = torch.randn(2, C, *hr_size), torch.randn(2, 2 * C, *lr_size)
    out = m(hr, lr)
    assert tuple(out.hr_feat.shape) == (2, C, *hr_size)
    assert tuple(out.lr_feat.shape) == (2, 2 * C, *hr_size)
    assert torch.isfinite(out.lr_feat).all() and torch.isfinite(out.hr_feat).all()
    if name != "freqfusion":  # FreqFusion alone filters the guide (its high-pass enhancement)
        assert torch.equal(out.hr_feat, hr)


@pytest.mark.parametrize("name", UPSAMPLERS)
def test_gradients_reach_every_parameter_and_both_inputs(name):
    torch.manual_seed(1)
    m = _build(name)
    hr = torch.randn(1, C, 10, 12, requires_grad=True)
    lr = torch.randn(1, C, 5, 6, requires_grad=True)
    out = m(hr, lr)
    weight = torch.randn_like(out.lr_feat)
    ((out.lr_feat + out.hr_feat) * weight).sum().backward()
    assert lr.grad is not None and lr.grad.abs().sum() > 0
    for pname, p in m.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, f"{name}: no gradient reaches {pname}"
    if upsampler_class(name).guided and name != "freqfusion":
        assert hr.grad is not None and hr.grad.abs().sum() > 0, f"{name} is guided but ignores hr"


@pytest.mark.parametrize("name", UPSAMPLERS)
def test_plain_2x_upsampling_for_unguided_members_and_a_clear_refusal_for_guided_ones(name):
    m = _build(name)
    lr = torch.randn(1, C, 5, 7)
    if upsampler_class(name).guided:
        with pytest.raises(ConfigError, match="guided by the high-resolution feature"):
            m.upsample(lr)
    else:
        assert tuple(m.upsample(lr).shape) == (1, C, 10, 14)


def test_bilinear_and_nearest_equal_torch_interpolation():
    lr, hr = torch.randn(1, 3, 4, 5), torch.randn(1, 3, 7, 9)
    ref = F.interpolate(lr, size=(7, 9), mode="bilinear", align_corners=False)
    torch.testing.assert_close(build_upsampler("bilinear", 3, 3)(hr, lr).lr_feat, ref, rtol=0, atol=0)
    near = build_upsampler("nearest", 3, 3).upsample(lr)
    torch.testing.assert_close(near, lr.repeat_interleave(2, -1).repeat_interleave(2, -2), rtol=0, atol=0)


def test_pixel_shuffle_with_copy_weights_is_nearest_and_deconv_counts_parameters():
    ps = build_upsampler("pixel_shuffle", 2, 2).double()
    with torch.no_grad():  # output channel 4c + phase copies input channel c at the centre tap
        ps.upsample_conv.weight.zero_()
        ps.upsample_conv.bias.zero_()
        for c in range(2):
            ps.upsample_conv.weight[4 * c : 4 * c + 4, c, 1, 1] = 1.0
    lr = torch.randn(1, 2, 3, 4, dtype=torch.float64)
    torch.testing.assert_close(ps.upsample(lr), lr.repeat_interleave(2, -1).repeat_interleave(2, -2))
    assert sum(p.numel() for p in build_upsampler("deconv", 256, 256).parameters()) == 256 * 256 * 9 + 256
    assert sum(p.numel() for p in build_upsampler("pixel_shuffle", 256, 256).parameters()) == 1024 * 256 * 9 + 1024


def test_unknown_names_mismatched_inputs_and_fixed_variant_keywords_are_named():
    with pytest.raises(ConfigError, match=r"unknown up-sampler 'dysampel' \(did you mean 'dysample'\?\); the family"):
        build_upsampler("dysampel", 8, 8)
    with pytest.raises(ConfigError, match="fixes dyscope=True"):
        build_upsampler("dysample_plus", 8, 8, dyscope=False)
    m = build_upsampler("deconv", 8, 4)
    with pytest.raises(ShapeError, match="deconv lr"):
        m(torch.randn(1, 8, 8, 8), torch.randn(1, 8, 4, 4))
    with pytest.raises(ShapeError, match="lr height must be half of hr's"):
        m(torch.randn(1, 8, 8, 8), torch.randn(1, 4, 2, 4))
    with pytest.raises(ConfigError, match="unexpected keyword"):
        build_upsampler("deconv", 8, 8, groups=2)


@pytest.mark.parametrize("name", UPSAMPLERS)
@pytest.mark.parametrize("decoder", ["fpn", "segformer_head"])
def test_decoders_take_every_member_by_name(name, decoder):
    torch.manual_seed(2)
    kwargs = {"fusion_kwargs": {"compressed_channels": 8}} if name == "freqfusion" else {}
    model = create_model(
        decoder, backbone="resnet18", num_classes=3, fusion=name, decoder_channels=16,
        backbone_kwargs={"base_width": 8}, **kwargs,
    )  # fmt: skip
    out = model(torch.rand(1, 3, 45, 61))
    logits = out["semantic"] if isinstance(out, dict) else out
    assert tuple(logits.shape) == (1, 3, 45, 61)
    logits.square().mean().backward()
    missing = [n for n, p in model.named_parameters() if "fusions" in n and (p.grad is None or not p.grad.any())]
    assert not missing, f"{decoder} with {name}: no gradient reaches {missing}"


@pytest.mark.parametrize("name", ["nearest", "carafe", "dysample", "sapa"])
def test_deeplab_decoder_takes_a_member_for_its_last_2x_step(name):
    model = create_model(
        "deeplabv3plus", backbone="resnet50", num_classes=3, fusion=name, output_stride=16,
        backbone_kwargs={"base_width": 8},
    )  # fmt: skip
    model.eval()
    assert tuple(model(torch.rand(1, 3, 65, 65))["semantic"].shape) == (1, 3, 65, 65)
