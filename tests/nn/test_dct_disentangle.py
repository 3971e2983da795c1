"""FAFE Frequency Disentanglement (nn/dct_disentangle.py): Eq. (3), mask initialisation, other resolutions."""

from __future__ import annotations

import math

import pytest
import torch

from freqdense.errors import ShapeError
from freqdense.nn.dct_disentangle import (
    FrequencyDisentanglement,
    FrequencyOutput,
    frequency_masks,
    resample_spectral_weights,
)


def _cos_basis(u: int, v: int, h: int, w: int) -> torch.Tensor:
    """Unnormalised DCT-II basis image cos(pi u (i + 0.5) / H) cos(pi v (j + 0.5) / W) (paper Eq. 2), by hand."""
    i = torch.arange(h, dtype=torch.float64)[:, None]
    j = torch.arange(w, dtype=torch.float64)[None, :]
    return torch.cos(math.pi * u * (i + 0.5) / h) * torch.cos(math.pi * v * (j + 0.5) / w)


def _identity_convs(fd: FrequencyDisentanglement) -> None:
    c = fd.conv_low.in_channels
    with torch.no_grad():
        for conv in (fd.conv_low, fd.conv_high):
            conv.weight.zero_()
            conv.weight[:, :, conv.kernel_size[0] // 2, conv.kernel_size[1] // 2] = torch.eye(c)
            conv.bias.zero_()


def test_all_ones_weights_make_it_conv_then_identity():
    torch.manual_seed(0)
    fd = FrequencyDisentanglement(3, 5, size=(7, 9), interaction=False).double()
    with torch.no_grad():
        fd.weight_low.fill_(1.0)
        fd.weight_high.fill_(1.0)
    x = torch.randn(2, 3, 7, 9, dtype=torch.float64)
    low, high = fd(x)
    torch.testing.assert_close(low, fd.conv_low(x), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(high, fd.conv_high(x), rtol=1e-12, atol=1e-12)


def test_init_masks_partition_the_spectrum():
    low, high = frequency_masks((12, 16), cutoff=0.5)
    assert set(low.unique().tolist()) == {0.0, 1.0}
    torch.testing.assert_close(low + high, torch.ones(12, 16))
    assert (low * high == 0).all()
    # by hand: (u/12)^2 + (v/16)^2 < 0.25
    assert low[0, 0] == 1 and low[5, 0] == 1 and low[6, 0] == 0 and low[0, 7] == 1 and low[0, 8] == 0
    assert low[4, 5] == 1 and low[5, 5] == 0  # 0.1736 + 0.0977 = 0.271 > 0.25
    fd = FrequencyDisentanglement(2, size=(12, 16), interaction=False)
    torch.testing.assert_close(fd.weight_low.detach(), low)
    torch.testing.assert_close(fd.weight_high.detach(), high)


def test_init_splits_a_low_plus_high_signal_into_its_parts():
    h, w = 8, 12
    fd = FrequencyDisentanglement(1, size=(h, w), kernel_size=1, interaction=False).double()
    _identity_convs(fd)
    low_part, high_part = 2.0 * _cos_basis(1, 1, h, w), 0.7 * _cos_basis(6, 9, h, w)
    low, high = fd((low_part + high_part)[None, None])
    torch.testing.assert_close(low[0, 0], low_part, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(high[0, 0], high_part, rtol=1e-10, atol=1e-10)


def test_resampled_weights_keep_the_split():
    low, high = frequency_masks((12, 16), cutoff=0.5)
    for size in [(24, 32), (9, 20), (6, 8)]:
        r_low, r_high = resample_spectral_weights(low, size), resample_spectral_weights(high, size)
        assert r_low.shape == size
        torch.testing.assert_close(r_low + r_high, torch.ones(size))
        # Away from the cutoff circle the resampled mask equals the mask built at the new size.
        ref = frequency_masks(size, cutoff=0.5).low
        nu_u = torch.arange(size[0])[:, None] / size[0]
        nu_v = torch.arange(size[1])[None, :] / size[1]
        far = ((nu_u**2 + nu_v**2).sqrt() - 0.5).abs() > 2.0 / 12
        assert far.sum() > 0.5 * far.numel()
        torch.testing.assert_close(r_low[far], ref[far])
        assert ((r_low >= 0) & (r_low <= 1)).all()


def test_resample_closed_form_and_identity():
    w = torch.tensor([[1.0, 3.0], [5.0, 7.0]])
    assert resample_spectral_weights(w, (2, 2)) is w
    # source positions 0, 0.5, 1, 1.5->clamped 1 along each axis
    want = torch.tensor([[1.0, 2.0, 3.0, 3.0], [3.0, 4.0, 5.0, 5.0], [5.0, 6.0, 7.0, 7.0], [5.0, 6.0, 7.0, 7.0]])
    torch.testing.assert_close(resample_spectral_weights(w, (4, 4)), want)


def test_other_resolution_runs_and_resample_false_raises():
    torch.manual_seed(0)
    fd = FrequencyDisentanglement(4, size=(8, 10))
    out = fd(torch.randn(1, 4, 16, 20))
    assert isinstance(out, FrequencyOutput) and out.low.shape == out.high.shape == (1, 4, 16, 20)
    fd.resample = False
    with pytest.raises(ShapeError, match="resample=True"):
        fd(torch.randn(1, 4, 16, 20))


def test_forward_is_dual_pi_of_split_and_all_params_get_grads():
    torch.manual_seed(0)
    fd = FrequencyDisentanglement(3, 4, size=(6, 10), pi_grid=(3, 5))
    x = torch.randn(2, 3, 6, 10)
    low, high = fd(x)
    ref = fd.interaction(*fd.split(x))
    torch.testing.assert_close(low, ref.first)
    torch.testing.assert_close(high, ref.second)
    (low.square().mean() + high.sin().mean()).backward()
    for name, p in fd.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name
