"""CARAFE (ops/reassemble.py) and its kernel helpers (ops/filters.py) against naive references and closed forms."""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from freqdense.errors import ShapeError
from freqdense.ops import carafe, carafe_reference, carafe_unfold, hamming2d, normalize_kernels

CASES = [  # (kernel_size, group, scale, C, h, w)
    (5, 1, 2, 3, 4, 5),
    (3, 2, 2, 4, 3, 6),
    (3, 3, 1, 6, 5, 4),
    (1, 1, 3, 2, 2, 3),
    (5, 1, 1, 2, 7, 3),
]


@pytest.mark.parametrize("padding_mode", ["zeros", "reflect"])
@pytest.mark.parametrize(("k", "group", "scale", "c", "h", "w"), CASES)
def test_carafe_matches_naive_loop(padding_mode, k, group, scale, c, h, w):
    if padding_mode == "reflect" and min(h, w) <= k // 2:
        pytest.skip("reflect needs maps larger than the radius")
    gen = torch.Generator().manual_seed(k * 100 + group * 10 + scale)
    x = torch.randn(2, c, h, w, dtype=torch.float64, generator=gen)
    m = torch.randn(2, group * k * k, h * scale, w * scale, dtype=torch.float64, generator=gen)
    ref = carafe_reference(x, m, k, group, scale, padding_mode=padding_mode)
    torch.testing.assert_close(carafe(x, m, k, group, scale, padding_mode=padding_mode), ref, rtol=0, atol=1e-12)
    torch.testing.assert_close(carafe_unfold(x, m, k, group, scale, padding_mode=padding_mode), ref, rtol=0, atol=1e-12)


def test_hand_computed_zero_padding():
    # 1x1x2x2 input, 3x3 kernels with weight 1 on every tap, scale 1: each output is the sum of its in-range
    # neighbours, which for a 2x2 map is the sum of all four pixels (1 + 2 + 3 + 4 = 10).
    x = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])
    out = carafe(x, torch.ones(1, 9, 2, 2), 3, 1, 1)
    torch.testing.assert_close(out, torch.full((1, 1, 2, 2), 10.0))
    # Top-right tap only (ky=0, kx=2): out[p] = x[p + (-1, +1)], zero outside.
    m = torch.zeros(1, 9, 2, 2)
    m[:, 2] = 1
    expected = torch.tensor([[[[0.0, 0.0], [2.0, 0.0]]]])
    torch.testing.assert_close(carafe(x, m, 3, 1, 1), expected)
    # Reflect padding mirrors without repeating the edge: x[-1] -> x[1].
    expected_reflect = torch.tensor([[[[4.0, 3.0], [2.0, 1.0]]]])
    torch.testing.assert_close(carafe(x, m, 3, 1, 1, padding_mode="reflect"), expected_reflect)


def test_uniform_kernels_equal_box_filter_then_nearest():
    x = torch.randn(2, 3, 6, 7)
    m = torch.full((2, 25, 12, 14), 1 / 25)
    box = F.avg_pool2d(x, 5, stride=1, padding=2, count_include_pad=True)
    torch.testing.assert_close(carafe(x, m, 5, 1, 2), F.interpolate(box, scale_factor=2, mode="nearest"))


def test_interior_agrees_between_padding_modes_and_border_differs():
    x = torch.randn(1, 2, 8, 8)
    m = torch.rand(1, 25, 16, 16)
    a, b = carafe(x, m, 5, 1, 2), carafe(x, m, 5, 1, 2, padding_mode="reflect")
    band = (5 // 2) * 2  # (k // 2) * scale output pixels
    torch.testing.assert_close(a[..., band:-band, band:-band], b[..., band:-band, band:-band])
    assert (a - b).abs().amax() > 1e-3


def test_gradcheck_float64():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(1, 4, 3, 4, dtype=torch.float64, generator=gen, requires_grad=True)
    m = torch.randn(1, 2 * 9, 6, 8, dtype=torch.float64, generator=gen, requires_grad=True)
    for mode in ("zeros", "reflect"):
        fn = functools.partial(carafe, kernel_size=3, group=2, scale=2, padding_mode=mode)
        assert torch.autograd.gradcheck(fn, (x, m), fast_mode=True)
    # Full Jacobian on a smaller case.
    x, m = x[:, :2, :2, :3].detach().requires_grad_(), m[:, :9, :4, :6].detach().requires_grad_()
    assert torch.autograd.gradcheck(lambda a, b: carafe(a, b, 3, 1, 2), (x, m))


def test_mixed_dtypes_promote():
    x = torch.randn(1, 2, 3, 3, dtype=torch.bfloat16)
    m = torch.rand(1, 9, 6, 6)
    out = carafe(x, m, 3, 1, 2)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, carafe(x.float(), m, 3, 1, 2))


