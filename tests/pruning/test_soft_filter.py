from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from freqdense.errors import ConfigError
from freqdense.models.backbones.resnet import Bottleneck, ResNet, resnet18, resnet50
from freqdense.pruning import SoftFilterPruner, filter_norms, filters_to_prune, num_pruned_filters


def test_filter_norms_hand_case() -> None:
    w = torch.zeros(3, 1, 2, 2)
    w[0] = torch.tensor([[3.0, 4.0], [0.0, 0.0]])  # norm 5
    w[1] = torch.tensor([[1.0, 0.0], [0.0, 0.0]])  # norm 1
    w[2] = torch.tensor([[1.0, 1.0], [1.0, 1.0]])  # norm 2
    assert torch.allclose(filter_norms(w), torch.tensor([5.0, 1.0, 2.0]))
    assert filters_to_prune(w, 0.5).tolist() == [1]  # floor(3 * 0.5) = 1 weakest
    assert filters_to_prune(w, 0.7).tolist() == [1, 2]


def test_num_pruned_is_floor_of_rate_times_filters() -> None:
    assert [num_pruned_filters(64, r) for r in (0.2, 0.4, 0.6)] == [12, 25, 38]
    assert num_pruned_filters(10, 0.3) == 3  # 10 * 0.3 = 3.0000000000000004 in floats; floor must give 3
    with pytest.raises(ConfigError):
        num_pruned_filters(10, 1.0)


def test_selection_rules_on_resnet50() -> None:
    net = resnet50(base_width=8)
    pruner = SoftFilterPruner(net, rate=0.25)
    convs = [n for n, m in net.named_modules() if isinstance(m, nn.Conv2d)]
    # every conv (stem and the last 1x1 of each bottleneck included) except the 4 shortcut projections
    assert len(convs) == 53 and len(pruner.rates) == 49
    assert "conv1" in pruner.rates and "layer1.0.conv3" in pruner.rates
    assert not any("downsample" in n for n in pruner.rates)


def test_exact_rate_per_layer_and_excluded_untouched() -> None:
    torch.manual_seed(0)
    net = resnet18(base_width=8)
    before = {n: p.clone() for n, p in net.named_parameters()}
    pruner = SoftFilterPruner(net, scopes={"layer1.": 0.5, "layer2.": 0.25}, exclude=["*downsample*", "layer1.1.*"])
    pruner.step()
    assert set(pruner.rates) == {
        "layer1.0.conv1",
        "layer1.0.conv2",
        "layer2.0.conv1",
        "layer2.0.conv2",
        "layer2.1.conv1",
        "layer2.1.conv2",
    }
    for name, m in net.named_modules():
        if not isinstance(m, nn.Conv2d):
            continue
        zero = m.weight.detach().flatten(1).eq(0).all(1)
        if name in pruner.rates:
            expected = num_pruned_filters(m.out_channels, pruner.rates[name])
            assert int(zero.sum()) == expected and int((~pruner.masks[name]).sum()) == expected
            # the zeroed ones are the weakest of the original weights
            norms = before[name + ".weight"].flatten(1).norm(dim=1)
            assert norms[zero].max() <= norms[~zero].min()
        else:
            assert torch.equal(m.weight, before[name + ".weight"])
    for name, p in net.named_parameters():  # BN parameters untouched
        if ".bn" in name:
            assert torch.equal(p, before[name])


def test_zeroed_filters_recover_after_a_gradient_step() -> None:
    torch.manual_seed(0)
    net = resnet18(base_width=8, out_indices=(2,))
    for m in net.modules():  # with BN shift 0, a zeroed channel sits at ReLU's kink and gets no gradient
        if isinstance(m, nn.BatchNorm2d):
            nn.init.constant_(m.bias, 0.1)
    pruner = SoftFilterPruner(net, rate=0.5)
    pruner.step()
    masks = {n: k.clone() for n, k in pruner.masks.items()}
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    net(torch.rand(2, 3, 32, 32))[0].square().mean().backward()
    opt.step()
    conv = net.get_submodule("layer1.0.conv1")
    assert conv.weight.detach()[~masks["layer1.0.conv1"]].abs().sum() > 0  # gradients are not masked
    pruner.step()  # the next mask is recomputed from the new norms and zeroes exactly the rate again
    assert int((~pruner.masks["layer1.0.conv1"]).sum()) == num_pruned_filters(conv.out_channels, 0.5)


