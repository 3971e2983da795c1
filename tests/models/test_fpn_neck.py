"""FreqFusionFPNNeck: the official detection neck layout (4 FreqFusion modules for P2..P6), counts and gradients."""

from __future__ import annotations

import pytest
import torch

from freqdense.errors import ConfigError, ShapeError
from freqdense.models.decoders.fpn_neck import OFFICIAL_PANOPTIC_FUSION, FreqFusionFPNNeck

R50 = (256, 512, 1024, 2048)


def _count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_official_freqfusion_parameter_counts_on_resnet50_channels():
    # The figures for the official necks (Faster/Mask R-CNN and Panoptic FPN configs): 4 modules of
    # 104,690 (sim_concat offsets with GroupNorm, Cc = 64) or 104,434 (no GroupNorm: 256 fewer = 2 x (64 + 64)).
    neck = FreqFusionFPNNeck(R50, 256, 5)
    assert len(neck.fusions) == 4 and _count(neck.fusions) == 418_760
    panoptic = FreqFusionFPNNeck(R50, 256, 5, fusion_kwargs=OFFICIAL_PANOPTIC_FUSION)
    assert _count(panoptic.fusions) == 417_736
    # The FPN convs around them: laterals 1x1 (sum(C_in) * 256 + 4 * 256), the P6 3x3 s2 conv on C5, 5 output 3x3.
    convs = sum(R50) * 256 + 4 * 256 + (2048 * 9 * 256 + 256) + 5 * (256 * 9 * 256 + 256)
    assert _count(neck) == convs + 418_760
    assert _count(FreqFusionFPNNeck(R50, 256, 5, fusion="bilinear")) == convs


