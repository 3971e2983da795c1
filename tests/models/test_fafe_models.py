"""FAFE wired into PAD-Net (2/3-predict) and MTI-Net (FAFE §3.1, Tables 1, 3, 4): placement, parameter
counts by formula, +conv parity, ladder shapes, gradients, other resolutions, option errors."""

from __future__ import annotations

import functools

import pytest
import torch
import torch.nn as nn

from freqdense.errors import ConfigError
from freqdense.models import create_model
from freqdense.nn.fafe import FAFEBlock, FAFEConvBlock

NYUD = [480, 640]
ROWS = {
    "+PI": dict(pi=True, fd=False, fr=False),
    "+PI+FD": dict(fr=False),
    "+FAFE": dict(),
    "+conv": dict(variant="conv"),
}
SMALL = dict(backbone="resnet18", backbone_kwargs={"base_width": 16}, num_classes=5)  # channels 16/32/64/128


def n_params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def pi_params(c: int) -> int:
    return 2 * (9 * c * c + c) + 2


def fafe_params(c: int, hw: tuple[int, int]) -> int:  # PI + 2 x (FD convs, W^low/high, dual PI) + FR (r = 16)
    m = max(1, c // 16)
    return pi_params(c) + 2 * (2 * (9 * c * c + c) + 2 * hw[0] * hw[1] + pi_params(c)) + 4 * (2 * c * m + m + c)


# Placements with hrnet_w18_small (branch channels 18/36/72/144) at 480 x 640:
# PAD-Net: fused 270 channels before the initial predictions, 256 before the intermediate/final ones, 120 x 160.
# MTI-Net: the input of scale_s = ch[s] + ch[s+1] channels (144 at the coarsest scale), size 480/4/2^s.
PAD = [(270, (120, 160)), (256, (120, 160))]
PAD3 = PAD + [(256, (120, 160))]
MTI = [(54, (120, 160)), (108, (60, 80)), (216, (30, 40)), (144, (15, 20))]
# multitask_baseline ("1-predict"): one block on the 270-channel concatenation the heads' 1x1 layers read.
ONE = [(270, (120, 160))]
PLACEMENTS = {"pad_net": PAD, "pad_net_3predict": PAD3, "mti_net": MTI, "multitask_baseline": ONE}
BASELINE = {"pad_net": 7_019_056, "pad_net_3predict": 9_670_489, "mti_net": 8_578_179, "multitask_baseline": 4_019_251}


def meta_model(name: str, fafe) -> nn.Module:
    with torch.device("meta"):
        return create_model(name, backbone="hrnet_w18_small", num_classes=40, fafe=fafe)


@pytest.mark.parametrize("name", list(PLACEMENTS))
def test_parameter_counts_of_the_ladder_follow_the_formulas(name: str) -> None:
    base = meta_model(name, None)
    # 7.019 M / 8.578 M (docs/reference_code.md#hrnet) unchanged with fafe: null
    assert n_params(base) == BASELINE[name]
    assert not any("fafe" in k for k in base.state_dict())
    pi_only = meta_model(name, ROWS["+PI"])
    assert n_params(pi_only) - n_params(base) == sum(pi_params(c) for c, _ in PLACEMENTS[name])
    full = meta_model(name, {"input_size": NYUD})
    assert n_params(full) - n_params(base) == sum(fafe_params(c, hw) for c, hw in PLACEMENTS[name])
    conv = meta_model(name, {"variant": "conv", "input_size": NYUD})
    assert n_params(conv) == n_params(full)  # Table 4: +conv has exactly +FAFE's parameters
    assert {k: v.shape for k, v in conv.state_dict().items()} == {k: v.shape for k, v in full.state_dict().items()}


def test_fd_weights_are_sized_per_placement() -> None:
    mti = meta_model("mti_net", {"input_size": NYUD})
    for s, (c, hw) in enumerate(MTI):
        block = getattr(mti, f"fafe_scale_{s}")
        assert isinstance(block, FAFEBlock) and block.channels == c
        assert block.disentangle["semantic"].weight_low.shape == hw
    pad = meta_model("pad_net_3predict", {"variant": "conv", "input_size": [61, 93]})
    for part in ("fafe_initial", "fafe_intermediate", "fafe_final"):
        block = getattr(pad, part)
        assert isinstance(block, FAFEConvBlock) and block.size == (16, 24)  # ceil(61 / 4), ceil(93 / 4)


@pytest.fixture(scope="module")
def image() -> torch.Tensor:
    return torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))


@functools.cache
def small_model(name: str, row: str) -> nn.Module:
    """Built once per module run (construction dominates the cost); tests set train/eval themselves."""
    torch.manual_seed(0)
    return create_model(name, fafe={**ROWS[row], "input_size": [64, 64]}, **SMALL)


