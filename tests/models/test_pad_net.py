"""PAD-Net ("2-predict") and the "3-predict" variant: parity with Multi-Task-Learning-PyTorch
(docs/reference_code.md#hrnet, #pad-net, #state-dict-names),
distillation against a hand-written formula, deep supervision and a training step."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from freqdense.config.schema import TaskConfig
from freqdense.errors import ConfigError
from freqdense.models import create_model, list_models
from freqdense.models.pad_net import PADNet
from freqdense.nn import MultiTaskDistillation, SEBlock
from freqdense.tasks import build_task


def n_params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


@pytest.fixture(scope="module")
def model() -> PADNet:
    torch.manual_seed(0)
    return create_model("pad_net", num_classes=40)


@pytest.mark.parametrize(
    ("backbone", "millions"), [("hrnet_w18_small", 7.019), ("hrnet_w18", 12.721), ("hrnet_w48", 69.22)]
)
def test_parameter_count_matches_reference(backbone: str, millions: float) -> None:
    with torch.device("meta"):  # docs/reference_code.md#hrnet table, 2 tasks (40 classes + depth)
        net = create_model("pad_net", backbone=backbone, num_classes=40)
    assert round(n_params(net) / 1e6, 3 if millions < 60 else 2) == millions
    assert {"pad_net", "pad_net_3predict"} <= set(list_models())


def test_three_predict_adds_one_prediction_and_one_distillation_stage() -> None:
    with torch.device("meta"):
        two = create_model("pad_net", num_classes=40)
        three = create_model("pad_net_3predict", num_classes=40)
    bn = lambda c: 2 * c  # noqa: E731
    bottleneck = 256 * 64 + bn(64) + 64 * 64 * 9 + bn(64) + 64 * 256 + bn(256)  # 256 -> 256, no projection
    stage = 2 * (2 * bottleneck) + (256 * 40 + 40) + (256 * 1 + 1)  # two tasks, two bottlenecks + 1x1 predictor
    distillation = 2 * 2 * (256 * 256 * 9)  # two directions, SABlock = two bias-free 3x3 convs
    assert n_params(three) - n_params(two) == stage + distillation


def test_state_dict_keys_follow_the_reference(model) -> None:
    keys = set(model.state_dict())  # docs/reference_code.md#state-dict-names, semseg -> semantic
    for k in (
        "backbone.0.stage4.1.fuse_layers.0.1.0.weight",
        "backbone.1.last_layer.0.weight",
        "initial_task_prediction_heads.layers.semantic.0.conv1.weight",
        "initial_task_prediction_heads.layers.semantic.0.downsample.0.weight",
        "multi_modal_distillation.self_attention.semantic.depth.conv.weight",
        "multi_modal_distillation.self_attention.depth.semantic.attention.0.weight",
        "heads.semantic.2.weight",
        "heads.depth.2.bias",
    ):
        assert k in keys, k
    assert model.heads.semantic[2].weight.shape == (40, 256, 1, 1)
    assert model.initial_task_prediction_heads.layers.depth[0].conv1.weight.shape == (64, 270, 1, 1)


@pytest.mark.parametrize("name", ["pad_net", "pad_net_3predict"])
def test_outputs_at_an_odd_size(name: str, model) -> None:
    net = model if name == "pad_net" else create_model(name, num_classes=40)
    net.eval()
    with torch.no_grad():
        out = net(torch.rand(2, 3, 64, 96))
        odd = net(torch.rand(1, 3, 61, 93))
    aux = ["initial"] + (["intermediate"] if name == "pad_net_3predict" else [])
    assert sorted(out) == sorted(["semantic", "depth"] + [f"{t}:{a}" for t in ("semantic", "depth") for a in aux])
    assert out["semantic"].shape == (2, 40, 64, 96) and out["depth"].shape == (2, 1, 64, 96)
    for a in aux:  # stride-4 deep supervision (PADNetLoss upsamples them to the label size)
        assert out[f"semantic:{a}"].shape == (2, 40, 16, 24) and out[f"depth:{a}"].shape == (2, 1, 16, 24)
    assert odd["semantic"].shape == (1, 40, 61, 93) and odd["depth"].shape == (1, 1, 61, 93)


def _batch(b: int, h: int, w: int, classes: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    semantic = torch.randint(0, classes, (b, h, w), generator=g)
    semantic[:, :4] = 255
    depth = torch.rand(b, 1, h, w, generator=g) * 5 + 0.5
    depth[..., :3] = 0.0
    return {
        "image": torch.rand(b, 3, h, w, generator=g),
        "semantic": semantic,
        "depth": depth,
        "depth_valid": depth > 0,
    }


def test_every_parameter_gets_a_finite_gradient_through_the_task_losses(model) -> None:
    model.train()
    model.zero_grad()
    task = build_task(TaskConfig(name="multitask"), num_classes=40)
    terms = task.training_step(model, _batch(2, 64, 96, 40))
    assert set(terms) == {"semantic", "depth", "semantic:initial", "depth:initial", "total"}  # PADNetLoss: 4 terms
    terms["total"].backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        if p.dim() == 4:
            assert p.grad.abs().sum() > 0, name


def test_training_step_with_loss_weights_and_three_predictions() -> None:
    torch.manual_seed(0)
    net = create_model(
        "pad_net", num_predictions=3, backbone="resnet18", backbone_kwargs={"base_width": 8}, num_classes=5
    )
    task = build_task(TaskConfig(name="multitask", loss_weights={"depth": 3.0}, aux_weight=0.25), num_classes=5)
    batch = _batch(2, 32, 48, 5)
    terms = task.training_step(net, batch)
    aux = sum(terms[f"semantic:{a}"] + 3.0 * terms[f"depth:{a}"] for a in ("initial", "intermediate"))
    torch.testing.assert_close(terms["total"].detach(), terms["semantic"] + 3.0 * terms["depth"] + 0.25 * aux)
    with torch.no_grad():  # L1 on valid pixels of the bilinearly upsampled initial depth, by hand
        pred = F.interpolate(net(batch["image"])["depth:initial"], size=(32, 48), mode="bilinear")
    valid = batch["depth"] > 0
    torch.testing.assert_close(terms["depth:initial"], (pred - batch["depth"]).abs()[valid].mean())
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    before = net.intermediate_distillation.self_attention.semantic.depth.conv.weight.detach().clone()
    terms["total"].backward()
    opt.step()
    assert not torch.equal(before, net.intermediate_distillation.self_attention.semantic.depth.conv.weight)


def test_distillation_and_se_match_the_formulas() -> None:
    torch.manual_seed(0)
    d = MultiTaskDistillation(("semantic", "depth"), ("semantic", "depth"), 3)
    f = {"semantic": torch.randn(2, 3, 5, 6), "depth": torch.randn(2, 3, 5, 6)}
    out = d(f)
    sa = d.self_attention.semantic.depth  # message depth -> semantic: sigmoid(conv_a(f_d)) * conv_b(f_d)
    gate = torch.sigmoid(F.conv2d(f["depth"], sa.attention[0].weight, padding=1))
    msg = gate * F.conv2d(f["depth"], sa.conv.weight, padding=1)
    torch.testing.assert_close(out["semantic"], f["semantic"] + msg)
    se = SEBlock(18)
    assert se.squeeze[0].weight.shape == (1, 18)  # C // 16 = 1, as the reference
    x = torch.randn(2, 18, 4, 4)
    gate = torch.sigmoid(se.squeeze[2](torch.relu(se.squeeze[0](x.mean((2, 3))))))
    torch.testing.assert_close(se(x), x * gate[:, :, None, None])


def test_invalid_configurations_are_rejected() -> None:
    with pytest.raises(ConfigError, match="FAFE"):
        create_model("pad_net", fafe={})
    with pytest.raises(ConfigError, match="num_predictions"):
        create_model("pad_net", num_predictions=4, backbone="resnet18", backbone_kwargs={"base_width": 8})
    with pytest.raises(ConfigError, match="two tasks"):
        create_model("pad_net", tasks=["depth"], backbone="resnet18", backbone_kwargs={"base_width": 8})
