"""Ray-primitive intersection, normals and surface coordinates, vectorised over rays (numpy, float32).

Arrays are component-major: directions and points are (3, N) (contiguous rows are ~10x faster in numpy
than strided (N, 3) columns). Rays share one origin (a camera centre or the light) and have unnormalised
directions; the hit distance ``t`` is in units of the direction, so with camera-frame directions of z = 1 it
is the z-depth. Misses are ``inf``. Every primitive is convex and ray origins are never inside an object (the
scene generator keeps a clearance), so the first hit is the near root.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Sphere", "Cylinder", "Box", "Room", "ROOM_FACES"]

_F32 = np.float32
_INF = _F32(np.inf)

#: Room face ids: the order the room's faces have in surface ids.
ROOM_FACES: tuple[str, ...] = ("floor", "ceiling", "wall_left", "wall_right", "wall_front", "wall_back")


def _f(x: float) -> np.float32:
    return _F32(x)


@dataclass(frozen=True)
class Sphere:
    center: tuple[float, float, float]
    radius: float

    def intersect(self, origin: np.ndarray, dirs: np.ndarray, tmin: float = 1e-4) -> np.ndarray:
        ox, oy, oz = (_f(float(origin[i]) - self.center[i]) for i in range(3))
        dx, dy, dz = dirs
        with np.errstate(invalid="ignore"):
            a = dx * dx + dy * dy + dz * dz
            tc = -(dx * ox + dy * oy + dz * oz) / a
            # Squared distance centre-line from the closest point: no cancellation in b^2 - ac for thin,
            # far objects.
            qx, qy, qz = ox + tc * dx, oy + tc * dy, oz + tc * dz
            h = _f(self.radius**2) - (qx * qx + qy * qy + qz * qz)
            t = tc - np.sqrt(h / a)
            return np.where((h >= 0) & (t > tmin), t, _INF)

    def normal(self, points: np.ndarray) -> np.ndarray:
        c = np.asarray(self.center, dtype=_F32)[:, None]
        return ((points - c) / _f(self.radius)).astype(_F32)

    def surface_uv(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        p = self.normal(points)
        r = _f(self.radius)
        return np.arctan2(p[2], p[0]) * r, np.arccos(np.clip(p[1], -1, 1)) * r

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        c = np.asarray(self.center)
        return c - self.radius, c + self.radius

    def bounding_spheres(self) -> list[tuple[np.ndarray, float]]:
        return [(np.asarray(self.center, dtype=np.float64), float(self.radius))]


@dataclass(frozen=True)
class Cylinder:
    """An upright (axis along y) capped cylinder spanning y0 <= y <= y1."""

    center_x: float
    center_z: float
    y0: float
    y1: float
    radius: float

    def intersect(self, origin: np.ndarray, dirs: np.ndarray, tmin: float = 1e-4) -> np.ndarray:
        ox, oy, oz = _f(float(origin[0]) - self.center_x), _f(float(origin[1])), _f(float(origin[2]) - self.center_z)
        dx, dy, dz = dirs
        r2 = _f(self.radius**2)
        with np.errstate(divide="ignore", invalid="ignore"):
            a = dx * dx + dz * dz
            tc = -(dx * ox + dz * oz) / a
            qx, qz = ox + tc * dx, oz + tc * dz
            h = r2 - (qx * qx + qz * qz)
            t_side = tc - np.sqrt(h / a)
            y = oy + t_side * dy
            t = np.where((h >= 0) & (t_side > tmin) & (y >= self.y0) & (y <= self.y1), t_side, _INF)
            inv_dy = _f(1.0) / dy
            for y_cap in (self.y0, self.y1):
                t_cap = (_f(y_cap) - oy) * inv_dy
                cx, cz = ox + t_cap * dx, oz + t_cap * dz
                ok = (t_cap > tmin) & (cx * cx + cz * cz <= r2) & (t_cap < t)
                t = np.where(ok, t_cap, t)
        return t

    def _parts(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        rx = points[0] - _f(self.center_x)
        rz = points[2] - _f(self.center_z)
        rho = np.sqrt(rx * rx + rz * rz)
        cap_dist = np.minimum(np.abs(points[1] - _f(self.y0)), np.abs(points[1] - _f(self.y1)))
        on_cap = cap_dist < (_f(self.radius) - rho)
        return rx, rz, rho, on_cap

    def normal(self, points: np.ndarray) -> np.ndarray:
        rx, rz, rho, on_cap = self._parts(points)
        rho = np.maximum(rho, _f(1e-12))
        mid = _f(0.5 * (self.y0 + self.y1))
        ny = np.where(points[1] < mid, _f(-1.0), _f(1.0))
        return np.stack([np.where(on_cap, 0, rx / rho), np.where(on_cap, ny, 0), np.where(on_cap, 0, rz / rho)]).astype(
            _F32
        )

    def surface_uv(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        rx, rz, _, on_cap = self._parts(points)
        u = np.where(on_cap, rx, np.arctan2(rz, rx) * _f(self.radius))
        v = np.where(on_cap, rz, -points[1])
        return u.astype(_F32), v.astype(_F32)

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        r = self.radius
        return (
            np.array([self.center_x - r, self.y0, self.center_z - r]),
            np.array([self.center_x + r, self.y1, self.center_z + r]),
        )

    def bounding_spheres(self) -> list[tuple[np.ndarray, float]]:
        """Spheres covering the cylinder; tall thin ones get a stack of small spheres (tight culling)."""
        height = self.y1 - self.y0
        count = max(1, min(12, int(np.ceil(height / max(4 * self.radius, 0.25)))))
        step = height / count
        radius = float(np.hypot(step / 2, self.radius))
        return [(np.array([self.center_x, self.y0 + (i + 0.5) * step, self.center_z]), radius) for i in range(count)]


@dataclass(frozen=True)
class Box:
    """A box rotated by ``yaw`` about the vertical (y) axis."""

    center: tuple[float, float, float]
    half_size: tuple[float, float, float]
    yaw: float = 0.0

    @property
    def rotation(self) -> np.ndarray:
        """Local-to-world rotation (3, 3)."""
        c, s = np.cos(self.yaw), np.sin(self.yaw)
        return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])

    def intersect(self, origin: np.ndarray, dirs: np.ndarray, tmin: float = 1e-4) -> np.ndarray:
        rot = self.rotation
        o_local = rot.T @ (np.asarray(origin, dtype=np.float64) - self.center)
        d_local = rot.T.astype(_F32) @ dirs
        t_near = t_far = None
        with np.errstate(divide="ignore", invalid="ignore"):
            for k in range(3):
                inv = _f(1.0) / d_local[k]
                t1 = _f(-self.half_size[k] - o_local[k]) * inv
                t2 = _f(self.half_size[k] - o_local[k]) * inv
                lo, hi = np.minimum(t1, t2), np.maximum(t1, t2)
                if t_near is None:
                    t_near, t_far = lo, hi
                else:
                    # fmax/fmin drop the NaN of 0 * inf (a ray parallel to, and exactly on, a slab plane).
                    t_near, t_far = np.fmax(t_near, lo), np.fmin(t_far, hi)
        return np.where((t_near <= t_far) & (t_near > tmin), t_near, _INF)

    def _local(self, points: np.ndarray) -> np.ndarray:
        c = np.asarray(self.center, dtype=_F32)[:, None]
        return self.rotation.T.astype(_F32) @ (points - c)

    def _face_axis(self, local: np.ndarray) -> np.ndarray:
        ratio = np.abs(local) / np.asarray(self.half_size, dtype=_F32)[:, None]
        return np.argmax(ratio, axis=0)

    def normal(self, points: np.ndarray) -> np.ndarray:
        local = self._local(points)
        axis = self._face_axis(local)
        n_local = np.stack([np.where(axis == k, np.sign(local[k]), 0) for k in range(3)]).astype(_F32)
        return self.rotation.astype(_F32) @ n_local

    def surface_uv(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        local = self._local(points)
        axis = self._face_axis(local)
        u = np.where(axis == 0, local[2], local[0])
        v = np.where(axis == 1, local[2], -local[1])
        return u, v

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        extent = np.abs(self.rotation) @ np.asarray(self.half_size)
        c = np.asarray(self.center)
        return c - extent, c + extent

    def bounding_spheres(self) -> list[tuple[np.ndarray, float]]:
        """Spheres covering the box; tall thin boxes (table legs) get a stack of small spheres."""
        hx, hy, hz = self.half_size
        width = max(hx, hz)
        count = max(1, min(12, int(np.ceil(hy / max(2 * width, 0.125)))))
        step = 2 * hy / count
        radius = float(np.sqrt(hx * hx + hz * hz + (step / 2) ** 2))
        c = np.asarray(self.center, dtype=np.float64)
        return [(c + np.array([0.0, -hy + (i + 0.5) * step, 0.0]), radius) for i in range(count)]


@dataclass(frozen=True)
class Room:
    """The inside of an axis-aligned box: floor at y = hi[1] (y points down), ceiling at y = lo[1]."""

    lo: tuple[float, float, float]
    hi: tuple[float, float, float]

    def intersect_inside(self, origin: np.ndarray, dirs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Exit distance (N,) and face id (N,) in :data:`ROOM_FACES` order for rays starting inside."""
        # Face ids per axis for a negative / positive direction component:
        # x: left wall (2) / right wall (3); y: ceiling (1) / floor (0); z: front wall (4) / back wall (5).
        faces = ((2, 3), (1, 0), (4, 5))
        t = face = None
        with np.errstate(divide="ignore"):
            for k in range(3):
                positive = dirs[k] > 0
                lo_k, hi_k = _f(self.lo[k] - float(origin[k])), _f(self.hi[k] - float(origin[k]))
                t_k = np.where(positive, hi_k, lo_k) / np.abs(dirs[k]) * np.where(positive, _f(1), _f(-1))
                f_k = np.where(positive, np.int32(faces[k][1]), np.int32(faces[k][0]))
                if t is None:
                    t, face = t_k, f_k
                else:
                    closer = t_k < t
                    t = np.where(closer, t_k, t)
                    face = np.where(closer, f_k, face)
        return t.astype(_F32), face.astype(np.int32)

    @staticmethod
    def face_normal(face: int) -> np.ndarray:
        """Unit normal (3,) of a room face, pointing into the room."""
        normals = ((0, -1, 0), (0, 1, 0), (1, 0, 0), (-1, 0, 0), (0, 0, 1), (0, 0, -1))
        return np.asarray(normals[face], dtype=_F32)

    @staticmethod
    def face_uv(face: int, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Surface coordinates in metres: floor/ceiling (x, z); side walls (z, height); end walls (x, height)."""
        if face in (0, 1):
            return points[0], points[2]
        if face in (2, 3):
            return points[2], -points[1]
        return points[0], -points[1]
