"""Joint transforms: hand-checked geometry, reprojection commutes with every transform, randomness and config."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from freqdense.data.transforms import (
    CenterCrop,
    CenterZoom,
    ColorJitter,
    Compose,
    RandomCrop,
    RandomHorizontalFlip,
    RandomScale,
    Resize,
    build_transforms,
    center_zoom,
    crop,
    hflip,
    jitter_color,
    resize,
)
from freqdense.errors import ConfigError, ShapeError

POSES = ("pose_right", "pose_prev", "pose_next")


# ---------------------------------------------------------------------------------------------------------------
# A tiny, independent pinhole model (numpy, float64).
# ---------------------------------------------------------------------------------------------------------------


def rot_y(angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])


def rigid(rot: np.ndarray, t) -> np.ndarray:
    m = np.eye(4)
    m[:3, :3] = rot
    m[:3, 3] = t
    return m


def project(k: np.ndarray, pose: np.ndarray, depth: np.ndarray, px: np.ndarray) -> np.ndarray:
    """Pixels (N, 2) with depths (N,) in the target view -> pixels (N, 2) in the source view."""
    rays = np.linalg.inv(k) @ np.concatenate([px, np.ones((len(px), 1))], 1).T
    pts = rays * depth[None]
    pts = pose[:3, :3] @ pts + pose[:3, 3:4]
    uvw = k @ pts
    return (uvw[:2] / uvw[2:]).T


def np64(x: torch.Tensor) -> np.ndarray:
    return x.detach().double().numpy()


K0 = np.array([[20.0, 0.0, 7.3], [0.0, 18.0, 5.6], [0.0, 0.0, 1.0]])
BASELINE = 0.3


def make_sample(h: int = 12, w: int = 16, *, plane=(0.1, -0.2, 1.0), offset: float = 4.0, seed: int = 0) -> dict:
    """Every modality; depth is the plane n . X = offset (fronto-parallel for plane=(0, 0, 1)); image = coordinates."""
    g = torch.Generator().manual_seed(seed)
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    rays = np.linalg.inv(K0) @ np.stack([xs.ravel(), ys.ravel(), np.ones(h * w)])
    depth = (offset / (np.asarray(plane) @ rays)).reshape(h, w)
    assert (depth > 0).all()
    depth[0, 0] = 0.0  # one invalid pixel
    image = torch.stack(
        [torch.from_numpy(xs / (w - 1)), torch.from_numpy(ys / (h - 1)), torch.full((h, w), 0.5, dtype=torch.float64)]
    ).float()
    flow = torch.stack(
        [torch.sin(torch.arange(h)[:, None] / 3.0).expand(h, w), torch.cos(torch.arange(w) / 4.0).expand(h, w)]
    )
    return {
        "image": image,
        "image_right": torch.rand(3, h, w, generator=g),
        "image_prev": torch.rand(3, h, w, generator=g),
        "image_next": torch.rand(3, h, w, generator=g),
        "semantic": torch.randint(0, 5, (h, w), generator=g).masked_fill_(torch.rand(h, w, generator=g) < 0.1, 255),
        "depth": torch.from_numpy(depth).float()[None],
        "depth_valid": torch.from_numpy(depth > 0)[None],
        "sensor_depth": torch.from_numpy(depth).float()[None] * 1.01,
        "sensor_flow": flow.float(),
        "intrinsics": torch.from_numpy(K0).float(),
        "pose_right": torch.from_numpy(rigid(np.eye(3), [-BASELINE, 0, 0])).float(),
        "pose_prev": torch.from_numpy(rigid(rot_y(0.05), [0.1, -0.05, 0.2])).float(),
        "pose_next": torch.from_numpy(rigid(rot_y(-0.03), [-0.2, 0.04, -0.1])).float(),
        "baseline": torch.tensor(BASELINE),
        "meta": {"id": "x", "index": 0, "split": "train"},
    }


def correspondences(sample: dict, pose_key: str, pixels: np.ndarray) -> np.ndarray:
    depth = np64(sample["depth"][0])[pixels[:, 1].astype(int), pixels[:, 0].astype(int)]
    return project(np64(sample["intrinsics"]), np64(sample[pose_key]), depth, pixels)


def assert_commutes(before: dict, after: dict, fwd, pixels: np.ndarray, atol: float = 2e-3) -> None:
    """p -> q before the transform  <=>  T(p) -> T(q) after it, for every pose."""
    valid = np64(before["depth"][0])[pixels[:, 1].astype(int), pixels[:, 0].astype(int)] > 0
    pixels = pixels[valid]
    new_pixels = fwd(pixels)
    new_pixels_int = np.round(new_pixels)
    assert np.allclose(new_pixels, new_pixels_int, atol=1e-9), "test bug: T(p) must be a pixel centre"
    for key in POSES:
        q_before = correspondences(before, key, pixels)
        q_after = correspondences(after, key, new_pixels_int)
        np.testing.assert_allclose(q_after, fwd(q_before), atol=atol, err_msg=key)


def grid_pixels(h: int, w: int) -> np.ndarray:
    ys, xs = np.mgrid[0:h, 0:w]
    return np.stack([xs.ravel(), ys.ravel()], 1).astype(np.float64)


# ---------------------------------------------------------------------------------------------------------------
# Hand-checkable cases.
# ---------------------------------------------------------------------------------------------------------------


def test_flip_twice_is_identity():
    s = make_sample()
    twice = hflip(hflip(s))
    for key, value in s.items():
        if isinstance(value, torch.Tensor):
            assert torch.equal(twice[key], value), key
    assert twice["meta"] == s["meta"]


def test_flip_hand_values():
    s = make_sample(h=4, w=5)
    out = hflip(s)
    assert torch.equal(out["image"][:, :, 0], s["image"][:, :, 4])
    assert torch.equal(out["semantic"][:, 1], s["semantic"][:, 3])
    assert out["intrinsics"][0, 2].item() == pytest.approx(5 - 1 - 7.3)
    assert out["intrinsics"][0, 0].item() == pytest.approx(20.0)
    # sensor_flow: x negated and mirrored, y only mirrored.
    assert torch.equal(out["sensor_flow"][0, :, 0], -s["sensor_flow"][0, :, 4])
    assert torch.equal(out["sensor_flow"][1, :, 0], s["sensor_flow"][1, :, 4])
    # F T F: translation x negated, rotation about y reversed.
    prev = out["pose_prev"].double().numpy()
    np.testing.assert_allclose(prev[:3, 3], [-0.1, -0.05, 0.2], atol=1e-6)
    np.testing.assert_allclose(prev[:3, :3], rot_y(-0.05), atol=1e-6)
    # Signed baseline: the flipped "right" camera sits at -baseline and pose_right[0, 3] == -baseline still holds.
    assert out["baseline"].item() == pytest.approx(-BASELINE)
    assert out["pose_right"][0, 3].item() == pytest.approx(-out["baseline"].item())
    assert s["baseline"].item() == pytest.approx(BASELINE), "input must not be mutated"


def test_crop_then_intrinsics_and_values():
    s = make_sample()
    out = crop(s, 2, 3, 5, 7)
    k = out["intrinsics"]
    assert k[0, 2].item() == pytest.approx(7.3 - 3) and k[1, 2].item() == pytest.approx(5.6 - 2)
    assert k[0, 0].item() == 20.0 and k[1, 1].item() == 18.0
    assert torch.equal(out["depth"], s["depth"][:, 2:7, 3:10])
    assert torch.equal(out["semantic"], s["semantic"][2:7, 3:10])
    assert torch.equal(out["sensor_flow"], s["sensor_flow"][:, 2:7, 3:10])
    assert torch.equal(out["pose_next"], s["pose_next"])


def test_crop_padding_values():
    s = make_sample(h=4, w=5)
    out = crop(s, -1, 2, 6, 6)  # one row above, three columns right of the image
    assert out["image"].shape == (3, 6, 6)
    assert (out["semantic"][0] == 255).all() and (out["semantic"][:, 3:] == 255).all()
    assert (out["depth"][:, 0] == 0).all() and not out["depth_valid"][:, :, 3:].any()
    assert (out["image"][:, 0] == 0).all() and (out["sensor_flow"][:, :, 3:] == 0).all()
    assert torch.equal(out["depth"][:, 1:5, :3], s["depth"][:, :, 2:5])
    assert out["intrinsics"][1, 2].item() == pytest.approx(5.6 + 1)


def test_resize_intrinsics_hand_values_and_nearest_values():
    s = make_sample(h=6, w=8)
    out = resize(s, (9, 20))  # sy = 1.5, sx = 2.5
    k = out["intrinsics"].double()
    assert k[0, 0].item() == pytest.approx(2.5 * 20) and k[1, 1].item() == pytest.approx(1.5 * 18)
    assert k[0, 2].item() == pytest.approx((7.3 + 0.5) * 2.5 - 0.5)
    assert k[1, 2].item() == pytest.approx((5.6 + 0.5) * 1.5 - 0.5)
    # Nearest neighbour: depth and labels only take existing values; depth_valid stays depth > 0.
    assert set(out["depth"].unique().tolist()) <= set(s["depth"].unique().tolist())
    assert set(out["semantic"].unique().tolist()) <= set(s["semantic"].unique().tolist())
    assert torch.equal(out["depth_valid"], out["depth"] > 0)
    # Image resize is torch's align_corners=False bilinear (the x -> (x + 0.5) s - 0.5 map).
    ref = F.interpolate(s["image_prev"][None], size=(9, 20), mode="bilinear", align_corners=False)[0]
    torch.testing.assert_close(out["image_prev"], ref)


def test_nearest_picks_the_source_pixel_with_the_closest_centre():
    # 9 -> 3 columns: new centre x' maps to (x' + 0.5) * 3 - 0.5 = 3x' + 1, i.e. source columns 1, 4, 7
    # (torch's legacy "nearest" would pick 0, 3, 6, half a new pixel off).
    cols = torch.arange(9.0).expand(1, 2, 9).contiguous()
    out = resize({"depth": cols, "semantic": cols[0].long()}, (2, 3))
    assert out["depth"][0, 0].tolist() == [1.0, 4.0, 7.0]
    assert out["semantic"][0].tolist() == [1, 4, 7]
    # 3 -> 7 columns: centres map to (x' + 0.5) * 3 / 7 - 0.5 = -0.29, 0.14, 0.57, 1.0, 1.43, 1.86, 2.29.
    up = resize({"depth": torch.arange(3.0).expand(1, 2, 3).contiguous()}, (2, 7))
    assert up["depth"][0, 0].tolist() == [0.0, 0.0, 1.0, 1.0, 1.0, 2.0, 2.0]


def test_downscale_is_antialiased():
    s = {"image": torch.rand(3, 32, 32, generator=torch.Generator().manual_seed(0))}
    small = resize(s, (8, 8))["image"]
    aliased = F.interpolate(s["image"][None], size=(8, 8), mode="bilinear", align_corners=False)[0]
    box = F.avg_pool2d(s["image"][None], 4)[0]
    assert (small - box).abs().mean() < 0.5 * (aliased - box).abs().mean()


def test_bicubic_is_clamped():
    s = {"image": (torch.arange(16.0).reshape(1, 4, 4) % 2).expand(3, 4, 4).contiguous()}
    out = resize(s, (13, 13), interpolation="bicubic")["image"]
    assert out.min() >= 0 and out.max() <= 1


# ---------------------------------------------------------------------------------------------------------------
# Property: reprojection geometry commutes with every transform.
# ---------------------------------------------------------------------------------------------------------------


def test_reprojection_commutes_with_flip():
    s = make_sample()
    w = s["image"].shape[-1]
    assert_commutes(s, hflip(s), lambda p: np.stack([w - 1 - p[:, 0], p[:, 1]], 1), grid_pixels(12, 16))


@pytest.mark.parametrize("top,left", [(2, 3), (-2, 4), (0, 0)])
def test_reprojection_commutes_with_crop(top, left):
    s = make_sample()
    out = crop(s, top, left, 9, 10)
    px = grid_pixels(12, 16)
    inside = (px[:, 0] - left >= 0) & (px[:, 0] - left < 10) & (px[:, 1] - top >= 0) & (px[:, 1] - top < 9)
    assert_commutes(s, out, lambda p: p - np.array([left, top]), px[inside])


def test_reprojection_commutes_with_odd_integer_resize():
    # Upscaling by odd integers puts a new pixel centre exactly on each old one: x -> (x + 0.5) * 5 - 0.5 = 5x + 2.
    s = make_sample()
    out = resize(s, (36, 80))
    assert_commutes(s, out, lambda p: np.stack([5 * p[:, 0] + 2, 3 * p[:, 1] + 1], 1), grid_pixels(12, 16))


def fit_inverse_map(sample: dict, margin: int, atol: float = 1e-3) -> np.ndarray:
    """Recover the affine map new pixel -> old pixel from the coordinate-encoded image (bilinear keeps ramps)."""
    img = np64(sample["image"])
    h, w = img.shape[1:]
    ys, xs = np.mgrid[margin : h - margin, margin : w - margin]
    design = np.stack([xs.ravel(), ys.ravel(), np.ones(xs.size)], 1).astype(np.float64)
    old_x = img[0, ys, xs].ravel() * (sample["_orig_w"] - 1)
    old_y = img[1, ys, xs].ravel() * (sample["_orig_h"] - 1)
    ax, *_ = np.linalg.lstsq(design, old_x, rcond=None)
    ay, *_ = np.linalg.lstsq(design, old_y, rcond=None)
    np.testing.assert_allclose(design @ ax, old_x, atol=atol)  # it really is affine there
    np.testing.assert_allclose(design @ ay, old_y, atol=atol)
    return np.stack([ax, ay, [0, 0, 1]])


def resize_inverse_map(h: int, w: int, new_h: int, new_w: int) -> np.ndarray:
    """The documented pixel-centre convention x' = (x + 0.5) s - 0.5, inverted."""
    sx, sy = new_w / w, new_h / h
    return np.array([[1 / sx, 0, 0.5 / sx - 0.5], [0, 1 / sy, 0.5 / sy - 0.5], [0, 0, 1]])


