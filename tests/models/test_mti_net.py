"""MTI-Net: parity with Multi-Task-Learning-PyTorch (docs/reference_code.md#hrnet, #mti-net,
#state-dict-names), FPM grouping, deep supervision, training."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from freqdense.config.schema import TaskConfig
from freqdense.errors import ConfigError
from freqdense.models import create_model, list_models
from freqdense.models.mti_net import FeaturePropagation, MTINet
from freqdense.tasks import build_task

SCALE_KEYS = [f"{t}:scale_{s}" for t in ("depth", "semantic") for s in range(4)]


def n_params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


@pytest.fixture(scope="module")
def model() -> MTINet:
    torch.manual_seed(0)
    return create_model("mti_net", num_classes=40)


@pytest.mark.parametrize(
    ("backbone", "millions"), [("hrnet_w18_small", 8.578), ("hrnet_w18", 14.280), ("hrnet_w48", 98.73)]
)
def test_parameter_count_matches_reference(backbone: str, millions: float) -> None:
    with torch.device("meta"):  # docs/reference_code.md#hrnet table, 2 tasks (40 classes + depth)
        net = create_model("mti_net", backbone=backbone, num_classes=40)
    digits = 3 if millions < 90 else 2
    assert round(n_params(net) / 1e6, digits) == millions
    assert "mti_net" in list_models()


def test_macs_match_reference_at_nyud_size() -> None:
    with torch.device("meta"):
        net = create_model("mti_net", num_classes=40).eval()
        with FlopCounterMode(display=False) as counter:
            out = net(torch.empty(1, 3, 480, 640))
    assert round(counter.get_total_flops() / 2e9, 1) == 17.1  # docs/reference_code.md#hrnet (conv + linear MACs)
    assert out["semantic:scale_3"].shape == (1, 40, 15, 20)


def test_state_dict_keys_follow_the_reference(model) -> None:
    keys = set(model.state_dict())  # docs/reference_code.md#state-dict-names, semseg renamed semantic
    for k in (
        "backbone.stage4.1.fuse_layers.0.1.0.weight",
        "scale_0.refinement.semantic.0.conv1.weight",
        "scale_0.refinement.semantic.0.downsample.0.weight",
        "fpm_scale_3.non_linear.2.weight",
        "fpm_scale_3.se.depth.squeeze.0.weight",
        "distillation_scale_0.self_attention.semantic.depth.attention.0.weight",
        "heads.semantic.last_layer.0.weight",
    ):
        assert k in keys, k
    assert "scale_3.refinement.depth.0.downsample.0.weight" not in keys  # scale 3: in = task channels = 144
    assert not any(k.startswith("fpm_scale_0.") for k in keys)  # no FPM at the finest scale
    # SE hidden width C // 16: 1 for C = 18 (scale 0 has no FPM), 2 for 36, 4 for 72, 9 for 144
    assert model.fpm_scale_1.se.semantic.squeeze[0].weight.shape == (2, 36)
    assert model.fpm_scale_3.se.semantic.squeeze[0].weight.shape == (9, 144)
    # the FPM bottleneck width is N*C/4 (2 tasks x 36 channels -> 18)
    assert model.fpm_scale_1.non_linear[0].conv1.weight.shape == (18, 72, 3, 3)


def test_outputs_and_deep_supervision_keys_at_an_odd_size(model) -> None:
    model.eval()
    with torch.no_grad():
        out = model(torch.rand(2, 3, 64, 96))
        odd = model(torch.rand(1, 3, 61, 93))
    assert list(out)[:2] == ["semantic", "depth"]
    # MTINetLoss: 4 scales x 2 tasks + 2 final terms
    assert sorted(k for k in out if ":" in k) == SCALE_KEYS and len(out) == 10
    assert out["semantic"].shape == (2, 40, 64, 96) and out["depth"].shape == (2, 1, 64, 96)
    for s in range(4):
        h, w = 64 // 4 // 2**s, 96 // 4 // 2**s
        assert out[f"semantic:scale_{s}"].shape == (2, 40, h, w)
        assert out[f"depth:scale_{s}"].shape == (2, 1, h, w)
    assert odd["semantic"].shape == (1, 40, 61, 93) and odd["depth"].shape == (1, 1, 61, 93)
    assert all(torch.isfinite(v).all() for v in odd.values())


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
    assert set(terms) == {"semantic", "depth", "total", *SCALE_KEYS}
    terms["total"].backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        if p.dim() == 4:
            assert p.grad.abs().sum() > 0, name


def test_training_step_weights_deep_supervision_with_aux_weight() -> None:
    torch.manual_seed(0)
    net = create_model("mti_net", backbone="resnet18", backbone_kwargs={"base_width": 8}, num_classes=5)
    cfg = TaskConfig(name="multitask", loss_weights={"semantic": 1.0, "depth": 2.0}, aux_weight=0.5)
    task = build_task(cfg, num_classes=5)
    batch = _batch(2, 64, 64, 5)
    terms = task.training_step(net, batch)
    expected = terms["semantic"] + 2 * terms["depth"]
    expected = expected + sum(0.5 * terms[f"semantic:scale_{s}"] + 1.0 * terms[f"depth:scale_{s}"] for s in range(4))
    torch.testing.assert_close(terms["total"].detach(), expected)
    # one deep-supervision term by hand: CE (ignore 255) of the bilinearly upsampled scale-2 prediction
    with torch.no_grad():
        pred = F.interpolate(net(batch["image"])["semantic:scale_2"], size=(64, 64), mode="bilinear")
    torch.testing.assert_close(terms["semantic:scale_2"], F.cross_entropy(pred, batch["semantic"], ignore_index=255))
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    before = net.heads.depth.last_layer[3].weight.detach().clone()
    terms["total"].backward()
    opt.step()
    assert not torch.equal(before, net.heads.depth.last_layer[3].weight)


def _shared_before_reduction(fpm: FeaturePropagation, feats: dict[str, torch.Tensor]) -> torch.Tensor:
    captured = {}
    handle = fpm.dimensionality_reduction.register_forward_pre_hook(lambda m, args: captured.update(x=args[0]))
    fpm(feats)
    handle.remove()
    return captured["x"]


@pytest.mark.parametrize("grouping", ["reference", "tasks"])
def test_fpm_grouping_matches_a_hand_written_softmax(grouping: str) -> None:
    torch.manual_seed(0)
    c = 4
    fpm = FeaturePropagation(("semantic", "depth"), c, grouping=grouping)
    fpm.non_linear = nn.Identity()  # logits a = z, so the mask is a softmax of the concatenated features
    f = {"semantic": torch.randn(1, c, 3, 5), "depth": torch.randn(1, c, 3, 5)}
    z = torch.cat([f["semantic"], f["depth"]], 1)[0]
    expected = torch.empty_like(z)
    for k in range(2 * c):
        if grouping == "reference":  # softmax over the adjacent pair (2i, 2i+1) of the task-major concatenation
            group = [2 * (k // 2), 2 * (k // 2) + 1]
        else:  # softmax over the two tasks' copies of channel k mod C
            group = [k % c, c + k % c]
        expected[k] = z[k] * torch.exp(z[k]) / torch.exp(z[group]).sum(0)
    torch.testing.assert_close(_shared_before_reduction(fpm, f)[0], expected)


def test_reference_grouping_never_mixes_tasks() -> None:
    torch.manual_seed(0)
    f = {"semantic": torch.randn(1, 6, 4, 4), "depth": torch.randn(1, 6, 4, 4)}
    g = {"semantic": f["semantic"], "depth": f["depth"] + 3.0}
    fpms = {k: FeaturePropagation(("semantic", "depth"), 6, grouping=k) for k in ("reference", "tasks")}
    assert n_params(fpms["reference"]) == n_params(fpms["tasks"])
    for k, fpm in fpms.items():
        fpm.non_linear = nn.Identity()
        a, b = _shared_before_reduction(fpm, f)[:, :6], _shared_before_reduction(fpm, g)[:, :6]
        assert torch.equal(a, b) == (k == "reference"), k  # task-0 channels see task 1 only when grouped by task
    with pytest.raises(ConfigError, match="fpm_grouping"):
        FeaturePropagation(("semantic", "depth"), 6, grouping="pairs")  # type: ignore[arg-type]


def test_model_grouping_option_and_resnet_backbone() -> None:
    torch.manual_seed(0)
    kw = dict(backbone="resnet18", backbone_kwargs={"base_width": 8}, num_classes=3)
    a = create_model("mti_net", fpm_grouping="tasks", **kw)
    assert all(getattr(a, f"fpm_scale_{s}").grouping == "tasks" for s in (1, 2, 3))
    a.eval()
    with torch.no_grad():
        out = a(torch.rand(1, 3, 64, 64))
    assert out["semantic"].shape == (1, 3, 64, 64) and out["depth:scale_3"].shape == (1, 1, 2, 2)


def test_invalid_configurations_are_rejected() -> None:
    with pytest.raises(ConfigError, match="FAFE"):
        create_model("mti_net", fafe={"pre_interaction": True})
    with pytest.raises(ConfigError, match="two tasks"):
        create_model("mti_net", tasks=["semantic"], backbone="resnet18", backbone_kwargs={"base_width": 8})
