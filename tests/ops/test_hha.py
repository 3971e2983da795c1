"""HHA (Gupta et al. 2014) on ray-cast planes with closed-form disparity, height and angle."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from freqdense.errors import ShapeError
from freqdense.ops import depth_to_hha, estimate_gravity, surface_normals

H, W = 48, 64
K = torch.tensor([[60.0, 0.0, 31.5], [0.0, 60.0, 23.5], [0.0, 0.0, 1.0]], dtype=torch.float64)


def _rays() -> tuple[np.ndarray, np.ndarray]:
    u = (np.arange(W)[None, :] - 31.5) / 60.0
    v = (np.arange(H)[:, None] - 23.5) / 60.0
    return np.broadcast_to(u, (H, W)), np.broadcast_to(v, (H, W))


def _scene(cam_height: float, pitch_deg: float, wall: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Ray-cast z-depth of a floor (camera ``cam_height`` above it, pitched down) and an optional wall ``wall`` m
    ahead (horizontally). Returns (depth, true height above floor in metres)."""
    t = math.radians(pitch_deg)
    up = np.array([0.0, -math.cos(t), -math.sin(t)])  # world up in camera coords (x right, y down, z fwd)
    fwd = np.array([0.0, -math.sin(t), math.cos(t)])  # world horizontal forward in camera coords
    u, v = _rays()
    d_up = v * up[1] + up[2]
    z = np.where(d_up < 0, -cam_height / np.where(d_up < 0, d_up, -1.0), np.inf)
    if wall is not None:
        d_fw = v * fwd[1] + fwd[2]
        z = np.minimum(z, np.where(d_fw > 0, wall / np.where(d_fw > 0, d_fw, 1.0), np.inf))
    assert np.isfinite(z).all()
    height = z * (u * up[0] + v * up[1] + up[2]) + cam_height
    return z, height


def _run(depth: np.ndarray, **kw) -> np.ndarray:
    return depth_to_hha(torch.from_numpy(depth)[None, None], K[None], **kw)[0].numpy()


def test_floor_plane_closed_form():
    depth, _ = _scene(cam_height=1.5, pitch_deg=35.0)
    out = _run(depth)
    # disparity channel: rint(31000 / max(Z_cm, 100)), clipped at 255
    np.testing.assert_array_equal(out[0], np.clip(np.rint(31000.0 / np.maximum(depth * 100, 100)), 0, 255))
    # floor is the lowest surface: height 0 everywhere (a wrong gravity would give a depth-dependent ramp)
    np.testing.assert_array_equal(out[1], 0.0)
    # normal parallel to gravity: angle 0 deg -> 0 + 128 - 90 = 38
    np.testing.assert_array_equal(out[2], 38.0)


def test_gravity_recovers_tilt():
    depth, _ = _scene(cam_height=1.2, pitch_deg=25.0)
    normals = surface_normals(torch.from_numpy(depth)[None, None], K[None], 10)
    up = estimate_gravity(normals)[0].numpy()
    t = math.radians(25.0)
    np.testing.assert_allclose(up, [0.0, -math.cos(t), -math.sin(t)], atol=1e-9)


def test_floor_and_wall_heights_and_angles():
    depth, height = _scene(cam_height=1.4, pitch_deg=20.0, wall=3.0)
    out = _run(depth, quantize=False)
    # gravity from 21x21 normals: windows straddling the floor/wall crease bias it slightly (Gupta's algorithm does
    # the same); measured 0.43 deg here, i.e. up to ~1 cm of height error at 3 m
    t = math.radians(20.0)
    up = estimate_gravity(surface_normals(torch.from_numpy(depth)[None, None], K[None], 10))[0].numpy()
    assert math.degrees(math.acos(min(1.0, up @ [0.0, -math.cos(t), -math.sin(t)]))) < 0.5
    np.testing.assert_allclose(out[1], height * 100.0, atol=1.5)  # centimetres above the floor
    u, v = _rays()
    h_est = depth * (u * up[0] + v * up[1] + up[2])  # same formula with the estimated up: exact
    np.testing.assert_allclose(out[1], (h_est - h_est.min()) * 100.0, atol=1e-6)
    normals = surface_normals(torch.from_numpy(depth)[None, None], K[None], 3)[0].numpy()
    floor = np.abs(normals[1] + math.cos(math.radians(20.0))) < 1e-9  # pixels whose whole 7x7 window is floor
    wall = np.abs(normals[1] - math.sin(math.radians(20.0))) < 1e-9  # faces the camera: -forward
    assert floor.sum() > 200 and wall.sum() > 200
    np.testing.assert_allclose(out[2][floor], 38.0, atol=0.5)
    np.testing.assert_allclose(out[2][wall], 128.0, atol=0.5)


def test_low_camera_uses_default_floor():
    depth, _ = _scene(cam_height=0.5, pitch_deg=30.0)  # lowest point only 0.5 m below: assume floor at -1.3 m
    np.testing.assert_array_equal(_run(depth)[1], 80.0)


def test_batch_invalid_pixels_and_unit_range():
    d1, _ = _scene(1.5, 35.0)
    d2, _ = _scene(1.1, 25.0)
    depth = torch.from_numpy(np.stack([d1, d2]))[:, None].clone()
    depth[1, 0, 10:14, 20:30] = 0.0
    out = depth_to_hha(depth, K.expand(2, 3, 3), unit_range=True)
    assert out.shape == (2, 3, H, W) and out.dtype == torch.float64
    assert (out[1, :, 10:14, 20:30] == 0).all()
    np.testing.assert_array_equal(out[0].numpy() * 255, _run(d1))
    mask = depth[1, 0].numpy() > 0
    np.testing.assert_allclose((out[1, 1].numpy() * 255)[mask], 0.0, atol=1e-9)
    np.testing.assert_allclose((out[1, 2].numpy() * 255)[mask], 38.0, atol=1e-9)


def test_shape_errors():
    with pytest.raises(ShapeError):
        depth_to_hha(torch.ones(1, 2, 4, 4), K[None])
    with pytest.raises(ShapeError):
        depth_to_hha(torch.ones(2, 1, 4, 4), K[None])


def test_cli_data_hha_caches_and_resumes(tmp_path, capsys):
    from PIL import Image

    from freqdense.cli.main import main
    from freqdense.data import create_dataset

    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        "model: {name: multitask_baseline, num_classes: 10}\n"
        f"data: {{dataset: synthetic, args: {{size: [24, 32], num_samples: 2, cache_dir: '{tmp_path}'}}}}\n"
    )
    out = tmp_path / "hha"
    assert main(["data", "hha", str(cfg), "--split", "val", "--out", str(out)]) == 0
    assert "wrote 2 HHA images (0 cached)" in capsys.readouterr().out
    sample = create_dataset("synthetic", split="val", size=[24, 32], num_samples=2, cache_dir=str(tmp_path))[1]
    with Image.open(out / "val" / "000001.png") as img:
        cached = np.asarray(img)
    expected = depth_to_hha(sample["depth"][None], sample["intrinsics"][None])[0].permute(1, 2, 0).numpy()
    np.testing.assert_array_equal(cached, expected.astype(np.uint8))
    assert main(["data", "hha", str(cfg), "--split", "val", "--out", str(out)]) == 0
    assert "wrote 0 HHA images (2 cached)" in capsys.readouterr().out