def check_fronto_parallel_commutes(before: dict, after: dict, depth_factor: float, a_inv=None) -> None:
    h, w = after["image"].shape[1:]
    if a_inv is None:
        a_inv = fit_inverse_map({**after, "_orig_w": before["image"].shape[2], "_orig_h": before["image"].shape[1]}, 3)
    new_px = grid_pixels(h, w)[::7]
    old_px = (a_inv @ np.concatenate([new_px, np.ones((len(new_px), 1))], 1).T)[:2].T
    d_new = np64(after["depth"][0])[new_px[:, 1].astype(int), new_px[:, 0].astype(int)]
    keep = d_new > 0
    new_px, old_px, d_new = new_px[keep], old_px[keep], d_new[keep]
    np.testing.assert_allclose(d_new, 4.0 / depth_factor, rtol=1e-6)
    for key in POSES:
        q_old = project(K0, np64(before[key]), np.full(len(old_px), 4.0), old_px)
        q_new = project(np64(after["intrinsics"]), np64(after[key]), d_new, new_px)
        back = (a_inv @ np.concatenate([q_new, np.ones((len(q_new), 1))], 1).T)[:2].T
        np.testing.assert_allclose(back, q_old, atol=2e-3, err_msg=key)


@pytest.mark.parametrize("seed", range(4))
def test_reprojection_commutes_with_random_pipeline(seed):
    # Upscaling only: the map is then recovered exactly from the coordinate image (bilinear keeps linear ramps;
    # the antialiasing filter used when shrinking does not, see the downscale test below).
    s = make_sample(24, 32, plane=(0.0, 0.0, 1.0))
    pipeline = Compose([RandomHorizontalFlip(), RandomScale(scale_range=(1.0, 1.7)), RandomCrop((20, 26))])
    out = pipeline(s, np.random.default_rng(seed))
    check_fronto_parallel_commutes(s, out, 1.0)


