"""IndexNet up-sampler (Lu et al., ICCV 2019): official keys and counts, closed forms, odd sizes, gradients, ONNX."""

from __future__ import annotations

import io
import math

import pytest
import torch
import torch.nn.functional as F

from freqdense.errors import ConfigError, ShapeError
from freqdense.nn.upsamplers import build_upsampler
from freqdense.nn.upsamplers.indexnet import INDEX_BLOCKS, IndexNetUpsampler

VARIANTS = [(block, nl, ctx) for block in INDEX_BLOCKS for nl in (False, True) for ctx in (False, True)]

# Parameter counts of the official blocks (poppinace/indexnet_matting scripts/hlindex.py: HolisticIndexBlock,
# DepthwiseO2OIndexBlock, DepthwiseM2OIndexBlock with nn.BatchNorm2d), measured by building each at C = 32 and
# summing p.numel(): (block, nonlinear, use_context) -> count.
OFFICIAL_COUNTS_32 = {
    ("holistic", False, False): 512,
    ("holistic", False, True): 2048,
    ("holistic", True, False): 8576,
    ("holistic", True, True): 33152,
    ("depthwise_o2o", False, False): 512,
    ("depthwise_o2o", False, True): 2048,
    ("depthwise_o2o", True, False): 896,
    ("depthwise_o2o", True, True): 2432,
    ("depthwise_m2o", False, False): 16384,
    ("depthwise_m2o", False, True): 65536,
    ("depthwise_m2o", True, False): 20736,
    ("depthwise_m2o", True, True): 69888,
}


def _official_keys(block: str, nonlinear: bool, use_context: bool, c: int) -> dict[str, tuple[int, ...]]:
    """The official block's state-dict keys and shapes, as documented in indexnet.py."""
    k = 4 if use_context else 2
    bn = ("weight", "bias", "running_mean", "running_var")
    if block == "holistic":
        if not nonlinear:
            return {"indexnet.weight": (4, c, k, k)}
        keys = {"indexnet.0.weight": (2 * c, c, k, k), "indexnet.3.weight": (4, 2 * c, 1, 1)}
        keys.update({f"indexnet.1.{n}": (2 * c,) for n in bn})
        keys["indexnet.1.num_batches_tracked"] = ()
        return keys
    c_in = 1 if block == "depthwise_o2o" else c
    keys = {}
    for i in range(1, 5):
        keys[f"indexnet{i}.0.weight"] = (c, c_in, k, k)
        if nonlinear:
            keys.update({f"indexnet{i}.1.{n}": (c,) for n in bn})
            keys[f"indexnet{i}.1.num_batches_tracked"] = ()
            keys[f"indexnet{i}.3.weight"] = (c, c_in, 1, 1)
    return keys


