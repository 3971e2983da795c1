"""Table 2 FLOPs column of the spectral-analysis paper (DeepLab v3+ feature truncation) and closed-form conv counts
(meta device)."""

from __future__ import annotations

import pytest
import torch

from freqdense.cli.main import main
from freqdense.errors import ConfigError
from freqdense.models import create_model
from freqdense.models.flops import (
    CONV_ENCODER_FLOPS,
    PAPER_ENCODER_SCALE,
    count_flops,
    count_model_flops,
    pruned_flops,
    pruning_flops_table,
    truncation_flops_table,
)

# Chen, Chiu, Wu, AAAI 2020, Table 2 (baseline rows) and Sec. 3.2 text.
PAPER_TOTAL_GFLOPS = {129: 139.0, 65: 107.0, 33: 98.0}
PAPER_REDUCTION = {65: 0.233, 33: 0.292}
PAPER_DECODER_GFLOPS = 43.4
PAPER_DECODER_MPARAMS = 1.3
PAPER_ENCODER_MPARAMS = 60.1
# Table 2, FLOPs (G) and "pruned FLOPs" (%) of the SFP rows: (encoder rate, grid) -> value; decoder rate 0.2.
PAPER_PRUNED_GFLOPS = {
    (0.2, 129): 100, (0.2, 65): 76, (0.2, 33): 70,
    (0.4, 129): 77, (0.4, 65): 53, (0.4, 33): 47,
    (0.6, 129): 59, (0.6, 65): 35, (0.6, 33): 29,
}  # fmt: skip
PAPER_PRUNED_PERCENT = {
    (0.0, 65): 23.3, (0.0, 33): 29.2,
    (0.2, 129): 28.2, (0.2, 65): 45.6, (0.2, 33): 49.6,
    (0.4, 129): 44.7, (0.4, 65): 61.8, (0.4, 33): 66.1,
    (0.6, 129): 57.7, (0.6, 65): 74.8, (0.6, 33): 79.1,
}  # fmt: skip


def _conv_out(n: int, k: int, s: int, p: int) -> int:
    return (n + 2 * p - k) // s + 1


def resnet_conv_macs(size: int, layers: tuple[int, ...], strides: tuple[int, ...]) -> int:
    """Multiply-adds of a bottleneck ResNet's convolutions, by hand (square input, no fc)."""
    n = _conv_out(size, 7, 2, 3)
    macs = n * n * 3 * 64 * 49
    n = _conv_out(n, 3, 2, 1)  # max pool
    inplanes = 64
    for i, (blocks, stride) in enumerate(zip(layers, strides)):
        planes = 64 * 2**i
        for b in range(blocks):
            s = stride if b == 0 else 1
            n_out = _conv_out(n, 3, s, 1)
            macs += n * n * inplanes * planes  # conv1 1x1
            macs += n_out * n_out * planes * planes * 9  # conv2 3x3
            macs += n_out * n_out * planes * planes * 4  # conv3 1x1
            if b == 0:
                macs += n_out * n_out * inplanes * planes * 4  # downsample 1x1
            inplanes, n = planes * 4, n_out
    return macs


def aspp_macs(n: int, cin: int = 2048, c: int = 256) -> int:
    return n * n * (cin * c + 3 * cin * c * 9 + 5 * c * c) + cin * c  # 4 branches + projection; pooled 1x1 conv


def decoder_macs(n: int, num_classes: int, low: int = 256) -> int:
    return n * n * (low * 48 + 304 * 256 * 9 + 256 * 256 * 9 + 256 * num_classes)


def kept(n: int, rate: float) -> int:
    return n - int(n * rate + 1e-9)  # SFP removes floor(n * rate) filters


def pruned_resnet_macs(size: int, layers: tuple[int, ...], strides: tuple[int, ...], p: float) -> int:
    """Bottleneck ResNet multiply-adds with conv1/conv2/conv3 outputs pruned, stem, shortcuts and block inputs full."""
    n = _conv_out(size, 7, 2, 3)
    macs = n * n * 3 * 64 * 49  # stem: full width
    n = _conv_out(n, 3, 2, 1)
    inplanes = 64
    for i, (blocks, stride) in enumerate(zip(layers, strides)):
        planes = 64 * 2**i
        w, w4 = kept(planes, p), kept(4 * planes, p)
        for b in range(blocks):
            s = stride if b == 0 else 1
            n_out = _conv_out(n, 3, s, 1)
            macs += n * n * inplanes * w + n_out * n_out * (w * w * 9 + w * w4)
            if b == 0:
                macs += n_out * n_out * inplanes * planes * 4  # downsample: full width
            inplanes, n = planes * 4, n_out
    return macs


