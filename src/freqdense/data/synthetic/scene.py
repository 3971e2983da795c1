"""Random indoor rooms: geometry, materials, light and a smooth camera path, from (seed, split, index).

Every random draw comes from a numpy ``Generator`` seeded by ``SeedSequence([seed, split_code, index, stream])``,
so a scene is the same in every process and never depends on global RNG state. Train/val/test use different
split codes, so they never share a scene.

World frame: x right, y down (gravity +y), z forward; the floor is the plane y = 0 and the room spans
x in [-width/2, width/2], z in [0, depth], y in [-height, 0].
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ...errors import ConfigError
from .camera import pose_matrix, rotation_ypr
from .classes import IGNORE_INDEX, class_id
from .config import SyntheticConfig
from .primitives import Box, Cylinder, Room, Sphere
from .textures import Material, sample_material

__all__ = [
    "SPLIT_CODES",
    "STREAM_SCENE",
    "Decal",
    "SceneObject",
    "Light",
    "Scene",
    "sample_rng",
    "generate_scene",
]

#: Split name -> code mixed into the seed; distinct codes give disjoint scenes.
SPLIT_CODES: dict[str, int] = {"train": 0, "val": 1, "test": 2}

#: RNG stream ids: one independent stream per purpose, so rendering one modality never shifts another's draws.
STREAM_SCENE = 0


def sample_rng(seed: int, split: str, index: int, stream: int) -> np.random.Generator:
    """The generator of one purpose (``stream``) of one sample."""
    if split not in SPLIT_CODES:
        raise ConfigError(f"unknown synthetic split {split!r}; use one of {', '.join(SPLIT_CODES)}.")
    if seed < 0 or index < 0:
        raise ConfigError(f"synthetic seed and index must be >= 0, got seed={seed}, index={index}.")
    return np.random.Generator(
        np.random.PCG64(np.random.SeedSequence([int(seed), SPLIT_CODES[split], int(index), stream]))
    )


@dataclass(frozen=True)
class Decal:
    """A flat rectangle painted on a room face: same depth as the face, its own class and material.

    ``u_range``/``v_range`` are in the face's surface coordinates (see ``Room.face_uv``). A window is a decal
    with ``label == 255`` and ``window=True``: it shows the sky and has invalid depth (0).
    """

    face: int
    u_range: tuple[float, float]
    v_range: tuple[float, float]
    label: int
    material: int
    window: bool = False


@dataclass(frozen=True)
class SceneObject:
    """One convex primitive with its class label (255 = unlabeled clutter), material and instance id."""

    primitive: Sphere | Cylinder | Box
    label: int
    material: int
    instance: int


@dataclass(frozen=True)
class Light:
    """A point light with inverse-square falloff, plus ambient light."""

    position: tuple[float, float, float]
    color: tuple[float, float, float]
    intensity: float
    ambient: float


@dataclass(frozen=True)
class Scene:
    """Everything needed to render any view of one sample.

    ``camera_to_world`` holds the 4x4 camera-to-world poses of the frames t-1, t and t+1 (keys -1, 0, 1).
    Room faces use materials 0 (floor), 1 (ceiling) and 2 (walls).
    """

    room: Room
    materials: tuple[Material, ...]
    decals: tuple[Decal, ...]
    objects: tuple[SceneObject, ...]
    light: Light
    camera_to_world: dict[int, np.ndarray] = field(compare=False)
    exposure: float = 1.0

    @property
    def num_surfaces(self) -> int:
        return 6 + len(self.decals) + len(self.objects)

    def surface_labels(self) -> np.ndarray:
        """Label of every surface id: 6 room faces, then decals, then objects."""
        room = [class_id("floor"), class_id("ceiling")] + [class_id("wall")] * 4
        labels = room + [d.label for d in self.decals] + [o.label for o in self.objects]
        return np.asarray(labels, dtype=np.uint8)

    def surface_materials(self) -> np.ndarray:
        room = [0, 1, 2, 2, 2, 2]
        return np.asarray(room + [d.material for d in self.decals] + [o.material for o in self.objects], dtype=np.int32)


def _camera_path(
    rng: np.random.Generator, config: SyntheticConfig, lo: np.ndarray, hi: np.ndarray
) -> dict[int, np.ndarray]:
    if config.camera_motion == "forward":
        return _forward_camera_path(rng, config, lo, hi)
    width, depth = hi[0] - lo[0], hi[2]
    height_above_floor = rng.uniform(1.1, 1.7)
    p0 = np.array([rng.uniform(lo[0] + 0.8, hi[0] - 0.8), -height_above_floor, rng.uniform(0.6, 0.3 * depth)])
    yaw0 = rng.uniform(-0.5, 0.5) if width > 0 else 0.0
    pitch0 = rng.uniform(-0.35, 0.0)
    roll0 = rng.uniform(-0.03, 0.03)
    speed = rng.uniform(0.04, 0.15) * config.camera_speed
    heading = yaw0 + rng.uniform(-0.8, 0.8)
    velocity = np.array(
        [speed * math.sin(heading), rng.uniform(-0.01, 0.01) * config.camera_speed, speed * math.cos(heading)]
    )
    accel = rng.uniform(-0.01, 0.01, 3) * config.camera_speed
    yaw_rate = rng.uniform(-0.04, 0.04) * config.camera_speed
    pitch_rate = rng.uniform(-0.015, 0.015) * config.camera_speed
    roll_rate = rng.uniform(-0.005, 0.005) * config.camera_speed
    poses = {}
    margin = 0.25
    for tau in (-1, 0, 1):
        pos = p0 + tau * velocity + 0.5 * tau * tau * accel
        pos = np.clip(pos, np.asarray(lo) + margin, np.asarray(hi) - margin)
        rot = rotation_ypr(yaw0 + tau * yaw_rate, pitch0 + tau * pitch_rate, roll0 + tau * roll_rate)
        poses[tau] = pose_matrix(rot, pos)
    return poses


def _forward_camera_path(
    rng: np.random.Generator, config: SyntheticConfig, lo: np.ndarray, hi: np.ndarray
) -> dict[int, np.ndarray]:
    """Driving-like path: 50-80 cm per frame along the optical axis, up to 2 deg of yaw per frame.

    The camera starts near the back wall (z = 0) looking down the room's long axis, so frame t+1 stays at least
    ``depth - 2.2`` m from the far wall; the translation deviates from the optical axis by at most 0.1 rad, so the
    depth-dependent image motion is mostly the radial expansion of forward motion (a KITTI-like signal).
    """
    speed_scale = config.camera_speed
    height_above_floor = rng.uniform(1.1, 1.6)
    speed = rng.uniform(0.5, 0.8) * speed_scale
    p0 = np.array([rng.uniform(lo[0] + 1.0, hi[0] - 1.0), -height_above_floor, rng.uniform(0.4, 0.6) + speed])
    yaw0 = rng.uniform(-0.25, 0.25)
    pitch0 = rng.uniform(-0.2, 0.0)
    roll0 = rng.uniform(-0.02, 0.02)
    heading = yaw0 + rng.uniform(-0.1, 0.1)
    velocity = np.array([speed * math.sin(heading), rng.uniform(-0.01, 0.01) * speed_scale, speed * math.cos(heading)])
    yaw_rate = rng.uniform(-0.035, 0.035) * speed_scale
    pitch_rate = rng.uniform(-0.01, 0.01) * speed_scale
    poses = {}
    margin = 0.25
    for tau in (-1, 0, 1):
        pos = np.clip(p0 + tau * velocity, np.asarray(lo) + margin, np.asarray(hi) - margin)
        rot = rotation_ypr(yaw0 + tau * yaw_rate, pitch0 + tau * pitch_rate, roll0)
        poses[tau] = pose_matrix(rot, pos)
    return poses


class _Placer:
    """Rejection sampling of object footprints (discs in the xz plane) away from the camera and each other."""

    def __init__(self, cameras: list[np.ndarray], clearance: float = 0.6) -> None:
        self.cameras = cameras
        self.clearance = clearance
        self.discs: list[tuple[float, float, float]] = []

    def free(self, x: float, z: float, radius: float) -> bool:
        for c in self.cameras:
            if math.hypot(x - c[0], z - c[2]) < radius + self.clearance:
                return False
        return all(math.hypot(x - dx, z - dz) >= radius + dr + 0.05 for dx, dz, dr in self.discs)

    def add(self, x: float, z: float, radius: float) -> None:
        self.discs.append((x, z, radius))


def generate_scene(config: SyntheticConfig, seed: int, split: str, index: int) -> Scene:
    """Draw the room, objects, materials, light and camera path of sample ``index`` of ``split``."""
    rng = sample_rng(seed, split, index, STREAM_SCENE)
    width, depth, height = rng.uniform(3.5, 7.0), rng.uniform(4.5, 9.0), rng.uniform(2.4, 3.2)
    if config.camera_motion == "forward":
        depth *= 1.6  # 7.2-14.4 m: room for ~1 m of forward travel with the far wall well ahead
    lo = np.array([-width / 2, -height, 0.0])
    hi = np.array([width / 2, 0.0, depth])
    room = Room(tuple(lo.tolist()), tuple(hi.tolist()))
    poses = _camera_path(rng, config, lo, hi)
    cameras = [poses[k][:3, 3] for k in (-1, 0, 1)]

    materials: list[Material] = [
        sample_material(rng, config, glossy=rng.random() < 0.3, value_range=(0.2, 0.8)),  # floor
        sample_material(rng, config, value_range=(0.75, 0.95), saturation=0.15, contrast=(0.05, 0.2)),  # ceiling
        sample_material(rng, config, value_range=(0.4, 0.9), saturation=0.4),  # walls
    ]

    def add_material(**kwargs) -> int:
        materials.append(sample_material(rng, config, **kwargs))
        return len(materials) - 1

    decals: list[Decal] = []
    objects: list[SceneObject] = []
    instance = 0

    # --- wall decals: a window (label 255, no depth) and pictures (same depth as the wall) -------------------
    def wall_rect(face: int, w: float, h: float, center_h: float) -> tuple[tuple[float, float], tuple[float, float]]:
        along_lo, along_hi = (lo[2], hi[2]) if face in (2, 3) else (lo[0], hi[0])
        c = rng.uniform(along_lo + w / 2 + 0.1, along_hi - w / 2 - 0.1)
        return (c - w / 2, c + w / 2), (center_h - h / 2, center_h + h / 2)

    def overlaps(face: int, ur: tuple[float, float], vr: tuple[float, float]) -> bool:
        return any(
            d.face == face
            and ur[0] < d.u_range[1]
            and d.u_range[0] < ur[1]
            and vr[0] < d.v_range[1]
            and d.v_range[0] < vr[1]
            for d in decals
        )

    if rng.random() < config.unlabeled_fraction:
        face = int(rng.choice([2, 3, 5]))
        w, h = rng.uniform(0.8, 1.8), rng.uniform(0.8, 1.3)
        ur, vr = wall_rect(
            face,
            min(w, (hi[2] if face in (2, 3) else width) - 0.4),
            h,
            rng.uniform(1.4, min(1.8, height - h / 2 - 0.1)),
        )
        decals.append(Decal(face, ur, vr, IGNORE_INDEX, material=0, window=True))
    for _ in range(int(rng.integers(0, config.max_pictures + 1))):
        face = int(rng.choice([2, 3, 4, 5]))
        w, h = rng.uniform(0.3, 1.4), rng.uniform(0.3, 1.0)
        center_h = rng.uniform(1.0, min(1.9, height - h / 2 - 0.1))
        ur, vr = wall_rect(face, w, h, center_h)
        mat = add_material(value_range=(0.1, 0.95), saturation=0.9, contrast=(0.4, 0.9))
        if not overlaps(face, ur, vr):
            decals.append(Decal(face, ur, vr, class_id("picture"), mat))
    if rng.random() < 0.5:
        w, d = rng.uniform(1.0, 2.5), rng.uniform(1.0, 2.0)
        cx, cz = (
            rng.uniform(lo[0] + w / 2, hi[0] - w / 2) if width > w else 0.0,
            rng.uniform(d / 2 + 0.2, depth - d / 2),
        )
        mat = add_material(value_range=(0.15, 0.8), saturation=0.8)
        decals.append(Decal(0, (cx - w / 2, cx + w / 2), (cz - d / 2, cz + d / 2), class_id("rug"), mat))

    placer = _Placer(cameras)
    tables: list[tuple[float, float, float, float, float, float]] = []  # x, z, half_w, half_d, yaw, top_y

    def try_place(radius: float, tries: int = 25, margin: float = 0.05) -> tuple[float, float] | None:
        for _ in range(tries):
            x = rng.uniform(lo[0] + radius + margin, hi[0] - radius - margin)
            z = rng.uniform(radius + margin, depth - radius - margin)
            if placer.free(x, z, radius):
                placer.add(x, z, radius)
                return x, z
        return None

    def on_table(extent: float) -> tuple[float, float, float] | None:
        if not tables:
            return None
        x, z, hw, hd, yaw, top_y = tables[int(rng.integers(0, len(tables)))]
        ex, ez = max(hw - extent, 0.0), max(hd - extent, 0.0)
        lx, lz = rng.uniform(-ex, ex), rng.uniform(-ez, ez)
        c, s = math.cos(yaw), math.sin(yaw)
        return x + c * lx + s * lz, z - s * lx + c * lz, top_y

    kinds = ("table", "cabinet", "ball", "bin", "clutter")
    # Unlabeled clutter is 15 % of the objects at the default unlabeled_fraction = 0.4.
    kind_weights = np.array([0.25, 0.2, 0.2, 0.2, 0.375 * config.unlabeled_fraction])
    kind_weights /= kind_weights.sum()
    n_objects = int(rng.integers(config.min_objects, config.max_objects + 1))
    for _ in range(n_objects):
        kind = kinds[int(rng.choice(len(kinds), p=kind_weights))]
        dark = bool(rng.random() < config.dark_fraction)
        glossy = bool(rng.random() < config.glossy_fraction)
        if kind == "table":
            hw, hd = rng.uniform(0.4, 0.8), rng.uniform(0.3, 0.5)
            top_h, thick, leg = rng.uniform(0.65, 0.8), rng.uniform(0.035, 0.06), rng.uniform(0.035, 0.07)
            yaw = rng.uniform(-math.pi, math.pi)
            spot = try_place(math.hypot(hw, hd))
            mat = add_material(dark=dark, glossy=glossy)
            if spot is None:
                continue
            x, z = spot
            box_top = Box((x, -top_h + thick / 2, z), (hw, thick / 2, hd), yaw)
            objects.append(SceneObject(box_top, class_id("table"), mat, instance))
            c, s = math.cos(yaw), math.sin(yaw)
            leg_h = top_h - thick
            for sx in (-1, 1):
                for sz in (-1, 1):
                    lx, lz = sx * (hw - leg / 2 - 0.03), sz * (hd - leg / 2 - 0.03)
                    center = (x + c * lx + s * lz, -leg_h / 2, z - s * lx + c * lz)
                    objects.append(
                        SceneObject(Box(center, (leg / 2, leg_h / 2, leg / 2), yaw), class_id("table"), mat, instance)
                    )
            tables.append((x, z, hw, hd, yaw, -top_h))
        elif kind == "cabinet":
            hw, hd, h = rng.uniform(0.25, 0.75), rng.uniform(0.18, 0.3), rng.uniform(0.6, min(2.0, height - 0.45))
            wall = int(rng.integers(0, 4))
            mat = add_material(dark=dark, glossy=glossy)
            spot = None
            for _ in range(25):
                if wall == 0:  # against the left wall, facing +x
                    x, z, yaw = lo[0] + hd + 0.01, rng.uniform(hw + 0.1, depth - hw - 0.1), math.pi / 2
                elif wall == 1:
                    x, z, yaw = hi[0] - hd - 0.01, rng.uniform(hw + 0.1, depth - hw - 0.1), -math.pi / 2
                elif wall == 2:  # against the back wall
                    x, z, yaw = rng.uniform(lo[0] + hw + 0.1, hi[0] - hw - 0.1), depth - hd - 0.01, 0.0
                else:  # free-standing
                    x = rng.uniform(lo[0] + 0.9, hi[0] - 0.9)
                    z, yaw = rng.uniform(0.9, depth - 0.9), rng.uniform(-math.pi, math.pi)
                if placer.free(x, z, math.hypot(hw, hd)):
                    placer.add(x, z, math.hypot(hw, hd))
                    spot = (x, z, yaw)
                    break
            if spot is None:
                continue
            x, z, yaw = spot
            objects.append(SceneObject(Box((x, -h / 2, z), (hw, h / 2, hd), yaw), class_id("cabinet"), mat, instance))
        elif kind == "ball":
            r = rng.uniform(0.1, 0.35)
            mat = add_material(dark=dark, glossy=glossy, saturation=0.9)
            top = on_table(r) if rng.random() < 0.35 else None
            if top is not None:
                x, z, top_y = top
                center = (x, top_y - r, z)
            else:
                spot = try_place(r)
                if spot is None:
                    continue
                center = (spot[0], -r, spot[1])
            objects.append(SceneObject(Sphere(center, r), class_id("ball"), mat, instance))
        elif kind == "bin":
            r, h = rng.uniform(0.12, 0.3), rng.uniform(0.3, 0.9)
            mat = add_material(dark=dark, glossy=glossy)
            spot = try_place(r)
            if spot is None:
                continue
            objects.append(SceneObject(Cylinder(spot[0], spot[1], -h, 0.0, r), class_id("bin"), mat, instance))
        else:  # unlabeled clutter: a small box on the floor or on a table, label 255
            hs = rng.uniform(0.07, 0.2, 3)
            yaw = rng.uniform(-math.pi, math.pi)
            mat = add_material(dark=dark, glossy=glossy)
            top = on_table(max(hs[0], hs[2])) if rng.random() < 0.4 else None
            if top is not None:
                x, z, base = top
            else:
                spot = try_place(math.hypot(hs[0], hs[2]))
                if spot is None:
                    continue
                (x, z), base = spot, 0.0
            objects.append(SceneObject(Box((x, base - hs[1], z), tuple(hs.tolist()), yaw), IGNORE_INDEX, mat, instance))
        instance += 1

    # --- light: near the ceiling, then thin poles that avoid it -------------------------------------------------
    light_pos = np.array(
        [rng.uniform(lo[0] + 0.2 * width, hi[0] - 0.2 * width), -height + 0.25, rng.uniform(0.2 * depth, 0.8 * depth)]
    )
    tint = np.array([1.0, 1.0 - rng.uniform(0, 0.1), 1.0 - rng.uniform(0, 0.2)])
    light = Light(
        tuple(light_pos.tolist()), tuple(tint.tolist()), float(rng.uniform(4.0, 9.0)), float(rng.uniform(0.08, 0.25))
    )

    n_poles = int(rng.integers(1, config.max_poles + 1)) if config.max_poles > 0 else 0
    for _ in range(n_poles):
        r = rng.uniform(0.01, 0.03)
        full = rng.random() < 0.7
        top_y = -height if full else -rng.uniform(1.5, 2.0)
        mat = add_material(glossy=bool(rng.random() < config.glossy_fraction), value_range=(0.1, 0.9))
        for _ in range(25):
            x, z = rng.uniform(lo[0] + 0.1, hi[0] - 0.1), rng.uniform(0.1, depth - 0.1)
            if placer.free(x, z, r) and math.hypot(x - light_pos[0], z - light_pos[2]) > r + 0.1:
                placer.add(x, z, r)
                objects.append(SceneObject(Cylinder(x, z, top_y, 0.0, r), class_id("pole"), mat, instance))
                instance += 1
                break

    exposure = float(rng.uniform(0.8, 1.2))
    return Scene(room, tuple(materials), tuple(decals), tuple(objects), light, poses, exposure)
