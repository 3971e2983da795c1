"""``carafe``'s two engines (batched GEMM on the CPU, tap loop while compiling/exporting) against the naive loop.

The GEMM engine works on a flat channels-last layout in bands of rows, so the cases below aim at its seams: bands of
one or a few rows (``_BAND_BYTES`` patched down), bands that straddle two images of a batch, channel chunks and
groups, every scale and kernel size, and padding positions that must stay out of the result and the gradients.
"""

from __future__ import annotations

import functools
import itertools

import pytest
import torch
import torch.nn.functional as F

from freqdense.ops import reassemble
from freqdense.ops.reassemble import carafe, carafe_reference, carafe_unfold

CASES = [  # (kernel_size, group, scale, C, h, w)
    (5, 1, 2, 3, 4, 5),
    (3, 2, 2, 4, 3, 6),
    (3, 3, 1, 6, 5, 4),
    (1, 1, 3, 2, 2, 3),
    (5, 1, 1, 2, 7, 3),
    (5, 2, 2, 10, 4, 5),
    (3, 1, 3, 3, 1, 1),
]


@pytest.fixture(params=["gemm", "taps"])
def engine(request, monkeypatch):
    """Run the test once per engine (the tap loop is what compiling and exporting use)."""
    monkeypatch.setattr(reassemble, "_use_gemm", lambda features: request.param == "gemm")
    return request.param


def _case(seed: int, b: int, c: int, h: int, w: int, kk: int, scale: int):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(b, c, h, w, dtype=torch.float64, generator=gen)
    m = torch.randn(b, kk, h * scale, w * scale, dtype=torch.float64, generator=gen)
    return x, m, torch.randn(b, c, h * scale, w * scale, dtype=torch.float64, generator=gen)


@pytest.mark.parametrize("band_bytes", [1, 700, 1 << 20])  # one row per band, a few rows, everything in one band
@pytest.mark.parametrize("padding_mode", ["zeros", "reflect"])
@pytest.mark.parametrize(("k", "group", "scale", "c", "h", "w"), CASES)
def test_engines_match_naive_loop_values_and_gradients(
    engine, monkeypatch, band_bytes, padding_mode, k, group, scale, c, h, w
):
    if padding_mode == "reflect" and min(h, w) <= k // 2:
        pytest.skip("reflect needs maps larger than the radius")
    if engine == "taps" and band_bytes != 1 << 20:
        pytest.skip("bands only exist in the GEMM engine")
    monkeypatch.setattr(reassemble, "_BAND_BYTES", band_bytes)
    x, m, weight = _case(k * 100 + group * 10 + scale, 3, c, h, w, group * k * k, scale)
    x.requires_grad_()
    m.requires_grad_()
    for chunk in (None, 1, 2):
        out = carafe(x, m, k, group, scale, padding_mode=padding_mode, chunk_channels=chunk)
        ref = carafe_reference(x, m, k, group, scale, padding_mode=padding_mode)
        torch.testing.assert_close(out, ref, rtol=0, atol=1e-12)
        # Gradients of a random weighting against autograd through the independent unfold formulation.
        got = torch.autograd.grad((out * weight).sum(), (x, m))
        unf = carafe_unfold(x, m, k, group, scale, padding_mode=padding_mode)
        want = torch.autograd.grad((unf * weight).sum(), (x, m))
        for g, e in zip(got, want):
            torch.testing.assert_close(g, e, rtol=0, atol=1e-12)


def test_bands_straddle_images_and_every_band_size_gives_the_same_bits(monkeypatch):
    # 2 images of 5 rows + 2 padding rows (k = 3) are flat rows 0-4 | 5-6 (padding) | 7-11: bands of 3 rows are
    # [0,3) [3,6) [6,9) [9,12), so one band holds both images' rows and one starts on a padding row.
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(2, 4, 5, 6, generator=gen)
    m = torch.rand(2, 9, 10, 12, generator=gen)
    row_bytes = (6 + 2) * 4 * 4 * 4  # padded width * s^2 * channels * float32
    results = []
    for rows in (1, 2, 3, 100):
        monkeypatch.setattr(reassemble, "_BAND_BYTES", rows * row_bytes)
        monkeypatch.setattr(torch, "get_num_threads", lambda: 1)
        assert reassemble._band_rows(8, 4, 4, 4, 100) == rows
        results.append(carafe(x, m, 3, 1, 2))
    ref = carafe_reference(x.double(), m.double(), 3, 1, 2).float()
    for r in results:
        torch.testing.assert_close(r, ref, rtol=1e-6, atol=1e-6)


