from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from freqdense.errors import DataError, ShapeError
from freqdense.spectral import (
    SpectrumAccumulator,
    ce_spectrum,
    label_energy_spectrum,
    oracle_logits,
    relative_discrepancy,
)


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _blob_labels(b: int, h: int, w: int, c: int, seed: int, void: bool = True) -> torch.Tensor:
    """Piecewise-constant labels (upsampled random coarse grid) with a void stripe."""
    coarse = torch.randint(0, c, (b, 1, max(h // 6, 1), max(w // 6, 1)), generator=_gen(seed)).float()
    labels = F.interpolate(coarse, size=(h, w), mode="nearest")[:, 0].long()
    if void:
        labels[:, h // 3 : h // 3 + 2, :] = 255
    return labels


@pytest.mark.parametrize("size", [(17, 17), (16, 16), (12, 21), (21, 12)])
@pytest.mark.parametrize("shells", ["square", "radial"])
@pytest.mark.parametrize("units", ["index", "shorter_side"])
def test_components_sum_to_summed_cross_entropy(size, shells, units):
    h, w = size
    logits = 3 * torch.randn(2, 5, h, w, generator=_gen(0))
    labels = _blob_labels(2, h, w, 5, seed=1)
    spec = ce_spectrum(logits, labels, shells=shells, units=units)
    ref = torch.stack(
        [
            F.cross_entropy(logits[i : i + 1].double(), labels[i : i + 1], reduction="sum", ignore_index=255)
            for i in (0, 1)
        ]
    )
    torch.testing.assert_close(spec.loss.sum(-1), ref, rtol=1e-10, atol=0)
    torch.testing.assert_close(spec.ce, ref, rtol=1e-12, atol=0)
    assert int(spec.shell_size.sum()) == h * w
    assert spec.num_valid.tolist() == [int((labels[i] != 255).sum()) for i in (0, 1)]


def test_float32_compute_is_within_1e5_relative():
    logits = 4 * torch.randn(1, 21, 65, 65, generator=_gen(2))
    labels = _blob_labels(1, 65, 65, 21, seed=3)
    spec = ce_spectrum(logits, labels, dtype=torch.float32)
    ref = F.cross_entropy(logits.double(), labels, reduction="sum", ignore_index=255)
    assert abs(spec.loss.sum().double().item() / ref.item() - 1) < 1e-5


def test_void_pixels_drop_out_of_every_component():
    logits = torch.randn(1, 4, 15, 15, generator=_gen(4))
    labels = _blob_labels(1, 15, 15, 4, seed=5)
    void = labels == 255
    changed = logits.clone()
    changed[:, :, void[0]] = 100 * torch.randn(4, int(void.sum()), generator=_gen(6))
    a, b = ce_spectrum(logits, labels), ce_spectrum(changed, labels)
    torch.testing.assert_close(a.loss, b.loss, rtol=1e-12, atol=1e-9)
    torch.testing.assert_close(a.logit_magnitude, b.logit_magnitude, rtol=1e-12, atol=1e-9)


def test_uniform_prediction_puts_all_loss_at_dc():
    # N = log C everywhere, so L(nu) = log C |m(nu)|^2 / HW with m the FFT of the all-ones mask: a pure DC term.
    h, w, c = 9, 12, 6
    spec = ce_spectrum(torch.zeros(1, c, h, w), _blob_labels(1, h, w, c, seed=7, void=False))
    assert spec.loss[0, 0].item() == pytest.approx(h * w * math.log(c), rel=1e-12)
    assert spec.loss[0, 1:].abs().max().item() < 1e-9


def test_smoothed_oracle_matches_closed_form_with_label_energy():
    # Without void: N = n1 + s (1 - B), so L(nu) = -s E(nu) for nu != 0 with s = log((1 - eps + eps/C) / (eps/C)).
    c, eps = 4, 0.2
    labels = _blob_labels(1, 20, 20, c, seed=8, void=False)
    spec = ce_spectrum(oracle_logits(labels, c, smoothing=eps), labels)
    energy = label_energy_spectrum(labels, c)
    s = math.log((1 - eps + eps / c) / (eps / c))
    torch.testing.assert_close(spec.loss[0, 1:], -s * energy[0, 1:], rtol=1e-6, atol=1e-6)  # float32 logits
    assert energy.sum().item() == pytest.approx(400.0, rel=1e-12)  # Parseval: one unit of energy per pixel


def test_profiles_peak_at_a_sinusoid_frequency():
    h = w = 60
    k = 5  # period 12 px: the sampled square wave is exactly periodic
    x = torch.arange(w, dtype=torch.float64)
    wave = torch.cos(2 * math.pi * k * (x + 0.5) / w).expand(h, w)  # no sample on a zero crossing
    labels = (wave > 0).long()[None]  # square wave: odd harmonics k, 3k, ... with the largest at k
    logits = torch.stack([0.5 * wave, torch.zeros(h, w, dtype=torch.float64)])[None]
    spec = ce_spectrum(logits, labels)
    assert int(spec.label_magnitude[0, 1:].argmax()) + 1 == k
    assert int(spec.logit_magnitude[0, 1:].argmax()) + 1 == k
    # A wave with an integer period has no energy at frequencies other than multiples of k.
    assert spec.label_magnitude[0, k + 1 : 2 * k].max().item() < 1e-9


def test_gradient_equals_cross_entropy_gradient():
    logits = torch.randn(1, 3, 10, 11, dtype=torch.float64, requires_grad=True)
    labels = _blob_labels(1, 10, 11, 3, seed=9)
    (g_spec,) = torch.autograd.grad(ce_spectrum(logits, labels).loss.sum(), logits)
    (g_ref,) = torch.autograd.grad(F.cross_entropy(logits, labels, ignore_index=255, reduction="sum"), logits)
    torch.testing.assert_close(g_spec, g_ref, rtol=1e-9, atol=1e-12)


def test_gradcheck_of_single_component():
    logits = torch.randn(1, 3, 5, 6, dtype=torch.float64, requires_grad=True)
    labels = _blob_labels(1, 5, 6, 3, seed=10, void=False)
    assert torch.autograd.gradcheck(lambda t: ce_spectrum(t, labels).loss[:, 2], (logits,))


def test_low_precision_logits_under_autocast():
    logits = torch.randn(1, 4, 12, 12).bfloat16()
    labels = _blob_labels(1, 12, 12, 4, seed=11)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        spec = ce_spectrum(logits, labels)
    assert spec.loss.dtype == torch.float64
    ref = F.cross_entropy(logits.double(), labels, reduction="sum", ignore_index=255)
    assert spec.loss.sum().item() == pytest.approx(ref.item(), rel=1e-10)


def test_accumulator_sums_images_of_different_sizes():
    acc = SpectrumAccumulator()
    l1, y1 = torch.randn(2, 3, 9, 9, generator=_gen(12)), _blob_labels(2, 9, 9, 3, seed=13)
    l2, y2 = torch.randn(1, 3, 15, 13, generator=_gen(14)), _blob_labels(1, 15, 13, 3, seed=15)
    s1, s2 = acc.update(l1, y1), acc.update(l2, y2)
    out = acc.compute()
    assert out.num_images == 3 and len(out.loss) == 8  # shells 0..7 of the 15 x 13 map
    expected = F.pad(s1.loss.sum(0), (0, 3)) + s2.loss.sum(0)  # the 9 x 9 maps have shells 0..4
    torch.testing.assert_close(out.loss, expected)
    torch.testing.assert_close(out.relative_discrepancy, relative_discrepancy(expected))
    per_image = torch.cat([F.pad(relative_discrepancy(s1.loss), (0, 3)), relative_discrepancy(s2.loss)])
    torch.testing.assert_close(out.mean_image_discrepancy, per_image.mean(0))
    ce = sum(F.cross_entropy(l.double(), y, reduction="sum", ignore_index=255).item() for l, y in ((l1, y1), (l2, y2)))
    assert out.ce == pytest.approx(ce, rel=1e-12)
    assert out.relative_discrepancy[-1].item() == 0.0
    assert set(out.to_dict()) >= {"loss", "relative_discrepancy", "label_magnitude", "ce_sum", "num_images"}


def test_input_validation():
    with pytest.raises(ShapeError, match="upsample the logits"):
        ce_spectrum(torch.randn(1, 3, 8, 8), torch.zeros(1, 4, 4, dtype=torch.long))
    with pytest.raises(DataError, match="outside"):
        ce_spectrum(torch.randn(1, 3, 4, 4), torch.full((1, 4, 4), 7))
    with pytest.raises(ShapeError, match="int"):
        ce_spectrum(torch.randn(1, 3, 4, 4), torch.zeros(1, 4, 4))
