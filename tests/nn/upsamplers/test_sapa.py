"""SAPA in the up-sampler family (nn/upsamplers/sapa.py): official keys and counts, the windowed similarity by
hand, a per-pixel reference of every variant, closed-form uniform kernels, odd sizes, gradients, ONNX."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from _onnx_check import assert_dynamo_onnx_matches

from freqdense.errors import ConfigError, ShapeError
from freqdense.nn.upsamplers import build_upsampler
from freqdense.nn.upsamplers.sapa import SAPAUpsampler, sapa_similarity

# Keys and shapes of the official modules (poppinace/sapa) for dim_y = C_hr = 8, dim_x = C_lr = 6,
# embedding_dim = 4, in state-dict order: SAPA (SAPA.py, = SAPAExp(q_mode="encoder_only")) and
# SAPAExp(q_mode="gate") (SAPAExp.py).
B_KEYS = {
    "norm_y.weight": (8,),
    "norm_y.bias": (8,),
    "norm_x.weight": (6,),
    "norm_x.bias": (6,),
    "q.weight": (4, 8),
    "q.bias": (4,),
    "k.weight": (4, 6),
    "k.bias": (4,),
}
G_KEYS = {
    "norm_y.weight": (8,),
    "norm_y.bias": (8,),
    "norm_x.weight": (6,),
    "norm_x.bias": (6,),
    "qy.weight": (4, 8),
    "qy.bias": (4,),
    "qx.weight": (4, 6),
    "qx.bias": (4,),
    "gate.weight": (1, 6),
    "gate.bias": (1,),
    "k.weight": (4, 6),
    "k.bias": (4,),
}


def _randomise(module: torch.nn.Module, std: float = 0.5, seed: int = 0) -> torch.nn.Module:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=gen, dtype=p.dtype) * std + (1.0 if p.dim() == 1 else 0.0))
    return module


def _nearest2(x: torch.Tensor) -> torch.Tensor:
    return x.repeat_interleave(2, dim=-2).repeat_interleave(2, dim=-1)


def _embeddings_reference(m: SAPAUpsampler, hr: torch.Tensor, lr: torch.Tensor):
    """Query (B, E, 2h, 2w) and key (B, E, h, w), channels first, from the paper's definitions."""

    def norm(x, ln):
        return F.layer_norm(x.movedim(1, -1), x.shape[1:2], ln.weight, ln.bias).movedim(-1, 1) if m.norm else x

    def linear(x, lin):
        return torch.einsum("bchw,ec->behw", x, lin.weight) + (0 if lin.bias is None else lin.bias[:, None, None])

    y, x = norm(hr, getattr(m, "norm_y", None)), norm(lr, getattr(m, "norm_x", None))
    if m.variant == "I":
        return y, x
    if m.variant == "B":
        return linear(y, m.q), linear(x, m.k)
    g = _nearest2(torch.sigmoid(linear(x, m.gate)))
    return g * linear(y, m.qy) + (1 - g) * _nearest2(linear(lr, m.qx)), linear(x, m.k)


def _sapa_reference(query, key, value, k):
    """Per output pixel: softmax over the k x k window of query . key (0 outside the map), weighted sum of the
    values (nothing outside the map) - the official sim / atn CUDA kernels."""
    b, _, height, width = query.shape
    _, _, h, w = key.shape
    r = k // 2
    out = value.new_zeros(b, value.shape[1], height, width)
    for py in range(height):
        for px in range(width):
            logits, values = [], []
            for dy in range(k):
                for dx in range(k):
                    iy, ix = py // 2 + dy - r, px // 2 + dx - r
                    inside = 0 <= iy < h and 0 <= ix < w
                    logits.append((query[:, :, py, px] * key[:, :, iy, ix]).sum(1) if inside else query.new_zeros(b))
                    values.append(value[:, :, iy, ix] if inside else value.new_zeros(b, value.shape[1]))
            weights = torch.softmax(torch.stack(logits, 1), dim=1)
            out[:, :, py, px] = (weights[:, :, None] * torch.stack(values, 1)).sum(1)
    return out


@pytest.mark.parametrize(
    ("kwargs", "channels", "count"),
    [
        ({}, (256, 256), 33_920),  # official SAPA(256)
        ({"embedding_dim": 32}, (256, 256), 17_472),  # the official SegFormer runs (x6: +0.1M)
        ({"variant": "G"}, (256, 256), 50_625),  # official SAPAExp(256, q_mode="gate")
        ({"variant": "G", "embedding_dim": 32}, (256, 256), 25_953),
        ({}, (64, 64), 8_576),
        ({}, (32, 48), 5_408),  # official SAPA(32, 48)
        ({"qkv_bias": False}, (32, 48), 5_280),
        ({"variant": "G"}, (32, 48), 8_593),
        ({"variant": "I"}, (256, 256), 1_024),  # the two LayerNorms only
        ({"variant": "I", "norm": False}, (256, 256), 0),
    ],
)
def test_parameter_counts_equal_the_official_modules(kwargs, channels, count):
    assert sum(p.numel() for p in build_upsampler("sapa", *channels, **kwargs).parameters()) == count


