"""Contract tests for the multi-task baseline (shared backbone + HRNetHead per task) and the model registry."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from freqdense.errors import ConfigError, ShapeError, UnknownNameError
from freqdense.models import MODELS, create_model, list_models
from freqdense.models.backbones import create_backbone
from freqdense.models.heads import HRNetFuse, HRNetHead
from freqdense.models.multitask import MultiTaskBaseline

SMALL = {"backbone": "resnet18", "backbone_kwargs": {"base_width": 8}}  # a cheap backbone for variant tests


@pytest.fixture(scope="module")
def model() -> MultiTaskBaseline:
    torch.manual_seed(0)
    return create_model("multitask_baseline")


def n_params(m: torch.nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def test_registry_names() -> None:
    assert {"multitask_baseline", "segmentation_baseline", "depth_baseline"} <= set(list_models())
    assert list_models("*_baseline") == sorted(n for n in MODELS.names() if n.endswith("_baseline"))


def test_parameter_count_matches_reference(model) -> None:
    # docs/reference_code.md#hrnet: 4.019 M for HRNet-W18-Small-v2 + semseg(40) + depth(1) HRNet heads
    assert round(n_params(model) / 1e6, 3) == 4.019
    c = 18 + 36 + 72 + 144  # head: 1x1 conv C->C (bias), BN(C), 1x1 conv C->K (bias)
    head = lambda k: c * c + c + 2 * c + c * k + k  # noqa: E731
    assert n_params(model.heads) == head(40) + head(1)
    assert n_params(model.backbone) == n_params(model) - head(40) - head(1)


def test_macs_match_reference_at_nyud_size() -> None:
    with torch.device("meta"):
        net = create_model("multitask_baseline").eval()
        with FlopCounterMode(display=False) as counter:
            out = net(torch.empty(1, 3, 480, 640))
    assert round(counter.get_total_flops() / 2e9, 1) == 12.8  # docs/reference_code.md#hrnet (conv MACs)
    assert out["semantic"].shape == (1, 40, 480, 640) and out["depth"].shape == (1, 1, 480, 640)


def test_outputs_and_every_parameter_gets_a_finite_gradient(model) -> None:
    model.train()
    model.zero_grad()
    image = torch.rand(2, 3, 64, 64)
    out = model(image)
    assert list(out) == ["semantic", "depth"] == list(model.tasks)
    assert out["semantic"].shape == (2, 40, 64, 64) and out["depth"].shape == (2, 1, 64, 64)
    g = torch.Generator().manual_seed(0)  # random weights: a uniform upstream gradient vanishes through train-mode BN
    loss = sum((v * torch.randn(v.shape, generator=g)).sum() for v in out.values())
    loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        if p.dim() > 1:
            assert p.grad.abs().sum() > 0, name


def test_eval_is_deterministic_and_batch_independent(model) -> None:
    model.eval()
    image = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        a, b = model(image), model(image)
        single = model(image[1:])
    for k in a:
        assert torch.equal(a[k], b[k])
        torch.testing.assert_close(single[k], a[k][1:], rtol=1e-4, atol=1e-5)


def test_odd_input_sizes_are_handled(model) -> None:
    model.eval()
    with torch.no_grad():
        out = model(torch.rand(1, 3, 45, 61))
    assert out["semantic"].shape == (1, 40, 45, 61) and out["depth"].shape == (1, 1, 45, 61)
    assert all(torch.isfinite(v).all() for v in out.values())


def test_normalisation_happens_inside_with_imagenet_buffers(model) -> None:
    model.eval()
    torch.testing.assert_close(model.mean.flatten(), torch.tensor([0.485, 0.456, 0.406]))
    torch.testing.assert_close(model.std.flatten(), torch.tensor([0.229, 0.224, 0.225]))
    assert "mean" not in model.state_dict() and "std" not in model.state_dict()
    seen = []
    handle = model.backbone.register_forward_pre_hook(lambda _m, args: seen.append(args[0]))
    image = torch.rand(1, 3, 32, 32)
    try:
        with torch.no_grad():
            model(image)
    finally:
        handle.remove()
    expected = (image - torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)) / torch.tensor(
        [0.229, 0.224, 0.225]
    ).view(1, 3, 1, 1)
    torch.testing.assert_close(seen[0], expected)


def test_state_dict_round_trip(model) -> None:
    model.eval()
    torch.manual_seed(1)
    other = create_model("multitask_baseline").eval()
    image = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        assert not torch.equal(other(image)["depth"], model(image)["depth"])
        other.load_state_dict(model.state_dict())
        for k, v in model(image).items():
            assert torch.equal(other(image)[k], v)


def test_head_keys_follow_reference_layout(model) -> None:
    keys = model.state_dict().keys()
    assert "heads.semantic.last_layer.0.weight" in keys and "heads.depth.last_layer.3.bias" in keys
    assert "backbone.stage4.1.fuse_layers.0.1.0.weight" in keys
    assert model.heads["semantic"].last_layer[1].momentum == 0.1


@pytest.mark.parametrize(
    ("image", "match"),
    [
        (torch.rand(1, 4, 32, 32), "image must have C=3"),
        (torch.rand(3, 32, 32), "batch dimension"),
        (torch.randint(0, 255, (1, 3, 32, 32), dtype=torch.uint8), "float"),
    ],
)
def test_bad_images_raise_shape_error(model, image, match) -> None:
    with pytest.raises(ShapeError, match=match):
        model(image)


def test_single_task_variants_with_a_resnet_backbone() -> None:
    seg = create_model("segmentation_baseline", num_classes=5, **SMALL).eval()
    dep = create_model("depth_baseline", **SMALL).eval()
    assert seg.tasks == ("semantic",) and dep.tasks == ("depth",)
    assert seg.heads["semantic"].in_channels == (8, 16, 32, 64)
    with torch.no_grad():
        s, d = seg(torch.rand(1, 3, 40, 56)), dep(torch.rand(1, 3, 40, 56))
    assert list(s) == ["semantic"] and s["semantic"].shape == (1, 5, 40, 56)
    assert list(d) == ["depth"] and d["depth"].shape == (1, 1, 40, 56)


@pytest.mark.parametrize("activation", ["relu", "softplus", "exp"])
def test_depth_activation_transforms_the_raw_output(activation) -> None:
    raw = create_model("depth_baseline", **SMALL).eval()
    act = create_model("depth_baseline", depth_activation=activation, **SMALL).eval()
    act.load_state_dict(raw.state_dict())
    image = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        r, a = raw(image)["depth"], act(image)["depth"]
    expected = {"relu": F.relu, "softplus": F.softplus, "exp": torch.exp}[activation](r)
    torch.testing.assert_close(a, expected)
    assert (r < 0).any() and (a >= 0).all()  # the default ("none", as the reference) can go negative


def test_tasks_order_and_validation() -> None:
    m = create_model("multitask_baseline", tasks=["depth", "semantic"], num_classes=3, **SMALL)
    assert m.tasks == ("depth", "semantic")
    with pytest.raises(ConfigError, match="Did you mean 'semantic'"):
        create_model("multitask_baseline", tasks=("semseg",), **SMALL)
    with pytest.raises(ConfigError, match="duplicates"):
        create_model("multitask_baseline", tasks=("depth", "depth"), **SMALL)
    with pytest.raises(ConfigError, match="depth_activation"):
        create_model("multitask_baseline", depth_activation="sigmoid", **SMALL)


def test_registry_errors_are_helpful() -> None:
    with pytest.raises(UnknownNameError, match="Did you mean 'multitask_baseline'"):
        create_model("multitask_baselin")
    with pytest.raises(ConfigError, match="Did you mean 'num_classes'"):
        create_model("multitask_baseline", num_class=40)
    with pytest.raises(ConfigError, match="output_stride"):
        create_model("multitask_baseline", backbone="resnet18", backbone_kwargs={"output_strid": 8})
    with pytest.raises(UnknownNameError, match="unknown backbone 'hrnet_w19'"):
        create_model("multitask_baseline", backbone="hrnet_w19")
    with pytest.raises(ConfigError, match="pretrained= to the model"):
        create_model("multitask_baseline", backbone_kwargs={"pretrained": "x.pth"})
    with pytest.raises(ConfigError, match="RGB"):
        MultiTaskBaseline(create_backbone("resnet18", base_width=4, in_channels=1))


def test_pretrained_backbone_file_is_loaded(tmp_path) -> None:
    source = create_backbone("resnet18", base_width=8)
    path = tmp_path / "imagenet.pth"
    torch.save(source.state_dict(), path)
    net = create_model("segmentation_baseline", pretrained=str(path), **SMALL)
    for (k, v), w in zip(net.backbone.state_dict().items(), source.state_dict().values()):
        assert torch.equal(v, w), k


def test_hrnet_head_upsamples_concatenates_and_projects() -> None:
    torch.manual_seed(0)
    feats = [torch.randn(2, 3, 8, 10), torch.randn(2, 5, 4, 5), torch.randn(2, 7, 2, 3)]
    head, fuse = HRNetHead((3, 5, 7), 4).eval(), HRNetFuse((3, 5, 7)).eval()
    for p in head.parameters():
        torch.nn.init.normal_(p)
    fuse.last_layer.load_state_dict(head.last_layer[:3].state_dict())
    with torch.no_grad():
        out, mid = head(feats), fuse(feats)
        up = [feats[0]] + [F.interpolate(f, size=(8, 10), mode="bilinear", align_corners=False) for f in feats[1:]]
        x = torch.cat(up, 1)
        conv1, bn, conv2 = head.last_layer[0], head.last_layer[1], head.last_layer[3]
        y = F.conv2d(x, conv1.weight, conv1.bias)
        y = (y - bn.running_mean.view(1, -1, 1, 1)) / torch.sqrt(bn.running_var.view(1, -1, 1, 1) + bn.eps)
        y = F.relu(y * bn.weight.view(1, -1, 1, 1) + bn.bias.view(1, -1, 1, 1))
        ref = F.conv2d(y, conv2.weight, conv2.bias)
    assert out.shape == (2, 4, 8, 10) and fuse.out_channels == 15 and mid.shape == (2, 15, 8, 10)
    torch.testing.assert_close(mid, y)
    torch.testing.assert_close(out, ref)
    with pytest.raises(ShapeError, match=r"channels \(3, 5, 7\)"):
        head(feats[:2])


def _takes_pretrained(name: str) -> bool:
    import inspect

    return "pretrained" in inspect.signature(MODELS.get(name)).parameters


@pytest.mark.parametrize("name", [n for n in list_models() if _takes_pretrained(n)])
def test_pretrained_true_is_refused_with_the_local_file_fix(name) -> None:
    with pytest.raises(ConfigError, match=r"pretrained=True .*never downloads.*pretrained=PATH") as err:
        create_model(name, pretrained=True)
    assert "\n" not in str(err.value)


def test_pretrained_bool_is_refused_for_the_baseline() -> None:
    names = [n for n in list_models() if _takes_pretrained(n)]
    assert {"multitask_baseline", "deeplabv3plus"} <= set(names) and len(names) >= 8
    with pytest.raises(ConfigError, match="never downloads weights"):
        create_model("multitask_baseline", pretrained=True, **SMALL)
    with pytest.raises(ConfigError, match="leave pretrained out"):
        create_model("multitask_baseline", pretrained=False, **SMALL)
