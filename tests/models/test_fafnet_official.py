"""FAFNet's official-code variant: the official key layout loads strictly, counts, shared shortcuts, deep stem.

The official layout is ``models/fafnet_alignD.py`` of github.com/CaliforniaChen/FAFNet @ b9ec9fc. Key names and
shapes checked by hand against that file are listed in ``OFFICIAL_KEYS``; the float64 output parity with the
official model itself (2.97e-13 max abs. difference, 1x3x64x96) was measured outside the test suite (see
docs/models/fafnet.md), since tests never import reference code.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from freqdense.errors import CheckpointError, ConfigError
from freqdense.models import create_model
from freqdense.models.backbones import resnet50
from freqdense.models.convert.fafnet import convert_fafnet, fafnet_official_to_freqdense, freqdense_to_fafnet_official
from freqdense.models.decoders.uper_align import PyramidPooling, UPerAlignHead

TINY = {"backbone": "resnet50", "backbone_kwargs": {"base_width": 8}, "decoder_channels": 16, "num_classes": 5}

# (official key, shape) verified by reading models/fafnet_alignD.py (DualResNet deep_stem, stem_width=64;
# UperNetAlignHead(2048, fpn_dim=256); RGBDAlignModule(C) with FSP reduction 16), ResNet-101, 40 classes.
OFFICIAL_KEYS = {
    "backbone.conv1.0.weight": (64, 3, 3, 3),
    "backbone.conv1.1.running_var": (64,),
    "backbone.conv1.3.weight": (64, 64, 3, 3),
    "backbone.conv1.6.weight": (128, 64, 3, 3),
    "backbone.hha_conv1.4.weight": (64,),
    "backbone.bn1.weight": (128,),
    "backbone.hha_bn1.num_batches_tracked": (),
    "backbone.layer1.0.conv1.weight": (64, 128, 1, 1),
    "backbone.layer1.0.downsample.0.weight": (256, 128, 1, 1),
    "backbone.layer1.0.hha_downsample.1.running_mean": (256,),
    "backbone.layer3.22.hha_conv3.weight": (1024, 256, 1, 1),
    "backbone.layer4.2.hha_bn3.bias": (2048,),
    "backbone.sagates.0.fsp1.filter.fc.0.weight": (16, 512),
    "backbone.sagates.3.fsp2.filter.fc.2.bias": (2048,),
    "backbone.sagates.1.flow_make.weight": (2, 1024, 3, 3),
    "backbone.sagates.1.flow_make2.weight": (2, 1024, 3, 3),
    "head.ppm.stages.3.1.weight": (256, 2048, 1, 1),
    "head.ppm.stages.0.2.running_mean": (256,),
    "head.ppm.bottleneck.0.weight": (256, 2048 + 4 * 256, 1, 1),
    "head.ppm.bottleneck.1.weight": (256,),
    "head.fpn_in.0.0.weight": (256, 256, 1, 1),
    "head.fpn_in.2.0.bias": (256,),
    "head.fpn_out.1.0.0.weight": (256, 256, 3, 3),
    "head.fpn_out.0.0.1.running_var": (256,),
    "head.fpn_out_align.2.down_h.weight": (128, 256, 1, 1),
    "head.fpn_out_align.0.flow_make.weight": (2, 256, 3, 3),
    "head.conv_last.0.0.weight": (256, 1024, 3, 3),
    "head.conv_last.1.weight": (40, 256, 1, 1),
    "head.conv_last.1.bias": (40,),
}


def _params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _randomise(model: torch.nn.Module, seed: int) -> None:
    """Random weights and BatchNorm statistics, so that every tensor matters in an output comparison."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if name.endswith("num_batches_tracked"):
                continue
            if name.endswith("running_var"):
                t.copy_(torch.rand(t.shape, generator=g) + 0.5)
            else:
                scale = (1.0 / t[0].numel()) ** 0.5 if t.dim() > 1 else 0.1
                t.copy_(torch.randn(t.shape, generator=g) * scale)


@pytest.fixture(scope="module")
def full_model():
    torch.manual_seed(0)
    return create_model("fafnet_official", num_classes=40)


def test_official_head_parameter_count_is_exact():
    # official UperNetAlignHead(2048, 40, fpn_dim=256), closed form:
    ppm = 4 * (2048 * 256 + 2 * 256) + (2048 + 4 * 256) * 256 + 2 * 256  # branches (conv+BN) + 1x1 bottleneck
    lateral = sum(c * 256 + 256 + 2 * 256 for c in (256, 512, 1024))  # 1x1 conv with bias + BN
    output = 3 * (256 * 256 * 9 + 2 * 256)
    fams = 3 * (2 * 256 * 128 + 2 * 256 * 9)
    last = 1024 * 256 * 9 + 2 * 256 + 256 * 40 + 40
    assert ppm + lateral + output + fams + last == 7_698_728
    head = UPerAlignHead((256, 512, 1024, 2048), 40, 256, layout="fafnet", align_corners=False)
    assert _params(head) == 7_698_728
    # the paper-text (SFNet) layout: a 3x3 instead of 1x1 PPM bottleneck, no lateral bias -> 13,989,416
    paper = UPerAlignHead((256, 512, 1024, 2048), 40, 256)
    assert _params(paper) == 7_698_728 + (2048 + 4 * 256) * 256 * (9 - 1) - 3 * 256 == 13_989_416