@pytest.mark.parametrize("name", ["pad_net", "mti_net", "multitask_baseline"])
@pytest.mark.parametrize("row", list(ROWS))
def test_every_row_runs_and_keeps_the_output_contract(name: str, row: str, image) -> None:
    net = small_model(name, row).eval()
    with torch.no_grad():
        out = net(image)
    assert out["semantic"].shape == (1, 5, 64, 64) and out["depth"].shape == (1, 1, 64, 64)
    aux = {"pad_net": ["initial"], "mti_net": [f"scale_{s}" for s in range(4)], "multitask_baseline": []}[name]
    assert sorted(out) == sorted(["semantic", "depth"] + [f"{t}:{a}" for t in ("semantic", "depth") for a in aux])
    assert all(torch.isfinite(v).all() for v in out.values())


def test_pad_net_places_blocks_before_every_prediction_stage(image) -> None:
    torch.manual_seed(0)
    net = create_model("pad_net_3predict", fafe={"input_size": [64, 64]}, **SMALL).eval()
    seen: dict[str, object] = {}

    def keep(name):
        def hook(module, args, out=None):
            seen[name] = (args, out)

        return hook

    net.fafe_initial.register_forward_hook(keep("fafe_initial"))
    net.initial_task_prediction_heads.register_forward_pre_hook(keep("initial_heads"))
    net.fafe_intermediate.register_forward_hook(keep("fafe_intermediate"))
    net.intermediate_task_prediction_heads.register_forward_pre_hook(keep("intermediate_heads"))
    net.fafe_final.register_forward_hook(keep("fafe_final"))
    net.heads.semantic.register_forward_pre_hook(keep("final_head"))
    with torch.no_grad():
        net(image)
    (inputs,), out = seen["fafe_initial"]
    assert inputs["semantic"] is inputs["depth"]  # the shared fused feature: single-input PI
    assert seen["initial_heads"][0][0] is out
    assert seen["intermediate_heads"][0][0] is seen["fafe_intermediate"][1]
    assert seen["final_head"][0][0] is seen["fafe_final"][1]["semantic"]


def test_one_predict_places_the_block_before_the_heads(image) -> None:
    torch.manual_seed(0)
    net = create_model("multitask_baseline", fafe={"input_size": [64, 64]}, **SMALL).eval()
    seen = {}
    net.fafe_block.register_forward_hook(lambda m, a, o: seen.update(block=(a, o)))
    net.heads.depth.last_layer.register_forward_pre_hook(lambda m, a: seen.update(head=a))
    with torch.no_grad():
        net(image)
    (inputs,), out = seen["block"]
    assert inputs["semantic"] is inputs["depth"] and inputs["depth"].shape[1] == 16 + 32 + 64 + 128
    assert seen["head"][0] is out["depth"]


def test_mti_net_places_a_block_before_each_scales_initial_prediction(image) -> None:
    torch.manual_seed(0)
    net = create_model("mti_net", fafe={"fd": False, "fr": False}, **SMALL).eval()
    seen = {}
    for s in range(4):
        getattr(net, f"fafe_scale_{s}").register_forward_hook(lambda m, a, o, s=s: seen.update({f"f{s}": (a, o)}))
        getattr(net, f"scale_{s}").register_forward_pre_hook(lambda m, a, s=s: seen.update({f"p{s}": a}))
    with torch.no_grad():
        net(image)
    assert seen["f3"][0][0]["semantic"] is seen["f3"][0][0]["depth"]  # coarsest scale: the shared backbone feature
    for s in range(4):
        assert seen[f"p{s}"][0] is seen[f"f{s}"][1]
    assert [getattr(net, f"fafe_scale_{s}").channels for s in range(4)] == [48, 96, 192, 128]


@pytest.mark.parametrize("name", ["pad_net", "mti_net", "multitask_baseline"])
@pytest.mark.parametrize("row", ["+FAFE", "+conv"])
def test_gradients_reach_every_fafe_parameter(name: str, row: str, image) -> None:
    torch.manual_seed(1)
    net = small_model(name, row).train()
    net.zero_grad(set_to_none=True)
    out = net(image)
    sum((v * torch.randn_like(v)).sum() for v in out.values()).backward()
    names = [k for k, p in net.named_parameters() if k.split(".")[0].startswith("fafe_")]
    assert len(names) > 0
    for k, p in net.named_parameters():
        if k not in names:
            continue
        if row == "+conv" and ".weight_" in k:  # the control's frozen padding (FD's spectral weights)
            assert not p.requires_grad and p.grad is None, k
            continue
        assert p.grad is not None and torch.isfinite(p.grad).all(), k


@pytest.mark.parametrize("name", ["pad_net", "mti_net"])
def test_inference_at_a_size_other_than_input_size(name: str) -> None:
    net = small_model(name, "+FAFE").eval()
    with torch.no_grad():
        out = net(torch.rand(1, 3, 96, 80))
    assert out["semantic"].shape == (1, 5, 96, 80) and torch.isfinite(out["depth"]).all()


@pytest.mark.parametrize("name", ["pad_net", "pad_net_3predict", "mti_net"])
def test_fafe_option_errors_surface_through_create_model(name: str) -> None:
    with pytest.raises(ConfigError, match="'inputsize'.*allowed options: variant, pi, fd, fr, input_size"):
        create_model(name, fafe={"inputsize": [64, 64]})
    with pytest.raises(ConfigError, match="input_size is required"):
        create_model(name, fafe={"variant": "conv"})