def _nearest(lr: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``lr[..., y // 2, x // 2]`` on a ``size`` grid."""
    return lr.repeat_interleave(2, -2).repeat_interleave(2, -1)[..., : size[0], : size[1]]


def _one_hot_index(module: IndexNetUpsampler) -> None:
    """Depthwise blocks: branch ``2a + b`` copies pixel ``(a, b)`` of each 2x2 window of channel c into index c."""
    c = module.hr_channels
    with torch.no_grad():
        for i in range(4):
            weight = getattr(module, f"indexnet{i + 1}")[0].weight
            weight.zero_()
            a, b = divmod(i, 2)
            if module.block == "depthwise_o2o":
                weight[:, 0, a, b] = 1.0
            else:
                weight[torch.arange(c), torch.arange(c), a, b] = 1.0


def test_default_is_the_linear_m2o_block_compared_in_fade_and_sapa_with_official_count():
    m = build_upsampler("indexnet", 256, 256)
    assert isinstance(m, IndexNetUpsampler)
    assert (m.block, m.nonlinear, m.use_context) == ("depthwise_m2o", False, False)
    assert m.guided and m.exact_double
    assert sum(p.numel() for p in m.parameters()) == 1_048_576  # 4 x Conv2d(256, 256, 2, stride 2, bias=False)
    holistic = IndexNetUpsampler(256, 256, block="holistic", nonlinear=True, use_context=True)
    assert sum(p.numel() for p in holistic.parameters()) == 2_100_224  # 32 C^2 + 4 C (BN) + 8 C


@pytest.mark.parametrize(("block", "nonlinear", "use_context"), VARIANTS)
def test_keys_shapes_and_counts_equal_the_official_block_and_its_state_dict_loads(block, nonlinear, use_context):
    m = IndexNetUpsampler(32, 32, block=block, nonlinear=nonlinear, use_context=use_context)
    spec = _official_keys(block, nonlinear, use_context, 32)
    assert {k: tuple(v.shape) for k, v in m.state_dict().items()} == spec
    assert sum(p.numel() for p in m.parameters()) == OFFICIAL_COUNTS_32[(block, nonlinear, use_context)]
    gen = torch.Generator().manual_seed(0)
    state = {k: (torch.tensor(3) if not shape else torch.rand(shape, generator=gen) + 0.5) for k, shape in spec.items()}
    m.load_state_dict(state, strict=True)
    for key, value in m.state_dict().items():
        assert torch.equal(value, state[key]), key


@pytest.mark.parametrize("block", ["depthwise_o2o", "depthwise_m2o"])
@pytest.mark.parametrize(("hr_size", "lr_size"), [((8, 10), (4, 5)), ((9, 13), (5, 7)), ((10, 14), (5, 7))])
def test_one_hot_depthwise_index_gives_sigmoid_of_the_guide_times_nearest(block, hr_size, lr_size):
    # Branch 2a + b reads pixel (a, b) of its window, so D = sigmoid(hr) and lr_up = sigmoid(hr) * NN(lr),
    # also at odd sizes (the guide is replicate-padded, the index at kept pixels is unchanged).
    m = IndexNetUpsampler(3, 3, block=block).double()
    _one_hot_index(m)
    hr = torch.randn(2, 3, *hr_size, dtype=torch.float64)
    lr = torch.randn(2, 3, *lr_size, dtype=torch.float64)
    out = m(hr, lr)
    assert out.lr_feat.dtype == torch.float64
    torch.testing.assert_close(out.lr_feat, torch.sigmoid(hr) * _nearest(lr, hr_size), rtol=0, atol=1e-15)
    assert torch.equal(out.hr_feat, hr)
    enc, dec = m.index_maps(hr)
    torch.testing.assert_close(dec, torch.sigmoid(hr), rtol=0, atol=1e-15)
    assert tuple(enc.shape) == tuple(hr.shape)


def test_holistic_index_by_hand():
    # Constant guide of ones, linear holistic block whose kernel for window position p sums to alpha_p:
    # the index is sigmoid(alpha_p) at position p of every window, shared by all channels.
    m = IndexNetUpsampler(3, 2, block="holistic").double()
    alpha = torch.tensor([0.0, math.log(3.0), -math.log(3.0), math.log(4.0)], dtype=torch.float64)
    with torch.no_grad():
        m.indexnet.weight.copy_((alpha / 12.0).view(4, 1, 1, 1).expand(4, 3, 2, 2))
    hr = torch.ones(1, 3, 4, 4, dtype=torch.float64)
    lr = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]], [[-2.0, 0.0], [8.0, 4.0]]]], dtype=torch.float64)
    # sigmoid(0) = 1/2, sigmoid(ln 3) = 3/4, sigmoid(-ln 3) = 1/4, sigmoid(ln 4) = 4/5
    gate = torch.tensor([[0.5, 0.75], [0.25, 0.8]], dtype=torch.float64).repeat(2, 2)
    expected = torch.stack([gate * _nearest(lr[0, c], (4, 4)) for c in range(2)])[None]
    torch.testing.assert_close(m(hr, lr).lr_feat, expected, rtol=0, atol=1e-15)
    assert m(hr, lr).lr_feat[0, 1, 0, 1].item() == pytest.approx(-1.5)  # 3/4 * -2


@pytest.mark.parametrize(("block", "nonlinear", "use_context"), VARIANTS)
def test_zero_weights_halve_the_nearest_upsampling_and_pool_by_averaging(block, nonlinear, use_context):
    # All logits 0: D = sigmoid(0) = 1/2 and E = softmax of four equal values = 1/4, so the index pooling is
    # 4 * avgpool(x / 4) = avgpool(x).
    m = IndexNetUpsampler(4, 4, block=block, nonlinear=nonlinear, use_context=use_context).double().eval()
    with torch.no_grad():
        for p in m.parameters():
            p.zero_()
    hr = torch.randn(1, 4, 9, 13, dtype=torch.float64)
    lr = torch.randn(1, 4, 5, 7, dtype=torch.float64)
    torch.testing.assert_close(m(hr, lr).lr_feat, 0.5 * _nearest(lr, (9, 13)), rtol=0, atol=1e-15)
    x = torch.randn(2, 4, 6, 10, dtype=torch.float64)
    torch.testing.assert_close(m.downsample(x), F.avg_pool2d(x, 2), rtol=0, atol=1e-14)
    padded = F.pad(x[..., :5, :9], (0, 1, 0, 1), mode="replicate")  # odd input: replicate-padded, ceil size
    torch.testing.assert_close(m.downsample(x[..., :5, :9]), F.avg_pool2d(padded, 2), rtol=0, atol=1e-14)
    enc, dec = m.index_maps(hr)
    torch.testing.assert_close(enc, torch.full_like(enc, 0.25), rtol=0, atol=0)
    torch.testing.assert_close(dec, torch.full_like(dec, 0.5), rtol=0, atol=0)


