"""Rendering: supersampled shading of camera views and the per-sample record of every modality.

A view is rendered with n x n rays per pixel (``supersample``) on a regular sub-pixel grid whose centre
sample sits exactly on the pixel centre. The RGB averages the *linear* radiance of all n x n samples (a box
filter, like a sensor pixel integrating light), so pixels on an object boundary mix both sides, as
Ambiguity-Masking expects. Labels and depth come from the centre sample only, so they are never blended.

Shading is Lambertian from one point light (inverse-square falloff, optional hard shadows) plus ambient
light, with a Blinn-Phong highlight on glossy materials; the camera applies an exposure, a 1/2.2 gamma
response, Gaussian noise and 8-bit quantisation. Windows show a sky gradient and have no depth.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from .camera import intrinsics, pixel_directions, relative_pose
from .config import SyntheticConfig
from .instances import scene_instances
from .primitives import Room
from .raycast import GridCull, occluded, trace
from .scene import Scene, generate_scene, sample_rng
from .sensor import flow_field, sample_misalignment, simulate_sensor_depth
from .textures import albedo as texture_albedo

__all__ = [
    "GROUPS",
    "GROUP_KEYS",
    "ViewRender",
    "SurfaceAttributes",
    "surface_attributes",
    "render_view",
    "render_group",
]

_F32 = np.float32

#: Modality groups rendered (and cached) together, and the encoded arrays each group produces.
GROUP_KEYS: dict[str, tuple[str, ...]] = {
    "target": ("image", "semantic", "depth"),
    "stereo": ("image_right", "pose_right", "baseline"),
    "temporal": ("image_prev", "image_next", "pose_prev", "pose_next"),
    "sensor": ("sensor_depth", "sensor_affine"),
    "instance": ("instance", "instance_labels"),
}
GROUPS: tuple[str, ...] = tuple(GROUP_KEYS)

# RNG streams of the per-view image noise and of the sensor (the scene uses stream 0).
_STREAMS = {"target": 1, "right": 2, "prev": 3, "next": 4, "sensor": 5}


class ViewRender(NamedTuple):
    """One rendered view: image (H, W, 3) uint8; depth (H, W) float32 (0 = invalid); label (H, W) uint8
    (255 = ignore); surface (H, W) int32 surface id at the pixel centre (for tests and debugging)."""

    image: np.ndarray
    depth: np.ndarray
    label: np.ndarray
    surface: np.ndarray


class SurfaceAttributes(NamedTuple):
    """Per-hit albedo (3, N), unit normal (3, N), glossy flag, specular strength/exponent, window flag (N,)."""

    albedo: np.ndarray
    normal: np.ndarray
    glossy: np.ndarray
    specular: np.ndarray
    shininess: np.ndarray
    window: np.ndarray


def surface_attributes(scene: Scene, surface: np.ndarray, points: np.ndarray) -> SurfaceAttributes:
    """Albedo, normal and material flags at hit ``points`` (3, N) on surfaces ``surface`` (N,)."""
    n = len(surface)
    # Process hits grouped by surface: one stable sort and one gather/scatter instead of one per surface.
    order = np.argsort(surface.astype(np.uint8 if scene.num_surfaces < 256 else np.int32), kind="stable")
    counts = np.bincount(surface, minlength=scene.num_surfaces)
    pts = np.take(points, order, axis=1)  # np.take: ~5x faster than fancy indexing on (3, N)
    alb = np.zeros((3, n), dtype=_F32)
    normal = np.zeros((3, n), dtype=_F32)
    glossy = np.zeros(n, dtype=bool)
    specular = np.zeros(n, dtype=_F32)
    shininess = np.ones(n, dtype=_F32)
    window = np.zeros(n, dtype=bool)
    materials = scene.surface_materials()
    n_decals = len(scene.decals)
    stop = 0
    for s in range(scene.num_surfaces):
        start, stop = stop, stop + int(counts[s])
        if start == stop:
            continue
        sl = slice(start, stop)
        p = pts[:, sl]
        if s < 6:
            normal[:, sl] = Room.face_normal(s)[:, None]
            u, v = Room.face_uv(s, p)
        elif s < 6 + n_decals:
            decal = scene.decals[s - 6]
            normal[:, sl] = Room.face_normal(decal.face)[:, None]
            if decal.window:
                window[sl] = True
                continue
            u, v = Room.face_uv(decal.face, p)
            u, v = u - _F32(decal.u_range[0]), v - _F32(decal.v_range[0])
        else:
            prim = scene.objects[s - 6 - n_decals].primitive
            normal[:, sl] = prim.normal(p)
            u, v = prim.surface_uv(p)
        mat = scene.materials[materials[s]]
        alb[:, sl] = texture_albedo(mat, u, v)
        glossy[sl] = mat.glossy
        specular[sl] = mat.specular
        shininess[sl] = mat.shininess
    inverse = np.empty_like(order)
    inverse[order] = np.arange(n)
    return SurfaceAttributes(
        *(np.take(a, inverse, axis=-1) for a in (alb, normal, glossy, specular, shininess, window))
    )


def _dot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return a[0] * b[0] + a[1] * b[1] + a[2] * b[2]


def _sky(unit_dirs: np.ndarray) -> np.ndarray:
    up = np.clip(-unit_dirs[1], -1.0, 1.0)
    horizon = np.array([0.9, 0.93, 0.97], _F32)[:, None]
    zenith = np.array([0.35, 0.55, 0.95], _F32)[:, None]
    ground = np.array([0.35, 0.4, 0.3], _F32)[:, None]
    t = np.clip(up * 2.5, 0.0, 1.0)[None, :]
    sky = horizon + t * (zenith - horizon)
    return np.where(up[None, :] >= 0, sky, ground) * _F32(1.5)


def _is_thin(obj) -> bool:
    lo, hi = obj.primitive.bounds()
    return min(hi[0] - lo[0], hi[2] - lo[2]) < 0.1


def _visibility(
    scene: Scene, points: np.ndarray, lit: np.ndarray, surface: np.ndarray, size: tuple[int, int], n: int
) -> np.ndarray:
    """Light visibility (N,) of supersampled hits laid out as (H, n, W, n).

    Thin occluders (poles, table legs) are tested on every sub-sample. Bulk occluders are tested at the pixel
    centres, and on every sub-sample only of pixels where a neighbouring centre disagrees or several surfaces
    meet: their shadows are at least a pixel wide, so this is exact up to sub-pixel shadow slivers and ~5x
    cheaper.
    """
    light = np.asarray(scene.light.position)
    height, width = size
    thin = [k for k, obj in enumerate(scene.objects) if _is_thin(obj)]
    bulk = [k for k in range(len(scene.objects)) if k not in thin]
    blocked = np.zeros(points.shape[1], dtype=bool)
    if bulk:
        if n == 1:
            idx = np.nonzero(lit)[0]
            blocked[idx] = occluded(scene, light, np.take(points, idx, axis=1), bulk)
        else:
            flat_index = np.arange(points.shape[1]).reshape(height, n, width, n)
            c = n // 2
            centre = flat_index[:, c, :, c].reshape(-1)
            centre_blocked = occluded(scene, light, np.take(points, centre, axis=1), bulk).reshape(height, width)
            padded = np.pad(centre_blocked, 1, mode="edge")
            windows = [padded[dy : dy + height, dx : dx + width] for dy in range(3) for dx in range(3)]
            disagree = np.any(windows, axis=0) != np.all(windows, axis=0)
            surf = surface.reshape(height, n, width, n)
            several = surf.min(axis=(1, 3)) != surf.max(axis=(1, 3))
            refine = disagree | several
            blocked.reshape(height, n, width, n)[...] = centre_blocked[:, None, :, None]
            sub = flat_index[refine[:, None, :, None].repeat(n, 1).repeat(n, 3)]
            sub = sub[lit[sub]]
            blocked[sub] = occluded(scene, light, np.take(points, sub, axis=1), bulk)
    if thin:
        idx = np.nonzero(lit & ~blocked)[0]
        blocked[idx] |= occluded(scene, light, np.take(points, idx, axis=1), thin)
    return lit & ~blocked


def _shade(
    scene: Scene,
    dirs: np.ndarray,
    points: np.ndarray,
    attrs: SurfaceAttributes,
    visibility: Callable[[np.ndarray], np.ndarray] | None,
) -> np.ndarray:
    """Linear radiance (3, N) of hits: ambient + Lambert (+ Blinn-Phong on glossy), times the exposure.

    ``visibility(lit) -> visible`` computes shadows; None means no shadows.
    """
    light = scene.light
    to_light = np.asarray(light.position, dtype=_F32)[:, None] - points
    dist2 = _dot(to_light, to_light)
    l_dir = to_light / np.sqrt(dist2)[None, :]
    ndotl = np.maximum(_dot(attrs.normal, l_dir), _F32(0.0))
    visible = (ndotl > 0) & ~attrs.window
    if visibility is not None and visible.any():
        visible = visibility(visible)
    irradiance = _F32(light.intensity) / (dist2 + _F32(0.25)) * visible
    light_color = np.asarray(light.color, dtype=_F32)[:, None]
    color = attrs.albedo * (_F32(light.ambient) + (ndotl * irradiance)[None, :] * light_color)
    g = np.nonzero(attrs.glossy & visible)[0]
    if g.size:
        d = np.take(dirs, g, axis=1)
        view = -d / np.sqrt(_dot(d, d))[None, :]
        half = np.take(l_dir, g, axis=1) + view
        half /= np.maximum(np.sqrt(_dot(half, half)), _F32(1e-9))[None, :]
        ndoth = np.maximum(_dot(np.take(attrs.normal, g, axis=1), half), _F32(0.0))
        spec = attrs.specular[g] * ndoth ** attrs.shininess[g] * irradiance[g]
        color[:, g] += spec[None, :] * light_color
    w = np.nonzero(attrs.window)[0]
    if w.size:
        d = np.take(dirs, w, axis=1)
        color[:, w] = _sky(d / np.sqrt(_dot(d, d))[None, :])
    return color * _F32(scene.exposure)


def _camera_rays(
    camera_to_world: np.ndarray, K: np.ndarray, size: tuple[int, int], n: int
) -> tuple[np.ndarray, np.ndarray, GridCull]:
    """Origin (3,) float64, world directions (3, H n, W n) float32 and the grid culling of the n x n rays per pixel.

    The one place camera rays are built, so every trace of a view (shading, instance ids) hits the same surfaces.
    """
    height, width = size
    u = np.arange(width * n) / n - (n - 1) / (2 * n)
    v = np.arange(height * n) / n - (n - 1) / (2 * n)
    rot = camera_to_world[:3, :3]
    origin = camera_to_world[:3, 3].astype(np.float64)
    # World directions (3, R, C) of camera directions ((u - cx) / fx, (v - cy) / fy, 1).
    x_cam = ((u - K[0, 2]) / K[0, 0]).astype(_F32)
    y_cam = ((v - K[1, 2]) / K[1, 1]).astype(_F32)
    r32 = rot.astype(_F32)
    dirs = (
        r32[:, 0, None, None] * x_cam[None, None, :]
        + r32[:, 1, None, None] * y_cam[None, :, None]
        + r32[:, 2, None, None]
    )
    return origin, dirs, GridCull(K, rot.T, u, v)


def render_view(
    scene: Scene,
    camera_to_world: np.ndarray,
    K: np.ndarray,
    size: tuple[int, int],
    *,
    supersample: int = 3,
    shadows: bool = True,
    image_noise: float = 0.0,
    rng: np.random.Generator | None = None,
) -> ViewRender:
    """Render one view of ``scene`` from the camera pose ``camera_to_world`` (4, 4) with intrinsics ``K``.

    Pixel centres are at integer coordinates; sub-samples sit at offsets (k - (n - 1) / 2) / n, k < n.
    """
    height, width = size
    n = supersample
    origin, dirs, cull = _camera_rays(camera_to_world, K, size, n)
    hits = trace(scene, origin, dirs, cull=cull)

    flat_dirs = dirs.reshape(3, -1)
    t = hits.t.reshape(-1)
    surface = hits.surface.reshape(-1)
    points = origin.astype(_F32)[:, None] + t[None, :] * flat_dirs
    attrs = surface_attributes(scene, surface, points)
    visibility = (lambda lit: _visibility(scene, points, lit, surface, size, n)) if shadows else None
    radiance = _shade(scene, flat_dirs, points, attrs, visibility)
    blocks = radiance.reshape(3, height, n, width, n)
    radiance = sum(blocks[:, :, j, :, i] for j in range(n) for i in range(n)) * _F32(1.0 / (n * n))
    image = np.clip(radiance, 0.0, 1.0) ** _F32(1.0 / 2.2)
    if image_noise > 0:
        if rng is None:
            raise ValueError("render_view needs rng when image_noise > 0")
        image = image + rng.standard_normal(image.shape).astype(_F32) * _F32(image_noise)
    image8 = np.clip(np.round(image * 255.0), 0, 255).astype(np.uint8).transpose(1, 2, 0)

    c = n // 2
    centre_surface = np.ascontiguousarray(hits.surface[c::n, c::n])
    depth = hits.t[c::n, c::n].astype(_F32)
    window = attrs.window.reshape(height * n, width * n)[c::n, c::n]
    depth = np.where(window, _F32(0.0), depth)
    label = scene.surface_labels()[centre_surface]
    return ViewRender(np.ascontiguousarray(image8), depth, label, centre_surface.astype(np.int32))


def _view(scene: Scene, config: SyntheticConfig, pose: np.ndarray, K: np.ndarray, size, rng) -> ViewRender:
    return render_view(
        scene,
        pose,
        K,
        size,
        supersample=config.supersample,
        shadows=config.shadows,
        image_noise=config.image_noise,
        rng=rng,
    )


def _sensor(
    scene: Scene, config: SyntheticConfig, K: np.ndarray, size, rng: np.random.Generator
) -> dict[str, np.ndarray]:
    height, width = size
    affine = sample_misalignment(rng, height, width, config.misalignment)
    flow = flow_field(affine, height, width).astype(np.float64)
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    dirs_cam = pixel_directions(K, x + flow[0], y + flow[1])  # (H, W, 3)
    pose = scene.camera_to_world[0]
    origin = pose[:3, 3].astype(np.float64)
    dirs = np.ascontiguousarray(np.einsum("ij,hwj->ihw", pose[:3, :3], dirs_cam).astype(_F32))
    hits = trace(scene, origin, dirs)
    flat = dirs.reshape(3, -1)
    t = hits.t.reshape(-1)
    points = origin.astype(_F32)[:, None] + t[None, :] * flat
    attrs = surface_attributes(scene, hits.surface.reshape(-1), points)
    cos_view = np.abs(_dot(attrs.normal, flat)) / np.sqrt(_dot(flat, flat))
    luminance = _F32(0.2126) * attrs.albedo[0] + _F32(0.7152) * attrs.albedo[1] + _F32(0.0722) * attrs.albedo[2]
    depth = np.where(attrs.window, _F32(0.0), t)
    sensor = simulate_sensor_depth(
        depth.reshape(height, width),
        luminance.reshape(height, width),
        attrs.glossy.reshape(height, width),
        cos_view.reshape(height, width),
        rng,
        focal=float(K[0, 0]),
        noise=config.sensor_noise,
        holes=config.sensor_holes,
        quantize=config.sensor_quantization,
    )
    return {"sensor_depth": sensor, "sensor_affine": affine.astype(np.float64)}


def _instance(scene: Scene, config: SyntheticConfig, K: np.ndarray, size: tuple[int, int]) -> dict[str, np.ndarray]:
    """Instance ids at the pixel centres (see ``instances.py``), from the very rays ``render_view`` traces.

    The trace repeats the target view's (same rays, same culling, no shading), so ``instance`` and ``semantic`` come
    from the same surface at every pixel and adding this group changes no other modality.
    """
    n = config.supersample
    origin, dirs, cull = _camera_rays(scene.camera_to_world[0], K, size, n)
    surface = trace(scene, origin, dirs, cull=cull).surface
    c = n // 2
    lut, labels = scene_instances(scene)
    return {"instance": np.ascontiguousarray(lut[surface[c::n, c::n]]), "instance_labels": labels}


def render_group(
    group: str,
    config: SyntheticConfig,
    size: tuple[int, int],
    seed: int,
    split: str,
    index: int,
    *,
    scene: Scene | None = None,
) -> dict[str, np.ndarray]:
    """Encoded arrays of one modality group of sample (seed, split, index) (the on-disk record format).

    Images are (H, W, 3) uint8, ``semantic`` (H, W) uint8 with 255 = ignore, depths (H, W) float32 in metres
    with 0 = invalid, poses (4, 4) float32, ``baseline`` () float32, ``sensor_affine`` (2, 3) float64,
    ``instance`` (H, W) int32 (0 = no thing) and ``instance_labels`` (M,) uint8, the class id of instances 1..M.
    """
    if group not in GROUP_KEYS:
        raise ValueError(f"unknown modality group {group!r}; valid groups are {GROUPS}")
    scene = scene if scene is not None else generate_scene(config, seed, split, index)
    K = intrinsics(size[0], size[1], config.hfov_deg)

    def rng(name: str) -> np.random.Generator:
        return sample_rng(seed, split, index, _STREAMS[name])

    poses = scene.camera_to_world
    if group == "target":
        view = _view(scene, config, poses[0], K, size, rng("target"))
        return {"image": view.image, "semantic": view.label, "depth": view.depth}
    if group == "stereo":
        right_offset = np.eye(4)
        right_offset[0, 3] = config.baseline
        right_pose = poses[0] @ right_offset
        view = _view(scene, config, right_pose, K, size, rng("right"))
        return {
            "image_right": view.image,
            "pose_right": relative_pose(poses[0], right_pose).astype(_F32),
            "baseline": np.asarray(config.baseline, dtype=_F32),
        }
    if group == "temporal":
        prev = _view(scene, config, poses[-1], K, size, rng("prev"))
        nxt = _view(scene, config, poses[1], K, size, rng("next"))
        return {
            "image_prev": prev.image,
            "image_next": nxt.image,
            "pose_prev": relative_pose(poses[0], poses[-1]).astype(_F32),
            "pose_next": relative_pose(poses[0], poses[1]).astype(_F32),
        }
    if group == "instance":
        return _instance(scene, config, K, size)
    return _sensor(scene, config, K, size, rng("sensor"))