@pytest.mark.parametrize("size", [(17, 21), (9, 30)])
def test_reprojection_commutes_with_downscale(size):
    s = make_sample(24, 32, plane=(0.0, 0.0, 1.0))
    out = resize(s, size)
    check_fronto_parallel_commutes(s, out, 1.0, a_inv=resize_inverse_map(24, 32, *size))
    # The antialiasing filter (a widened triangle sampled at pixel centres) does not keep linear ramps exactly,
    # but the image stays within a small fraction of a source pixel of the exact map.
    a_fit = fit_inverse_map({**out, "_orig_w": 32, "_orig_h": 24}, 3, atol=0.15)
    np.testing.assert_allclose(a_fit, resize_inverse_map(24, 32, *size), atol=0.15)


@pytest.mark.parametrize("scale", [1.2, 1.5])
@pytest.mark.parametrize("divide_depth", [True, False])
def test_reprojection_commutes_with_center_zoom(scale, divide_depth):
    s = make_sample(24, 32, plane=(0.0, 0.0, 1.0))
    out = center_zoom(s, scale, divide_depth=divide_depth)
    assert out["image"].shape == s["image"].shape
    check_fronto_parallel_commutes(s, out, scale if divide_depth else 1.0)
    if divide_depth:
        assert out["baseline"].item() == pytest.approx(BASELINE / scale)


