from __future__ import annotations

import json

import torch
import torch.nn as nn

from freqdense.models import create_model
from freqdense.models.backbones.resnet import Bottleneck, resnet18, resnet50
from freqdense.pruning import (
    ConstantInputConv2d,
    IndexAddBasicBlock,
    IndexAddBottleneck,
    SoftFilterPruner,
    encoder_decoder_scopes,
    pruned_model,
    pruned_structure,
    remove_pruned_filters,
)


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
    # Each BasicBlock (planes p, input cin) keeps p/2 filters of conv1 and of conv2; conv2 adds into the full-width
    # residual. Removed: conv1 p/2 * cin * 9 + bn1 2 * p/2, conv2 (p^2 - (p/2)^2) * 9 + bn2 2 * p/2.
    # The stem stays (layer1.0 has an identity shortcut, so the stem's channels are its residual).
    removed = 0
    for stage, p in enumerate((8, 16, 32, 64)):
        for block in range(2):
            cin = p if (block or stage == 0) else p // 2
            removed += (p // 2) * (cin * 9 + 2) + (p * p - (p // 2) ** 2) * 9 + (p // 2) * 2
    assert big - _n_params(small) == removed
    assert isinstance(small.layer1[0], IndexAddBasicBlock) and small.conv1.out_channels == 8


def _bn_constant(bn: nn.BatchNorm2d) -> torch.Tensor:
    """bn(0) in eval mode, by the BN formula: beta - mean * gamma / sqrt(var + eps)."""
    return (bn.bias - bn.running_mean * bn.weight / torch.sqrt(bn.running_var + bn.eps)).detach()


def test_resnet50_bottleneck_residual_index_add_and_stem() -> None:
    torch.manual_seed(0)
    net = resnet50(base_width=8, out_indices=(1,)).double()
    _randomise_norms(net)
    big = _n_params(net)
    SoftFilterPruner(net, rate=0.5).step()
    net.eval()
    small = remove_pruned_filters(net).eval()
    x = torch.rand(1, 3, 24, 24, dtype=torch.float64)
    torch.testing.assert_close(small(x)[0], net(x)[0], atol=1e-9, rtol=0)
    for i, block in enumerate(small.layer1):
        masked = net.layer1[i]
        assert isinstance(block, IndexAddBottleneck)
        assert (block.conv1.out_channels, block.conv2.in_channels, block.conv2.out_channels) == (4, 4, 4)
        assert (block.conv3.in_channels, block.conv3.out_channels, block.bn3.num_features) == (4, 16, 16)
        kept = masked.conv3.weight.flatten(1).ne(0).any(1)
        assert block.kept_index.tolist() == kept.nonzero().flatten().tolist()
        expected = torch.where(kept, torch.zeros(32, dtype=torch.float64), _bn_constant(masked.bn3))
        torch.testing.assert_close(block.pruned_constant, expected, atol=1e-12, rtol=0)
    # The stem loses its zero filters with the matching inputs of layer1.0.conv1 and layer1.0.downsample.0; their
    # constants relu(bn1(0)) are folded into biases (1x1, unpadded consumers).
    first = small.layer1[0]
    assert small.conv1.out_channels == 4 and small.bn1.num_features == 4
    assert first.conv1.in_channels == 4 and first.downsample[0].in_channels == 4
    stem_const = torch.relu(_bn_constant(net.bn1))[net.conv1.weight.flatten(1).eq(0).all(1)]
    assert stem_const.abs().max() > 0.1  # the constants matter: dropping them (as the reference does) changes outputs
    w = net.layer1[0].downsample[0].weight.detach()[:, net.conv1.weight.flatten(1).eq(0).all(1), 0, 0]
    torch.testing.assert_close(first.downsample[0].bias, w @ stem_const, atol=1e-12, rtol=0)
    # closed form of the small model: stem 4 filters (3*49 each) + BN; layer1.0: conv1 4->4 (+4 bias: stem
    # constants), conv2 4->4 3x3 (constants in a buffer), conv3 4->16 (+16 bias: conv2's constants), projection
    # 4->32 (+32 bias), BNs 4, 4, 16, 32; layer1.1/.2: conv1 32->4, conv2 4->4 3x3, conv3 4->16 (+16 bias).
    stem = 3 * 49 * 4 + 2 * 4
    block0 = (16 + 4) + 2 * 4 + 4 * 4 * 9 + 2 * 4 + (64 + 16) + 2 * 16 + (128 + 32) + 2 * 32
    block = 32 * 4 + 2 * 4 + 4 * 4 * 9 + 2 * 4 + (64 + 16) + 2 * 16
    assert big == 3 * 49 * 8 + 16 + (64 + 16 + 576 + 16 + 256 + 64 + 256 + 64) + 2 * (256 + 16 + 576 + 16 + 256 + 64)
    assert _n_params(small) == stem + block0 + 2 * block


def test_pruning_a_pruned_model_again_composes_the_residual_indices() -> None:
    torch.manual_seed(1)
    net = resnet50(base_width=8, out_indices=(1,)).double()
    _randomise_norms(net)
    SoftFilterPruner(net, rate=0.25).step()
    small = remove_pruned_filters(net.eval()).eval()
    SoftFilterPruner(small, rate=0.5).step()  # zero half of the remaining filters, ones-channel convs included
    smaller = remove_pruned_filters(small).eval()
    x = torch.rand(1, 3, 20, 20, dtype=torch.float64)
    torch.testing.assert_close(smaller(x)[0], small(x)[0], atol=1e-9, rtol=0)
    assert smaller.layer1[0].conv3.out_channels == 32 - 8 - 12  # 24 after 25 %, then half of them
    assert smaller.layer1[0].pruned_constant.numel() == 32


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
    # the backbone as the reference small ResNet: stem and every bottleneck's conv3 at the kept width
    backbone = small.backbone
    assert backbone.conv1.out_channels == 4 - int(4 * 0.4)
    blocks = [m for m in backbone.modules() if isinstance(m, Bottleneck)]
    assert len(blocks) == 16 and all(isinstance(b, IndexAddBottleneck) for b in blocks)
    assert backbone.layer4[0].conv3.out_channels == 128 - int(128 * 0.4)


def test_pruned_model_rebuilds_and_loads_a_physically_pruned_deeplab() -> None:
    torch.manual_seed(0)
    base = {"name": "deeplabv3plus", "backbone": "resnet50", "num_classes": 3, "backbone_kwargs": {"base_width": 4}}
    net = create_model(**base).double()
    _randomise_norms(net)
    SoftFilterPruner(net, scopes=encoder_decoder_scopes(net, 0.6, 0.2)).step()
    small = remove_pruned_filters(net.eval()).eval()
    structure = json.loads(json.dumps(pruned_structure(small)))  # what a checkpoint's config stores
    assert structure["backbone.layer1.0"] == {"type": "index_add_bottleneck", "width": 16, "kept": 7}
    rebuilt = pruned_model(base=base, structure=structure).double()
    rebuilt.load_state_dict(small.state_dict(), strict=True)
    rebuilt.eval()
    x = torch.rand(1, 3, 33, 33, dtype=torch.float64)
    torch.testing.assert_close(rebuilt(x)["semantic"], net(x)["semantic"], atol=1e-9, rtol=0)