@pytest.mark.parametrize(("variant", "keys"), [("B", B_KEYS), ("G", G_KEYS)])
def test_state_dict_keys_equal_the_official_and_an_official_state_dict_loads_strictly(variant, keys):
    m = build_upsampler("sapa", 8, 6, variant=variant, embedding_dim=4)
    assert list(m.state_dict()) == list(keys)
    assert {k: tuple(v.shape) for k, v in m.state_dict().items()} == keys
    official = {k: torch.randn(shape) for k, shape in keys.items()}
    m.load_state_dict(official, strict=True)
    for k, v in m.state_dict().items():
        assert torch.equal(v, official[k])
    assert list(build_upsampler("sapa", 8, 8, variant="I").state_dict()) == list(B_KEYS)[:4]
    assert build_upsampler("sapa", 8, 6).variant == "B" and build_upsampler("sapa_g", 8, 6).variant == "G"


def test_windowed_similarity_by_hand():
    key = torch.tensor([[1.0, 2.0], [3.0, 4.0]]).reshape(1, 2, 2, 1)  # E = 1
    query = torch.ones(1, 4, 4, 1)
    sim = sapa_similarity(query, key, 3)
    assert tuple(sim.shape) == (1, 9, 4, 4)
    # output (0, 0) sits on key (0, 0): its window holds key rows/cols -1..1, taps in row-major order
    assert sim[0, :, 0, 0].tolist() == [0, 0, 0, 0, 1, 2, 0, 3, 4]
    # output (3, 2) sits on key (1, 1): window rows/cols 0..2
    assert sim[0, :, 3, 2].tolist() == [1, 2, 0, 3, 4, 0, 0, 0, 0]
    query = torch.arange(16.0).reshape(1, 4, 4, 1)  # each output pixel scales its own similarities
    assert sim[0, :, 2, 1].mul(9.0).tolist() == sapa_similarity(query, key, 3)[0, :, 2, 1].tolist()


@pytest.mark.parametrize(
    ("variant", "channels", "k", "norm"),
    [
        ("B", (5, 3), 3, True),
        ("B", (5, 3), 5, True),
        ("G", (5, 3), 3, True),
        ("I", (4, 4), 3, True),
        ("I", (4, 4), 5, False),
    ],
)
def test_forward_equals_the_per_pixel_reference(variant, channels, k, norm):
    kw = {} if variant == "I" else {"embedding_dim": 3}
    m = _randomise(SAPAUpsampler(*channels, variant=variant, up_kernel_size=k, norm=norm, **kw).double())
    hr = torch.randn(2, channels[0], 6, 8, dtype=torch.float64)
    lr = torch.randn(2, channels[1], 3, 4, dtype=torch.float64)
    query, key = _embeddings_reference(m, hr, lr)
    out = m(hr, lr)
    torch.testing.assert_close(out.lr_feat, _sapa_reference(query, key, lr, k))
    assert torch.equal(out.hr_feat, hr)


def test_a_constant_query_gives_a_zero_padded_box_filter():
    # q = 0: every logit is 0, so each output is the window mean with zeros outside the map (count_include_pad).
    m = SAPAUpsampler(3, 2).double()
    with torch.no_grad():
        m.q.weight.zero_()
        m.q.bias.zero_()
    hr, lr = torch.randn(1, 3, 8, 10, dtype=torch.float64), torch.randn(1, 2, 4, 5, dtype=torch.float64)
    box = F.avg_pool2d(lr, 5, stride=1, padding=2, count_include_pad=True)
    torch.testing.assert_close(m(hr, lr).lr_feat, _nearest2(box))


def test_a_sharp_inner_product_picks_the_matching_decoder_point():
    # SAPA-I without norms: decoder points are distinct one-hot codes; an encoder point 50x a code attends to it.
    m = SAPAUpsampler(4, 4, variant="I", norm=False, up_kernel_size=3).double()
    lr = torch.eye(4, dtype=torch.float64).reshape(4, 2, 2)[None]  # lr[:, :, i, j] = e_{2i + j}
    pick = torch.tensor([[3, 2, 0, 1], [1, 0, 3, 2], [2, 3, 1, 0], [0, 1, 2, 3]])  # code each output pixel seeks
    hr = 50.0 * F.one_hot(pick, 4).permute(2, 0, 1)[None].double()
    torch.testing.assert_close(m(hr, lr).lr_feat, hr / 50.0, atol=1e-12, rtol=0)


