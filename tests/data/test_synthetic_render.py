"""Synthetic renderer: exact geometry (closed forms, multi-view consistency) and anti-aliasing."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from freqdense.data.synthetic import SyntheticConfig, SyntheticScenes
from freqdense.data.synthetic.camera import intrinsics, pose_matrix, rotation_ypr
from freqdense.data.synthetic.classes import class_id
from freqdense.data.synthetic.primitives import Box, Room, Sphere
from freqdense.data.synthetic.render import render_view
from freqdense.data.synthetic.scene import Light, Scene, SceneObject, generate_scene
from freqdense.data.synthetic.textures import Material
from freqdense.ops import warp

SIZE = (48, 64)
#: Photometrically consistent views: no sensor noise, no view-dependent highlights.
CLEAN = SyntheticConfig(image_noise=0.0, glossy_fraction=0.0)


def _flat(value: float) -> Material:
    return Material(kind="flat", color0=(value,) * 3, color1=(value,) * 3)


def _manual_scene(objects=(), camera=(0.0, -1.5, 0.0)) -> Scene:
    """A 6 x 3 x 10 m room, grey walls, ambient light only (radiance = albedo), camera looking along +z."""
    room = Room((-3.0, -3.0, -1.0), (3.0, 0.0, 10.0))
    materials = (_flat(0.5), _flat(0.5), _flat(0.8), _flat(0.0))
    light = Light((0.0, -2.9, 5.0), (1.0, 1.0, 1.0), intensity=0.0, ambient=1.0)
    pose = pose_matrix(np.eye(3), np.array(camera))
    return Scene(room, materials, (), tuple(objects), light, {-1: pose, 0: pose, 1: pose}, exposure=1.0)


def test_room_depth_matches_plane_intersections():
    size = (49, 65)  # odd: the principal point is a pixel centre
    K = intrinsics(*size, 62.0)
    view = render_view(_manual_scene(), _manual_scene().camera_to_world[0], K, size, supersample=1, shadows=False)
    fy, cy, cx = K[1, 1], K[1, 2], K[0, 2]
    assert (cx, cy) == (32.0, 24.0)
    # Back wall at z = 10 through the principal point; floor (1.5 m below) and ceiling (1.5 m above).
    assert view.depth[24, 32] == pytest.approx(10.0, rel=1e-6)
    assert view.label[24, 32] == class_id("wall")
    v = 48
    assert view.depth[v, 32] == pytest.approx(1.5 * fy / (v - cy), rel=1e-6)
    assert view.label[v, 32] == class_id("floor")
    assert view.depth[0, 32] == pytest.approx(1.5 * fy / cy, rel=1e-6)
    assert view.label[0, 32] == class_id("ceiling")


def test_sphere_depth_matches_the_quadratic_root():
    size = (49, 65)
    K = intrinsics(*size, 62.0)
    sphere = Sphere((0.3, -1.4, 6.0), 0.8)
    scene = _manual_scene([SceneObject(sphere, class_id("ball"), 3, 0)])
    view = render_view(scene, scene.camera_to_world[0], K, size, supersample=1, shadows=False)
    o = np.array([0.0, -1.5, 0.0])
    checked = 0
    for y, x in [(24, 32), (20, 36), (27, 30), (24, 39)]:
        d = np.array([(x - K[0, 2]) / K[0, 0], (y - K[1, 2]) / K[1, 1], 1.0])
        oc = o - np.array(sphere.center)
        a, b, c = d @ d, 2 * d @ oc, oc @ oc - sphere.radius**2
        t = (-b - math.sqrt(b * b - 4 * a * c)) / (2 * a)
        assert view.depth[y, x] == pytest.approx(t, rel=1e-5)
        assert view.label[y, x] == class_id("ball")
        checked += 1
    assert checked == 4


def test_supersampling_mixes_boundary_pixels_by_coverage():
    size = (49, 65)
    K = intrinsics(*size, 62.0)
    z_front, edge = 5.0, 20.2  # the box's right edge projects to pixel x = 20.2
    x_edge = (edge - K[0, 2]) * z_front / K[0, 0]
    box = Box((x_edge - 1.0, -1.5, z_front + 0.001), (1.0, 1.0, 0.001))  # thin: its side face is invisible
    scene = _manual_scene([SceneObject(box, class_id("cabinet"), 3, 0)])
    view = render_view(scene, scene.camera_to_world[0], K, size, supersample=3, shadows=False)
    wall = 0.8
    camera = lambda linear: round(255 * linear ** (1 / 2.2))  # noqa: E731  (8-bit, gamma 1/2.2)
    row = 24
    # Sub-samples of pixel 20 sit at x = 19.67, 20, 20.33: two on the black box, one on the wall.
    assert view.image[row, 19, 0] == 0
    assert view.image[row, 20, 0] == camera(wall / 3)
    assert view.image[row, 21, 0] == camera(wall)
    # Labels and depth come from the centre sample only (x = 20 < 20.2: the box).
    assert view.label[row, 20] == class_id("cabinet") and view.depth[row, 20] == pytest.approx(z_front, rel=1e-6)
    assert view.label[row, 21] == class_id("wall")
    # Without supersampling the boundary pixel is not mixed.
    hard = render_view(scene, scene.camera_to_world[0], K, size, supersample=1, shadows=False)
    assert hard.image[row, 20, 0] == 0


def _non_occluded(depth_t: torch.Tensor, depth_src: torch.Tensor, K: torch.Tensor, T: torch.Tensor) -> torch.Tensor:
    """Pixels of the target whose 3-D point is the one the source camera sees (z agrees within 2 %)."""
    from freqdense.ops import backproject, project

    H, W = depth_t.shape[-2:]
    points = backproject(depth_t[None], torch.linalg.inv(K)[None])
    z_src = (T[None] @ points)[:, 2].reshape(1, 1, H, W)
    grid = project(points, K[None], T[None], size=(H, W))
    seen = F.grid_sample(depth_src[None], grid, padding_mode="zeros", align_corners=True)
    inside = (grid.abs() <= 1).all(-1)[:, None]
    return (inside & ((seen - z_src).abs() < 0.02 * z_src) & (depth_t[None] > 0))[0, 0]


def _smooth(depth: torch.Tensor) -> torch.Tensor:
    """Pixels with no depth edge next to them (bilinear sampling there is not across an edge).

    Inverse depth is affine in pixel coordinates on a plane, so its second differences vanish except at
    edges and creases.
    """
    inv = 1.0 / depth.clamp_min(1e-6)
    ok = torch.zeros_like(depth, dtype=torch.bool)
    core = torch.ones_like(inv[1:-1, 1:-1], dtype=torch.bool)
    for a, b in (((0, 1), (2, 1)), ((1, 0), (1, 2)), ((0, 0), (2, 2)), ((0, 2), (2, 0))):
        lap = inv[a[0] : a[0] + inv.shape[0] - 2, a[1] : a[1] + inv.shape[1] - 2]
        lap = lap + inv[b[0] : b[0] + inv.shape[0] - 2, b[1] : b[1] + inv.shape[1] - 2] - 2 * inv[1:-1, 1:-1]
        core &= lap.abs() < 0.02 * inv[1:-1, 1:-1]
    ok[1:-1, 1:-1] = core & (depth[1:-1, 1:-1] > 0)
    return ok


@pytest.fixture(scope="module")
def clean_samples():
    ds = SyntheticScenes(split="val", config=CLEAN, size=SIZE, num_samples=4)
    return ds, [ds[i] for i in range(4)]


def test_warping_next_frame_with_depth_and_pose_reproduces_the_target(clean_samples):
    ds, samples = clean_samples
    for index, s in enumerate(samples):
        scene = generate_scene(CLEAN, 0, "val", index)
        depth_next = render_view(scene, scene.camera_to_world[1], ds.K, SIZE, supersample=1, shadows=False).depth
        K = s["intrinsics"]
        for key, pose_key, depth_src in (("image_next", "pose_next", depth_next),):
            out = warp(s[key][None], s["depth"][None], K[None], s[pose_key][None])
            keep = _non_occluded(s["depth"], torch.from_numpy(depth_src)[None], K, s[pose_key])
            keep &= _smooth(s["depth"][0]) & out.valid[0, 0]
            keep[:2], keep[-2:], keep[:, :2], keep[:, -2:] = False, False, False, False
            assert keep.float().mean() > 0.4
            err = (out.image[0] - s["image"]).abs().mean(0)[keep]
            unwarped = (s[key] - s["image"]).abs().mean(0)[keep]
            # Residual = interpolation of textures + 8-bit rounding; far below the unwarped difference.
            assert err.median() < 0.01, (index, float(err.median()))
            assert err.mean() < 0.025, (index, float(err.mean()))
            assert err.mean() < 0.5 * unwarped.mean()


def test_poses_are_rigid_and_consistent_with_the_path(clean_samples):
    _, samples = clean_samples
    for index, s in enumerate(samples):
        scene = generate_scene(CLEAN, 0, "val", index)
        c = scene.camera_to_world
        for key, frame in (("pose_prev", -1), ("pose_next", 1)):
            T = s[key].double()
            torch.testing.assert_close(T[:3, :3] @ T[:3, :3].T, torch.eye(3, dtype=torch.float64), atol=1e-6, rtol=0)
            assert torch.det(T[:3, :3]) == pytest.approx(1.0, abs=1e-6)
            torch.testing.assert_close(T[3], torch.tensor([0, 0, 0, 1.0], dtype=torch.float64))
            # The world position of the target camera centre, seen from the source frame.
            expected = np.linalg.inv(c[frame]) @ c[0][:, 3]
            np.testing.assert_allclose(T[:, 3].numpy(), expected, atol=1e-5)
        T_right = torch.eye(4)
        T_right[0, 3] = -CLEAN.baseline
        torch.testing.assert_close(s["pose_right"], T_right)
        assert s["baseline"].item() == pytest.approx(CLEAN.baseline)


def test_stereo_disparity_equals_focal_times_baseline_over_depth(clean_samples):
    ds, samples = clean_samples
    H, W = SIZE
    for index, s in enumerate(samples):
        scene = generate_scene(CLEAN, 0, "val", index)
        right_pose = scene.camera_to_world[0] @ np.linalg.inv(s["pose_right"].double().numpy())
        depth_right = torch.from_numpy(render_view(scene, right_pose, ds.K, SIZE, supersample=1, shadows=False).depth)
        depth = s["depth"][0]
        fx = s["intrinsics"][0, 0]
        disparity = fx * s["baseline"] / depth.clamp_min(1e-6)
        ys, xs = torch.meshgrid(
            torch.arange(H, dtype=torch.float32), torch.arange(W, dtype=torch.float32), indexing="ij"
        )
        x_right = xs - disparity
        grid = torch.stack([2 * x_right / (W - 1) - 1, 2 * ys / (H - 1) - 1], -1)[None]
        # Geometry: the right camera sees the same point (same z) at x - f b / z, same row.
        seen = F.grid_sample(depth_right[None, None], grid, mode="nearest", align_corners=True)[0, 0]
        inside = (x_right >= 0) & (depth > 0)
        agree = ((seen - depth).abs() < 0.01 * depth)[inside]
        assert agree.float().mean() > 0.85, (index, float(agree.float().mean()))
        # Photometry: sampling the right image there reproduces the left image where the point is visible.
        keep = inside & ((seen - depth).abs() < 0.01 * depth) & _smooth(depth) & (xs > 1) & (xs < W - 2)
        warped = F.grid_sample(s["image_right"][None], grid, align_corners=True, padding_mode="border")[0]
        err = (warped - s["image"]).abs().mean(0)[keep]
        wrong = F.grid_sample(
            s["image_right"][None],
            torch.stack([2 * (xs - 0.6 * disparity) / (W - 1) - 1, grid[0, ..., 1]], -1)[None],
            align_corners=True,
        )[0]
        assert err.median() < 0.01
        assert err.mean() < 0.6 * (wrong - s["image"]).abs().mean(0)[keep].mean()


def test_depth_discontinuities_are_surface_and_label_boundaries():
    config = SyntheticConfig()
    label_changes, edges, flat_label_edges = 0, 0, 0
    size = (96, 128)  # fine enough that grazing floors/walls never jump 30 % between neighbouring pixels
    for index in range(6):
        scene = generate_scene(config, 0, "train", index)
        view = render_view(scene, scene.camera_to_world[0], intrinsics(*size, 62.0), size, supersample=1, shadows=False)
        d, sid, lab = view.depth, view.surface, view.label
        for axis in (0, 1):
            a = [slice(None), slice(None)]
            b = [slice(None), slice(None)]
            a[axis], b[axis] = slice(0, -1), slice(1, None)
            da, db = d[tuple(a)], d[tuple(b)]
            both = (da > 0) & (db > 0)
            jump = both & (np.abs(da - db) > 0.3 * np.minimum(da, db))
            # Every primitive is convex and seen from outside, so its visible depth is continuous:
            # a depth discontinuity is always a change of primitive.
            assert np.all(sid[tuple(a)][jump] != sid[tuple(b)][jump])
            edges += int(jump.sum())
            label_changes += int((lab[tuple(a)] != lab[tuple(b)])[jump].sum())
            flat_label_edges += int(
                ((lab[tuple(a)] != lab[tuple(b)]) & both & ~jump & (np.abs(da - db) < 0.01 * da)).sum()
            )
    assert edges > 50
    # Occlusion boundaries are label boundaries except where an object occludes another of its class.
    assert label_changes / edges > 0.85
    # Pictures and rugs: label edges with no depth edge at all.
    assert flat_label_edges > 0


def test_same_scene_at_any_resolution():
    config = SyntheticConfig()
    small = SyntheticScenes(
        split="test", config=config, size=(16, 24), num_samples=1, modalities=("semantic", "depth")
    )[0]
    big = SyntheticScenes(split="test", config=config, size=(48, 72), num_samples=1, modalities=("semantic", "depth"))[
        0
    ]
    # Pixel centre x of the small image is pixel 3 x + 1 of the 3x larger one (centres at integers).
    torch.testing.assert_close(big["depth"][:, 1::3, 1::3], small["depth"], rtol=1e-5, atol=0)
    assert torch.equal(big["semantic"][1::3, 1::3], small["semantic"])
    torch.testing.assert_close(big["intrinsics"][:2, :2], 3 * small["intrinsics"][:2, :2])


def test_camera_rotation_convention():
    # Positive yaw turns the optical axis towards +x, positive pitch tilts it up (-y): y points down.
    np.testing.assert_allclose(rotation_ypr(0.3, 0.0, 0.0) @ [0, 0, 1], [math.sin(0.3), 0, math.cos(0.3)], atol=1e-12)
    np.testing.assert_allclose(rotation_ypr(0.0, 0.2, 0.0) @ [0, 0, 1], [0, -math.sin(0.2), math.cos(0.2)], atol=1e-12)
    r = rotation_ypr(0.4, -0.2, 0.05)
    np.testing.assert_allclose(r @ r.T, np.eye(3), atol=1e-12)


@pytest.mark.parametrize(
    "config",
    [
        SyntheticConfig(),
        SyntheticConfig(
            min_objects=20, max_objects=40, max_poles=12, max_pictures=10, camera_speed=4.0, unlabeled_fraction=1.0
        ),
        SyntheticConfig(min_objects=0, max_objects=0, max_poles=0, max_pictures=0, unlabeled_fraction=0.0),
        SyntheticConfig(camera_motion="forward"),
        SyntheticConfig(camera_motion="forward", min_objects=20, max_objects=40, max_poles=12, unlabeled_fraction=1.0),
    ],
    ids=["default", "crowded", "empty", "forward", "forward-crowded"],
)
def test_scene_generation_is_robust_and_keeps_the_cameras_and_light_free(config):
    for index in range(80):
        scene = generate_scene(config, 0, ("train", "val", "test")[index % 3], index)
        lo_room, hi_room = np.array(scene.room.lo), np.array(scene.room.hi)
        eyes = [scene.camera_to_world[k][:3, 3] for k in (-1, 0, 1)]
        assert all(np.all(e > lo_room) and np.all(e < hi_room) for e in eyes)
        for obj in scene.objects:
            lo, hi = obj.primitive.bounds()
            for p in [*eyes, np.array(scene.light.position)]:
                assert not (np.all(p > lo - 0.05) and np.all(p < hi + 0.05))
        if config.max_objects == 0:
            assert {o.label for o in scene.objects} <= {class_id("pole")} and not scene.objects


def test_forward_camera_path_moves_along_the_optical_axis_inside_the_room():
    config = SyntheticConfig(camera_motion="forward")
    for index in range(60):
        scene = generate_scene(config, 0, "train", index)
        c = scene.camera_to_world
        step = c[1][:3, 3] - c[0][:3, 3]
        assert 0.5 - 1e-9 <= np.linalg.norm(step) <= 0.8 + 1e-9
        # direction vs the optical axis (world z of the camera's +z): at most 0.1 rad of heading offset + 0.25 of
        # pitch tilt (the path is horizontal, the camera pitched down by up to 0.2 rad)
        axis = c[0][:3, 2]
        cos = float(step @ axis) / np.linalg.norm(step)
        assert cos > math.cos(0.1 + 0.2 + 0.01), (index, cos)
        np.testing.assert_allclose(c[0][:3, 3] - c[-1][:3, 3], step, atol=1e-9)  # constant velocity, no clipping
        assert scene.room.hi[2] - c[1][2, 3] > 5.0  # the far wall stays well ahead of frame t+1


def test_camera_motion_is_part_of_the_cache_key_and_validated():
    from freqdense.data.synthetic.storage import cache_key
    from freqdense.errors import ConfigError

    assert cache_key(SyntheticConfig(), SIZE, 0) != cache_key(SyntheticConfig(camera_motion="forward"), SIZE, 0)
    with pytest.raises(ConfigError, match="camera_motion='sideways'.*handheld, forward"):
        SyntheticConfig(camera_motion="sideways")


def test_forward_video_frames_warp_onto_the_target_with_the_known_poses():
    config = SyntheticConfig(image_noise=0.0, glossy_fraction=0.0, camera_motion="forward")
    ds = SyntheticScenes(
        split="val", config=config, size=SIZE, num_samples=2, modalities=["image", "depth", "temporal"]
    )
    for index in range(2):
        s = ds[index]
        scene = generate_scene(config, 0, "val", index)
        depth_next = render_view(scene, scene.camera_to_world[1], ds.K, SIZE, supersample=1, shadows=False).depth
        K = s["intrinsics"]
        out = warp(s["image_next"][None], s["depth"][None], K[None], s["pose_next"][None])
        keep = _non_occluded(s["depth"], torch.from_numpy(depth_next)[None], K, s["pose_next"])
        keep &= _smooth(s["depth"][0]) & out.valid[0, 0]
        keep[:2], keep[-2:], keep[:, :2], keep[:, -2:] = False, False, False, False
        assert keep.float().mean() > 0.3
        err = (out.image[0] - s["image"]).abs().mean(0)[keep]
        unwarped = (s["image_next"] - s["image"]).abs().mean(0)[keep]
        assert err.median() < 0.015, (index, float(err.median()))
        assert err.mean() < 0.3 * unwarped.mean()