def test_one_hot_kernels_shift_then_nearest_upsample(engine):
    # Closed form: weight 1 on tap (ky, kx) everywhere gives out = nearest_up(x shifted by (ky - r, kx - r)), with
    # zeros where the tap leaves the map.
    x = torch.arange(2 * 3 * 4 * 5, dtype=torch.float64).view(2, 3, 4, 5)
    for ky, kx in [(0, 0), (1, 2), (2, 1), (2, 2)]:
        m = torch.zeros(2, 9, 8, 10, dtype=torch.float64)
        m[:, ky * 3 + kx] = 1
        shifted = F.pad(x, (1, 1, 1, 1))[..., ky : ky + 4, kx : kx + 5]
        torch.testing.assert_close(carafe(x, m, 3, 1, 2), F.interpolate(shifted, scale_factor=2, mode="nearest"))


def test_gradcheck_across_bands_and_images(monkeypatch):
    monkeypatch.setattr(reassemble, "_BAND_BYTES", 1)  # one row per band
    gen = torch.Generator().manual_seed(5)
    x = torch.randn(2, 4, 3, 4, dtype=torch.float64, generator=gen, requires_grad=True)
    m = torch.randn(2, 2 * 9, 6, 8, dtype=torch.float64, generator=gen, requires_grad=True)
    for mode in ("zeros", "reflect"):
        fn = functools.partial(carafe, kernel_size=3, group=2, scale=2, padding_mode=mode, chunk_channels=1)
        assert torch.autograd.gradcheck(fn, (x, m), fast_mode=True)


@pytest.mark.parametrize(("need_x", "need_k"), [(True, False), (False, True), (True, True)])
def test_gradient_only_for_inputs_that_need_it(engine, need_x, need_k):
    x, m, weight = _case(11, 2, 4, 3, 5, 2 * 25, 2)
    x.requires_grad_(need_x)
    m.requires_grad_(need_k)
    (carafe(x, m, 5, 2, 2) * weight).sum().backward()
    x2, m2 = x.detach().clone().requires_grad_(need_x), m.detach().clone().requires_grad_(need_k)
    (carafe_unfold(x2, m2, 5, 2, 2) * weight).sum().backward()
    for got, want, need in ((x.grad, x2.grad, need_x), (m.grad, m2.grad, need_k)):
        if need:
            torch.testing.assert_close(got, want, rtol=0, atol=1e-12)
        else:
            assert got is None


def test_non_contiguous_inputs_and_output_gradient(engine):
    x, m, weight = _case(13, 2, 6, 5, 4, 9, 2)
    x_cl = x.contiguous(memory_format=torch.channels_last).requires_grad_()
    m_t = m.transpose(2, 3).contiguous().transpose(2, 3).requires_grad_()  # same values, column-major planes
    out = carafe(x_cl, m_t, 3, 1, 2)
    torch.testing.assert_close(out, carafe_reference(x, m, 3, 1, 2), rtol=0, atol=1e-12)
    # A transposed consumer hands the backward a non-contiguous gradient.
    (out.transpose(2, 3) * weight.transpose(2, 3)).sum().backward()
    x2, m2 = x.clone().requires_grad_(), m.clone().requires_grad_()
    (carafe_unfold(x2, m2, 3, 1, 2) * weight).sum().backward()
    torch.testing.assert_close(x_cl.grad, x2.grad, rtol=0, atol=1e-12)
    torch.testing.assert_close(m_t.grad, m2.grad, rtol=0, atol=1e-12)


