"""FPN / SegFormer-style decoders with bilinear and FreqFusion upsampling."""

from __future__ import annotations

import pytest
import torch

from freqdense.errors import ConfigError
from freqdense.models import create_model
from freqdense.models.decoders import FPNDecoder, SegFormerHead, interleave_concat
from freqdense.nn import FreqFusion

SMALL = {"backbone_kwargs": {"base_width": 8}, "decoder_channels": 16, "num_classes": 3}


def _params(m: torch.nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


@pytest.mark.parametrize("name", ["fpn", "segformer_head"])
@pytest.mark.parametrize("fusion", ["bilinear", "freqfusion"])
def test_shapes_at_odd_sizes_and_every_parameter_gets_a_finite_gradient(name, fusion):
    torch.manual_seed(0)
    model = create_model(name, fusion=fusion, tasks=("semantic", "depth"), **SMALL)
    out = model(torch.rand(2, 3, 45, 61))
    assert out["semantic"].shape == (2, 3, 45, 61)
    assert out["depth"].shape == (2, 1, 45, 61)
    (out["semantic"].square().mean() + out["depth"].mean()).backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None, pname
        assert torch.isfinite(p.grad).all(), pname
        assert p.grad.abs().sum() > 0, pname


def test_param_overhead_equals_the_freqfusion_modules_own_count():
    kw = {**SMALL, "decoder_channels": 32}  # Cc = 8: the offset generator's GroupNorm needs a multiple of 8
    bil = create_model("fpn", fusion="bilinear", **kw)
    ff = create_model("fpn", fusion="freqfusion", fusion_kwargs={"feature_resample": True}, **kw)
    c = kw["decoder_channels"]
    # three top-down steps for four ResNet levels, each FreqFusion(c, c, Cc = 2c // 8)
    one = _params(FreqFusion(c, c, compressed_channels=2 * c // 8, feature_resample=True))
    assert _params(ff) - _params(bil) == 3 * one


def test_segformer_overhead_matches_the_segnext_channel_rule():
    bil = create_model("segformer_head", fusion="bilinear", **SMALL)
    ff = create_model("segformer_head", fusion="freqfusion", **SMALL)
    c = SMALL["decoder_channels"]
    # step i fuses hr = c with lr = (n - 1 - i) c, Cc = (hr + lr) // 4 (SegNeXt compress_ratio 4)
    expected = sum(_params(FreqFusion(c, k * c, compressed_channels=(c + k * c) // 4)) for k in (1, 2, 3))
    assert _params(ff) - _params(bil) == expected


def test_single_task_outputs_and_attributes():
    m = create_model("fpn", tasks=("depth",), **SMALL)
    assert m.tasks == ("depth",) and isinstance(m.decoder, FPNDecoder)
    assert set(m.eval()(torch.rand(1, 3, 32, 32))) == {"depth"}
    s = create_model("segformer_head", **SMALL)
    assert isinstance(s.decoder, SegFormerHead) and s.tasks == ("semantic",)


def test_bilinear_fpn_finest_merge_equals_manual_top_down_path():
    torch.manual_seed(0)
    dec = FPNDecoder([4, 6], channels=5, merge="finest").eval()
    f0, f1 = torch.rand(1, 4, 8, 8), torch.rand(1, 6, 4, 4)
    lat0, lat1 = dec.lateral[0](f0), dec.lateral[1](f1)
    up = torch.nn.functional.interpolate(lat1, size=(8, 8), mode="bilinear", align_corners=False)
    torch.testing.assert_close(dec([f0, f1]), dec.output[0](lat0 + up))


def test_interleave_concat_layout():
    a = torch.arange(4.0).view(1, 4, 1, 1)  # groups of 2: [0, 1], [2, 3]
    b = torch.arange(10.0, 16.0).view(1, 6, 1, 1)  # [10, 11, 12], [13, 14, 15]
    out = interleave_concat(a, b, 2).flatten().tolist()
    assert out == [0, 1, 10, 11, 12, 2, 3, 13, 14, 15]


def test_bad_fusion_and_dilated_backbone_are_refused():
    with pytest.raises(
        ConfigError, match=r"unknown up-sampler 'carafee' \(did you mean 'carafe'\?\); the family: bilinear"
    ):
        create_model("fpn", fusion="carafee", **SMALL)
    m = create_model("fpn", fusion="freqfusion", **{**SMALL, "backbone_kwargs": {"base_width": 8, "output_stride": 16}})
    with pytest.raises(ConfigError, match="strides growing by 2"):
        m(torch.rand(1, 3, 64, 64))
    # bilinear resizes to any size: a dilated backbone's equal-size levels still work
    dilated = create_model(
        "fpn", fusion="bilinear", **{**SMALL, "backbone_kwargs": {"base_width": 8, "output_stride": 16}}
    )
    assert dilated(torch.rand(1, 3, 64, 64))["semantic"].shape[-2:] == (64, 64)