def test_whole_official_model_count(full_model):
    # official TestNet: 92,527,240 parameters, of which the 4 unused RGBDAlignModule.flow_make convs hold
    # 2 * 2C * 9 for C = 256..2048 = 138,240; the downsample modules are shared, hence counted once.
    assert _params(full_model) == 92_527_240 - 36 * (256 + 512 + 1024 + 2048)
    assert _params(full_model.decoder) == 7_698_728


def test_official_key_layout_loads_strictly(full_model):
    official = freqdense_to_fafnet_official(full_model.state_dict())
    assert len(official) == 1398
    for key, shape in OFFICIAL_KEYS.items():
        assert tuple(official[key].shape) == shape, key
    g = torch.Generator().manual_seed(3)
    fresh = {
        k: (v if k.endswith("num_batches_tracked") else torch.randn(v.shape, generator=g)) for k, v in official.items()
    }
    # the shared shortcut: the official state dict holds one module under both names
    for k in [k for k in fresh if ".downsample." in k]:
        fresh[k.replace(".downsample.", ".hha_downsample.")] = fresh[k]
    converted, report = fafnet_official_to_freqdense(fresh)
    assert len(report.mapped) == 1394 and report.folded == [] and not report.unknown
    assert sorted(report.unused) == [f"backbone.sagates.{i}.flow_make.weight" for i in range(4)]
    target = create_model("fafnet_official", num_classes=40)
    target.load_state_dict(converted, strict=True)
    sd = target.state_dict()
    assert torch.equal(sd["backbone.rgb.conv1.6.weight"], fresh["backbone.conv1.6.weight"])
    assert torch.equal(sd["backbone.depth.layer2.0.conv2.weight"], fresh["backbone.layer2.0.hha_conv2.weight"])
    assert torch.equal(sd["decoder.lateral.1.0.bias"], fresh["head.fpn_in.1.0.bias"])
    assert torch.equal(sd["decoder.classifier.weight"], fresh["head.conv_last.1.weight"])
    # flow_make2 acts on cat([rgb, depth]); ours on cat([depth, rgb]): halves swapped
    w = fresh["backbone.sagates.0.flow_make2.weight"]
    assert torch.equal(sd["fusions.0.align_depth.flow_make.weight"], torch.cat([w[:, 256:], w[:, :256]], 1))


def test_convert_fafnet_reads_the_structure():
    torch.manual_seed(0)
    model = create_model("fafnet_official", **TINY)
    conv = convert_fafnet(freqdense_to_fafnet_official(model.state_dict()), {"output_stride": 16})
    assert conv.model == {
        "name": "fafnet_official",
        "backbone": "resnet50",
        "num_classes": 5,
        "depth_channels": 3,
        "output_stride": 16,
        "backbone_kwargs": {"base_width": 8},  # slim widths are read from the weights too
        "decoder_channels": 16,
    }
    with pytest.raises(CheckpointError, match="read from the official"):
        convert_fafnet(freqdense_to_fafnet_official(model.state_dict()), {"num_classes": 3})
    with pytest.raises(CheckpointError, match="not an official FAFNet"):
        fafnet_official_to_freqdense({"encoder.weight": torch.zeros(1)})


def test_round_trip_through_the_official_layout_keeps_outputs():
    torch.manual_seed(0)
    a = create_model("fafnet_official", **TINY).double().eval()
    _randomise(a, 1)
    converted, _ = fafnet_official_to_freqdense(freqdense_to_fafnet_official(a.state_dict()))
    b = create_model("fafnet_official", **TINY).double().eval()
    b.load_state_dict(converted, strict=True)
    g = torch.Generator().manual_seed(2)
    image = torch.rand(2, 3, 29, 37, generator=g, dtype=torch.float64)
    hha = torch.rand(2, 3, 29, 37, generator=g, dtype=torch.float64)
    with torch.no_grad():
        ya, yb = a(image, hha)["semantic"], b(image, hha)["semantic"]
    assert ya.shape == (2, 5, 29, 37)
    assert (ya - yb).abs().max().item() <= 1e-12