def test_cpu_autocast_does_not_lower_the_precision():
    gen = torch.Generator().manual_seed(17)
    x = torch.randn(1, 8, 6, 7, generator=gen)
    m = torch.rand(1, 25, 12, 14, generator=gen)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = carafe(x, m, 5, 1, 2)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, carafe_reference(x.double(), m.double(), 5, 1, 2).float(), rtol=1e-5, atol=1e-5)


def test_engine_choice():
    x = torch.zeros(1, 1, 2, 2)
    assert reassemble._use_gemm(x)
    assert not reassemble._use_gemm(x.to("meta"))


def test_compiling_takes_the_tap_loop(monkeypatch):
    calls = []
    for name in ("_GemmCarafe", "_PhaseCarafe"):
        cls = getattr(reassemble, name)
        spy = functools.partial(lambda n, f, *a: (calls.append(n), f(*a))[1], name, cls.apply)
        monkeypatch.setattr(cls, "apply", spy)
    x, m = torch.randn(1, 2, 3, 3), torch.rand(1, 9, 6, 6)
    eager = carafe(x, m, 3, 1, 2)
    monkeypatch.setattr(torch.compiler, "is_compiling", lambda: True)
    compiled_path = carafe(x, m, 3, 1, 2)
    assert calls == ["_GemmCarafe", "_PhaseCarafe"]
    torch.testing.assert_close(compiled_path, eager)


def test_channel_blocks_cover_each_group_once():
    blocks = reassemble._channel_blocks(10, 2, 3)
    assert blocks == [(0, 0, 3), (0, 3, 5), (1, 5, 8), (1, 8, 10)]
    covered = list(itertools.chain.from_iterable(range(c0, c1) for _, c0, c1 in blocks))
    assert covered == list(range(10))
    assert reassemble._image_rows(3, 12, 7, 5) == [(0, 3, 5), (1, 0, 5)]  # rows 5, 6 and 12, 13 are padding


def test_uninitialised_buffers_never_reach_values_or_gradients(monkeypatch):
    # Every buffer the GEMM engine allocates without initialising starts as NaN here. The padding rows and columns
    # of the flat layout are computed and dropped, and the output gradient's padding positions are zeroed (their
    # kernels are zero, but 0 * NaN is NaN), so no NaN may come out.
    new_empty, empty_like = torch.Tensor.new_empty, torch.empty_like

    def nan_new_empty(self, *args, **kwargs):
        return new_empty(self, *args, **kwargs).fill_(float("nan"))

    def nan_empty_like(*args, **kwargs):
        return empty_like(*args, **kwargs).fill_(float("nan"))

    monkeypatch.setattr(torch.Tensor, "new_empty", nan_new_empty)
    monkeypatch.setattr(torch, "empty_like", nan_empty_like)
    monkeypatch.setattr(reassemble, "_BAND_BYTES", 700)
    x, m, weight = _case(19, 2, 4, 4, 5, 2 * 9, 2)
    x.requires_grad_()
    m.requires_grad_()
    for chunk in (None, 1):
        out = carafe(x, m, 3, 2, 2, chunk_channels=chunk)
        gx, gm = torch.autograd.grad((out * weight).sum(), (x, m))
        unf = carafe_unfold(x, m, 3, 2, 2)
        want = torch.autograd.grad((unf * weight).sum(), (x, m))
        torch.testing.assert_close(out, unf, rtol=0, atol=1e-12)
        torch.testing.assert_close(gx, want[0], rtol=0, atol=1e-12)
        torch.testing.assert_close(gm, want[1], rtol=0, atol=1e-12)


@pytest.mark.parametrize("k", [1, 3])
@pytest.mark.parametrize("shape", [(1, 2, 0, 3), (0, 2, 3, 3), (1, 2, 3, 0), (1, 0, 3, 3)])
def test_empty_inputs_give_empty_outputs_and_gradients(engine, shape, k):
    b, c, h, w = shape
    x = torch.randn(*shape, requires_grad=True)
    m = torch.rand(b, k * k, 2 * h, 2 * w, requires_grad=True)
    out = carafe(x, m, k, 1, 2)
    assert out.shape == (b, c, 2 * h, 2 * w)
    out.sum().backward()
    assert x.grad.shape == x.shape and m.grad.shape == m.shape
    assert not m.grad.any()
