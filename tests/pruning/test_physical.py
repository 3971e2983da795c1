from __future__ import annotations

import torch
import torch.nn as nn

from freqdense.models import create_model
from freqdense.models.backbones.resnet import resnet18, resnet50
from freqdense.pruning import ConstantInputConv2d, SoftFilterPruner, encoder_decoder_scopes, remove_pruned_filters


def _randomise_norms(model: nn.Module) -> None:
    """Non-trivial BN statistics/affines so that zeroed channels are non-zero constants after BN + ReLU."""
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.normal_(0.2, 0.5)
            m.running_mean.normal_(0, 0.3)
            m.running_var.uniform_(0.5, 2.0)


def _n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_sequential_chain_exact_and_closed_form_params() -> None:
    torch.manual_seed(0)
    c, k = 16, 0.25
    seq = nn.Sequential(
        nn.Conv2d(3, c, 3, padding=1, bias=False),
        nn.BatchNorm2d(c),
        nn.ReLU(),
        nn.Dropout(0.1),
        nn.Conv2d(c, c, 3, padding=2, dilation=2, bias=False),
        nn.BatchNorm2d(c),
        nn.ReLU(),
        nn.Conv2d(c, 5, 1),
    ).double()
    _randomise_norms(seq)
    pruner = SoftFilterPruner(seq, rate=k, exclude=["7"])
    pruner.step()
    seq.eval()
    small = remove_pruned_filters(seq).eval()
    x = torch.rand(2, 3, 11, 13, dtype=torch.float64)
    torch.testing.assert_close(small(x), seq(x), atol=1e-10, rtol=0)
    kept = c - int(c * k)  # 12 of 16
    # closed form: conv0 3*9*kept + bn 2*kept + conv4 kept*9*kept + bn 2*kept + classifier kept*5 + 5
    expected = 27 * kept + 2 * kept + 9 * kept * kept + 2 * kept + 5 * kept + 5
    assert _n_params(small) == expected
    assert isinstance(small[4], ConstantInputConv2d)  # a constant under zero padding needs the ones-channel


def test_resnet18_tiny_blocks_exact_and_closed_form() -> None:
    torch.manual_seed(0)
    net = resnet18(base_width=8).double()
    _randomise_norms(net)
    big = _n_params(net)
    pruner = SoftFilterPruner(net, rate=0.5)
    pruner.step()
    net.eval()
    small = remove_pruned_filters(net).eval()
    x = torch.rand(2, 3, 40, 36, dtype=torch.float64)
    for a, b in zip(net(x), small(x)):
        torch.testing.assert_close(b, a, atol=1e-9, rtol=0)
    # removable: conv1 of each BasicBlock; planes p -> p/2: removes p/2*(cin*9) + p/2*2 (bn) + p/2*(p*9) (conv2 in)
    removed = 0
    for stage, p in enumerate((8, 16, 32, 64)):
        for block in range(2):
            cin = p if (block or stage == 0) else p // 2
            removed += (p // 2) * (cin * 9 + 2 + p * 9)
    assert big - _n_params(small) == removed


def test_resnet50_bottleneck_factor() -> None:
    torch.manual_seed(0)
    net = resnet50(base_width=8, out_indices=(1,)).double()
    _randomise_norms(net)
    SoftFilterPruner(net, rate=0.5).step()
    net.eval()
    small = remove_pruned_filters(net).eval()
    x = torch.rand(1, 3, 24, 24, dtype=torch.float64)
    torch.testing.assert_close(small(x)[0], net(x)[0], atol=1e-9, rtol=0)
    block = small.layer1[1]
    assert (block.conv1.out_channels, block.conv2.in_channels, block.conv2.out_channels) == (4, 4, 4)
    assert (block.conv3.in_channels, block.conv3.out_channels) == (4, 32)  # residual channels kept
    assert small.conv1.out_channels == 8  # the stem is masked but not removable


def test_deeplab_tiny_exact() -> None:
    torch.manual_seed(0)
    net = create_model("deeplabv3plus", backbone="resnet50", num_classes=3, backbone_kwargs={"base_width": 4}).double()
    _randomise_norms(net)
    SoftFilterPruner(net, scopes=encoder_decoder_scopes(net, 0.4, 0.2)).step()
    net.eval()
    small = remove_pruned_filters(net).eval()
    x = torch.rand(1, 3, 33, 33, dtype=torch.float64)
    torch.testing.assert_close(small(x)["semantic"], net(x)["semantic"], atol=1e-9, rtol=0)
    assert small.aspp.conv1.in_channels == 5 * (256 - int(256 * 0.4))
    # the ASPP projection (the decoder's input, encoder_output="decoder") and decoder.conv1 are pruned at 0.2
    assert small.decoder.last_conv[0].in_channels == (256 - 51) + (48 - 9)
    net_enc = create_model("deeplabv3plus", backbone="resnet50", num_classes=3, backbone_kwargs={"base_width": 4})
    SoftFilterPruner(net_enc, scopes=encoder_decoder_scopes(net_enc, 0.4, 0.2, encoder_output="encoder")).step()
    small_enc = remove_pruned_filters(net_enc.eval())
    assert small_enc.decoder.last_conv[0].in_channels == (256 - 102) + (48 - 9)
    assert small.decoder.last_conv[8].out_channels == 3