def pruned_aspp_macs(n: int, p: float, cin: int = 2048, c: int = 256) -> int:
    k = kept(c, p)  # branch outputs pruned; the projection keeps its 256 outputs (the decoder's input)
    return n * n * (cin * k * (1 + 27) + 5 * k * c) + cin * k


def pruned_decoder_macs(n: int, num_classes: int, p: float = 0.2) -> int:
    w = kept(256, p)  # only the two 3x3 convs lose filters; 256 ASPP + 48 low-level channels stay
    return n * n * (256 * 48 + 304 * w * 9 + w * w * 9 + w * num_classes)


@pytest.fixture(scope="module")
def table() -> list[dict]:
    return truncation_flops_table((129, 65, 33), accounting="paper", num_classes=7)


def test_table2_flops_column_is_reproduced(table):
    for row in table:
        assert abs(row["total_flops"] / 1e9 - PAPER_TOTAL_GFLOPS[row["grid"]]) < 1.0, row
    for row in table[1:]:
        assert abs(row["reduction"] - PAPER_REDUCTION[row["grid"]]) < 0.003, row
    assert round(table[0]["decoder_flops"] / 1e9, 1) == PAPER_DECODER_GFLOPS
    assert round(table[0]["decoder_params"] / 1e6, 1) == PAPER_DECODER_MPARAMS
    assert round(table[0]["encoder_params"] / 1e6, 1) == PAPER_ENCODER_MPARAMS


def test_paper_accounting_counts_match_closed_forms(table):
    enc = 2 * (resnet_conv_macs(513, (3, 4, 23, 3), (1, 2, 2, 2)) + aspp_macs(17))
    for row in table:
        assert row["encoder_flops"] == enc
        assert row["decoder_flops"] == 2 * decoder_macs(row["grid"], 7)
        assert row["total_flops"] == row["encoder_flops"] + row["decoder_flops"]
    # ResNet-101 trunk 42.50 M + ImageNet fc 2048 x 1000 + 1000 + ASPP (convs + BN)
    aspp_params = 2048 * 256 * (1 + 27 + 1) + 1280 * 256 + 5 * 2 * 256 + 2 * 256
    assert table[0]["encoder_params"] == 42_500_160 + 2_049_000 + aspp_params


def test_standard_os16_resnet101_matches_the_spec_measurement():
    parts = {r.part: r for r in count_model_flops("deeplabv3plus", 513, num_classes=21)}
    enc = 2 * (resnet_conv_macs(513, (3, 4, 23, 3), (1, 2, 2, 1)) + aspp_macs(33))
    assert parts["encoder"].flops == enc
    assert abs(enc / 1e9 - 142.1) < 0.1  # docs/reference_code.md#flops-accounting-that-reproduces-the-paper
    assert parts["decoder"].params == 1_309_045  # docs/reference_code.md#deeplab-v3-of-jfzhang95 (K = 21)
    assert "backbone.fc (unused)" not in parts
    assert parts["total"].flops == parts["encoder"].flops + parts["decoder"].flops


def test_count_flops_leaves_a_real_model_untouched():
    torch.manual_seed(0)
    model = create_model("deeplabv3plus", backbone="resnet50", num_classes=3, backbone_kwargs={"base_width": 8})
    before = {k: v.clone() for k, v in model.state_dict().items()}
    model.train()
    rows = count_flops(model, (65, 65))
    assert model.training and all(p.device.type == "cpu" for p in model.parameters())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert [r.part for r in rows] == ["backbone", "aspp", "decoder", "encoder", "total"]
    assert rows[-1].params == sum(p.numel() for p in model.parameters())


