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