def test_center_zoom_divides_depth_like_mtl_nyud():
    s = make_sample(24, 32, plane=(0.0, 0.0, 1.0))
    out = CenterZoom(scales=[1.5], divide_depth=True)(s)
    valid = out["depth_valid"]
    torch.testing.assert_close(out["depth"][valid], torch.full_like(out["depth"][valid], 4.0 / 1.5))
    plain = CenterZoom(scales=[1.5], divide_depth=False)(s)
    torch.testing.assert_close(
        plain["depth"][plain["depth_valid"]], torch.full_like(plain["depth"][plain["depth_valid"]], 4.0)
    )


@pytest.mark.parametrize(
    "transform,a_inv",
    [
        (hflip, None),
        (lambda s: crop(s, 1, -2, 9, 15), None),
        (lambda s: resize(s, (17, 23)), None),
        (lambda s: resize(s, (7, 9)), resize_inverse_map(12, 16, 7, 9)),
        (lambda s: center_zoom(s, 1.3, divide_depth=False), None),
    ],
)
def test_sensor_flow_still_describes_sensor_depth(transform, a_inv):
    """sensor_depth[p] images the RGB point at p + flow(p), exactly, after any transform."""
    h, w = 12, 16
    s = make_sample(h, w)

    def scene_depth(x, y):  # depth seen by RGB at continuous pixel (x, y)
        return 2.0 + 0.1 * x + 0.05 * y

    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    flow = np64(s["sensor_flow"])
    s["sensor_depth"] = torch.from_numpy(scene_depth(xs + flow[0], ys + flow[1])).float()[None]
    out = transform(s)
    if a_inv is None:
        a_inv = fit_inverse_map({**out, "_orig_w": w, "_orig_h": h}, 2)
    nh, nw = out["image"].shape[1:]
    ys2, xs2 = np.mgrid[0:nh, 0:nw].astype(np.float64)
    flow2 = np64(out["sensor_flow"])
    tx, ty = xs2 + flow2[0], ys2 + flow2[1]
    old_x = a_inv[0, 0] * tx + a_inv[0, 1] * ty + a_inv[0, 2]
    old_y = a_inv[1, 0] * tx + a_inv[1, 1] * ty + a_inv[1, 2]
    sd = np64(out["sensor_depth"][0])
    keep = sd > 0
    np.testing.assert_allclose(sd[keep], scene_depth(old_x, old_y)[keep], rtol=1e-5)