def test_shape_errors_name_the_tensor():
    with pytest.raises(ShapeError, match="kernels"):
        carafe(torch.zeros(1, 2, 3, 3), torch.zeros(1, 9, 5, 6), 3, 1, 2)
    with pytest.raises(ShapeError, match="group"):
        carafe(torch.zeros(1, 3, 3, 3), torch.zeros(1, 18, 6, 6), 3, 2, 2)
    with pytest.raises(ShapeError, match="reflect"):
        carafe(torch.zeros(1, 1, 2, 2), torch.zeros(1, 25, 4, 4), 5, 1, 2, padding_mode="reflect")
    with pytest.raises(ValueError, match="odd"):
        carafe(torch.zeros(1, 1, 2, 2), torch.zeros(1, 16, 4, 4), 4, 1, 2)


def test_hamming2d_matches_numpy():
    for k in (1, 3, 5, 7):
        expected = torch.from_numpy(np.outer(np.hamming(k), np.hamming(k)))
        torch.testing.assert_close(hamming2d(k, dtype=torch.float64), expected, rtol=0, atol=1e-15)
    # np.hamming(3) = [0.08, 1, 0.08] (docs/reference_code.md#freqfusion-constructor)
    torch.testing.assert_close(hamming2d(3)[0], torch.tensor([0.0064, 0.08, 0.0064]))


@pytest.mark.parametrize("group", [1, 2])
def test_normalize_kernels_is_windowed_softmax(group):
    logits = torch.randn(2, group * 25, 3, 4, dtype=torch.float64)
    window = hamming2d(5, dtype=torch.float64)
    out = normalize_kernels(logits, 5, window=window, group=group)
    assert (out >= 0).all()
    torch.testing.assert_close(out.view(2, group, 25, 3, 4).sum(2), torch.ones(2, group, 3, 4, dtype=torch.float64))
    # Independent form: exp(l) w / sum(exp(l) w), per group (the softmax denominator cancels).
    e = logits.view(2, group, 25, 3, 4).exp() * window.reshape(1, 1, 25, 1, 1)
    torch.testing.assert_close(out, (e / e.sum(2, keepdim=True)).view_as(out))
    # The (1,) all-ones placeholder of hamming_window=False is the plain softmax.
    plain = normalize_kernels(logits, 5, window=torch.ones(1, dtype=torch.float64), group=group)
    torch.testing.assert_close(plain, logits.view(2, group, 25, 3, 4).softmax(2).view_as(out))


@pytest.mark.parametrize("chunk_channels", [1, 2, 4, None])
def test_channel_chunks_agree_with_reference_forward_and_backward(chunk_channels):
    # 5 channels per group: chunks of 2 and 4 leave a partial last chunk.
    gen = torch.Generator().manual_seed(7)
    x = torch.randn(2, 10, 4, 5, dtype=torch.float64, generator=gen, requires_grad=True)
    m = torch.randn(2, 2 * 9, 8, 10, dtype=torch.float64, generator=gen, requires_grad=True)
    out = carafe(x, m, 3, 2, 2, padding_mode="reflect", chunk_channels=chunk_channels)
    ref = carafe_reference(x, m, 3, 2, 2, padding_mode="reflect")
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-12)
    # Gradients against autograd through the independent unfold formulation.
    weight = torch.randn(out.shape, dtype=torch.float64, generator=gen)
    grads = torch.autograd.grad((out * weight).sum(), (x, m))
    unf = carafe_unfold(x, m, 3, 2, 2, padding_mode="reflect")
    for got, want in zip(grads, torch.autograd.grad((unf * weight).sum(), (x, m))):
        torch.testing.assert_close(got, want, rtol=0, atol=1e-12)


def test_gradient_reaches_only_the_input_that_requires_it():
    x = torch.randn(1, 3, 4, 4, requires_grad=True)
    m = torch.rand(1, 25, 8, 8)
    carafe(x, m, 5, 1, 2).sum().backward()
    # The hand-written backward skips the kernel gradient when the kernels need none; d/dx against autograd (unfold).
    x2 = x.detach().clone().requires_grad_()
    carafe_unfold(x2, m, 5, 1, 2).sum().backward()
    torch.testing.assert_close(x.grad, x2.grad)
    assert m.grad is None
    with pytest.raises(ValueError, match="chunk_channels"):
        carafe(x, m, 5, 1, 2, chunk_channels=0)
