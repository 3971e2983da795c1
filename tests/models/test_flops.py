"""Table 2 FLOPs column of the spectral-analysis paper (DeepLab v3+ feature truncation) and closed-form conv counts
(meta device)."""

from __future__ import annotations

import pytest
import torch

from freqdense.cli.main import main
from freqdense.models import create_model
from freqdense.models.flops import count_flops, count_model_flops, truncation_flops_table

# Chen, Chiu, Wu, AAAI 2020, Table 2 (baseline rows) and Sec. 3.2 text.
PAPER_TOTAL_GFLOPS = {129: 139.0, 65: 107.0, 33: 98.0}
PAPER_REDUCTION = {65: 0.233, 33: 0.292}
PAPER_DECODER_GFLOPS = 43.4
PAPER_DECODER_MPARAMS = 1.3
PAPER_ENCODER_MPARAMS = 60.1


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