# ---------------------------------------------------------------------------------------------------------------
# Randomness and determinism.
# ---------------------------------------------------------------------------------------------------------------


def test_same_rng_seed_gives_same_output_and_one_draw_for_all_modalities():
    s = make_sample(24, 32)
    pipe = Compose(
        [
            RandomHorizontalFlip(),
            RandomScale(scale_range=(0.8, 1.3)),
            RandomCrop((16, 20)),
            ColorJitter(0.3, 0.3, 0.3, 0.1),
        ]
    )
    a = pipe(s, np.random.default_rng(5))
    b = pipe(s, np.random.default_rng(5))
    for key in ("image", "depth", "semantic", "intrinsics", "pose_prev"):
        assert torch.equal(a[key], b[key]), key
    c = pipe(s, np.random.default_rng(6))
    assert not torch.equal(a["image"], c["image"])


def test_own_generator_follows_torch_seed_and_resets_in_workers():
    with torch.random.fork_rng():  # keep the global torch seed of the test session untouched
        flip = RandomHorizontalFlip()
        torch.manual_seed(1)
        draws_1 = [flip._rng(None).random() for _ in range(3)]
        torch.manual_seed(2)  # a different worker seed -> a different stream
        draws_2 = [flip._rng(None).random() for _ in range(3)]
        assert draws_1 != draws_2
        torch.manual_seed(1)
        fresh = pickle.loads(pickle.dumps(RandomHorizontalFlip()))  # what a spawned worker receives
        assert [fresh._rng(None).random() for _ in range(3)] == draws_1