def test_needs_exactly_one_of_rate_and_scopes() -> None:
    with pytest.raises(ConfigError):
        SoftFilterPruner(nn.Conv2d(1, 2, 1))
    with pytest.raises(ConfigError):
        SoftFilterPruner(nn.Conv2d(1, 2, 1), rate=0.1, scopes={"": 0.1})


def _hand_weights(net: nn.Module) -> dict[str, list[float]]:
    """Set every conv so that its filter L2 norms are known by hand; returns conv name -> norms.

    Stem (4 filters): (3, 4) -> 5, (6) -> 6, sixteen 0.5s -> 2, (4.5) -> 4.5; L1 norms 7, 6, 8, 4.5 and max norms
    4, 6, 0.5, 4.5 rank them differently. Every other conv with n filters: filter i holds the single value
    +-(p_i + 1), p_i = (5 i + 3) mod n (a permutation, n a power of 2), so its norm is p_i + 1.
    """
    norms = {}
    with torch.no_grad():
        for name, m in net.named_modules():
            if not isinstance(m, nn.Conv2d):
                continue
            w = torch.zeros_like(m.weight).flatten(1)
            n = w.shape[0]
            if name == "conv1":
                w[0, :2] = torch.tensor([3.0, 4.0])
                w[1, 0] = 6.0
                w[2, :16] = 0.5
                w[3, 5] = -4.5
                norms[name] = [5.0, 6.0, 2.0, 4.5]
            else:
                perm = [(5 * i + 3) % n for i in range(n)]
                for i, p in enumerate(perm):
                    w[i, i % w.shape[1]] = (p + 1.0) * (-1) ** i
                norms[name] = [p + 1.0 for p in perm]
            m.weight.copy_(w.view_as(m.weight))
    return norms


def test_one_step_zeroes_the_reference_filters_on_a_tiny_resnet() -> None:
    # he-y/soft-filter-pruning, pruning_train.py Mask: every conv weight of the ResNet except the shortcut
    # projections (skip_downsample) and the fc; per layer the int(n * (1 - keep)) filters of smallest L2 norm.
    # Our rate 0.6 = the reference's --rate 0.4 (keep ratio).
    net = ResNet(Bottleneck, (1, 1, 1, 1), base_width=4, out_indices=(4,))
    norms = _hand_weights(net)
    before = {n: p.detach().clone() for n, p in net.named_parameters()}
    pruner = SoftFilterPruner(net, rate=0.6)
    reference_layers = {"conv1"} | {f"layer{s}.0.conv{c}" for s in (1, 2, 3, 4) for c in (1, 2, 3)}
    assert set(pruner.rates) == reference_layers
    pruner.step()
    # floor(0.6 n) by hand: n = 4, 8, 16, 32, 64, 128 -> 2, 4, 9, 19, 38, 76 (rounding would give 2, 5, 10, 19, 38, 77)
    floor_06 = {4: 2, 8: 4, 16: 9, 32: 19, 64: 38, 128: 76}
    for name, m in net.named_modules():
        if not isinstance(m, nn.Conv2d):
            continue
        zeroed = m.weight.detach().flatten(1).eq(0).all(1).nonzero().flatten().tolist()
        if name not in reference_layers:
            assert torch.equal(m.weight, before[name + ".weight"]), name  # projections untouched
            continue
        if name == "conv1":
            assert zeroed == [2, 3]  # norms 2 and 4.5; L1 would pick [1, 3], the max norm [0, 2]
            continue
        k = floor_06[m.out_channels]
        assert zeroed == sorted(i for i, v in enumerate(norms[name]) if v <= k), name  # norms 1..k are the k smallest
    for name, p in net.named_parameters():  # nothing but the selected conv weights changes (BN included)
        if name.removesuffix(".weight") not in reference_layers:
            assert torch.equal(p, before[name]), name