@pytest.mark.parametrize("fusion", ["freqfusion", "bilinear"])
def test_outputs_and_gradients_reach_every_parameter(fusion):
    torch.manual_seed(0)
    channels = (4, 8, 8, 16)
    neck = FreqFusionFPNNeck(channels, 8, 5, fusion=fusion, compress_ratio=2)
    # odd sizes (as a 75x101 image gives with stride-2 convs): FreqFusion pads and crops, P6 is ceil(P5 / 2)
    sizes = [(19, 26), (10, 13), (5, 7), (3, 4)]
    feats = [torch.randn(2, c, h, w) for c, (h, w) in zip(channels, sizes)]
    outs = neck(feats)
    assert [tuple(o.shape) for o in outs] == [(2, 8, h, w) for h, w in [*sizes, (2, 2)]]
    sum(o.square().mean() for o in outs).backward()
    missing = [n for n, p in neck.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert missing == []


def test_p6_to_p5_fusion_is_the_first_top_down_step():
    # A hook on the last module records which levels it fuses: fusions[3] gets (L5, L6).
    neck = FreqFusionFPNNeck((4, 4, 4, 4), 8, 5, compress_ratio=2)
    seen = {}

    def record(_module, inputs, _output):
        seen["shapes"] = [t.shape[-2:] for t in inputs]

    neck.fusions[3].register_forward_hook(record)
    neck([torch.randn(1, 4, 16 >> k, 16 >> k) for k in range(4)])
    assert seen["shapes"] == [torch.Size([2, 2]), torch.Size([1, 1])]


def test_bad_configuration_and_inputs_are_named():
    with pytest.raises(ConfigError, match="num_outs"):
        FreqFusionFPNNeck(R50, 256, 3)
    with pytest.raises(ConfigError, match="unknown up-sampler 'freq_fusion'.*the family: bilinear, nearest"):
        FreqFusionFPNNeck(R50, 256, 5, fusion="freq_fusion")
    with pytest.raises(ConfigError, match=r"start_level must be in \[0, 3\]"):
        FreqFusionFPNNeck(R50, 256, 5, start_level=4)
    neck = FreqFusionFPNNeck((4, 8), 8, 3, compress_ratio=2)
    with pytest.raises(ShapeError, match=r"channels \(4, 8\)"):
        neck([torch.randn(1, 4, 8, 8), torch.randn(1, 4, 4, 4)])


def test_start_level_skips_the_finest_levels_as_fcos_necks_do():
    # FCOS / RetinaNet: C3..C5 plus two extra levels (P6 from C5, P7 from P6), four top-down fusions
    neck = FreqFusionFPNNeck((8, 16, 32, 64), 8, 5, start_level=1, fusion="bilinear")
    assert len(neck.lateral_convs) == 5 and neck.lateral_convs[0].in_channels == 16
    feats = [torch.randn(1, c, 64 // 2**i, 64 // 2**i) for i, c in enumerate((8, 16, 32, 64))]
    outs = neck(feats)
    assert [tuple(o.shape[-2:]) for o in outs] == [(32, 32), (16, 16), (8, 8), (4, 4), (2, 2)]


# --- SegFormerHead(integration="segnext"): the official SegNeXt FreqFusion integration on raw stages ---------------


def test_segnext_integration_counts_match_the_official_segnext_tiny_head():
    # SegNeXt-T stages (64, 160, 256), compress_ratio 4: step 1 fuses hr 160 with lr 256 (Cc = 416 // 4 = 104),
    # step 2 hr 64 with lr 416 (Cc = 480 // 4 = 120). The official LightHamHeadFreqAware modules (SegNeXt copy,
    # 'sim' offsets, hamming off, resampling with 4 groups) hold 116,146 and 141,234 parameters.
    from freqdense.models.decoders.segformer_head import SegFormerHead

    head = SegFormerHead((64, 160, 256), 256, fusion="freqfusion", integration="segnext")
    assert [_count(f) for f in head.fusions] == [141_234, 116_146]
    ff = head.fusions[1]
    assert (ff.hr_channels, ff.lr_channels) == (160, 256) and ff.hamming_window is False
    assert tuple(ff.dysampler.offset.weight.shape) == (32, 8, 3, 3)  # 'sim': offsets from the 8 similarity channels
    assert tuple(head.fuse[0].weight.shape) == (256, 480, 1, 1)  # squeeze of sum(in_channels), no projections
    assert len(head.proj) == 0


def test_segnext_integration_concat_order_and_gradients():
    from freqdense.models.decoders.segformer_head import SegFormerHead, interleave_concat

    torch.manual_seed(0)
    channels = (32, 16, 16)  # compressed channels (16 + 16) // 4 = 8 and 64 // 4 = 16: multiples of 8 (GroupNorm)
    feats = [torch.randn(2, c, 12 >> k, 14 >> k) for k, c in enumerate(channels)]
    head = SegFormerHead(channels, 8, fusion="freqfusion", integration="segnext")
    seen = []
    head.fuse.register_forward_hook(lambda m, i, o: seen.append(i[0]))
    out = head(feats)
    assert out.shape == (2, 8, 12, 14)
    # recompute the last step by hand: interleaved (hr, lr) of fusions[0] on the finest stage
    with torch.no_grad():
        _, hr1, lr1 = head.fusions[1](feats[1], feats[2])
        x = interleave_concat(hr1, lr1, 4)
        _, hr0, lr0 = head.fusions[0](feats[0], x)
        torch.testing.assert_close(seen[0], interleave_concat(hr0, lr0, 4))
    out.square().mean().backward()
    assert [n for n, p in head.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0] == []
    # without resampling the official head concatenates plainly [hr, lr]
    plain = SegFormerHead(
        channels, 8, fusion="freqfusion", integration="segnext", fusion_kwargs={"feature_resample": False}
    )
    seen.clear()
    plain.fuse.register_forward_hook(lambda m, i, o: seen.append(i[0]))
    plain(feats)
    with torch.no_grad():
        _, hr1, lr1 = plain.fusions[1](feats[1], feats[2])
        _, hr0, lr0 = plain.fusions[0](feats[0], torch.cat([hr1, lr1], 1))
        torch.testing.assert_close(seen[0], torch.cat([hr0, lr0], 1))