class _Repeat(torch.utils.data.Dataset):
    def __init__(self, sample: dict, transform) -> None:
        self.sample, self.transform = sample, transform

    def __len__(self) -> int:
        return 8

    def __getitem__(self, index: int) -> float:
        return float(self.transform(self.sample)["intrinsics"][0, 2])  # encodes the crop offset


def test_dataloader_workers_draw_different_but_reproducible_streams():
    s = {"depth": torch.ones(1, 16, 16), "intrinsics": torch.eye(3)}
    ds = _Repeat(s, Compose([RandomCrop((4, 4))]))

    def run() -> list[float]:
        torch.manual_seed(0)
        loader = torch.utils.data.DataLoader(ds, batch_size=None, num_workers=2, multiprocessing_context="fork")
        return [float(x) for x in loader]

    with torch.random.fork_rng():
        first, second = run(), run()
    assert first == second, "same torch seed -> same augmentation"
    assert first[0::2] != first[1::2], "workers 0 and 1 must not share a random stream"


def test_flip_probability_extremes_and_crop_offsets_cover_the_image():
    s = make_sample(6, 8)
    assert torch.equal(RandomHorizontalFlip(p=1.0)(s)["image"], hflip(s)["image"])
    assert RandomHorizontalFlip(p=0.0)(s) is s
    rng = np.random.default_rng(0)
    lefts = set()
    for _ in range(200):
        out = RandomCrop((3, 5))(s, rng)
        lefts.add(round(7.3 - out["intrinsics"][0, 2].item()))
    assert lefts == {0, 1, 2, 3}


def test_random_crop_without_padding_raises():
    with pytest.raises(ShapeError, match="pad_if_needed"):
        RandomCrop((20, 20), pad_if_needed=False)(make_sample(6, 8))


def test_center_crop_and_resize_classes():
    s = make_sample(6, 8)
    out = CenterCrop((4, 4))(s)
    assert torch.equal(out["depth"], s["depth"][:, 1:5, 2:6])
    assert Resize((3, 4))(s)["semantic"].shape == (3, 4)


def test_random_scale_choices():
    s = make_sample(10, 10)
    sizes = {RandomScale([1.0, 1.5])(s, np.random.default_rng(i))["image"].shape[-1] for i in range(20)}
    assert sizes == {10, 15}


# ---------------------------------------------------------------------------------------------------------------
# Colour.
# ---------------------------------------------------------------------------------------------------------------


