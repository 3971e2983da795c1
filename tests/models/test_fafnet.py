"""FAFNet, the two-stream baselines and the UPerNet+FAM head: every ablation row at 64x64, contracts, counts."""

from __future__ import annotations

import pytest
import torch

from freqdense.errors import ConfigError, ShapeError
from freqdense.models import MODELS
from freqdense.models.backbones import resnet18
from freqdense.models.decoders.uper_align import UPerAlignHead
from freqdense.models.fafnet import FAFNET_VARIANTS, HHA_MEAN, HHA_STD, fafnet, flow_to_pixels

SMALL = {"backbone": "resnet18", "backbone_kwargs": {"base_width": 16}, "num_classes": 5}
WIDTHS = (16, 32, 64, 128)  # resnet18 stages at base_width 16
D = 32  # decoder width in these tests


def _build(row: str, **extra):
    name, kwargs = FAFNET_VARIANTS[row]
    if name == "fafnet":
        extra.setdefault("decoder_channels", D)
    torch.manual_seed(0)
    return MODELS.create(name, **SMALL, **kwargs, **extra)


def _inputs(batch=2, depth_channels=3, size=64):
    g = torch.Generator().manual_seed(1)
    return torch.rand(batch, 3, size, size, generator=g), torch.rand(batch, depth_channels, size, size, generator=g)


def _params(model) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("row", list(FAFNET_VARIANTS))
def test_every_row_builds_and_runs(row):
    model = _build(row)
    image, depth = _inputs()
    out, flows = model(image, depth, return_flows=True)
    assert set(out) == {"semantic"} and out["semantic"].shape == (2, 5, 64, 64)
    assert torch.isfinite(out["semantic"]).all()
    name, kwargs = FAFNET_VARIANTS[row]
    is_fafnet = name == "fafnet"
    fuse = is_fafnet and kwargs.get("fusion", "acfm") == "acfm" and kwargs.get("fuse_fam", True)
    decoder = is_fafnet and kwargs.get("decoder_fam", True)
    two_way = fuse and kwargs.get("fam_directions", "both") == "both"
    expected = set()
    sizes = {1: 16, 2: 8, 3: 4, 4: 4}  # stage sizes at output stride 16 (resnet18 has no multi-grid)
    for k in range(1, 5):
        if fuse:
            expected.add(f"fuse{k}")
            assert flows[f"fuse{k}"].shape == (2, 2, sizes[k], sizes[k])
        if two_way:
            expected.add(f"fuse{k}:rgb_to_depth")
    for k in range(1, 4):
        if decoder:
            expected.add(f"decoder{k}")
            assert flows[f"decoder{k}"].shape == (2, 2, sizes[k], sizes[k])
    assert set(flows) == expected
    for flow in flows.values():
        assert flow_to_pixels(flow).shape == flow.shape
    assert model(image, depth).keys() == out.keys()  # plain call: outputs only