def test_one_hot_o2o_pooling_weights_each_window_by_the_softmax_of_its_sigmoids():
    m = IndexNetUpsampler(2, 2, block="depthwise_o2o").double()
    _one_hot_index(m)
    x = torch.randn(1, 2, 4, 6, dtype=torch.float64)
    windows = F.pixel_unshuffle(x, 2).view(1, 2, 4, 2, 3)  # window position 2a + b
    expected = (torch.softmax(torch.sigmoid(windows), dim=2) * windows).sum(2)
    torch.testing.assert_close(m.downsample(x), expected, rtol=0, atol=1e-15)
    # a window whose top-left pixel dominates: its weight is e^s(10) / (e^s(10) + 3 e^s(0)) with s = sigmoid
    x = torch.zeros(1, 2, 2, 2, dtype=torch.float64)
    x[..., 0, 0] = 10.0
    s10 = 1.0 / (1.0 + math.exp(-10.0))
    weight = math.exp(s10) / (math.exp(s10) + 3 * math.exp(0.5))
    assert m.downsample(x)[0, 0, 0, 0].item() == pytest.approx(10.0 * weight, abs=1e-12)


@pytest.mark.parametrize(("block", "nonlinear", "use_context"), VARIANTS)
def test_gradients_reach_every_parameter_and_both_inputs(block, nonlinear, use_context):
    torch.manual_seed(0)
    lr_channels = 8 if block == "depthwise_o2o" else 6  # m2o and holistic map C_hr -> C_lr
    m = IndexNetUpsampler(8, lr_channels, block=block, nonlinear=nonlinear, use_context=use_context)
    hr = torch.randn(2, 8, 10, 12, requires_grad=True)
    lr = torch.randn(2, lr_channels, 5, 6, requires_grad=True)
    out = m(hr, lr).lr_feat
    (out * torch.randn_like(out)).sum().backward()
    for name, p in m.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, f"no gradient reaches {name}"
    assert hr.grad is not None and hr.grad.abs().sum() > 0
    assert lr.grad is not None and lr.grad.abs().sum() > 0


def test_m2o_maps_guide_channels_to_lr_channels():
    m = IndexNetUpsampler(6, 4, nonlinear=True)
    assert tuple(m.indexnet1[0].weight.shape) == (4, 6, 2, 2)
    assert tuple(m.indexnet1[3].weight.shape) == (4, 4, 1, 1)
    out = m(torch.randn(1, 6, 9, 13), torch.randn(1, 4, 5, 7))
    assert tuple(out.lr_feat.shape) == (1, 4, 9, 13) and tuple(out.hr_feat.shape) == (1, 6, 9, 13)
    with pytest.raises(ConfigError, match="build it with lr_channels == hr_channels"):
        m.downsample(torch.randn(1, 6, 4, 4))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"block": "depthwise"}, "block must be one of holistic, depthwise_o2o, depthwise_m2o"),
        ({"nonlinear": "yes"}, "nonlinear must be true or false"),
        ({"use_context": 1}, "use_context must be true or false"),
        ({"block": "depthwise_o2o"}, "lr_channels must equal hr_channels"),
    ],
)
def test_bad_options_raise_config_error(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        IndexNetUpsampler(8, 4, **kwargs)


def test_bad_inputs_are_named():
    m = IndexNetUpsampler(4, 4)
    with pytest.raises(ShapeError, match="indexnet hr"):
        m(torch.randn(1, 3, 8, 8), torch.randn(1, 4, 4, 4))
    with pytest.raises(ShapeError, match="indexnet downsample input"):
        m.downsample(torch.randn(1, 5, 8, 8))
    with pytest.raises(ConfigError, match="guided by the high-resolution feature"):
        m.upsample(torch.randn(1, 4, 4, 4))


@pytest.mark.export
@pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning")  # the family's odd-size checks, constant here
@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # the TorchScript exporter announces its removal
@pytest.mark.filterwarnings("ignore:Constant folding")  # strided slices are not folded; harmless
@pytest.mark.parametrize(
    ("block", "nonlinear", "use_context"), [("depthwise_m2o", False, False), ("holistic", True, True)]
)
def test_onnx_export_matches_onnxruntime(block, nonlinear, use_context):
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    torch.manual_seed(0)
    m = IndexNetUpsampler(8, 8, block=block, nonlinear=nonlinear, use_context=use_context)
    if nonlinear:  # non-trivial running statistics, so eval-mode BatchNorm matters
        with torch.no_grad():
            m.indexnet[1].running_mean.uniform_(-0.5, 0.5)
            m.indexnet[1].running_var.uniform_(0.5, 2.0)
    m.eval()

    class Family(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.up = m

        def forward(self, hr: torch.Tensor, lr: torch.Tensor) -> torch.Tensor:
            return self.up(hr, lr).lr_feat

    hr, lr = torch.randn(2, 8, 9, 13), torch.randn(2, 8, 5, 7)
    buffer = io.BytesIO()
    torch.onnx.export(Family().eval(), (hr, lr), buffer, dynamo=False, input_names=["hr", "lr"], output_names=["out"])
    session = ort.InferenceSession(buffer.getvalue(), providers=["CPUExecutionProvider"])
    (got,) = session.run(None, {"hr": hr.numpy(), "lr": lr.numpy()})
    with torch.no_grad():
        torch.testing.assert_close(torch.from_numpy(got), m(hr, lr).lr_feat, atol=1e-4, rtol=0)