def test_color_jitter_same_parameters_for_all_views():
    s = make_sample(6, 8)
    s["image_right"] = s["image"].clone()
    s["image_next"] = s["image"].clone()
    out = ColorJitter(0.4, 0.4, 0.4, 0.1)(s, np.random.default_rng(3))
    assert not torch.equal(out["image"], s["image"])
    assert torch.equal(out["image_right"], out["image"]) and torch.equal(out["image_next"], out["image"])
    assert torch.equal(out["depth"], s["depth"])


def test_color_ops_hand_values():
    img = torch.rand(3, 4, 5, generator=torch.Generator().manual_seed(0))
    s = {"image": img}
    torch.testing.assert_close(jitter_color(s, brightness=0.5)["image"], img * 0.5)
    luma = 0.299 * img[0] + 0.587 * img[1] + 0.114 * img[2]
    torch.testing.assert_close(jitter_color(s, saturation=0.0)["image"], luma.expand(3, 4, 5))
    torch.testing.assert_close(jitter_color(s, contrast=0.0)["image"], torch.full_like(img, luma.mean().item()))
    # Hue: a full turn and a zero shift are the identity; 1/3 turn sends red -> green -> blue.
    torch.testing.assert_close(jitter_color(s, hue=0.5, order=(3,))["image"], jitter_color(s, hue=-0.5)["image"])
    there = jitter_color(s, hue=0.25)["image"]
    torch.testing.assert_close(jitter_color({"image": there}, hue=-0.25)["image"], img, atol=1e-5, rtol=0)
    rgb = torch.eye(3)[:, :, None]  # columns: red, green, blue
    shifted = jitter_color({"image": rgb}, hue=1 / 3)["image"]
    torch.testing.assert_close(shifted[:, 0, 0], torch.tensor([0.0, 1.0, 0.0]), atol=1e-6, rtol=0)
    torch.testing.assert_close(shifted[:, 1, 0], torch.tensor([0.0, 0.0, 1.0]), atol=1e-6, rtol=0)


# ---------------------------------------------------------------------------------------------------------------
# Errors and config.
# ---------------------------------------------------------------------------------------------------------------


def test_mismatched_sizes_and_unknown_spatial_keys_raise():
    s = make_sample(6, 8)
    with pytest.raises(ShapeError, match="depth: 5x8"):
        hflip({**s, "depth": torch.ones(1, 5, 8)})
    with pytest.raises(ShapeError, match="'normals'"):
        hflip({**s, "normals": torch.zeros(3, 6, 8)})


def test_build_transforms():
    pipe = build_transforms(
        {
            "resize": [12, 16],
            "hflip": True,
            "zoom": [1.0, 1.2],
            "scale": [1.0, 1.5],
            "crop": [8, 8],
            "color_jitter": 0.2,
        },
        train=True,
    )
    names = [type(t).__name__ for t in pipe.transforms]
    assert names == ["Resize", "RandomHorizontalFlip", "CenterZoom", "RandomScale", "RandomCrop", "ColorJitter"]
    assert pipe.transforms[3].scale_range == (1.0, 1.5)
    out = pipe(make_sample(6, 8), np.random.default_rng(0))
    assert out["image"].shape == (3, 8, 8)
    assert [
        type(t).__name__ for t in build_transforms({"resize": [12, 16], "crop": [8, 8]}, train=False).transforms
    ] == ["Resize"]
    assert build_transforms(None, train=True)(make_sample(6, 8))["image"].shape == (3, 6, 8)
    zoom = build_transforms({"zoom": {"scales": [1.5], "divide_depth": False}}, train=True).transforms[0]
    assert zoom.divide_depth is False


@pytest.mark.parametrize(
    "cfg,match",
    [
        ({"hflp": True}, "Did you mean 'hflip'"),
        ({"crop": [96]}, "'crop'"),
        ({"scale": [1.5, 1.0]}, "'scale'"),
        ({"color_jitter": {"brightnes": 0.2}}, "brightness"),
        ({"hflip": 2}, "'hflip'"),
    ],
)
def test_build_transforms_errors(cfg, match):
    with pytest.raises(ConfigError, match=match):
        build_transforms(cfg, train=True)
