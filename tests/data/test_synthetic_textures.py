"""Procedural textures: controlled spatial frequency, value noise, material sampling."""

from __future__ import annotations

import numpy as np
import pytest

from freqdense.data.synthetic import TEXTURE_KINDS, SyntheticConfig
from freqdense.data.synthetic.textures import FREQUENCY_RANGES, Material, albedo, sample_material, value_noise


def _profile(kind: str, frequency: float, n: int = 4096, length: float = 8.0, **kw) -> np.ndarray:
    u = np.linspace(0, length, n, endpoint=False, dtype=np.float32)
    m = Material(kind=kind, color0=(0.0, 0.0, 0.0), color1=(1.0, 1.0, 1.0), frequency=frequency, **kw)
    return albedo(m, u, np.full_like(u, 0.37))[0]


def _peak_frequency(signal: np.ndarray, length: float) -> float:
    spectrum = np.abs(np.fft.rfft(signal - signal.mean()))
    return float(np.argmax(spectrum)) / length


@pytest.mark.parametrize("kind,frequency", [("stripes", 5.0), ("gradient", 0.25), ("fine", 20.0)])
def test_periodic_textures_peak_at_their_frequency(kind, frequency):
    # angle = 0: the pattern varies along u with `frequency` cycles per metre.
    assert _peak_frequency(_profile(kind, frequency), 8.0) == pytest.approx(frequency, abs=0.13)


def test_checker_alternates_every_half_period():
    u = np.array([0.05, 0.3, 0.55, 0.8], dtype=np.float32)
    m = Material(kind="checker", color0=(0, 0, 0), color1=(1, 1, 1), frequency=2.0)
    # floor(2u) + floor(2v) with v = 0.1: cells of 0.5 m.
    np.testing.assert_array_equal(albedo(m, u, np.full_like(u, 0.1))[0], [0, 0, 1, 1])


def test_noise_spreads_energy_over_octaves_up_to_8x_its_base_frequency():
    signal = _profile("noise", 2.0, n=8192, length=32.0, seed=3)
    spectrum = np.abs(np.fft.rfft(signal - signal.mean())) ** 2
    freqs = np.fft.rfftfreq(signal.size, d=32.0 / signal.size)
    total = spectrum.sum()
    # 4 octaves at 2, 4, 8, 16 cycles/m: real energy above the base octave, almost none far above the last.
    assert spectrum[(freqs >= 2.0) & (freqs < 16.0)].sum() > 0.1 * total
    assert spectrum[freqs >= 64.0].sum() < 0.01 * total
    # A finer noise (higher base frequency) moves energy up.
    finer = _profile("noise", 8.0, n=8192, length=32.0, seed=3)
    assert _centroid(finer) > 2 * _centroid(signal)


def _centroid(signal: np.ndarray) -> float:
    power = np.abs(np.fft.rfft(signal - signal.mean())) ** 2
    return float((np.arange(power.size) * power).sum() / power.sum())


def test_value_noise_is_smooth_bounded_and_deterministic():
    u = np.linspace(-5, 5, 2001, dtype=np.float32)
    v = np.full_like(u, 1.7)
    a, b = value_noise(u, v, seed=11), value_noise(u, v, seed=11)
    assert np.array_equal(a, b) and a.min() >= 0 and a.max() <= 1
    assert not np.array_equal(a, value_noise(u, v, seed=12))
    # Lattice values at integers, C1-continuous in between: small steps for a 0.005 spacing.
    assert np.abs(np.diff(a)).max() < 0.02


def test_flat_is_constant_and_colors_are_the_two_endpoints():
    flat = _profile("flat", 0.0)
    assert flat.min() == flat.max() == 0.0
    stripes = _profile("stripes", 3.0)
    assert set(np.unique(stripes).tolist()) == {0.0, 1.0}


def test_sampled_materials_follow_the_mix_and_the_frequency_knob():
    only_fine = SyntheticConfig(texture_mix={"fine": 1.0})
    rng = np.random.default_rng(0)
    materials = [sample_material(rng, only_fine) for _ in range(50)]
    assert {m.kind for m in materials} == {"fine"}
    lo, hi = FREQUENCY_RANGES["fine"]
    assert all(lo <= m.frequency <= hi for m in materials)
    doubled = SyntheticConfig(texture_mix={"fine": 1.0}, texture_frequency=2.0)
    rng = np.random.default_rng(0)
    assert [sample_material(rng, doubled).frequency for _ in range(50)] == pytest.approx(
        [2 * m.frequency for m in materials]
    )
    mixed = SyntheticConfig()
    rng = np.random.default_rng(1)
    kinds = {sample_material(rng, mixed).kind for _ in range(200)}
    assert kinds == set(TEXTURE_KINDS)


def test_dark_materials_are_dark():
    rng = np.random.default_rng(2)
    assert all(sample_material(rng, SyntheticConfig(), dark=True).luminance < 0.1 for _ in range(30))
