from __future__ import annotations

import torch

from freqdense.ops import auto_blur, auto_blur_weight, gaussian_blur2d


def test_low_frequency_image_unchanged():
    ramp = torch.linspace(0, 1, 40).repeat(2, 3, 30, 1)  # channel-summed gradient 3/39 < 0.2 everywhere
    assert torch.equal(auto_blur(ramp), ramp)
    assert auto_blur_weight(ramp).abs().max() == 0


def test_checkerboard_region_is_blurred_with_area_ratio_weight():
    h = w = 40
    img = torch.full((1, 3, h, w), 0.5)
    ys, xs = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    board = ((ys + xs) % 2).float()
    img[..., 10:30, 10:30] = board[10:30, 10:30]
    weight = auto_blur_weight(img)
    # every pixel of the board is high-frequency: deep inside, the 9x9 ratio is 1 -> fully blurred
    assert weight[0, 0, 20, 20] == 1.0
    far = weight[0, 0, :3, :3]
    assert far.abs().max() == 0  # flat grey: untouched
    out = auto_blur(img)
    blurred = gaussian_blur2d(img, 11, 5.0)
    assert torch.allclose(out[..., 20, 20], blurred[..., 20, 20])
    assert torch.equal(out[..., :3, :3], img[..., :3, :3])
    # blend identity and weight set {0} U (0.6, 1]
    assert torch.allclose(out, weight * blurred + (1 - weight) * img, atol=1e-6)
    nz = weight[weight > 0]
    assert (nz > 0.6).all() and (nz <= 1).all()


def test_one_pixel_frame_never_blurred():
    # an all-high-frequency image: border ratio <= 45/81 < 0.6 (zero padding counted) -> the frame stays raw.
    torch.manual_seed(0)
    img = torch.randint(0, 2, (1, 3, 20, 24)).float()
    w = auto_blur_weight(img)
    assert w[..., 0, :].abs().max() == 0 and w[..., -1, :].abs().max() == 0
    assert w[..., :, 0].abs().max() == 0 and w[..., :, -1].abs().max() == 0


def _reference_auto_blur(image, thresh=0.2, area=60, pool=9, k=11, sigma=5.0):
    """Auto-Blur composed from the generic frequency ops (the implementation before the fast path)."""
    from freqdense.ops import forward_gradient_magnitude

    hf = (forward_gradient_magnitude(image) > thresh).to(image.dtype)
    ratio = torch.nn.functional.avg_pool2d(hf, pool, stride=1, padding=pool // 2, count_include_pad=True)
    w = ratio * (ratio > area / 100.0)
    return image + w * (gaussian_blur2d(image, k, sigma, padding_mode="reflect") - image)


def test_fast_path_equals_reference_composition():
    gen = torch.Generator().manual_seed(3)
    for dtype in (torch.float32, torch.float64):
        for shape in [(2, 3, 48, 80), (1, 3, 24, 40), (3, 1, 16, 17)]:
            smooth = torch.nn.functional.interpolate(torch.rand(shape[0], shape[1], 4, 4, generator=gen), shape[2:])
            noise = torch.rand(shape, generator=gen)
            img = torch.where(torch.rand(shape, generator=gen) > 0.5, noise, smooth).to(dtype)
            out, ref = auto_blur(img), _reference_auto_blur(img)
            assert out.dtype == dtype and out.is_contiguous()
            # The same operations in the same order: equal to the last bit on CPU (float32 depthwise path, float64
            # reference path); 1e-6 would still be float32 rounding if a BLAS summed in another order.
            assert torch.allclose(out, ref, rtol=0, atol=1e-6), (dtype, shape, (out - ref).abs().max())
            assert torch.equal(auto_blur_weight(img), _reference_weight(img))


def _reference_weight(image):
    from freqdense.ops import forward_gradient_magnitude

    hf = (forward_gradient_magnitude(image) > 0.2).to(image.dtype)
    ratio = torch.nn.functional.avg_pool2d(hf, 9, stride=1, padding=4, count_include_pad=True)
    return ratio * (ratio > 0.6)


def test_auto_blur_keeps_gradient_to_the_image():
    img = torch.rand(1, 3, 24, 32, dtype=torch.float64, requires_grad=True)
    auto_blur(img).sum().backward()
    assert img.grad is not None and torch.isfinite(img.grad).all()
