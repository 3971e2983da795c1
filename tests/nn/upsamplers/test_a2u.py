"""A2U up-sampler (Dai et al., CVPR 2021): official keys and counts, closed forms, a conv-based reference of the
kernel generator, CARAFE semantics, learned down-sampling, odd sizes, gradients (hand-written backward), ONNX."""

from __future__ import annotations

import io
import math

import pytest
import torch
import torch.nn.functional as F

from freqdense.errors import ConfigError, ShapeError
from freqdense.nn.upsamplers import build_upsampler
from freqdense.nn.upsamplers.a2u import A2UUpsampler, _AdaptiveAvgPool, _filter_stride2, _phases
from freqdense.ops.reassemble import carafe_reference

# Parameter counts of the official InterChannelUpDown (dongdong93/a2u_matting scripts/BilinearModel.py; up_kernel_size
# 3, encode_kernel_size 6, group 1), measured by building it and summing p.numel(): (C, share) -> (count with the
# bconv_DP down-sampling branch, count without it).
OFFICIAL_COUNTS = {
    (256, True): (20_042, 10_790),
    (256, False): (151_112, 141_860),
    (64, True): (5_066, 2_726),
    (64, False): (13_256, 10_916),
    (32, True): (2_570, 1_382),
    (32, False): (4_616, 3_428),
}


def _official_keys(c: int, *, share: bool, downsampler: bool, s: int = 3, g: int = 1) -> dict[str, tuple[int, ...]]:
    """The official module's state-dict keys and shapes, as documented in a2u.py."""
    outs, rank = (2 * s) ** 2 * g, 1 if share else c
    keys = {"bnu.0.weight": (c,), "bnu.0.bias": (c,), "bnv.0.weight": (c,), "bnv.0.bias": (c,)}
    keys.update({"bconv_UP.1.weight": (outs, c, 1, 1), "bconv_UP.1.bias": (outs,)})
    if downsampler:
        keys.update({"bconv_DP.1.weight": (outs, c, 1, 1), "bconv_DP.1.bias": (outs,)})
    for name in ("bconv_U", "bconv_V"):
        keys.update({f"{name}.1.weight": (rank, c, 1, 1), f"{name}.1.bias": (rank,)})
    return keys


def _randomised(m: A2UUpsampler, std: float = 0.5, seed: int = 0) -> A2UUpsampler:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(torch.randn(p.shape, generator=gen, dtype=p.dtype) * std)
    return m


