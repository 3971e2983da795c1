from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from freqdense.errors import ConfigError, ShapeError
from freqdense.ops.frequency import (
    forward_gradient_magnitude,
    gaussian_blur2d,
    gaussian_kernel1d,
    gaussian_kernel2d,
    one_sided_differences,
    two_sided_gradient_magnitude,
)


def _loop_forward_magnitude(img: torch.Tensor) -> torch.Tensor:
    """Step 2 of docs/reference_code.md#auto-blur, written pixel by pixel."""
    b, c, h, w = img.shape
    out = torch.zeros(b, 1, h, w, dtype=img.dtype)
    for n in range(b):
        for y in range(h):
            for x in range(w):
                gu = sum(abs(img[n, k, y, x] - img[n, k, y, x + 1]) for k in range(c)) if x + 1 < w else 0.0
                gv = sum(abs(img[n, k, y, x] - img[n, k, y + 1, x]) for k in range(c)) if y + 1 < h else 0.0
                out[n, 0, y, x] = math.sqrt(float(gu) ** 2 + float(gv) ** 2)
    return out


def test_one_sided_differences_hand_case():
    img = torch.tensor([[[[1.0, 4.0, 9.0], [2.0, 2.0, 0.0]]]])
    d = one_sided_differences(img)
    assert d.u_plus[0, 0].tolist() == [[-3.0, -5.0, 0.0], [0.0, 2.0, 0.0]]
    assert d.u_minus[0, 0].tolist() == [[0.0, 3.0, 5.0], [0.0, 0.0, -2.0]]
    assert d.v_plus[0, 0].tolist() == [[-1.0, 2.0, 9.0], [0.0, 0.0, 0.0]]
    assert d.v_minus[0, 0].tolist() == [[0.0, 0.0, 0.0], [1.0, -2.0, -9.0]]


def test_forward_magnitude_matches_pixel_loop_and_range():
    img = torch.rand(2, 3, 5, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(forward_gradient_magnitude(img), _loop_forward_magnitude(img))
    checker = (torch.arange(4)[:, None] + torch.arange(4)[None]) % 2
    worst = checker.to(torch.float64).expand(1, 3, 4, 4)
    assert forward_gradient_magnitude(worst).max().item() == pytest.approx(3 * math.sqrt(2))


def test_separate_channels_is_the_per_channel_norm():
    img = torch.rand(1, 2, 4, 4, dtype=torch.float64)
    sep = forward_gradient_magnitude(img, channels="separate")
    for k in range(2):
        torch.testing.assert_close(sep[:, k : k + 1], forward_gradient_magnitude(img[:, k : k + 1]))


def test_two_sided_modes_agree_on_ramps_and_differ_at_peaks():
    ramp = torch.tensor([[[[0.0, 1.0, 2.0, 3.0]]]])
    peak = torch.tensor([[[[0.0, 1.0, 0.0, 0.0]]]])
    # Interior of a ramp: both one-sided differences have magnitude 1.
    assert two_sided_gradient_magnitude(ramp, mode="mean_abs")[0, 0, 0, 1:3].tolist() == [1.0, 1.0]
    assert two_sided_gradient_magnitude(ramp, mode="central")[0, 0, 0, 1:3].tolist() == [1.0, 1.0]
    # At the peak the official code averages |1| and |1|; Eq. 9 as printed gives |I(x-1) - I(x+1)| / 2 = 0.
    assert two_sided_gradient_magnitude(peak, mode="mean_abs")[0, 0, 0, 1].item() == 1.0
    assert two_sided_gradient_magnitude(peak, mode="central")[0, 0, 0, 1].item() == 0.0
    # Border: the missing neighbour contributes a zero difference.
    assert two_sided_gradient_magnitude(ramp, mode="mean_abs")[0, 0, 0, 0].item() == 0.5


def test_magnitudes_have_finite_gradients_on_flat_regions():
    img = torch.zeros(1, 3, 4, 4, dtype=torch.float64, requires_grad=True)
    (forward_gradient_magnitude(img).sum() + two_sided_gradient_magnitude(img).sum()).backward()
    assert torch.isfinite(img.grad).all()
    x = torch.rand(1, 2, 4, 5, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: forward_gradient_magnitude(t, channels="separate"), (x,))


def test_gaussian_kernel_closed_form_and_normalisation():
    k = gaussian_kernel1d(11, 5.0, dtype=torch.float64)
    raw = [math.exp(-0.5 * ((i - 5) / 5.0) ** 2) for i in range(11)]
    torch.testing.assert_close(k, torch.tensor([r / sum(raw) for r in raw], dtype=torch.float64))
    assert k.sum().item() == pytest.approx(1.0, abs=1e-15)
    # docs/reference_code.md#auto-blur: nearly a box, about 0.067 at the edges and 0.110 at the centre.
    assert 0.06 < k[0].item() < 0.07 and 0.105 < k[5].item() < 0.115
    k2 = gaussian_kernel2d((3, 7), (1.0, 2.0), dtype=torch.float64)
    assert k2.shape == (3, 7) and k2.sum().item() == pytest.approx(1.0)
    with pytest.raises(ConfigError, match="odd"):
        gaussian_kernel1d(4, 1.0)


@pytest.mark.parametrize("mode", ["reflect", "replicate", "zeros", "circular"])
def test_separable_blur_equals_2d_convolution(mode):
    img = torch.rand(2, 3, 12, 15, dtype=torch.float64)
    out = gaussian_blur2d(img, 5, 1.5, padding_mode=mode)
    pad = (2, 2, 2, 2)
    padded = F.pad(img, pad) if mode == "zeros" else F.pad(img, pad, mode=mode)
    kernel = gaussian_kernel2d(5, 1.5, dtype=torch.float64).expand(3, 1, 5, 5)
    torch.testing.assert_close(out, F.conv2d(padded, kernel, groups=3))
    assert out.shape == img.shape and out.dtype == img.dtype


def test_blur_matches_scipy_gaussian_filter():
    ndimage = pytest.importorskip("scipy.ndimage")
    img = torch.rand(1, 3, 20, 24, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    # torch "reflect" == scipy "mirror"; truncate=1.0 with sigma=5 gives scipy's radius int(5 + 0.5) = 5 (size 11).
    ref = ndimage.gaussian_filter(img.numpy(), sigma=(0, 0, 5.0, 5.0), mode="mirror", truncate=1.0)
    torch.testing.assert_close(gaussian_blur2d(img), torch.from_numpy(ref), rtol=1e-12, atol=1e-12)
    ref0 = ndimage.gaussian_filter(img.numpy(), sigma=(0, 0, 1.0, 2.0), mode="constant", truncate=3.0)
    out0 = gaussian_blur2d(img, (7, 13), (1.0, 2.0), padding_mode="zeros")
    torch.testing.assert_close(out0, torch.from_numpy(ref0), rtol=1e-12, atol=1e-12)


def test_blur_preserves_constants_and_is_differentiable():
    const = torch.full((1, 1, 8, 8), 0.25, dtype=torch.float64)
    torch.testing.assert_close(gaussian_blur2d(const, 5, 2.0), const)
    x = torch.rand(1, 1, 6, 7, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: gaussian_blur2d(t, 3, 1.0), (x,))


def test_blur_rejects_images_smaller_than_the_reflect_padding():
    with pytest.raises(ShapeError, match="replicate"):
        gaussian_blur2d(torch.rand(1, 3, 4, 40))
