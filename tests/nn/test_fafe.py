"""FAFE block and its "+conv" control (FAFE §3.2, Tables 1 and 4): options, ladder shapes, parameter formulas,
parity, wiring against hand computations, gradients, other resolutions."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from freqdense.errors import ConfigError, ShapeError
from freqdense.nn import PreInteraction
from freqdense.nn import dct_disentangle as fd_module
from freqdense.nn.fafe import FAFE_TASKS, FAFEBlock, FAFEConvBlock, FAFEOptions, fafe_block

C, SIZE = 8, (12, 16)
LADDER = {  # Table 1 rows (+ FD without PI, allowed)
    "+PI": dict(pi=True, fd=False, fr=False),
    "+PI+FD": dict(pi=True, fd=True, fr=False),
    "+FAFE": dict(pi=True, fd=True, fr=True),
    "FD only": dict(pi=False, fd=True, fr=False),
}


def n_params(m: torch.nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def pi_params(c: int) -> int:  # CCN: two conv3x3 (bias) + w1, w2
    return 2 * (9 * c * c + c) + 2


def block_params(c: int, hw: tuple[int, int], *, pi=True, fd=True, fr=True, k=3, r=16, merge="sum") -> int:
    total = pi_params(c) if pi else 0
    if fd:
        total += 2 * (2 * (k * k * c * c + c) + 2 * hw[0] * hw[1] + pi_params(c))  # per task: 2 convs, W^lo/hi, PI
        if merge == "concat":
            total += 2 * (2 * c * c + c)
    if fr:
        m = max(1, c // r)
        total += 4 * (2 * c * m + m + c)  # four SE blocks with biases
    return total


def pair(seed: int = 0, c: int = C, size=SIZE, batch: int = 2) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {t: torch.randn(batch, c, *size, generator=g) for t in FAFE_TASKS}


# ---------------------------------------------------------------------------------------------------- options


def test_option_defaults_are_the_documented_contract() -> None:
    opts = FAFEOptions.from_config({"input_size": [480, 640]})
    assert (opts.variant, opts.pi, opts.fd, opts.fr) == ("fafe", True, True, True)
    assert (opts.cutoff, opts.pi_grid, opts.pi_order, opts.merge) == (0.5, (6, 10), "pool_conv", "sum")
    assert (opts.fd_kernel_size, opts.fr_reduction, opts.input_size) == (3, 16, (480, 640))
    assert FAFEOptions.from_config(None) is None
    assert opts.feature_size(4) == (120, 160) and opts.feature_size(32) == (15, 20)
    assert FAFEOptions.from_config({"input_size": [61, 93]}).feature_size(8) == (8, 12)  # ceil, as HRNet/ResNet
    assert FAFEOptions.from_config({"fd": False, "fr": False}).feature_size(4) is None


@pytest.mark.parametrize(
    ("options", "words"),
    [
        ({"input_size": [64, 64], "pi_gird": [6, 10]}, ["'pi_gird'", "pi_grid", "variant", "input_size"]),
        ({"variant": "attention"}, ["variant", "'fafe'", "'conv'"]),
        ({"pi": "yes", "input_size": [64, 64]}, ["pi", "true or false"]),
        ({"fd": False}, ["fr=true needs fd=true"]),
        ({"pi": False, "fd": False, "fr": False}, ["fafe: null"]),
        ({"fr": False}, ["input_size", "required"]),
        ({"input_size": [0, 64]}, ["input_size", "[H, W]"]),
        ({"input_size": [64, 64], "pi_order": "conv"}, ["pi_order", "pool_conv"]),
        ({"input_size": [64, 64], "cutoff": 0}, ["cutoff", "> 0"]),
        ({"input_size": [64, 64], "fd_kernel_size": 2}, ["fd_kernel_size", "odd"]),
        ({"input_size": [64, 64], "merge": "max"}, ["merge", "'sum'", "'concat'"]),
        ([1, 2], ["mapping"]),
    ],
)
def test_bad_options_raise_config_errors_that_say_what_to_fix(options, words) -> None:
    with pytest.raises(ConfigError) as info:
        FAFEOptions.from_config(options)
    for w in words:
        assert w in str(info.value), (w, str(info.value))


# ---------------------------------------------------------------------------------------------- shapes, counts


@pytest.mark.parametrize("block_cls", [FAFEBlock, FAFEConvBlock])
@pytest.mark.parametrize("row", list(LADDER))
@pytest.mark.parametrize("merge", ["sum", "concat"])
def test_every_ladder_row_keeps_shapes_and_has_the_formula_parameter_count(block_cls, row, merge) -> None:
    block = block_cls(C, size=SIZE, merge=merge, **LADDER[row])
    x = pair()
    out = block(x)
    assert set(out) == set(FAFE_TASKS)
    for t in FAFE_TASKS:
        assert out[t].shape == x[t].shape and torch.isfinite(out[t]).all()
    assert n_params(block) == block_params(C, SIZE, merge=merge, **LADDER[row])


def test_fd_weights_have_this_blocks_size_and_start_as_complementary_masks() -> None:
    block = FAFEBlock(C, size=(10, 14))
    for t in FAFE_TASKS:
        fd = block.disentangle[t]
        assert fd.weight_low.shape == (10, 14)
        assert torch.equal(fd.weight_low + fd.weight_high, torch.ones(10, 14))
        assert fd.weight_low[0, 0] == 1 and fd.weight_low[-1, -1] == 0


@pytest.mark.parametrize("row", list(LADDER))
@pytest.mark.parametrize("merge", ["sum", "concat"])
def test_conv_control_has_the_same_parameter_names_shapes_and_count(row, merge) -> None:
    fafe = FAFEBlock(C, size=SIZE, merge=merge, **LADDER[row])
    ctrl = FAFEConvBlock(C, size=SIZE, merge=merge, **LADDER[row])
    shapes = lambda m: {k: tuple(v.shape) for k, v in m.named_parameters()}  # noqa: E731
    assert shapes(fafe) == shapes(ctrl)
    assert n_params(fafe) == n_params(ctrl)
    # The padding is exactly FD's spectral weights: frozen in the control, 4 h w per block.
    frozen = {k for k, p in ctrl.named_parameters() if not p.requires_grad}
    expected = (
        {f"disentangle.{t}.weight_{b}" for t in FAFE_TASKS for b in ("low", "high")} if fafe.disentangle else set()
    )
    assert frozen == expected
    assert n_params(fafe) - sum(p.numel() for p in ctrl.parameters() if p.requires_grad) == len(expected) * 12 * 16


def test_conv_control_at_nyud_scale_parity() -> None:
    with torch.device("meta"):  # PAD-Net's two placements at 480 x 640: 270 and 256 channels at 120 x 160
        for c in (270, 256):
            fafe, ctrl = FAFEBlock(c, size=(120, 160)), FAFEConvBlock(c, size=(120, 160))
            assert n_params(fafe) == n_params(ctrl) == block_params(c, (120, 160))


# ------------------------------------------------------------------------------------------- hand computations


def test_pi_on_a_shared_feature_is_the_single_input_ccn() -> None:
    torch.manual_seed(1)
    block = FAFEBlock(C, pi=True, fd=False, fr=False)
    ccn = PreInteraction(C)
    ccn.load_state_dict(block.pre_interaction.state_dict(), strict=True)  # CCN keys w1, w2, c_attention{1,2}.0.*
    x = torch.randn(2, C, *SIZE)
    out = block({"semantic": x, "depth": x})
    first, second = ccn(x)
    torch.testing.assert_close(out["semantic"], first)
    torch.testing.assert_close(out["depth"], second)
    assert not torch.allclose(out["semantic"], out["depth"])  # two distinct task streams


def _se(se: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:  # SENet by hand from the fc weights
    h = torch.relu(x.mean(dim=(2, 3)) @ se.fc1.weight.T + se.fc1.bias)
    return x * torch.sigmoid(h @ se.fc2.weight.T + se.fc2.bias)[:, :, None, None]


def test_fr_routes_each_band_to_the_other_task_and_sum_merges_the_bands() -> None:
    torch.manual_seed(2)
    block = FAFEBlock(C, size=SIZE, pi=False, fd=True, fr=True)
    x = pair(3)
    sl, sh = block.disentangle["semantic"](x["semantic"])
    dl, dh = block.disentangle["depth"](x["depth"])
    fr = block.recalibration
    expected_seg = sl + _se(fr.depth_to_seg_low, dl) + sh + _se(fr.depth_to_seg_high, dh)
    expected_depth = dl + _se(fr.seg_to_depth_low, sl) + dh + _se(fr.seg_to_depth_high, sh)
    out = block(x)
    torch.testing.assert_close(out["semantic"], expected_seg)
    torch.testing.assert_close(out["depth"], expected_depth)


def test_concat_merge_is_a_1x1_conv_of_low_and_high() -> None:
    torch.manual_seed(4)
    block = FAFEBlock(C, size=SIZE, pi=False, fd=True, fr=False, merge="concat")
    x = pair(5)
    low, high = block.disentangle["depth"](x["depth"])
    conv = block.merge["depth"]
    w = conv.weight[:, :, 0, 0]
    expected = torch.einsum("oc,bchw->bohw", w[:, :C], low) + torch.einsum("oc,bchw->bohw", w[:, C:], high)
    torch.testing.assert_close(block(x)["depth"], expected + conv.bias[:, None, None])


def test_tasks_interact_only_through_pi_and_fr() -> None:
    torch.manual_seed(6)
    x = pair(7)
    y = {"semantic": x["semantic"], "depth": x["depth"] + 1.0}  # change only the depth input
    for kwargs, coupled in [(dict(pi=False, fd=True, fr=False), False), (LADDER["+PI"], True), (LADDER["+FAFE"], True)]:
        for cls in (FAFEBlock, FAFEConvBlock):
            block = cls(C, size=SIZE, **kwargs)
            changed = not torch.allclose(block(x)["semantic"], block(y)["semantic"])
            assert changed == coupled, (cls.__name__, kwargs)


def _g(branch: torch.nn.Sequential, x: torch.Tensor) -> torch.Tensor:
    conv = branch[0]
    return F.leaky_relu(F.instance_norm(F.conv2d(x, conv.weight, conv.bias, padding=1)), 0.3)


def test_conv_control_pi_is_the_mixed_convolution_formula() -> None:
    torch.manual_seed(8)
    block = FAFEConvBlock(C, pi=True, fd=False, fr=False)
    pi = block.pre_interaction
    with torch.no_grad():
        pi.w1.fill_(0.3)
        pi.w2.fill_(0.8)
    x = pair(9)
    g1, g2 = _g(pi.c_attention1, x["semantic"]), _g(pi.c_attention2, x["depth"])
    out = block(x)
    torch.testing.assert_close(out["semantic"], x["semantic"] + 0.3 * g1 + 0.7 * g2)
    torch.testing.assert_close(out["depth"], x["depth"] + 0.8 * g2 + 0.2 * g1)


def test_conv_control_fr_is_a_per_pixel_bottleneck() -> None:
    torch.manual_seed(10)
    block = FAFEConvBlock(C, size=SIZE, pi=False, fd=True, fr=True)
    x = pair(11)
    sl, sh = block.disentangle["semantic"](x["semantic"])
    dl, dh = block.disentangle["depth"](x["depth"])

    def t(m, v):
        return (
            torch.einsum(
                "oc,bchw->bohw",
                m.fc2.weight,
                torch.relu(torch.einsum("oc,bchw->bohw", m.fc1.weight, v) + m.fc1.bias[:, None, None]),
            )
            + m.fc2.bias[:, None, None]
        )

    fr = block.recalibration
    expected = dl + t(fr.seg_to_depth_low, sl) + dh + t(fr.seg_to_depth_high, sh)
    torch.testing.assert_close(block(x)["depth"], expected)


def test_conv_control_uses_no_dct_and_fafe_does(monkeypatch) -> None:
    def boom(*args, **kwargs):
        raise AssertionError("DCT called")

    monkeypatch.setattr(fd_module, "dct2d", boom)
    monkeypatch.setattr(fd_module, "idct2d", boom)
    x = pair()
    FAFEConvBlock(C, size=SIZE)(x)  # passes
    with pytest.raises(AssertionError, match="DCT called"):
        FAFEBlock(C, size=SIZE)(x)


# ------------------------------------------------------------------------------------ gradients, other sizes


@pytest.mark.parametrize("block_cls", [FAFEBlock, FAFEConvBlock])
@pytest.mark.parametrize("merge", ["sum", "concat"])
def test_gradients_reach_every_trainable_parameter(block_cls, merge) -> None:
    torch.manual_seed(12)
    block = block_cls(C, size=SIZE, merge=merge, fr_reduction=1)  # SE hidden width 8: no dead-ReLU zero gradients
    x = pair(13)
    out = block(x)
    (sum((o * torch.randn_like(o)).sum() for o in out.values())).backward()
    for name, p in block.named_parameters():
        if not p.requires_grad:
            assert p.grad is None and block_cls is FAFEConvBlock, name
            continue
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        if not name.endswith(".0.bias"):  # a conv bias right before InstanceNorm has a zero gradient by design
            assert p.grad.abs().sum() > 0, name


@pytest.mark.parametrize("block_cls", [FAFEBlock, FAFEConvBlock])
def test_inference_at_other_sizes_resamples_the_fd_weights(block_cls) -> None:
    block = block_cls(C, size=SIZE).eval()
    for size in [(7, 9), (24, 40), SIZE]:
        out = block(pair(size=size, batch=1))
        assert out["semantic"].shape == (1, C, *size) and torch.isfinite(out["depth"]).all()


def test_bad_inputs_raise_shape_errors() -> None:
    block = FAFEBlock(C, size=SIZE)
    x = pair()
    with pytest.raises(ShapeError, match="'semantic'"):
        block({"depth": x["depth"]})
    with pytest.raises(ShapeError, match="same shape"):
        block({"semantic": x["semantic"], "depth": x["depth"][..., :8]})
    with pytest.raises(ShapeError, match="C=8"):
        block({t: torch.randn(1, 4, *SIZE) for t in FAFE_TASKS})
    with pytest.raises(ConfigError, match="fr=True needs fd=True"):
        FAFEBlock(C, fd=False)


def test_fafe_block_factory_sizes_fd_from_the_input_size_and_stride() -> None:
    opts = FAFEOptions.from_config({"variant": "conv", "input_size": [61, 93], "merge": "concat", "fr_reduction": 4})
    block = fafe_block(opts, 16, stride=8)
    assert isinstance(block, FAFEConvBlock) and block.size == (8, 12) and block.merge is not None
    assert block.recalibration.seg_to_depth_low.fc1.out_features == 4
    assert isinstance(fafe_block(FAFEOptions.from_config({"fd": False, "fr": False}), 16, stride=4), FAFEBlock)