def test_official_pyramid_pooling_matches_a_hand_written_reference():
    torch.manual_seed(0)
    ppm = PyramidPooling(6, 4, (1, 2), layout="fafnet").double().eval()
    _randomise(ppm, 4)
    x = torch.randn(1, 6, 5, 7, dtype=torch.float64)

    def bn(t, m):
        return F.batch_norm(t, m.running_mean, m.running_var, m.weight, m.bias, False, 0.0, m.eps)

    branches = []
    for stage, size in zip(ppm.stages, (1, 2)):
        y = bn(F.conv2d(F.adaptive_avg_pool2d(x, size), stage[1].weight), stage[2])  # no ReLU
        branches.append(F.interpolate(y, size=(5, 7), mode="bilinear", align_corners=True))
    cat = torch.cat([*branches, x], 1)  # branches first, then the input
    ref = F.relu(bn(F.conv2d(cat, ppm.bottleneck[0].weight), ppm.bottleneck[1]))
    assert ppm.bottleneck[0].kernel_size == (1, 1) and isinstance(ppm.bottleneck[3], torch.nn.Dropout2d)
    assert torch.allclose(ppm(x), ref, atol=1e-12, rtol=0)


def test_every_parameter_of_the_official_variant_gets_a_gradient():
    torch.manual_seed(0)
    model = create_model("fafnet_official", **TINY).train()
    image, hha = torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32)
    model(image, hha)["semantic"].square().mean().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not missing, missing


def test_shared_downsample_option():
    torch.manual_seed(0)
    shared = create_model("fafnet_official", **TINY)
    rgb, depth = shared.backbone.rgb, shared.backbone.depth
    for i in range(1, 5):
        assert getattr(depth, f"layer{i}")[0].downsample is getattr(rgb, f"layer{i}")[0].downsample
    own = create_model("fafnet", **TINY)
    assert own.backbone.depth.layer1[0].downsample is not own.backbone.rgb.layer1[0].downsample
    both = create_model("fafnet", **TINY, share_downsample=True)
    assert both.backbone.depth.layer3[0].downsample is both.backbone.rgb.layer3[0].downsample
    shortcut = sum(_params(getattr(own.backbone.depth, f"layer{i}")[0].downsample) for i in range(1, 5))
    assert _params(own) - _params(both) == shortcut  # a shared module is counted once


def test_official_variant_does_not_normalise_hha():
    model = create_model("fafnet_official", **TINY)
    assert torch.all(model.depth_mean == 0) and torch.all(model.depth_std == 1)
    paper = create_model("fafnet", **TINY)
    assert torch.allclose(paper.depth_mean.flatten(), torch.tensor([0.485, 0.456, 0.406]))


def test_deep_stem_resnet():
    plain = resnet50(base_width=8, out_indices=(0, 1))
    deep = resnet50(base_width=8, out_indices=(0, 1), deep_stem=True)
    assert [tuple(m.weight.shape) for m in deep.conv1 if isinstance(m, torch.nn.Conv2d)] == [
        (8, 3, 3, 3),
        (8, 8, 3, 3),
        (16, 8, 3, 3),
    ]
    assert deep.first_conv == "conv1.0.weight" and deep.out_channels == (16, 32)
    stem, l1 = deep(torch.rand(1, 3, 32, 32))
    assert stem.shape == (1, 16, 16, 16) and l1.shape == (1, 32, 8, 8)
    # parameter difference, closed form: stem convs and BNs, and layer1's first block taking 16 instead of 8 channels
    deep_stem = 3 * 8 * 9 + 8 * 8 * 9 + 8 * 16 * 9 + 2 * (2 * 8) + 2 * 16
    plain_stem = 3 * 8 * 49 + 2 * 8
    layer1_extra = (16 - 8) * 8 + (16 - 8) * 32  # conv1 and downsample conv inputs
    assert _params(deep) - _params(plain) == deep_stem - plain_stem + layer1_extra
    with pytest.raises(ConfigError, match="deep_stem"):
        resnet50(deep_stem=True, pretrained="resnet50.pth")


@pytest.mark.parametrize(
    ("name", "classes", "scales"),
    [
        ("nyuv2/fafnet_r101_hha_official", 40, [1.0, 0.5, 0.75, 1.5, 1.75]),  # official datasets/nyuv2.py
        ("sunrgbd/fafnet_r101_hha_official", 37, [1.0, 0.5, 1.25, 1.75]),  # official datasets/sunrgbd.py
    ],
)
def test_official_configs_use_the_official_model_and_test_scales(name, classes, scales):
    from freqdense.config import load_config

    cfg = load_config(name)
    assert cfg.model.name == "fafnet_official" and cfg.model.kwargs["num_classes"] == classes
    assert list(cfg.eval.scales) == scales and cfg.eval.flip is False
    assert cfg.data.val_transforms == {}  # SUN RGB-D too: each image at its own size
    if name.startswith("sunrgbd"):
        assert cfg.data.val_batch_size == 1
