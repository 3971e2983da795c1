"""DAN, the reconstruction of the spectral-analysis paper's second model: budgets, shapes, gradients, feature
truncation, SFP scopes, configs."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from freqdense.config import config_to_dict, list_shipped_configs, load_config
from freqdense.errors import ConfigError, ShapeError
from freqdense.models import create_model
from freqdense.models.dan import DANDecoder
from freqdense.models.flops import PAPER_ENCODER_SCALE, accounting_plan, count_model_flops, pruning_flops_table
from freqdense.pruning import SoftFilterPruner, encoder_decoder_scopes
from freqdense.spectral import truncate_decoder

# Chen, Chiu, Wu, AAAI 2020, Sec. 3.2: DAN's decoder 11.1 GFLOPs / 0.4 M parameters (513 x 513, 129 grid), its
# encoder 95.6 GFLOPs / 60.1 M parameters (the same ResNet-101 + ASPP as DeepLab v3+).
PAPER_DECODER_GFLOPS, PAPER_DECODER_MPARAMS = 11.1, 0.4
# Table 4's FLOPs column repeats Table 2's; FPI x mIoU averaged over its three datasets gives DAN's own unpruned
# totals, e.g. 129: (136 x 0.787 + 199 x 0.536 + 161 x 0.664) / 3 = 106.9 (FPI rounded to 1 G: about +-0.4 G).
TABLE4_IMPLIED_TOTALS = {129: 106.9, 65: 98.1, 33: 96.2}

SMALL = {"backbone": "resnet50", "backbone_kwargs": {"base_width": 8}, "extract_channels": 8, "node_channels": 16,
         "head_channels": 16}  # fmt: skip


def decoder_params_by_hand(k: int) -> int:
    extract = (256 + 512 + 1024 + 256) * 32 + 4 * 2 * 32  # 1x1 convs + BN
    nodes = (32 + 32) * 128 + 2 * (128 + 32) * 128 + 3 * 2 * 128
    head = 2 * 9 * 128 * 128 + 2 * 2 * 128 + 128 * k + k
    return extract + nodes + head


def decoder_macs_by_hand(k: int, n: int = 129) -> int:
    s = [n, (n + 1) // 2]
    s += [(s[1] + 1) // 2, ((s[1] + 1) // 2 + 1) // 2]  # 129, 65, 33, 17
    extract = sum(a * a * c * 32 for a, c in zip(s, (256, 512, 1024, 256)))
    nodes = s[2] ** 2 * 64 * 128 + s[1] ** 2 * 160 * 128 + s[0] ** 2 * 160 * 128
    return extract + nodes + s[0] ** 2 * (2 * 9 * 128 * 128 + 128 * k)


def test_budgets_of_the_paper_within_5_percent():
    parts = {r.part: r for r in count_model_flops("dan", 513, accounting="paper", num_classes=7, decoder_grid=129)}
    dlab = {r.part: r for r in count_model_flops("deeplabv3plus", 513, accounting="paper", num_classes=7)}
    assert parts["decoder"].params == decoder_params_by_hand(7) == 412_039
    assert parts["decoder"].flops == 2 * decoder_macs_by_hand(7)
    assert abs(parts["decoder"].params / (PAPER_DECODER_MPARAMS * 1e6) - 1) < 0.05
    assert abs(parts["decoder"].flops / (PAPER_DECODER_GFLOPS * 1e9) - 1) < 0.05
    assert parts["encoder"] == dlab["encoder"]  # 60.08 M, 95.03 G: the same encoder as DeepLab v3+
    assert round(parts["encoder"].params / 1e6, 1) == 60.1


def test_truncated_totals_match_table4_fpi_times_miou():
    rows = pruning_flops_table("dan", encoder_rates=(), accounting="paper", num_classes=7)
    for row in rows:
        assert abs(row["paper_flops"] / 1e9 - TABLE4_IMPLIED_TOTALS[row["grid"]]) < 0.5, row
    decoder = {row["grid"]: row["decoder_flops"] for row in rows}
    assert decoder[65] == 2 * decoder_macs_by_hand(7, 65) and decoder[33] == 2 * decoder_macs_by_hand(7, 33)
    assert rows[0]["paper_flops"] == pytest.approx(rows[0]["encoder_flops"] * PAPER_ENCODER_SCALE + decoder[129])


def test_untruncated_equals_grid_129_and_the_decoder_cost_follows_the_rates():
    plain = count_model_flops("dan", 513, accounting="paper", num_classes=7)
    assert plain == count_model_flops("dan", 513, accounting="paper", num_classes=7, decoder_grid=129)
    rows = pruning_flops_table("dan", encoder_rates=(0.2, 0.6), accounting="paper", num_classes=7, grids=(129,))
    assert rows[1]["decoder_flops"] == rows[2]["decoder_flops"] < rows[0]["decoder_flops"]  # decoder rate only
    assert rows[2]["encoder_flops"] < rows[1]["encoder_flops"] < rows[0]["encoder_flops"]


def test_output_shape_and_gradients_reach_every_parameter():
    torch.manual_seed(0)
    model = create_model("dan", num_classes=3, **SMALL)
    image = torch.rand(2, 3, 65, 81)
    out = model(image)["semantic"]
    assert out.shape == (2, 3, 65, 81)
    out.square().mean().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing


def test_decoder_runs_each_level_on_its_pyramid_grid():
    model = create_model("dan", num_classes=3, output_stride=32, **SMALL).eval()
    sizes = []
    hooks = [seq[0].register_forward_hook(lambda m, i, o: sizes.append(o.shape[-1])) for seq in model.decoder.extract]
    with torch.no_grad():
        model(torch.rand(1, 3, 129, 129))
    assert sizes == [33, 17, 9, 5]  # layer1..layer3 and ASPP at strides 4..32
    for h in hooks:
        h.remove()
    assert model.decoder.level_sizes((65, 33)) == [(65, 33), (33, 17), (17, 9), (9, 5)]


def test_truncation_shrinks_the_whole_pyramid_exactly():
    torch.manual_seed(1)
    model = create_model("dan", num_classes=3, **SMALL).eval()  # output stride 16: levels at strides 4, 8, 16, 16
    image = torch.rand(1, 3, 129, 129)
    same = truncate_decoder(copy.deepcopy(model), 33)  # the native finest grid: nothing changes
    small = truncate_decoder(copy.deepcopy(model), 17)
    with torch.no_grad():
        ref = model(image)["semantic"]
        torch.testing.assert_close(same(image)["semantic"], ref, rtol=0, atol=0)
        # by hand: every input resized straight to its level of the 17 grid (17, 9, 5, 5), the same decoder
        *levels, high = model.backbone((image - model.mean) / model.std)
        aspp = model.aspp(high)
        resize = lambda t, n: F.interpolate(t, size=(n, n), mode="bilinear", align_corners=True)  # noqa: E731
        logits = model.decoder(resize(aspp, 5), resize(levels[0], 17), resize(levels[1], 9), resize(levels[2], 5))
        expected = F.interpolate(logits, size=(129, 129), mode="bilinear", align_corners=True)
        torch.testing.assert_close(small(image)["semantic"], expected, rtol=1e-5, atol=1e-5)
    grid = create_model("dan", num_classes=3, decoder_grid=17, **SMALL)
    assert type(grid.decoder).__name__ == "TruncatedDecoder" and grid.decoder.size == (17, 17)


@pytest.mark.parametrize("grid", [None, 17])
def test_sfp_scopes_resolve_encoder_and_decoder(grid):
    model = create_model("dan", num_classes=3, decoder_grid=grid, **SMALL)
    scopes = encoder_decoder_scopes(model, 0.4, 0.2)
    assert scopes == {"backbone.": 0.4, "aspp.": 0.4, "decoder.": 0.2, "aspp.conv1": 0.2}
    pruner = SoftFilterPruner(model, scopes=scopes)
    decoder_convs = [n for n, m in model.named_modules() if n.startswith("decoder.") and isinstance(m, nn.Conv2d)]
    classifier = decoder_convs[-1]
    assert model.get_submodule(classifier).out_channels == 3
    assert {n: pruner.rates[n] for n in decoder_convs[:-1]} == dict.fromkeys(decoder_convs[:-1], 0.2)
    assert classifier not in pruner.rates and not any("downsample" in n for n in pruner.rates)
    assert pruner.rates["aspp.aspp2.atrous_conv"] == 0.4 and pruner.rates["backbone.layer3.0.conv3"] == 0.4
    masks = pruner.step()
    assert int((~masks[decoder_convs[0]]).sum()) == 1  # floor(0.2 * 8) of an 8-channel extraction


def test_accounting_plan_covers_every_decoder_conv():
    model = create_model("dan", num_classes=3, decoder_grid=17, **SMALL)
    plan = accounting_plan(model)
    decoder_convs = [m for m in model.decoder.modules() if isinstance(m, nn.Conv2d)]
    assert all(id(m) in plan for m in decoder_convs)
    scopes = [plan[id(m)].scope for m in decoder_convs]
    assert scopes == [None] * 4 + ["decoder"] * 5 + [None]  # extractions, 3 nodes + 2 head convs, classifier


def test_paper_accounting_and_bad_arguments():
    model = create_model("dan", accounting="paper", num_classes=7, **SMALL)
    assert model.backbone.output_stride == 32 and model.aspp.rates == (3, 6, 9)
    with pytest.raises(ConfigError, match="output stride 32"):
        create_model("dan", accounting="paper", output_stride=16)
    with pytest.raises(ConfigError, match="powers of two"):
        DANDecoder((8, 16), (4, 12), 3)
    with pytest.raises(ConfigError, match="backbone_kwargs must not set"):
        create_model("dan", backbone_kwargs={"out_indices": (1,)})
    with pytest.raises(ShapeError, match="encoder levels"):
        create_model("dan", num_classes=3, **SMALL).decoder(torch.rand(1, 16, 5, 5), torch.rand(1, 32, 17, 17))


def test_configs_mirror_the_deeplab_ones():
    pairs = {"deepglobe/dan_r101_os16_513": "deepglobe/deeplabv3plus_r101_os16_513",
             "voc/dan_r101_os16_513_30k": "voc/deeplabv3plus_r101_os16_513_30k"}  # fmt: skip
    assert set(pairs) <= set(list_shipped_configs())  # so test_every_shipped_config_loads_and_builds builds them
    for name, reference in pairs.items():
        cfg, ref = config_to_dict(load_config(name)), config_to_dict(load_config(reference))
        assert cfg.pop("model") == {**ref.pop("model"), "name": "dan"}
        assert cfg == ref, name
        with torch.device("meta"):
            model = create_model("dan", **load_config(name).model.kwargs)
        assert model.num_classes == load_config(name).model.kwargs["num_classes"]


def test_physical_removal_of_sfp_zeroed_filters_keeps_the_function():
    from freqdense.pruning import remove_pruned_filters

    torch.manual_seed(2)
    model = create_model("dan", num_classes=3, decoder_grid=17, **SMALL)
    SoftFilterPruner(model, scopes=encoder_decoder_scopes(model, 0.4, 0.2)).step()
    model.eval()
    image = torch.rand(1, 3, 129, 129)
    with torch.no_grad():
        small = remove_pruned_filters(model)
        torch.testing.assert_close(small(image)["semantic"], model(image)["semantic"], rtol=1e-4, atol=1e-4)
    assert sum(p.numel() for p in small.parameters()) < sum(p.numel() for p in model.parameters())
