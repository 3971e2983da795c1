"""Contract tests for the plain-torch backbones (ResNet, HRNet) and local ImageNet weight loading."""

from __future__ import annotations

import logging
import math

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from torch.utils.flop_counter import FlopCounterMode

from freqdense.errors import CheckpointError, ConfigError, ShapeError, UnknownNameError
from freqdense.models.backbones import (
    Backbone,
    create_backbone,
    list_backbones,
    load_pretrained,
)
from freqdense.models.backbones.hrnet import HighResolutionModule

ALL = [
    "hrnet_w18",
    "hrnet_w18_small",
    "hrnet_w48",
    "mscan_b",
    "mscan_l",
    "mscan_s",
    "mscan_t",
    "resnet101",
    "resnet18",
    "resnet34",
    "resnet50",
]


def n_params(m: torch.nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def test_registry_lists_every_backbone() -> None:
    assert list_backbones() == ALL
    assert list_backbones("hrnet*") == ["hrnet_w18", "hrnet_w18_small", "hrnet_w48"]
    with pytest.raises(UnknownNameError, match="resnet50"):
        create_backbone("resnet05")
    with pytest.raises(ConfigError, match="output_stride"):
        create_backbone("resnet18", output_strid=8)


# torchvision totals (documented on pytorch.org) minus the ImageNet fc layer (in_features * 1000 + 1000).
@pytest.mark.parametrize(
    ("name", "torchvision_total", "fc_in"),
    [
        ("resnet18", 11_689_512, 512),
        ("resnet34", 21_797_672, 512),
        ("resnet50", 25_557_032, 2048),
        ("resnet101", 44_549_160, 2048),
    ],
)
def test_resnet_parameter_count_equals_torchvision_without_fc(name: str, torchvision_total: int, fc_in: int) -> None:
    with torch.device("meta"):
        model = create_backbone(name)
    assert n_params(model) == torchvision_total - (fc_in * 1000 + 1000)


# docs/reference_code.md#hrnet: params (M) and conv MACs (G) of the reference at 480x640.
@pytest.mark.parametrize(
    ("name", "mparams", "gmacs", "channels"),
    [
        ("hrnet_w18_small", 3.861, 9.76, (18, 36, 72, 144)),
        ("hrnet_w18", 9.562, 20.09, (18, 36, 72, 144)),
        ("hrnet_w48", 65.325, 99.28, (48, 96, 192, 384)),
    ],
)
def test_hrnet_params_macs_and_shapes_match_reference(name, mparams, gmacs, channels) -> None:
    with torch.device("meta"):  # shapes and FLOPs without allocating (W48 is built only here)
        model = create_backbone(name).eval()
        with FlopCounterMode(display=False) as counter:
            out = model(torch.empty(1, 3, 480, 640))
    assert round(n_params(model) / 1e6, 3) == mparams
    assert round(counter.get_total_flops() / 2e9, 2) == gmacs
    assert model.out_channels == channels and model.strides == (4, 8, 16, 32)
    assert [tuple(o.shape) for o in out] == [(1, c, 480 // s, 640 // s) for c, s in zip(channels, (4, 8, 16, 32))]


@pytest.mark.parametrize(
    ("name", "kwargs", "size"),
    [
        ("resnet18", {"base_width": 8}, (64, 64)),
        ("resnet34", {"base_width": 8}, (64, 64)),
        ("resnet50", {"base_width": 8}, (64, 64)),
        ("resnet101", {"base_width": 4}, (64, 64)),
        ("resnet18", {"base_width": 8, "out_indices": (0, 1, 2, 3, 4)}, (45, 61)),
        ("resnet50", {"base_width": 4, "output_stride": 8}, (45, 61)),
        ("hrnet_w18_small", {}, (64, 64)),
        ("hrnet_w18_small", {}, (45, 61)),
        ("hrnet_w18", {}, (64, 64)),
    ],
)
def test_feature_shapes_follow_out_channels_and_strides(name, kwargs, size) -> None:
    torch.manual_seed(0)
    model = create_backbone(name, **kwargs).eval()
    assert isinstance(model, Backbone)
    with torch.no_grad():
        out = model(torch.rand(2, 3, *size))
    assert len(out) == len(model.out_channels) == len(model.strides)
    for f, c, s in zip(out, model.out_channels, model.strides):
        # every stride-2 layer (k3 p1, k7 p3, k1 p0, maxpool k3 p1) maps n -> ceil(n / 2)
        assert tuple(f.shape) == (2, c, math.ceil(size[0] / s), math.ceil(size[1] / s))
        assert torch.isfinite(f).all()


def test_resnet_widths_follow_base_width() -> None:
    with torch.device("meta"):
        r18 = create_backbone("resnet18", out_indices=(0, 1, 2, 3, 4))
        r50 = create_backbone("resnet50", base_width=16)
    assert r18.out_channels == (64, 64, 128, 256, 512)
    assert r18.strides == (2, 4, 8, 16, 32)
    assert r50.out_channels == (64, 128, 256, 512)


@pytest.mark.parametrize(
    ("output_stride", "strides", "sizes"),
    [(32, (4, 8, 16, 32), (16, 8, 4, 2)), (16, (4, 8, 16, 16), (16, 8, 4, 4)), (8, (4, 8, 8, 8), (16, 8, 8, 8))],
)
@pytest.mark.parametrize("name", ["resnet18", "resnet50"])
def test_output_stride_replaces_strides_with_dilation(name, output_stride, strides, sizes) -> None:
    model = create_backbone(name, base_width=4, output_stride=output_stride).eval()
    assert model.strides == strides
    with torch.no_grad():
        out = model(torch.rand(1, 3, 64, 64))
    assert [f.shape[-1] for f in out] == list(sizes)


def test_dilation_pattern_matches_torchvision_replace_stride_with_dilation() -> None:
    # torchvision: the first block of a dilated stage keeps the previous dilation, later blocks use the new one.
    with torch.device("meta"):
        r50 = create_backbone("resnet50", output_stride=8)
        r18 = create_backbone("resnet18", output_stride=16)
    assert r50.layer3[0].conv2.stride == (1, 1) and r50.layer3[0].conv2.dilation == (1, 1)
    assert r50.layer3[0].downsample[0].stride == (1, 1)
    assert all(b.conv2.dilation == (2, 2) for b in r50.layer3[1:])
    assert r50.layer4[0].conv2.dilation == (2, 2)
    assert all(b.conv2.dilation == (4, 4) for b in r50.layer4[1:])
    assert r50.layer2[0].conv2.stride == (2, 2)
    assert r18.layer4[0].conv1.dilation == (1, 1) and r18.layer4[0].conv1.stride == (1, 1)
    assert r18.layer4[1].conv1.dilation == (2, 2) and r18.layer4[1].conv2.dilation == (2, 2)
    assert r18.layer3[0].conv1.stride == (2, 2)


def test_out_indices_build_only_needed_stages() -> None:
    model = create_backbone("resnet18", base_width=4, out_indices=(0,))
    assert model.strides == (2,) and model.out_channels == (4,)
    assert not hasattr(model, "layer1")
    assert model.checkpoint_ignore_prefixes == ("layer1.", "layer2.", "layer3.", "layer4.")
    out = model(torch.rand(1, 3, 32, 32))
    assert len(out) == 1 and out[0].shape == (1, 4, 16, 16)
    assert out[0].min() >= 0  # stem output is taken after the ReLU


@pytest.mark.parametrize(
    "kwargs",
    [
        {"output_stride": 4},
        {"out_indices": (3, 1)},
        {"out_indices": (5,)},
        {"out_indices": ()},
        {"base_width": 0},
        {"in_channels": 0},
    ],
)
def test_resnet_rejects_bad_options(kwargs) -> None:
    with pytest.raises(ConfigError):
        create_backbone("resnet18", **kwargs)


@pytest.mark.parametrize("name", ["resnet18", "hrnet_w18_small"])
def test_input_checks_name_the_tensor(name) -> None:
    with torch.device("meta"):
        model = create_backbone(name, in_channels=4)
        with pytest.raises(ShapeError, match="input.*C=4"):
            model(torch.empty(1, 3, 32, 32))
        with pytest.raises(ShapeError, match="batch"):
            model(torch.empty(4, 32, 32))


def test_in_channels_changes_first_conv_only() -> None:
    model = create_backbone("resnet18", base_width=4, in_channels=1).eval()
    assert model.conv1.weight.shape == (4, 1, 7, 7)
    assert model(torch.rand(1, 1, 32, 32))[-1].shape == (1, 32, 1, 1)


def test_every_resnet_parameter_gets_a_finite_gradient() -> None:
    torch.manual_seed(0)
    model = create_backbone("resnet50", base_width=4, out_indices=(0, 1, 2, 3, 4))
    out = model(torch.rand(2, 3, 64, 64))
    sum((f * torch.randn_like(f)).sum() for f in out).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name


def test_hrnet_key_names_follow_the_official_layout() -> None:
    with torch.device("meta"):
        sd = create_backbone("hrnet_w18_small").state_dict()
    # Key -> shape pairs of the official HRNet-Image-Classification w18_small_v2 layout (3x3 convs, 18/36/72/144).
    expected = {
        "conv1.weight": (64, 3, 3, 3),
        "bn1.running_mean": (64,),
        "conv2.weight": (64, 64, 3, 3),
        "layer1.0.downsample.0.weight": (256, 64, 1, 1),
        "layer1.1.conv3.weight": (256, 64, 1, 1),
        "transition1.0.0.weight": (18, 256, 3, 3),
        "transition1.1.0.0.weight": (36, 256, 3, 3),
        "transition2.2.0.0.weight": (72, 36, 3, 3),
        "transition3.3.0.0.weight": (144, 72, 3, 3),
        "stage2.0.branches.1.1.conv2.weight": (36, 36, 3, 3),
        "stage2.0.fuse_layers.0.1.0.weight": (18, 36, 1, 1),
        "stage2.0.fuse_layers.1.0.0.0.weight": (36, 18, 3, 3),
        "stage3.2.fuse_layers.2.0.0.0.weight": (18, 18, 3, 3),
        "stage3.2.fuse_layers.2.0.1.0.weight": (72, 18, 3, 3),
        "stage3.2.fuse_layers.2.0.1.1.running_var": (72,),
        "stage4.1.fuse_layers.3.0.2.0.weight": (144, 18, 3, 3),
        "stage4.1.fuse_layers.0.3.1.weight": (18,),
        "stage4.1.fuse_layers.0.1.0.weight": (18, 36, 1, 1),
    }
    for key, shape in expected.items():
        assert tuple(sd[key].shape) == shape, key
    absent = ("stage2.1.", "stage3.3.", "stage4.2.", "transition1.0.0.0", "transition2.0.")
    assert not any(k.startswith(absent) for k in sd)
    assert not any(k.startswith(("fc.", "classifier.", "incre_modules.")) for k in sd)
    bn = create_backbone("hrnet_w18_small").bn1
    assert bn.momentum == 0.01


def test_hrnet_module_fuses_as_specified_and_leaves_input_alone() -> None:
    torch.manual_seed(0)
    module = HighResolutionModule((1, 1, 1), (4, 6, 8)).eval()
    for p in module.parameters():  # a generic non-degenerate state
        torch.nn.init.normal_(p, std=0.3)
    xs = [torch.randn(1, 4, 12, 10), torch.randn(1, 6, 6, 5), torch.randn(1, 8, 3, 3)]
    copies = [x.clone() for x in xs]
    ids = [id(x) for x in xs]
    with torch.no_grad():
        out = module(xs)
        b = [module.branches[i](copies[i]) for i in range(3)]
        f = module.fuse_layers
        up = lambda t, ref: F.interpolate(t, size=ref.shape[-2:], mode="bilinear", align_corners=False)  # noqa: E731
        # fuse step: identity, 1x1+BN+bilinear upsampling, chains of strided 3x3+BN with ReLU between steps
        ref0 = F.relu(b[0] + up(f[0][1](b[1]), b[0]) + up(f[0][2](b[2]), b[0]))
        ref1 = F.relu(f[1][0](b[0]) + b[1] + up(f[1][2](b[2]), b[1]))
        down2 = f[2][0][1](F.relu(f[2][0][0][1](f[2][0][0][0](b[0]))))
        ref2 = F.relu(down2 + f[2][1](b[1]) + b[2])
    assert [id(x) for x in xs] == ids and all(torch.equal(x, c) for x, c in zip(xs, copies))
    for o, r in zip(out, (ref0, ref1, ref2)):
        torch.testing.assert_close(o, r)
    assert isinstance(f[2][0][0][2], torch.nn.ReLU) and len(f[2][0][1]) == 2  # no ReLU after the last step
    assert out[2].shape[-2:] == (3, 3)  # 12 -> 6 -> 3 via two stride-2 convs


# ---------------------------------------------------------------------------------------------- pretrained weights


def _perturbed_copy(model: torch.nn.Module, seed: int) -> dict[str, torch.Tensor]:
    """A state dict that differs from ``model``'s everywhere (so a successful load is visible)."""
    g = torch.Generator().manual_seed(seed)
    return {
        k: (v + torch.randn(v.shape, generator=g) if v.is_floating_point() else v + 3)
        for k, v in model.state_dict().items()
    }


@pytest.mark.parametrize("suffix", [".pth", ".pth.tar", ".pt", ".safetensors"])
def test_resnet_weights_load_from_torchvision_format(tmp_path, suffix) -> None:
    model = create_backbone("resnet18", base_width=8)
    target = _perturbed_copy(model, seed=1)
    file_sd = {k: v for k, v in target.items() if not k.endswith("num_batches_tracked")}  # like torchvision files
    file_sd["fc.weight"], file_sd["fc.bias"] = torch.randn(1000, 64), torch.randn(1000)
    path = tmp_path / f"r18{suffix}"
    if suffix == ".safetensors":
        save_file(file_sd, str(path))
    else:  # DataParallel prefix inside a training-checkpoint wrapper
        torch.save({"epoch": 3, "state_dict": {f"module.{k}": v for k, v in file_sd.items()}}, path)
    before = model.layer1[0].bn1.num_batches_tracked.clone()
    report = load_pretrained(model, path)
    assert report.dropped == ("fc.bias", "fc.weight") and report.adapted == ()
    for k, v in model.state_dict().items():
        if k.endswith("num_batches_tracked"):
            continue
        torch.testing.assert_close(v, target[k], rtol=0, atol=0, msg=k)
    assert torch.equal(model.layer1[0].bn1.num_batches_tracked, before)


def test_factory_pretrained_argument_and_model_wrapper(tmp_path) -> None:
    source = create_backbone("resnet34", base_width=4)
    path = tmp_path / "r34.pth"
    torch.save({"model": source.state_dict()}, path)
    torch.manual_seed(123)
    model = create_backbone("resnet34", base_width=4, pretrained=str(path))
    for (k, a), b in zip(model.state_dict().items(), source.state_dict().values()):
        assert torch.equal(a, b), k


def test_hrnet_classification_keys_are_dropped_and_reported(tmp_path, caplog) -> None:
    model = create_backbone("hrnet_w18_small")
    target = _perturbed_copy(model, seed=2)
    extra = {
        "incre_modules.0.0.conv1.weight": torch.randn(32, 18, 1, 1),
        "downsamp_modules.0.0.weight": torch.randn(256, 128, 3, 3),
        "final_layer.0.weight": torch.randn(2048, 1024, 1, 1),
        "classifier.weight": torch.randn(1000, 2048),
        "classifier.bias": torch.randn(1000),
    }
    path = tmp_path / "hrnet_w18_small_model_v2.pth"
    torch.save({**target, **extra}, path)
    with caplog.at_level(logging.INFO, logger="freqdense.models.backbones._pretrained"):
        report = load_pretrained(model, path)
    assert set(report.dropped) == set(extra)
    assert "incre_modules" in caplog.text and "classifier" in caplog.text
    for k, v in model.state_dict().items():
        assert torch.equal(v, target[k]), k


def test_partial_backbone_drops_unbuilt_stages(tmp_path) -> None:
    full = create_backbone("resnet18", base_width=4)
    path = tmp_path / "full.pth"
    torch.save(full.state_dict(), path)
    part = create_backbone("resnet18", base_width=4, out_indices=(1, 2))
    report = load_pretrained(part, path)
    assert report.dropped and all(k.startswith(("layer3.", "layer4.")) for k in report.dropped)
    assert torch.equal(part.layer2[1].conv2.weight, full.layer2[1].conv2.weight)


def test_wrong_width_names_keys_shapes_and_file(tmp_path) -> None:
    path = tmp_path / "narrow.pth"
    torch.save(create_backbone("resnet18", base_width=8).state_dict(), path)
    with pytest.raises(CheckpointError, match=r"narrow\.pth") as err:
        load_pretrained(create_backbone("resnet18", base_width=16), path)
    msg = str(err.value)
    assert "conv1.weight: file (8, 3, 7, 7), model expects (16, 3, 7, 7)" in msg
    assert "shape mismatch" in msg and "base_width" in msg


def test_missing_and_unexpected_keys_are_named(tmp_path) -> None:
    sd = create_backbone("resnet18", base_width=4).state_dict()
    del sd["layer2.1.conv1.weight"]
    sd["layer5.0.conv1.weight"] = torch.zeros(1)
    path = tmp_path / "odd.pth"
    torch.save(sd, path)
    with pytest.raises(CheckpointError) as err:
        load_pretrained(create_backbone("resnet18", base_width=4), path)
    assert "missing key(s) ['layer2.1.conv1.weight']" in str(err.value)
    assert "unexpected key(s) ['layer5.0.conv1.weight']" in str(err.value)


def test_resnet_file_into_hrnet_fails_clearly(tmp_path) -> None:
    path = tmp_path / "resnet.pth"
    torch.save(create_backbone("resnet18", base_width=4).state_dict(), path)
    with pytest.raises(CheckpointError, match="HRNet-Image-Classification"):
        load_pretrained(create_backbone("hrnet_w18_small"), path)


@pytest.mark.parametrize("name", ["broken.pth", "broken.safetensors", "broken.pth.tar"])
def test_corrupt_files_raise_checkpoint_error(tmp_path, name) -> None:
    path = tmp_path / name
    path.write_bytes(b"\x80\x02this is not a checkpoint" * 10)
    with pytest.raises(CheckpointError, match="corrupt"):
        load_pretrained(create_backbone("resnet18", base_width=4), path)


def test_unreadable_inputs_raise_checkpoint_error(tmp_path) -> None:
    model = create_backbone("resnet18", base_width=4)
    with pytest.raises(CheckpointError, match="does not exist.*never downloads"):
        load_pretrained(model, tmp_path / "missing.pth")
    npz = tmp_path / "weights.npz"
    npz.write_bytes(b"x")
    with pytest.raises(CheckpointError, match="unknown file type"):
        load_pretrained(model, npz)
    notdict = tmp_path / "list.pth"
    torch.save([torch.zeros(1)], notdict)
    with pytest.raises(CheckpointError, match="no state dict"):
        load_pretrained(model, notdict)
    pickled = tmp_path / "pickled.pth"
    torch.save({"state_dict": {"conv1.weight": torch.zeros(1)}, "cfg": object()}, pickled)  # not weights_only-safe
    with pytest.raises(CheckpointError, match="corrupt or not a tensor checkpoint"):
        load_pretrained(model, pickled)


@pytest.mark.parametrize("name", ["resnet18", "hrnet_w18_small"])
@pytest.mark.parametrize("in_channels", [1, 6])
def test_rgb_weights_adapt_to_other_input_channels(tmp_path, name, in_channels) -> None:
    kwargs = {"base_width": 4} if name == "resnet18" else {}
    rgb = create_backbone(name, **kwargs)
    path = tmp_path / "rgb.pth"
    torch.save(rgb.state_dict(), path)
    model = create_backbone(name, in_channels=in_channels, **kwargs)
    report = load_pretrained(model, path)
    assert report.adapted == ("conv1.weight",)
    assert torch.equal(model.layer1[0].conv1.weight, rgb.layer1[0].conv1.weight)
    w_rgb, w_new = rgb.conv1.weight, model.conv1.weight
    x = torch.rand(1, 3, 9, 9)
    with torch.no_grad():
        if in_channels == 1:  # a grey image g gives the RGB response to (g, g, g)
            g = x[:, :1]
            torch.testing.assert_close(F.conv2d(g, w_new), F.conv2d(g.expand(-1, 3, -1, -1), w_rgb))
        else:  # two stacked copies of an RGB image give the RGB response
            torch.testing.assert_close(F.conv2d(torch.cat([x, x], 1), w_new), F.conv2d(x, w_rgb))


@pytest.mark.parametrize("name", ["resnet18", "hrnet_w18_small"])
def test_pretrained_true_is_refused_by_the_backbone_factories(name) -> None:
    from freqdense.models import backbones

    with pytest.raises(ConfigError, match=r"pretrained=True .*never downloads.*pretrained=PATH"):
        getattr(backbones, name)(pretrained=True)  # the public factory function
    with pytest.raises(ConfigError, match="never downloads"):
        create_backbone(name, pretrained=True)
    with pytest.raises(ConfigError, match=r"pretrained=1 \(int\)"):
        load_pretrained(create_backbone("resnet18", base_width=4), 1)