def test_cli_prints_the_truncation_table(capsys):
    assert main(["analyze", "flops", "synthetic/deeplabv3plus_r50_os16", "--size", "96", "128",
                 "--decoder-grid", "24", "13"]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert "encoder" in out and "decoder grid" in out
    assert main(["analyze", "flops", "no_such_model"]) == 1


def test_standard_os16_resnet101_total_matches_the_reference():
    # DeepLab v3+ R101 OS16 at 513, K = 21: 59,344,309 parameters, 185.64 GFLOPs (docs/models/deeplabv3plus.md).
    total = count_model_flops("deeplabv3plus", 513, num_classes=21)[-1]
    assert total.params == 59_344_309
    assert round(total.flops / 1e9, 2) == 185.64


@pytest.fixture(scope="module")
def pruning_table() -> dict[tuple[float, int], dict]:
    rows = pruning_flops_table("deeplabv3plus", accounting="paper", num_classes=7)
    return {(row["encoder_rate"], row["grid"]): row for row in rows}


def test_table2_all_nine_pruned_entries_within_half_a_gflop(pruning_table):
    assert len(pruning_table) == 12
    for key, paper in PAPER_PRUNED_GFLOPS.items():
        assert abs(pruning_table[key]["paper_flops"] / 1e9 - paper) < 0.5, (key, pruning_table[key])
    for key, paper in PAPER_TOTAL_GFLOPS.items():  # the unpruned rows on the paper's counter: 139.0 / 106.6 / 98.4
        assert abs(pruning_table[(0.0, key)]["paper_flops"] / 1e9 - paper) < 0.7, key


def test_table2_pruned_flops_column_within_0_3_points(pruning_table):
    for key, paper in PAPER_PRUNED_PERCENT.items():
        assert abs(100 * pruning_table[key]["pruned"] - paper) < 0.3, (key, pruning_table[key]["pruned"])


def test_pruned_counts_match_closed_forms(pruning_table):
    for (rate, grid), row in pruning_table.items():
        dec_rate = 0.2 if rate else 0.0
        enc = 2 * (pruned_resnet_macs(513, (3, 4, 23, 3), (1, 2, 2, 2), rate) + pruned_aspp_macs(17, rate))
        assert row["encoder_flops"] == enc, (rate, grid)
        assert row["decoder_flops"] == 2 * pruned_decoder_macs(grid, 7, dec_rate), (rate, grid)
        assert row["paper_flops"] == pytest.approx(enc * PAPER_ENCODER_SCALE + row["decoder_flops"], rel=1e-12)
    assert pruning_table[(0.0, 129)]["encoder_flops"] == CONV_ENCODER_FLOPS


def test_truncation_savings_do_not_depend_on_the_encoder_rate(pruning_table):
    # The paper's 24 / 30 G savings (129 -> 65 / 33) at every encoder rate: the evidence for the decoder rule.
    for rate in (0.2, 0.4, 0.6):
        t = {g: pruning_table[(rate, g)]["total_flops"] for g in (129, 65, 33)}
        assert t[129] - t[65] == 2 * (129**2 - 65**2) * pruned_decoder_macs(1, 7)
        assert round((t[129] - t[65]) / 1e9) == 24 and round((t[129] - t[33]) / 1e9) == 30


@pytest.mark.parametrize(("name", "kwargs"), [("deeplabv3plus", {"num_classes": 21}), ("dan", {"num_classes": 7})])
def test_unpruned_plan_count_equals_the_flop_counter(name, kwargs):
    with torch.device("meta"):
        model = create_model(name, decoder_grid=65, **kwargs)
    counted = {r.part: r.flops for r in count_flops(model, 513)}
    planned = pruned_flops(model, 513, encoder_rate=0.0, decoder_rate=0.0)
    assert planned["encoder_flops"] == counted["encoder"]
    assert planned["decoder_flops"] == counted["decoder"]
    assert planned["paper_flops"] == planned["total_flops"]  # standard accounting: no paper counter


def test_pruning_accounting_needs_a_planned_decoder():
    with torch.device("meta"):
        model = create_model("fpn", backbone="resnet18", tasks=("semantic",), num_classes=3)
    with pytest.raises(ConfigError, match="accounting_plan"):
        pruned_flops(model, 64, encoder_rate=0.2, decoder_rate=0.2)
    with pytest.raises(ConfigError, match="pruning rate"):
        pruned_flops(create_model("dan", backbone="resnet50", num_classes=3, backbone_kwargs={"base_width": 8}), 65,
                     encoder_rate=1.0, decoder_rate=0.2)  # fmt: skip


def test_cli_prints_the_pruning_table(capsys):
    assert main(["analyze", "flops", "synthetic/deeplabv3plus_r50_os16", "--size", "96", "--decoder-grid", "24", "13",
                 "--encoder-rates", "0.4", "--decoder-rate", "0.1"]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert "soft filter pruning" in out and "paper G" not in out  # standard accounting: no paper counter column
    lines = [line.split() for line in out.splitlines() if line.strip().startswith(("0%", "40%"))]
    assert [(r[0], r[1], r[2]) for r in lines] == [("0%", "0%", "24"), ("0%", "0%", "13"), ("40%", "10%", "24"),
                                                     ("40%", "10%", "13")]  # fmt: skip