@pytest.mark.parametrize(("hr_size", "lr_size"), [((9, 13), (5, 7)), ((10, 14), (5, 7))])
@pytest.mark.parametrize("variant", ["B", "G"])
def test_odd_sizes_pad_replicate_and_crop(hr_size, lr_size, variant):
    m = _randomise(SAPAUpsampler(4, 6, variant=variant, embedding_dim=3).double(), seed=2)
    hr = torch.randn(2, 4, *hr_size, dtype=torch.float64)
    lr = torch.randn(2, 6, *lr_size, dtype=torch.float64)
    out = m(hr, lr)
    assert torch.equal(out.hr_feat, hr) and tuple(out.lr_feat.shape) == (2, 6, *hr_size)
    hr_pad = F.pad(hr, (0, 14 - hr_size[1], 0, 10 - hr_size[0]), mode="replicate")
    torch.testing.assert_close(out.lr_feat, m(hr_pad, lr).lr_feat[..., : hr_size[0], : hr_size[1]])


@pytest.mark.parametrize("variant", ["I", "B", "G"])
def test_gradients_reach_every_parameter_and_both_inputs(variant):
    torch.manual_seed(3)
    m = SAPAUpsampler(4, 4, variant=variant).double()
    hr = torch.randn(1, 4, 9, 11, dtype=torch.float64, requires_grad=True)
    lr = torch.randn(1, 4, 5, 6, dtype=torch.float64, requires_grad=True)
    out = m(hr, lr).lr_feat
    (out * torch.randn_like(out)).sum().backward()
    assert len(list(m.parameters())) == {"I": 4, "B": 8, "G": 12}[variant]
    for name, p in m.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, f"no gradient reaches {name}"
    assert hr.grad.abs().sum() > 0 and lr.grad.abs().sum() > 0


def test_gradcheck_float64():
    m = _randomise(SAPAUpsampler(2, 3, variant="G", embedding_dim=2, up_kernel_size=3).double(), seed=4)
    hr = torch.randn(1, 2, 3, 4, dtype=torch.float64, requires_grad=True)  # odd: through the padding too
    lr = torch.randn(1, 3, 2, 2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b: m(a, b).lr_feat, (hr, lr), fast_mode=True)


@pytest.mark.parametrize(
    ("kwargs", "channels", "match"),
    [
        ({"variant": "D"}, (8, 8), "variant must be one of 'I', 'B', 'G'"),
        ({"variant": "I"}, (8, 4), "needs hr_channels == lr_channels"),
        ({"variant": "I", "embedding_dim": 8}, (8, 8), "has no embedding_dim"),
        ({"up_kernel_size": 4}, (8, 8), "up_kernel_size must be an odd integer"),
        ({"embedding_dim": 0}, (8, 8), "embedding_dim must be an integer >= 1"),
    ],
)
def test_bad_options_raise_config_error(kwargs, channels, match):
    with pytest.raises(ConfigError, match=match):
        build_upsampler("sapa", *channels, **kwargs)
    with pytest.raises(ConfigError, match="fixes variant='G'"):
        build_upsampler("sapa_g", 8, 8, variant="B")


def test_similarity_refuses_mismatched_layouts():
    with pytest.raises(ShapeError, match=r"query must be \(B, 2h, 2w, E\) = \(1, 4, 6, 2\)"):
        sapa_similarity(torch.zeros(1, 2, 4, 6), torch.zeros(1, 2, 3, 2), 3)  # channels first by mistake
    with pytest.raises(ShapeError, match="sapa_similarity key"):
        sapa_similarity(torch.zeros(1, 4, 6, 2), torch.zeros(2, 3, 2), 3)
    with pytest.raises(ConfigError, match="kernel_size must be an odd integer"):
        sapa_similarity(torch.zeros(1, 4, 6, 2), torch.zeros(1, 2, 3, 2), 2)


def test_guided_module_refuses_plain_upsampling():
    with pytest.raises(ConfigError, match="guided by the high-resolution feature"):
        build_upsampler("sapa", 8, 8).upsample(torch.randn(1, 8, 3, 3))


@pytest.mark.export
def test_onnx_export_at_an_odd_size_matches_onnxruntime():
    # odd sizes: the padding and the crop are in the graph; dynamic H/W (hr = 2 lr - 1) exports too
    assert_dynamo_onnx_matches(
        _randomise(SAPAUpsampler(4, 6, variant="G", embedding_dim=3).float().eval(), seed=5),
        (1, 4, 9, 13),
        (1, 6, 5, 7),
    )