def _reference_affinity(m: A2UUpsampler, x: torch.Tensor) -> torch.Tensor:
    """``sum_c U_c V_c / sqrt(C)`` with torch's adaptive pooling and one grouped ``F.conv2d`` per image."""
    k, c = m.encode_kernel_size, x.shape[1]
    pooled = F.adaptive_avg_pool2d(x, k)
    u = F.conv2d(pooled, m.bconv_U[1].weight, m.bconv_U[1].bias)  # (B, 1 | C, k, k)
    v = F.conv2d(pooled, m.bconv_V[1].weight, m.bconv_V[1].bias)
    big_u, big_v = [], []
    for i in range(x.shape[0]):
        ku = u[i].reshape(-1, 1, k, k).expand(c, 1, k, k)
        kv = v[i].reshape(-1, 1, k, k).expand(c, 1, k, k)
        big_u.append(F.conv2d(x[i : i + 1], ku, stride=2, padding=(k - 1) // 2, groups=c))
        big_v.append(F.conv2d(x[i : i + 1], kv, stride=2, padding=(k - 1) // 2, groups=c))
    big_u, big_v = m.bnu(torch.cat(big_u)), m.bnv(torch.cat(big_v))
    return (big_u * big_v).sum(dim=1, keepdim=True) / math.sqrt(c)


def _reference_kernels(m: A2UUpsampler, x: torch.Tensor) -> torch.Tensor:
    b, _, hh, ww = x.shape
    s, g = m.up_kernel_size, m.group
    p_up = F.conv2d(x.mean(dim=(2, 3), keepdim=True), m.bconv_UP[1].weight, m.bconv_UP[1].bias)
    logits = F.pixel_shuffle(_reference_affinity(m, x) * p_up, 2).view(b, s * s, g, hh, ww)
    return torch.softmax(torch.sigmoid(logits), dim=1).view(b, s * s * g, hh, ww)


def _reference_downsample(m: A2UUpsampler, x: torch.Tensor) -> torch.Tensor:
    """A literal loop over the 2s x 2s window at stride 2 (rows 2i - (s - 1) .. 2i + s), zeros outside x."""
    b, c, hh, ww = x.shape
    s, g = m.up_kernel_size, m.group
    big, h, w = 2 * s, hh // 2, ww // 2
    p_down = F.conv2d(x.mean(dim=(2, 3), keepdim=True), m.bconv_DP[1].weight, m.bconv_DP[1].bias)
    masks = torch.softmax((_reference_affinity(m, x) * p_down).view(b, big * big, g, h, w), dim=1)
    masks = masks.reshape(b, g, big, big, h, w)  # the official kernel reads the channels group-major
    out = torch.zeros(b, c, h, w, dtype=x.dtype)
    cg = c // g
    for i in range(h):
        for j in range(w):
            for my in range(big):
                for mx in range(big):
                    y, xx = 2 * i + my - (s - 1), 2 * j + mx - (s - 1)
                    if 0 <= y < hh and 0 <= xx < ww:
                        weight = masks[:, :, my, mx, i, j].repeat_interleave(cg, dim=1)
                        out[:, :, i, j] += x[:, :, y, xx] * weight
    return out


def _nearest(lr: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    return lr.repeat_interleave(2, -2).repeat_interleave(2, -1)[..., : size[0], : size[1]]


def test_registry_default_is_the_official_matting_setting_without_the_unused_down_branch():
    m = build_upsampler("a2u", 256, 256)
    assert isinstance(m, A2UUpsampler) and m.guided and m.exact_double
    assert (m.up_kernel_size, m.encode_kernel_size, m.group, m.share) == (3, 6, 1, True)
    assert m.bconv_DP is None and m.norm_groups == 32
    assert m.bnu[0].num_groups == 32 and m.bnu[1].negative_slope == 0.01
    assert sum(p.numel() for p in m.parameters()) == 10_790
    assert build_upsampler("a2u", 16, 8).norm_groups == 16  # gcd(32, C) when 32 does not divide C


@pytest.mark.parametrize(("c", "share"), list(OFFICIAL_COUNTS))
@pytest.mark.parametrize("downsampler", [True, False])
def test_keys_shapes_and_counts_equal_the_official_module_and_its_state_dict_loads(c, share, downsampler):
    m = A2UUpsampler(c, 16, share=share, downsampler=downsampler)
    spec = _official_keys(c, share=share, downsampler=downsampler)
    assert {k: tuple(v.shape) for k, v in m.state_dict().items()} == spec
    assert sum(p.numel() for p in m.parameters()) == OFFICIAL_COUNTS[(c, share)][0 if downsampler else 1]
    gen = torch.Generator().manual_seed(c)
    state = {k: torch.randn(shape, generator=gen) for k, shape in spec.items()}
    m.load_state_dict(state, strict=True)
    for key, value in m.state_dict().items():
        assert torch.equal(value, state[key]), key


@pytest.mark.parametrize(("hr_size", "lr_size"), [((8, 12), (4, 6)), ((9, 13), (5, 7)), ((10, 14), (5, 7))])
def test_constant_kernel_logits_give_a_3x3_box_filter_then_nearest(hr_size, lr_size):
    # bconv_UP = 0: every logit is 0, sigmoid gives 1/2 for all nine taps and the softmax 1/9 each, so lr_up is
    # the zero-padded 3x3 mean of lr, repeated over each 2x2 block (odd sizes: padded, then cropped).
    m = _randomised(A2UUpsampler(8, 4, norm_groups=4).double())
    with torch.no_grad():
        m.bconv_UP[1].weight.zero_()
        m.bconv_UP[1].bias.zero_()
    hr = torch.randn(2, 8, *hr_size, dtype=torch.float64)
    lr = torch.randn(2, 4, *lr_size, dtype=torch.float64)
    box = F.avg_pool2d(lr, 3, stride=1, padding=1, count_include_pad=True)
    out = m(hr, lr)
    assert out.lr_feat.dtype == torch.float64 and torch.equal(out.hr_feat, hr)
    torch.testing.assert_close(out.lr_feat, _nearest(box, hr_size), rtol=0, atol=1e-14)


def test_one_tap_window_is_a_sigmoid_gate_on_nearest():
    m = _randomised(A2UUpsampler(8, 4, up_kernel_size=1, norm_groups=4).double())
    with torch.no_grad():
        m.bconv_UP[1].weight.zero_()
        m.bconv_UP[1].bias.zero_()
    hr, lr = torch.randn(1, 8, 9, 11, dtype=torch.float64), torch.randn(1, 4, 5, 6, dtype=torch.float64)
    torch.testing.assert_close(m(hr, lr).lr_feat, 0.5 * _nearest(lr, (9, 11)), rtol=0, atol=1e-15)


@pytest.mark.parametrize("share", [True, False])
@pytest.mark.parametrize(("s", "k", "g"), [(3, 6, 1), (3, 6, 2), (5, 5, 1), (3, 4, 2)])
def test_kernels_equal_a_grouped_conv_reference_and_forward_is_their_carafe(share, s, k, g):
    m = _randomised(
        A2UUpsampler(8, 4, up_kernel_size=s, encode_kernel_size=k, group=g, share=share, norm_groups=4).double()
    )
    hr, lr = torch.randn(2, 8, 10, 14, dtype=torch.float64), torch.randn(2, 4, 5, 7, dtype=torch.float64)
    kernels = m.kernels(hr)
    assert tuple(kernels.shape) == (2, s * s * g, 10, 14)
    torch.testing.assert_close(kernels, _reference_kernels(m, hr), rtol=0, atol=1e-13)
    if g == 1:  # a softmax over the taps of each pixel
        torch.testing.assert_close(kernels.sum(1), torch.ones(2, 10, 14, dtype=torch.float64), rtol=0, atol=1e-14)
    expected = carafe_reference(lr, kernels, s, g, 2)  # zero padding, as the official biupsample_naive
    torch.testing.assert_close(m(hr, lr).lr_feat, expected, rtol=0, atol=1e-13)


@pytest.mark.parametrize("per_channel", [False, True])
@pytest.mark.parametrize("k", [6, 5, 2])
def test_strided_filter_equals_conv2d_and_its_hand_written_backward_passes_gradcheck(per_channel, k):
    gen = torch.Generator().manual_seed(k)
    x = torch.randn(2, 2, 4, 6, generator=gen, dtype=torch.float64, requires_grad=True)
    w = torch.randn(2, 2 if per_channel else 1, k * k, generator=gen, dtype=torch.float64, requires_grad=True)

    def run(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        return _filter_stride2(_phases(x, (k - 1) // 2), w, k, 2, 3)

    ref = torch.cat(
        [
            F.conv2d(
                x[i : i + 1], w[i].reshape(-1, 1, k, k).expand(2, 1, k, k), stride=2, padding=(k - 1) // 2, groups=2
            )
            for i in range(2)
        ]
    )
    torch.testing.assert_close(run(x, w), ref, rtol=0, atol=1e-13)
    assert torch.autograd.gradcheck(run, (x, w), fast_mode=True)


def test_adaptive_pool_matrices_equal_torch_at_sizes_it_does_not_divide():
    for size, (h, w) in [(6, (13, 19)), (6, (6, 6)), (6, (7, 5)), (6, (3, 40)), (1, (5, 9)), (4, (9, 2))]:
        x = torch.randn(2, 3, h, w, dtype=torch.float64)
        torch.testing.assert_close(_AdaptiveAvgPool(size)(x), F.adaptive_avg_pool2d(x, size), rtol=0, atol=1e-14)


def test_downsample_is_the_official_2s_window_reassembly_and_uniform_weights_give_a_6x6_mean():
    m = _randomised(A2UUpsampler(8, 8, group=2, downsampler=True, norm_groups=4).double())
    x = torch.randn(2, 8, 6, 8, dtype=torch.float64)
    out = m.downsample(x)
    assert tuple(out.shape) == (2, 8, 3, 4)
    torch.testing.assert_close(out, _reference_downsample(m, x), rtol=0, atol=1e-13)
    with torch.no_grad():  # constant logits: weight 1/36 on the window rows 2i - 2 .. 2i + 3
        m.bconv_DP[1].weight.zero_()
        m.bconv_DP[1].bias.zero_()
    box = F.avg_pool2d(F.pad(x, (2, 2, 2, 2)), 6, stride=2, count_include_pad=True)
    torch.testing.assert_close(m.downsample(x), box, rtol=0, atol=1e-14)
    odd = x[..., :5, :7]  # replicate-padded to 6 x 8, ceil size
    torch.testing.assert_close(m.downsample(odd), m.downsample(F.pad(odd, (0, 1, 0, 1), mode="replicate")))
    assert tuple(m.downsample(odd).shape) == (2, 8, 3, 4)


@pytest.mark.parametrize("share", [True, False])
def test_gradients_reach_every_parameter_and_both_inputs(share):
    torch.manual_seed(0)
    m = A2UUpsampler(8, 6, share=share, norm_groups=4)
    hr = torch.randn(2, 8, 10, 12, requires_grad=True)
    lr = torch.randn(2, 6, 5, 6, requires_grad=True)
    out = m(hr, lr).lr_feat
    (out * torch.randn_like(out)).sum().backward()
    for name, p in m.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, f"no gradient reaches {name}"
    assert hr.grad is not None and hr.grad.abs().sum() > 0
    assert lr.grad is not None and lr.grad.abs().sum() > 0


def test_with_the_down_branch_forward_and_downsample_together_train_every_parameter():
    torch.manual_seed(1)
    m = A2UUpsampler(8, 8, downsampler=True, norm_groups=4)
    hr, lr = torch.randn(1, 8, 9, 13), torch.randn(1, 8, 5, 7)
    up, down = m(hr, lr).lr_feat, m.downsample(hr)
    assert tuple(up.shape) == (1, 8, 9, 13) and tuple(down.shape) == (1, 8, 5, 7)
    ((up * torch.randn_like(up)).sum() + (down * torch.randn_like(down)).sum()).backward()
    for name, p in m.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, f"no gradient reaches {name}"


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"up_kernel_size": 4}, "up_kernel_size must be an odd integer >= 1"),
        ({"encode_kernel_size": 0}, "encode_kernel_size must be an integer >= 1"),
        ({"group": 3}, "lr_channels=8 must be divisible by group=3"),
        ({"norm_groups": 3}, "divisible by norm_groups=3"),
        ({"share": "no"}, "share must be true or false"),
        ({"downsampler": None}, "downsampler must be true or false"),
    ],
)
def test_bad_options_raise_config_error(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        A2UUpsampler(16, 8, **kwargs)


def test_bad_inputs_are_named():
    m = A2UUpsampler(8, 4, norm_groups=4)
    with pytest.raises(ShapeError, match="a2u lr"):
        m(torch.randn(1, 8, 8, 8), torch.randn(1, 3, 4, 4))
    with pytest.raises(ConfigError, match="build it with downsampler=True"):
        m.downsample(torch.randn(1, 8, 8, 8))
    with pytest.raises(ConfigError, match="guided by the high-resolution feature"):
        m.upsample(torch.randn(1, 4, 4, 4))


class _Family(torch.nn.Module):
    def __init__(self, up: A2UUpsampler) -> None:
        super().__init__()
        self.up = up

    def forward(self, hr: torch.Tensor, lr: torch.Tensor) -> torch.Tensor:
        return self.up(hr, lr).lr_feat


@pytest.mark.export
@pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning")  # the family's odd-size checks, constant here
@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # the TorchScript exporter announces its removal
@pytest.mark.filterwarnings("ignore:Constant folding")  # strided slices are not folded; harmless
def test_onnx_export_matches_onnxruntime():
    # hr 13 x 21 is padded to 14 x 22, which the 6 x 6 adaptive pooling does not divide.
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    m = _randomised(A2UUpsampler(8, 8, norm_groups=4), std=0.3).eval()
    hr, lr = torch.randn(2, 8, 13, 21), torch.randn(2, 8, 7, 11)
    buffer = io.BytesIO()
    torch.onnx.export(_Family(m), (hr, lr), buffer, dynamo=False, input_names=["hr", "lr"], output_names=["out"])
    session = ort.InferenceSession(buffer.getvalue(), providers=["CPUExecutionProvider"])
    (got,) = session.run(None, {"hr": hr.numpy(), "lr": lr.numpy()})
    with torch.no_grad():
        torch.testing.assert_close(torch.from_numpy(got), m(hr, lr).lr_feat, atol=1e-4, rtol=0)


@pytest.mark.slow
@pytest.mark.export
@pytest.mark.filterwarnings("ignore:# The axis name")  # hr and lr share the batch axis
@pytest.mark.filterwarnings("ignore::FutureWarning")  # torch.export's own pytree deprecations
def test_dynamo_onnx_export_runs_at_untraced_batch_and_sizes():
    # freqdense.export uses the dynamo exporter with a dynamic batch; a 2x2 encoding kernel keeps the graph small.
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    m = _randomised(A2UUpsampler(8, 8, encode_kernel_size=2, norm_groups=4), std=0.3).eval()
    dim = torch.export.Dim
    b, h, w = dim("b", min=1, max=8), dim("h", min=2, max=64), dim("w", min=2, max=64)
    dims = {"hr": {0: b, 2: 2 * h, 3: 2 * w}, "lr": {0: b, 2: h, 3: w}}
    example = (torch.rand(1, 8, 12, 16), torch.rand(1, 8, 6, 8))
    program = torch.onnx.export(_Family(m).eval(), example, dynamo=True, dynamic_shapes=dims)
    session = ort.InferenceSession(program.model_proto.SerializeToString(), providers=["CPUExecutionProvider"])
    for batch, lh, lw in [(1, 6, 8), (2, 7, 11), (3, 5, 4)]:
        hr, lr = torch.rand(batch, 8, 2 * lh, 2 * lw), torch.rand(batch, 8, lh, lw)
        (got,) = session.run(None, {"hr": hr.numpy(), "lr": lr.numpy()})
        with torch.no_grad():
            torch.testing.assert_close(torch.from_numpy(got), m(hr, lr).lr_feat, atol=1e-4, rtol=0)
