"""freqdense.ops.fft: frequency grids, shells, spectra and profiles."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from freqdense.errors import ConfigError
from freqdense.ops.fft import (
    fft_frequencies,
    frequency_shells,
    onesided_multiplicity,
    power_profile,
    power_spectrum2d,
    shell_reduce,
    spectrum2d,
)


@pytest.mark.parametrize("n", [1, 4, 5, 513])
def test_fft_frequencies_match_numpy_fftfreq(n):
    expected = np.rint(np.fft.fftfreq(n) * n).astype(np.int64)
    assert fft_frequencies(n).tolist() == expected.tolist()
    assert fft_frequencies(n, onesided=True).tolist() == list(range(n // 2 + 1))


def test_square_and_radial_shells_hand_cases():
    assert frequency_shells((4, 4)).tolist() == [[0, 1, 2, 1], [1, 1, 2, 1], [2, 2, 2, 2], [1, 1, 2, 1]]
    radial = frequency_shells((5, 5), shells="radial")
    assert radial[1, 1].item() == 1  # sqrt(2) rounds to 1
    assert radial[2, 2].item() == 3  # sqrt(8) = 2.83
    assert radial[2, 1].item() == 2  # sqrt(5) = 2.24
    # 513 x 513 carries shells 0..256; shell nu (> 0) of the square holds 8 nu frequencies.
    shells = frequency_shells((513, 513))
    assert int(shells.max()) == 256
    assert torch.bincount(shells.flatten())[[1, 64, 256]].tolist() == [8, 512, 2048]


def test_non_square_units():
    index = frequency_shells((3, 7))
    assert index.max().item() == 3  # k_x reaches 3 cycles per image
    short = frequency_shells((3, 7), units="shorter_side")
    assert short.max().item() == 1  # 3 * 3/7 = 1.29 -> 1: both axes in cycles per shorter side
    assert short[0, 2].item() == 1 and short[0, 1].item() == 0  # 2 * 3/7 = 0.86 -> 1; 3/7 -> 0
    with pytest.raises(ConfigError):
        frequency_shells((3, 3), shells="hexagonal")  # type: ignore[arg-type]


@pytest.mark.parametrize("w", [6, 7])
def test_onesided_multiplicity_recovers_full_spectrum_sums(w):
    x = torch.randn(5, w, dtype=torch.float64)
    full = torch.fft.fft2(x).abs()
    half = torch.fft.rfft2(x).abs()
    shells_full = frequency_shells((5, w))
    shells_half = frequency_shells((5, w), onesided=True)
    mult = onesided_multiplicity(w)
    torch.testing.assert_close(
        shell_reduce(half, shells_half, weights=mult, num_shells=int(shells_full.max()) + 1),
        shell_reduce(full, shells_full),
    )


def test_power_spectrum_parseval_and_white_noise_is_flat():
    x = torch.randn(64, 128, 128, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    power = power_spectrum2d(x)
    torch.testing.assert_close(power.sum((-2, -1)), x.square().sum((-2, -1)))
    profile = power_profile(x).mean(0)  # unit-variance white noise: expected power 1 at every frequency
    assert profile[1:60].sub(1).abs().max().item() < 0.1


def test_sinusoid_peaks_at_its_frequency():
    h, w, k = 32, 48, 7
    x = torch.arange(w, dtype=torch.float64)
    y = torch.arange(h, dtype=torch.float64)[:, None]
    wave = torch.sin(2 * math.pi * (k * x / w + 3 * y / h))
    profile = power_profile(wave, shells="square")
    assert int(profile.argmax()) == k
    assert profile[k].item() > 1e3 * profile[torch.arange(len(profile)) != k].max().item()


def test_spectrum_upcasts_low_precision_under_autocast():
    x = torch.randn(2, 9, 10).bfloat16()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        spec = spectrum2d(x)
    assert spec.dtype == torch.complex64
    torch.testing.assert_close(spec, torch.fft.fft2(x.float()))
    assert spectrum2d(x.double(), onesided=True).dtype == torch.complex128


def test_shell_reduce_mean_and_gradient():
    values = torch.arange(9.0, dtype=torch.float64).reshape(3, 3).requires_grad_(True)
    shells = frequency_shells((3, 3))  # [[0, 1, 1], [1, 1, 1], [1, 1, 1]]
    mean = shell_reduce(values, shells, reduce="mean")
    assert mean.tolist() == [0.0, 4.5]
    mean[1].backward()
    assert values.grad.tolist() == [[0.0, 0.125, 0.125], [0.125] * 3, [0.125] * 3]