@pytest.mark.parametrize("row", ["all_fams", "sagate_deeplabv3plus"])
def test_every_parameter_gets_a_gradient(row):
    model = _build(row).train()
    image, depth = _inputs(batch=2)
    model(image, depth)["semantic"].square().mean().backward()
    # reached = a finite gradient tensor (values may be 0 where a 1-unit MLP hidden ReLU is inactive at init)
    missing = [n for n, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not missing, missing
    nonzero = [n for n, p in model.named_parameters() if p.grad.abs().sum() > 0]
    assert len(nonzero) > 0.95 * len(list(model.parameters()))


def _fam(c: int) -> int:
    """FlowAlignment(c, c // 2): two 1x1 reductions c -> c/2 and a 3x3 flow conv 2 (c/2) -> 2, no biases."""
    r = c // 2
    return 2 * c * r + 2 * (2 * r) * 9


def _acfm(c: int) -> int:
    """Two MLPs Linear(2c, c/16) -> Linear(c/16, c) with biases."""
    h = max(1, c // 16)
    return 2 * (2 * c * h + h + h * c + c)


def test_parameter_counts_of_the_rows_differ_by_the_modules_they_add():
    n = {row: _params(_build(row)) for row in FAFNET_VARIANTS if FAFNET_VARIANTS[row][0] == "fafnet"}
    assert n["all_fams"] - n["decoder_fam"] == sum(2 * _fam(c) for c in WIDTHS)  # two FAMs per RGBDFuse
    assert n["all_fams"] - n["fuse_fam"] == 3 * _fam(D)  # one FAM per top-down step of the head
    assert n["decoder_fam"] - n["no_fam"] == 3 * _fam(D)
    assert n["all_fams"] - n["all_fams_no_acfm"] == sum(_acfm(c) for c in WIDTHS)
    # SA-Gate = ACFM-sized channel filters + two 1x1 gates (2c -> 1, bias) per stage
    assert n["sagate_fusion"] - n["decoder_fam"] == sum(2 * (2 * c + 1) for c in WIDTHS)
    # official block: one unreduced 3x3 flow conv 2c -> 2 per stage instead of no FAM
    assert n["official"] - n["decoder_fam"] == sum(2 * 2 * c * 9 for c in WIDTHS)


def test_head_with_zero_flows_equals_plain_uper_head():
    torch.manual_seed(0)
    with_fam = UPerAlignHead(WIDTHS, 5, D).eval()
    plain = UPerAlignHead(WIDTHS, 5, D, fam=False).eval()
    plain.load_state_dict({k: v for k, v in with_fam.state_dict().items() if not k.startswith("fams.")})
    for fam in with_fam.fams:
        torch.nn.init.zeros_(fam.flow_make.weight)
    feats = [torch.randn(2, c, s, s) for c, s in zip(WIDTHS, (16, 8, 4, 2))]
    a, b = with_fam(feats), plain(feats)
    torch.testing.assert_close(a.logits, b.logits, atol=1e-5, rtol=1e-5)
    assert a.logits.shape == (2, 5, 16, 16) and len(a.flows) == 3 and b.flows == ()


def test_depth_channel_mismatch_and_bad_inputs_raise():
    model = _build("all_fams").eval()
    image, _ = _inputs()
    with pytest.raises(ShapeError, match="depth_channels=3"):
        model(image, torch.rand(2, 1, 64, 64))
    with pytest.raises(ShapeError, match="match image"):
        model(image, torch.rand(2, 3, 32, 32))
    with pytest.raises(ShapeError):
        model(image[:, :1], torch.rand(2, 3, 64, 64))


def test_config_errors():
    with pytest.raises(ConfigError, match="fuse_fam"):
        fafnet(**SMALL, fusion="sagate", fuse_fam=True)
    with pytest.raises(ConfigError, match="depth_channels"):
        fafnet(**SMALL, depth_channels=2)
    with pytest.raises(ConfigError, match="backbone_kwargs"):
        fafnet(backbone="resnet18", backbone_kwargs={"in_channels": 4})
    with pytest.raises(ConfigError, match="feedback"):
        MODELS.create("two_stream_deeplabv3plus", **SMALL, fusion="sagate", feedback=True)


def test_raw_depth_scaling_is_a_division_by_depth_scale():
    # Same weights; depth in metres with depth_scale 10 == depth / 2 with depth_scale 5.
    a = _build("all_fams", depth_channels=1, depth_scale=10.0).eval()
    b = _build("all_fams", depth_channels=1, depth_scale=5.0).eval()
    b.load_state_dict(a.state_dict())
    image, _ = _inputs()
    depth = 8 * torch.rand(2, 1, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(a(image, depth)["semantic"], b(image, depth / 2)["semantic"])
    assert a.depth_mean.flatten().tolist() == [0.0] and a.depth_std.flatten().tolist() == [1.0]
    hha = _build("no_fam")
    torch.testing.assert_close(hha.depth_mean.flatten(), torch.tensor(HHA_MEAN))
    torch.testing.assert_close(hha.depth_std.flatten(), torch.tensor(HHA_STD))


def test_pretrained_file_initialises_both_streams(tmp_path):
    torch.manual_seed(3)
    ref = resnet18(base_width=16)
    path = tmp_path / "r18.pth"
    torch.save({k: v for k, v in ref.state_dict().items()}, path)
    model = fafnet(**SMALL, depth_channels=1, pretrained=str(path), output_stride=32)
    rgb_sd, depth_sd = model.backbone.rgb.state_dict(), model.backbone.depth.state_dict()
    for k, v in ref.state_dict().items():
        torch.testing.assert_close(rgb_sd[k], v)
        if k != "conv1.weight":
            torch.testing.assert_close(depth_sd[k], v)
    # 1-channel depth stream: the mean RGB filter times 3 (grey-image rule of load_pretrained)
    torch.testing.assert_close(depth_sd["conv1.weight"], 3 * ref.conv1.weight.mean(dim=1, keepdim=True))
