"""Sensor depth: the recorded misalignment is the true one; noise, quantisation and holes follow the model."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from freqdense.data.synthetic import SyntheticConfig, SyntheticScenes
from freqdense.data.synthetic.sensor import NATIVE_FOCAL_BASELINE, flow_field, sample_misalignment

SIZE = (48, 64)
EXACT = dict(sensor_noise=0.0, sensor_holes=0.0, sensor_quantization=False)


def _samples(num=3, **knobs):
    ds = SyntheticScenes(
        split="val", config=SyntheticConfig(**knobs), size=SIZE, num_samples=num, modalities=("depth", "sensor")
    )
    return [ds[i] for i in range(num)]


def _sample_at(depth: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """depth (1, H, W) bilinearly sampled at p + flow(p)."""
    H, W = depth.shape[-2:]
    ys, xs = torch.meshgrid(torch.arange(H, dtype=torch.float32), torch.arange(W, dtype=torch.float32), indexing="ij")
    grid = torch.stack([2 * (xs + flow[0]) / (W - 1) - 1, 2 * (ys + flow[1]) / (H - 1) - 1], -1)[None]
    return F.grid_sample(depth[None], grid, align_corners=True, padding_mode="zeros")[0]


def _interior(depth: torch.Tensor, radius: int = 2) -> torch.Tensor:
    """Pixels at least ``radius`` px from any depth edge or crease and from the border (H, W).

    Inverse depth is affine in pixel coordinates on a plane: its second differences flag edges and creases
    but not slanted surfaces.
    """
    inv = 1.0 / depth.clamp_min(1e-6)
    flat = torch.ones_like(inv[1:-1, 1:-1], dtype=torch.bool)
    H, W = inv.shape
    for (ay, ax), (by, bx) in (((0, 1), (2, 1)), ((1, 0), (1, 2)), ((0, 0), (2, 2)), ((0, 2), (2, 0))):
        second = inv[ay : ay + H - 2, ax : ax + W - 2] + inv[by : by + H - 2, bx : bx + W - 2] - 2 * inv[1:-1, 1:-1]
        flat &= second.abs() < 0.01 * inv[1:-1, 1:-1]
    ok = torch.zeros_like(inv, dtype=torch.bool)
    ok[1:-1, 1:-1] = flat & (depth[1:-1, 1:-1] > 0)
    ok = -F.max_pool2d(-ok[None, None].float(), 2 * radius + 1, 1, radius)[0, 0] > 0.5
    ok[: radius + 1] = ok[-radius - 1 :] = False
    ok[:, : radius + 1] = ok[:, -radius - 1 :] = False
    return ok


def test_flow_field_is_the_affine_map():
    affine = np.array([[0.01, -0.02, 1.5], [0.015, 0.005, -0.75]])
    flow = flow_field(affine, 5, 7)
    y, x = 3, 6
    assert flow[0, y, x] == pytest.approx(0.01 * x - 0.02 * y + 1.5)
    assert flow[1, y, x] == pytest.approx(0.015 * x + 0.005 * y - 0.75)


def test_misalignment_magnitude_follows_the_knob():
    rng = np.random.default_rng(0)
    assert np.abs(sample_misalignment(rng, 48, 64, 0.0)).max() == 0
    flows = [flow_field(sample_misalignment(np.random.default_rng(i), 48, 64, 1.0), 48, 64) for i in range(20)]
    shifts = np.array([np.abs(f).mean() for f in flows])
    assert 0.1 < shifts.mean() < 1.5 and np.abs(flows).max() < 0.015 * 64 * 1.5 + 1


def test_sensor_depth_images_the_point_seen_at_p_plus_flow():
    for s in _samples(**EXACT):
        flow = s["sensor_flow"]
        assert flow.abs().max() > 0.2  # the default misalignment is not negligible
        keep = _interior(s["depth"][0])[None] & (s["sensor_depth"] > 0)  # flow is < 2 px at this size
        assert keep.float().mean() > 0.3

        def rel(f: torch.Tensor, s=s, keep=keep) -> torch.Tensor:
            return ((s["sensor_depth"] - _sample_at(s["depth"], f)).abs() / s["sensor_depth"].clamp_min(1e-3))[keep]

        recorded = rel(flow)
        # Bilinear interpolation of depth on planes: tiny error at the recorded flow...
        assert recorded.median() < 5e-4 and recorded.mean() < 1e-3
        # ... and clearly worse for a wrong one (no flow, or off by half a pixel).
        assert rel(torch.zeros_like(flow)).mean() > 5 * recorded.mean()
        assert rel(flow + torch.tensor([0.5, 0.0])[:, None, None]).mean() > 3 * recorded.mean()


def test_aligned_sensor_without_degradations_equals_depth():
    for s in _samples(misalignment=0.0, **EXACT):
        assert torch.equal(s["sensor_flow"], torch.zeros_like(s["sensor_flow"]))
        torch.testing.assert_close(s["sensor_depth"], s["depth"], rtol=1e-6, atol=0)


def test_noise_is_depth_dependent_with_the_kinect_sigma():
    clean = _samples(num=4, sensor_holes=0.0, sensor_quantization=False, sensor_noise=0.0)
    noisy = _samples(num=4, sensor_holes=0.0, sensor_quantization=False, sensor_noise=1.0)
    z = torch.cat([c["sensor_depth"][c["sensor_depth"] > 0] for c in clean])
    diff = torch.cat([(n["sensor_depth"] - c["sensor_depth"])[c["sensor_depth"] > 0] for n, c in zip(noisy, clean)])
    sigma = 0.0012 + 0.0019 * (z - 0.4) ** 2  # Nguyen et al. 2012
    standardized = diff / sigma
    assert standardized.mean().abs() < 0.1
    assert standardized.std() == pytest.approx(1.0, abs=0.1)


def test_quantisation_in_disparity_and_millimetres():
    for s in _samples(num=2, sensor_noise=1.0, sensor_holes=0.0, sensor_quantization=True):
        z = s["sensor_depth"][s["sensor_depth"] > 0].double()
        mm = z * 1000
        assert torch.allclose(mm, mm.round(), atol=1e-3)
        eighths = NATIVE_FOCAL_BASELINE / z * 8
        # mm rounding moves the disparity by at most 8 * fb / z^2 * 0.5 mm (plus float32 storage).
        tol = 8 * NATIVE_FOCAL_BASELINE / z**2 * 5.1e-4
        assert ((eighths - eighths.round()).abs() <= tol).all()


def test_holes_at_depth_edges_dark_surfaces_and_out_of_range():
    with_holes = _samples(num=6, sensor_noise=0.0, sensor_quantization=False)
    no_holes = _samples(num=6, sensor_noise=0.0, sensor_quantization=False, sensor_holes=0.0)
    edge_rate, flat_rate = [], []
    for h, n in zip(with_holes, no_holes):
        exact = n["sensor_depth"][0]
        # Without holes only windows (no surface, depth 0) are 0: a zero-depth pixel is within 1 px of p + flow.
        no_surface = F.max_pool2d((n["depth"] == 0).float()[None], 3, 1, 1)[0]
        assert (_sample_at(no_surface, n["sensor_flow"])[0][exact == 0] > 0).all()
        hole = (h["sensor_depth"][0] == 0) & (exact > 0)
        d = exact[None, None]
        edge = ((F.max_pool2d(d, 3, 1, 1) + F.max_pool2d(-d, 3, 1, 1)) > 0.1 * d)[0, 0]
        edge_rate.append(hole[edge].float().mean())
        flat_rate.append(hole[~edge & (exact < 6.5)].float().mean())
        assert h["sensor_depth"].max() <= 7.0
        # Holes never invent depth: where the sensor has a value, it is the exact one.
        valid = h["sensor_depth"][0] > 0
        assert torch.equal(h["sensor_depth"][0][valid], exact[valid])
    assert torch.stack(edge_rate).mean() > 3 * torch.stack(flat_rate).mean()


def test_dark_surfaces_lose_depth():
    from freqdense.data.synthetic.camera import intrinsics, pixel_directions
    from freqdense.data.synthetic.raycast import trace
    from freqdense.data.synthetic.render import surface_attributes
    from freqdense.data.synthetic.scene import generate_scene

    config = SyntheticConfig(dark_fraction=0.5, sensor_noise=0.0)
    ds = SyntheticScenes(split="val", config=config, size=SIZE, num_samples=8, modalities=("sensor",))
    dark_holes, bright_holes = [], []
    for index in range(8):
        s = ds[index]
        scene = generate_scene(config, 0, "val", index)
        K = intrinsics(*SIZE, config.hfov_deg)
        flow = s["sensor_flow"].double().numpy()
        y, x = np.mgrid[0 : SIZE[0], 0 : SIZE[1]].astype(np.float64)
        pose = scene.camera_to_world[0]
        dirs = np.einsum("ij,hwj->ihw", pose[:3, :3], pixel_directions(K, x + flow[0], y + flow[1])).astype(np.float32)
        hits = trace(scene, pose[:3, 3], np.ascontiguousarray(dirs))
        points = pose[:3, 3].astype(np.float32)[:, None] + hits.t.reshape(1, -1) * dirs.reshape(3, -1)
        albedo = surface_attributes(scene, hits.surface.reshape(-1), points).albedo
        lum = (0.2126 * albedo[0] + 0.7152 * albedo[1] + 0.0722 * albedo[2]).reshape(SIZE)
        hole = (s["sensor_depth"][0] == 0).numpy()
        dark_holes.append(hole[lum < 0.05])
        bright_holes.append(hole[lum > 0.2])
    dark, bright = np.concatenate(dark_holes), np.concatenate(bright_holes)
    assert dark.size > 50
    assert dark.mean() > 0.8 and bright.mean() < 0.2
