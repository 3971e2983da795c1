"""Feature similarity (intra / inter / margin, IntraSim maps) and kernel frequency responses."""

from __future__ import annotations

import math

import torch

from freqdense.analysis.feature_similarity import (
    SimilarityAccumulator,
    downsample_labels,
    encoder_kernel_response,
    feature_similarity,
    kernel_response,
    lowpass_frequency_response,
    plot_kernel_responses,
)


def _two_class_labels() -> torch.Tensor:
    lab = torch.zeros(1, 4, 4, dtype=torch.long)
    lab[..., 2:] = 1
    return lab


def test_identical_features_per_class_give_intra_one_and_orthogonal_means_inter_zero():
    lab = _two_class_labels()
    feat = torch.zeros(1, 3, 4, 4)
    feat[0, 0, :, :2] = 2.0  # class 0 -> e0
    feat[0, 1, :, 2:] = 5.0  # class 1 -> e1
    out = feature_similarity(feat, lab, num_classes=2)
    assert out.intra.item() == 1.0
    assert abs(out.inter.item()) < 1e-12
    assert out.margin.item() == 1.0
    assert torch.allclose(out.intra_map, torch.ones(1, 4, 4))


def test_hand_computed_intra_and_inter():
    lab = _two_class_labels()
    feat = torch.zeros(1, 2, 4, 4)
    # class 0: half its pixels (1, 0), half (0, 1) -> mean (0.5, 0.5), cos = 1/sqrt(2) everywhere
    feat[0, 0, :2, :2] = 1.0
    feat[0, 1, 2:, :2] = 1.0
    # class 1: all (1, 0) -> intra 1; inter = cos((.5,.5), (1,0)) = 1/sqrt(2)
    feat[0, 0, :, 2:] = 1.0
    out = feature_similarity(feat, lab, num_classes=2)
    s = 1 / math.sqrt(2)
    assert math.isclose(out.intra.item(), (s + 1) / 2, rel_tol=1e-6)
    assert math.isclose(out.inter.item(), s, rel_tol=1e-6)
    assert math.isclose(out.margin.item(), (s + 1) / 2 - s, rel_tol=1e-5)


def test_ignored_pixels_are_nan_and_excluded():
    lab = _two_class_labels()
    lab[0, 0, 0] = 255
    feat = torch.randn(1, 3, 4, 4)
    feat[0, :, 0, 0] = 1e6  # would dominate class 0's mean if it were counted
    out = feature_similarity(feat, lab, num_classes=2)
    assert math.isnan(out.intra_map[0, 0, 0].item())
    ref = feat[0, :, lab[0] == 0].mean(1)
    cos = torch.nn.functional.cosine_similarity(feat[0, :, 0, 1], ref, dim=0)
    assert math.isclose(out.intra_map[0, 0, 1].item(), cos.item(), rel_tol=1e-5)


def test_mode_downsampling_and_accumulator():
    lab = torch.tensor([[[0, 0, 1, 1], [0, 1, 1, 1], [255, 255, 2, 2], [255, 0, 2, 2]]])
    down = downsample_labels(lab, (2, 2), method="mode", num_classes=3)
    assert down.tolist() == [[[0, 1], [0, 2]]]
    assert downsample_labels(torch.full((1, 4, 4), 255), (2, 2), num_classes=3).eq(255).all()
    acc = SimilarityAccumulator(2)
    acc.update(torch.ones(2, 3, 4, 4), _two_class_labels().repeat(2, 1, 1))
    assert acc.compute()["intra"] == 1.0 and acc.compute()["num_images_intra"] == 2


def test_box_kernel_response_matches_the_closed_form():
    k, n = 3, 16
    box = torch.full((1, k * k, 2, 2), 1.0 / (k * k))  # uniform kernel at 4 pixels, layout ky * k + kx
    r = lowpass_frequency_response(box, n_fft=n)
    u = torch.arange(n // 2 + 1, dtype=torch.float64)
    # |sum_{x<k} e^{-2 pi i u x / n}| / k = |sin(pi u k / n) / (k sin(pi u / n))|, 1 at u = 0
    d = torch.where(u == 0, 1.0, (torch.sin(math.pi * u * k / n) / (k * torch.sin(math.pi * u / n))).abs())
    torch.testing.assert_close(r.horizontal.double(), d, atol=1e-6, rtol=0)
    torch.testing.assert_close(r.vertical.double(), d, atol=1e-6, rtol=0)
    centre = n // 2
    torch.testing.assert_close(r.amplitude[centre + 3, centre + 5].double(), d[3] * d[5], atol=1e-6, rtol=0)
    assert r.num_kernels == 4 and r.radial[0] == 1.0


def test_average_is_over_amplitudes_and_encoder_response(tmp_path):
    delta = torch.zeros(1, 3, 3)
    delta[0, 1, 1] = 1.0  # |FFT| = 1 everywhere
    box = torch.full((1, 3, 3), 1 / 9)
    both = kernel_response(torch.cat([delta, box]), n_fft=8)
    torch.testing.assert_close(
        both.amplitude, (kernel_response(delta, n_fft=8).amplitude + kernel_response(box, n_fft=8).amplitude) / 2
    )
    enc = encoder_kernel_response(torch.ones(4, 2, 3, 3), n_fft=8)
    assert enc.num_kernels == 8 and math.isclose(enc.radial[0].item(), 9.0)
    assert plot_kernel_responses({"box": both}, tmp_path / "r.png").stat().st_size > 0
