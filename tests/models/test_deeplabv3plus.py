"""DeepLab v3+ (jfzhang95 layout): shapes, gradients, feature truncation, output strides, parameter counts."""

from __future__ import annotations

import importlib.util

import pytest
import torch
import torch.nn.functional as F

from freqdense.errors import ConfigError
from freqdense.models import create_model
from freqdense.models.deeplabv3plus import ASPP, DeepLabV3PlusDecoder
from freqdense.spectral import TruncatedDecoder, truncate_decoder

SMALL = {"backbone": "resnet50", "num_classes": 5, "backbone_kwargs": {"base_width": 8}}


def _small(**kw):
    torch.manual_seed(0)
    return create_model("deeplabv3plus", **{**SMALL, **kw})


def _capture_decoder_input(model):
    """Record the spatial size the decoder's 3x3 convolutions run at."""
    seen = []
    dec = model.decoder.decoder if isinstance(model.decoder, TruncatedDecoder) else model.decoder
    dec.last_conv.register_forward_hook(lambda m, i, o: seen.append(tuple(i[0].shape[-2:])))
    return seen


@pytest.mark.parametrize(
    ("output_stride", "accounting", "high"), [(16, "standard", 33), (8, "standard", 65), (None, "paper", 17)]
)
def test_513_feature_sizes_per_output_stride(output_stride, accounting, high):
    with torch.device("meta"):
        model = create_model("deeplabv3plus", output_stride=output_stride, accounting=accounting)
        image = torch.empty(2, 3, 513, 513)
    low, feat = model.backbone(image)
    assert tuple(low.shape) == (2, 256, 129, 129)
    assert tuple(feat.shape) == (2, 2048, high, high)
    seen = _capture_decoder_input(model)
    assert tuple(model(image)["semantic"].shape) == (2, 21, 513, 513)
    assert seen == [(129, 129)]


def test_multi_grid_dilations_follow_jfzhang95():
    with torch.device("meta"):
        os16 = create_model("deeplabv3plus", output_stride=16)
        os8 = create_model("deeplabv3plus", output_stride=8)
    assert [b.conv2.dilation[0] for b in os16.backbone.layer4] == [2, 4, 8]
    assert [b.conv2.dilation[0] for b in os8.backbone.layer4] == [4, 8, 16]
    assert [b.conv2.padding[0] for b in os8.backbone.layer4] == [4, 8, 16]
    assert os16.aspp.rates == (6, 12, 18) and os8.aspp.rates == (12, 24, 36)


@pytest.mark.parametrize("size", [(45, 67), (33, 32)])
def test_odd_sizes_give_logits_at_the_input_size(size):
    model = _small().eval()
    with torch.no_grad():
        out = model(torch.rand(1, 3, *size))
    assert set(out) == set(model.tasks) == {"semantic"}
    assert tuple(out["semantic"].shape) == (1, 5, *size)
    assert torch.isfinite(out["semantic"]).all()


def test_every_parameter_gets_a_gradient():
    model = _small().train()
    out = model(torch.rand(2, 3, 40, 48))["semantic"]
    F.cross_entropy(out, torch.randint(0, 5, (2, 40, 48))).backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not missing
    zero = [n for n, p in model.named_parameters() if p.grad.abs().sum() == 0]
    assert not zero


def test_truncation_runs_the_whole_decoder_on_the_grid():
    image = torch.rand(1, 3, 65, 65)  # low-level feature 17 x 17
    full = _small().eval()
    grid = _small(decoder_grid=9).eval()
    # same seed, same weights: decoder_grid only wraps the decoder
    proj = []
    grid.decoder.decoder.conv1.register_forward_hook(lambda m, i, o: proj.append(tuple(i[0].shape[-2:])))
    seen = _capture_decoder_input(grid)
    with torch.no_grad():
        out = grid(image)["semantic"]
        ref = full(image)["semantic"]
    assert proj == [(9, 9)] and seen == [(9, 9)]  # the 1x1 projection too (docs/reference_code.md#feature-truncation)
    assert tuple(out.shape) == (1, 5, 65, 65)
    # truncating to the decoder's own size (17) is the identity: same weights, same logits
    same = truncate_decoder(_small().eval(), 17)
    with torch.no_grad():
        assert torch.allclose(same(image)["semantic"], ref, atol=1e-6)


def test_truncated_logits_equal_the_decoder_on_subsampled_features():
    """129 -> 65 with bilinear align_corners is exact subsampling by 2, so the grid decoder sees x[..., ::2, ::2]."""
    model = _small(decoder_grid=9).eval()
    dec = model.decoder.decoder
    aspp_out, low = torch.rand(1, 256, 5, 5), torch.rand(1, 32, 17, 17)
    with torch.no_grad():
        got = model.decoder(aspp_out, low)
        want = dec(aspp_out, low[..., ::2, ::2])
    assert torch.allclose(got, want, atol=1e-5)


def test_parameter_counts_match_jfzhang95():
    # docs/reference_code.md#deeplab-v3-of-jfzhang95: ASPP 15.535 M, decoder 1.309 M (K = 21); closed forms: conv
    # weights + BN (2 per channel)
    aspp = ASPP(2048)
    assert sum(p.numel() for p in aspp.parameters()) == 2048 * 256 * 29 + 1280 * 256 + 6 * 2 * 256 == 15_535_104
    dec = DeepLabV3PlusDecoder(256, 21)
    want = 256 * 48 + 2 * 48 + 304 * 256 * 9 + 2 * 256 + 256 * 256 * 9 + 2 * 256 + 256 * 21 + 21
    assert sum(p.numel() for p in dec.parameters()) == want == 1_309_045
    assert "decoder.last_conv.0.weight" in create_model("deeplabv3plus", **SMALL).state_dict()


def test_normalisation_is_inside_and_rejects_bad_inputs():
    model = _small()
    assert torch.allclose(model.mean.flatten(), torch.tensor([0.485, 0.456, 0.406]))
    with pytest.raises(Exception, match="image"):
        model(torch.rand(1, 4, 32, 32))
    with pytest.raises(ConfigError, match="output stride 32"):
        create_model("deeplabv3plus", accounting="paper", output_stride=16)
    with pytest.raises(ConfigError, match="resnet50"):
        create_model("deeplabv3plus", backbone="resnet18")


@pytest.mark.skipif(importlib.util.find_spec("freqdense.nn.freq_fusion") is None, reason="FreqFusion not there yet")
def test_freqfusion_decoder_keeps_shapes_and_gradients():
    model = _small(fusion="freqfusion").train()
    out = model(torch.rand(2, 3, 65, 63))["semantic"]  # odd low-level size 17 x 16
    assert tuple(out.shape) == (2, 5, 65, 63)
    out.square().mean().backward()
    assert all(p.grad is not None for p in model.decoder.fusion.parameters())


def test_pretrained_true_names_the_local_file_fix():
    with pytest.raises(ConfigError, match=r"pretrained=True .*never downloads.*pretrained=PATH.*torchvision"):
        _small(pretrained=True)
