"""backproject / project / warp: Monodepth2 conventions checked against closed forms."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from freqdense.errors import ShapeError
from freqdense.ops import backproject, project, warp


def _K(fx=50.0, fy=40.0, cx=7.5, cy=5.0, batch=1, four=False, dtype=torch.float32):
    k = torch.tensor([[fx, 0, cx], [0, fy, cy], [0, 0, 1.0]], dtype=dtype)
    if four:
        k4 = torch.eye(4, dtype=dtype)
        k4[:3, :3] = k
        k = k4
    return k.expand(batch, *k.shape).clone()


def _translation(tx=0.0, ty=0.0, tz=0.0, batch=1, dtype=torch.float32):
    T = torch.eye(4, dtype=dtype)
    T[:3, 3] = torch.tensor([tx, ty, tz], dtype=dtype)
    return T.expand(batch, 4, 4).clone()


def test_backproject_matches_pinhole_closed_form():
    depth = torch.rand(2, 1, 4, 6) + 0.5
    K = _K(batch=2)
    points = backproject(depth, torch.linalg.inv(K))
    assert points.shape == (2, 4, 24)
    # X = (x - cx) Z / fx, Y = (y - cy) Z / fy, pixel index y * W + x (Monodepth2's layout).
    y, x = 3, 5
    z = depth[1, 0, y, x]
    expected = torch.stack([(x - 7.5) * z / 50.0, (y - 5.0) * z / 40.0, z, torch.tensor(1.0)])
    torch.testing.assert_close(points[1, :, y * 6 + x], expected)


def test_backproject_accepts_3x3_and_4x4():
    depth = torch.rand(1, 1, 3, 5) + 1
    a = backproject(depth, torch.linalg.inv(_K()))
    b = backproject(depth, torch.linalg.inv(_K(four=True)))
    torch.testing.assert_close(a, b)


def test_identity_pose_gives_the_pixel_grid():
    H, W = 5, 7
    depth = torch.rand(1, 1, H, W) + 0.3
    K = _K()
    grid = project(backproject(depth, torch.linalg.inv(K)), K, _translation(), size=(H, W))
    ys, xs = torch.meshgrid(torch.arange(H, dtype=torch.float32), torch.arange(W, dtype=torch.float32), indexing="ij")
    # align_corners=True normalisation: x_norm = 2 x / (W - 1) - 1.
    expected = torch.stack([2 * xs / (W - 1) - 1, 2 * ys / (H - 1) - 1], dim=-1)[None]
    torch.testing.assert_close(grid, expected, atol=1e-5, rtol=1e-5)


def test_stereo_translation_shifts_by_disparity():
    # Right camera at +b along x: T_{left->right} translates by -b, so x_right = x - fx * b / Z.
    H, W, b, fx = 4, 9, 0.2, 50.0
    depth = torch.rand(1, 1, H, W) * 3 + 1
    K = _K(fx=fx)
    grid = project(backproject(depth, torch.linalg.inv(K)), K, _translation(tx=-b), size=(H, W))
    x_pix = (grid[..., 0] + 1) * (W - 1) / 2
    y_pix = (grid[..., 1] + 1) * (H - 1) / 2
    xs = torch.arange(W, dtype=torch.float32).expand(H, W)
    torch.testing.assert_close(x_pix[0], xs - fx * b / depth[0, 0], atol=1e-4, rtol=1e-5)
    torch.testing.assert_close(y_pix[0], torch.arange(H, dtype=torch.float32)[:, None].expand(H, W), atol=1e-4, rtol=0)


def test_project_matches_numpy_reference_for_a_general_pose():
    rng = np.random.default_rng(0)
    H, W = 3, 4
    depth = rng.uniform(1, 3, (1, 1, H, W))
    angle = 0.1
    R = np.array([[np.cos(angle), 0, np.sin(angle)], [0, 1, 0], [-np.sin(angle), 0, np.cos(angle)]])
    T = np.eye(4)
    T[:3, :3], T[:3, 3] = R, [0.1, -0.05, 0.2]
    K = np.array([[30.0, 0, 1.5], [0, 25.0, 1.0], [0, 0, 1]])
    # Independent reference: loop over pixels.
    expected = np.zeros((H, W, 2))
    for y in range(H):
        for x in range(W):
            P = depth[0, 0, y, x] * np.linalg.inv(K) @ [x, y, 1.0]
            q = K @ (R @ P + T[:3, 3])
            expected[y, x] = [2 * (q[0] / q[2]) / (W - 1) - 1, 2 * (q[1] / q[2]) / (H - 1) - 1]
    t = lambda a: torch.tensor(a, dtype=torch.float64)[None] if a.ndim == 2 else torch.tensor(a)  # noqa: E731
    points = backproject(t(depth), t(np.linalg.inv(K)))
    grid = project(points, t(K), t(T), size=(H, W))
    np.testing.assert_allclose(grid[0].numpy(), expected, rtol=1e-6, atol=1e-6)  # eps = 1e-7 is added to z
    # 4-D points need no size.
    torch.testing.assert_close(project(points.reshape(1, 4, H, W), t(K), t(T)), grid)


def test_warp_identity_and_integer_shift():
    img = torch.rand(1, 3, 6, 8)
    K = _K(fx=10.0, fy=10.0, cx=3.5, cy=2.5)
    same = warp(img, torch.full((1, 1, 6, 8), 2.0), K, _translation())
    torch.testing.assert_close(same.image, img, atol=1e-6, rtol=0)
    assert same.valid.all()
    # A fronto-parallel plane at Z = 2 and a source camera at +0.2 along x: disparity fx * b / Z = 1 px,
    # so target pixel x samples source pixel x - 1; the first column falls outside the source.
    shifted = warp(img, torch.full((1, 1, 6, 8), 2.0), K, _translation(tx=-0.2))
    torch.testing.assert_close(shifted.image[..., 1:], img[..., :-1], atol=1e-5, rtol=0)
    assert not shifted.valid[..., 0].any() and shifted.valid[..., 1:].all()
    # 'border' padding repeats the edge column there (Monodepth2's default).
    torch.testing.assert_close(shifted.image[..., 0], img[..., 0], atol=1e-5, rtol=0)


def test_warp_grid_is_reusable_with_grid_sample():
    img = torch.rand(2, 1, 5, 6)
    depth = torch.rand(2, 1, 5, 6) + 1
    K = _K(batch=2)
    out = warp(img, depth, K, _translation(0.1, 0.0, 0.05, batch=2))
    again = F.grid_sample(img, out.grid, padding_mode="border", align_corners=True)
    torch.testing.assert_close(out.image, again)


def test_points_behind_the_source_camera_are_invalid():
    depth = torch.ones(1, 1, 4, 4)
    out = warp(torch.rand(1, 1, 4, 4), depth, _K(cx=1.5, cy=1.5), _translation(tz=-2.0))
    assert not out.valid.any()


def test_gradcheck():
    torch.manual_seed(0)
    H, W = 3, 4
    depth = (torch.rand(1, 1, H, W, dtype=torch.float64) + 1).requires_grad_()
    K = _K(fx=3.0, fy=3.0, cx=1.5, cy=1.0, dtype=torch.float64)
    inv_K = torch.linalg.inv(K).requires_grad_()
    assert torch.autograd.gradcheck(lambda d, ik: backproject(d, ik), (depth, inv_K))
    points = backproject(depth, torch.linalg.inv(K)).detach().requires_grad_()
    T = _translation(0.05, 0.02, 0.1, dtype=torch.float64).requires_grad_()
    Kg = K.clone().requires_grad_()
    assert torch.autograd.gradcheck(lambda p, k, t: project(p, k, t, size=(H, W)), (points, Kg, T))
    source = torch.rand(1, 2, H, W, dtype=torch.float64, requires_grad=True)
    # The source camera moves back (tz > 0) so every pixel lands strictly inside: no border-clamping kinks.
    T_small = _translation(0.013, 0.007, 0.3, dtype=torch.float64).requires_grad_()
    assert torch.autograd.gradcheck(lambda s, d, t: warp(s, d, K, t).image, (source, depth, T_small))


def test_shape_errors_name_the_tensor():
    with pytest.raises(ShapeError, match="depth"):
        backproject(torch.ones(1, 2, 3, 3), torch.eye(3)[None])
    with pytest.raises(ShapeError, match="inv_K"):
        backproject(torch.ones(1, 1, 3, 3), torch.eye(2)[None])
    with pytest.raises(ShapeError, match="size"):
        project(torch.ones(1, 4, 9), torch.eye(3)[None], torch.eye(4)[None])
    with pytest.raises(ShapeError, match="T"):
        project(torch.ones(1, 4, 3, 3), torch.eye(3)[None], torch.eye(3)[None])
