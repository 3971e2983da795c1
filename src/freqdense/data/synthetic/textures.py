"""Procedural surface textures with a controlled spatial frequency, in surface metres.

Each surface gets one :class:`Material`: a texture family (see ``config.TEXTURE_KINDS``), two albedo colours,
a frequency in cycles per metre, an orientation and a phase. Evaluating it at surface coordinates (u, v) in
metres gives the albedo, so the image-space frequency of a texture follows its distance and slant, as for a
real camera. Families:

- ``flat``: one colour (no texture: the ambiguous, textureless case for photometric losses);
- ``gradient``: a smooth sinusoidal ramp with a period of metres;
- ``checker`` and ``stripes``: hard-edged periodic patterns (tiles, planks, wallpaper);
- ``noise``: multi-octave value noise (fBm, 4 octaves), energy spread from 0 up to ~8x the base frequency;
- ``fine``: fine repeated motifs (dots or a grid, period of a few centimetres): the repeated textures that
  make photometric matching ambiguous.
"""

from __future__ import annotations

import colorsys
import math
from dataclasses import dataclass

import numpy as np

from .config import TEXTURE_KINDS, SyntheticConfig

__all__ = ["Material", "FREQUENCY_RANGES", "albedo", "value_noise", "sample_material"]

#: Frequency range in cycles per metre of each family (before ``texture_frequency`` scaling).
FREQUENCY_RANGES: dict[str, tuple[float, float]] = {
    "flat": (0.0, 0.0),
    "gradient": (0.12, 0.4),
    "checker": (1.5, 6.0),
    "stripes": (2.0, 12.0),
    "noise": (1.0, 4.0),
    "fine": (10.0, 30.0),
}


@dataclass(frozen=True)
class Material:
    """A textured Lambertian (optionally glossy) surface material.

    Attributes:
        kind: texture family, one of ``TEXTURE_KINDS``.
        color0: first albedo colour, linear RGB in [0, 1].
        color1: second albedo colour.
        frequency: base spatial frequency in cycles per metre.
        angle: orientation of the pattern in the surface plane (radians).
        phase: offset of the pattern (metres) along its two axes.
        seed: lattice seed of the value noise.
        variant: sub-pattern of ``fine`` (0 = dots, 1 = grid) and duty cycle selector of ``stripes``.
        glossy: adds a specular highlight; the sensor loses depth where it faces the camera.
        specular: specular strength (0 when not glossy).
        shininess: Blinn-Phong exponent.
    """

    kind: str
    color0: tuple[float, float, float]
    color1: tuple[float, float, float]
    frequency: float = 0.0
    angle: float = 0.0
    phase: tuple[float, float] = (0.0, 0.0)
    seed: int = 0
    variant: int = 0
    glossy: bool = False
    specular: float = 0.0
    shininess: float = 32.0

    @property
    def luminance(self) -> float:
        """Mean albedo luminance of the two colours (a proxy of IR reflectivity for the sensor model)."""
        c = 0.5 * (np.asarray(self.color0) + np.asarray(self.color1))
        return float(0.2126 * c[0] + 0.7152 * c[1] + 0.0722 * c[2])


def _hash_to_unit(ix: np.ndarray, iy: np.ndarray, seed: int) -> np.ndarray:
    """A deterministic integer hash of lattice points -> float32 in [0, 1) (no global RNG, no ``hash()``)."""
    x = (ix.astype(np.int64) & 0xFFFFFFFF).astype(np.uint32)
    y = (iy.astype(np.int64) & 0xFFFFFFFF).astype(np.uint32)
    h = x * np.uint32(0x8DA6B343) ^ y * np.uint32(0xD8163841) ^ np.uint32((seed * 0xCB1AB31F) & 0xFFFFFFFF)
    h ^= h >> np.uint32(13)
    h *= np.uint32(0x5BD1E995)
    h ^= h >> np.uint32(15)
    h *= np.uint32(0x27D4EB2D)
    h ^= h >> np.uint32(16)
    return (h >> np.uint32(8)).astype(np.float32) * np.float32(1.0 / (1 << 24))


def value_noise(u: np.ndarray, v: np.ndarray, seed: int) -> np.ndarray:
    """Smooth value noise on the unit lattice (C1 smoothstep interpolation), values in [0, 1]."""
    fu, fv = np.floor(u), np.floor(v)
    iu, iv = fu.astype(np.int64), fv.astype(np.int64)
    su, sv = (u - fu).astype(np.float32), (v - fv).astype(np.float32)
    su = su * su * (3 - 2 * su)
    sv = sv * sv * (3 - 2 * sv)
    c00 = _hash_to_unit(iu, iv, seed)
    c10 = _hash_to_unit(iu + 1, iv, seed)
    c01 = _hash_to_unit(iu, iv + 1, seed)
    c11 = _hash_to_unit(iu + 1, iv + 1, seed)
    top = c00 + su * (c10 - c00)
    bottom = c01 + su * (c11 - c01)
    return top + sv * (bottom - top)


def _frac(x: np.ndarray) -> np.ndarray:
    return x - np.floor(x)


def albedo(material: Material, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Albedo (3, N) float32 of ``material`` at surface coordinates ``u``, ``v`` (N,) in metres."""
    c0 = np.asarray(material.color0, dtype=np.float32)[:, None]
    c1 = np.asarray(material.color1, dtype=np.float32)[:, None]
    kind, f = material.kind, material.frequency
    if kind == "flat" or u.size == 0:
        return np.broadcast_to(c0, (3, u.size)).astype(np.float32)
    ca, sa = math.cos(material.angle), math.sin(material.angle)
    u, v = u.astype(np.float32, copy=False), v.astype(np.float32, copy=False)
    a = u * np.float32(ca) + v * np.float32(sa) + np.float32(material.phase[0])
    b = v * np.float32(ca) - u * np.float32(sa) + np.float32(material.phase[1])
    f = np.float32(f)
    if kind == "gradient":
        w = 0.5 + 0.5 * np.sin(np.float32(2 * math.pi) * f * a)
    elif kind == "checker":
        w = (np.floor(f * a) + np.floor(f * b)) % 2
    elif kind == "stripes":
        duty = (0.5, 0.3, 0.7)[material.variant % 3]
        w = _frac(f * a) < duty
    elif kind == "noise":
        total = np.zeros(u.shape, dtype=np.float32)
        norm = 0.0
        for octave in range(4):
            scale = f * np.float32(2.0**octave)
            amp = 0.7**octave  # 1/2 the energy per octave: flatter than the usual 0.5 (closer to 1/f images)
            total += amp * value_noise(scale * a, scale * b, material.seed + 7919 * octave)
            norm += amp
        w = total / norm
        # Stretch the contrast: fBm concentrates around 0.5.
        w = np.clip((w - 0.5) * 2.2 + 0.5, 0.0, 1.0)
    elif kind == "fine":
        fa, fb = _frac(f * a) - 0.5, _frac(f * b) - 0.5
        if material.variant % 2 == 0:
            w = fa * fa + fb * fb < 0.09
        else:
            w = (np.abs(fa) > 0.35) | (np.abs(fb) > 0.35)
    else:
        raise ValueError(f"unknown texture kind {kind!r}; valid kinds are {TEXTURE_KINDS}")
    w = w.astype(np.float32)[None, :]
    return c0 + w * (c1 - c0)


def _color(rng: np.random.Generator, value_range: tuple[float, float], saturation: float) -> np.ndarray:
    h = rng.random()
    s = rng.uniform(0.0, saturation)
    v = rng.uniform(*value_range)
    return np.array(colorsys.hsv_to_rgb(h, s, v))


def sample_material(
    rng: np.random.Generator,
    config: SyntheticConfig,
    *,
    dark: bool = False,
    glossy: bool = False,
    value_range: tuple[float, float] = (0.25, 0.9),
    saturation: float = 0.7,
    contrast: tuple[float, float] = (0.25, 0.6),
    kind: str | None = None,
) -> Material:
    """Draw a material: the texture family from ``config.texture_mix``, colours, frequency and orientation.

    A fixed number of draws is taken whatever the family, so the rest of the scene does not depend on it.
    """
    weights = config.texture_weights()
    drawn_kind = TEXTURE_KINDS[int(rng.choice(len(TEXTURE_KINDS), p=weights))]
    kind = kind or drawn_kind
    lo, hi = FREQUENCY_RANGES[kind]
    # Log-uniform frequency inside the family's range.
    t = rng.random()
    frequency = math.exp(math.log(lo) + t * (math.log(hi) - math.log(lo))) if lo > 0 else 0.0
    frequency *= config.texture_frequency
    if dark:
        value_range = (0.03, 0.07)
    c0 = _color(rng, value_range, saturation)
    # The second colour differs mostly in brightness (contrast) and a little in hue.
    delta = rng.uniform(*contrast) * (1 if rng.random() < 0.5 else -1)
    c1 = np.clip(c0 * (1.0 + delta) + rng.uniform(-0.06, 0.06, 3) * (0.3 if dark else 1.0), 0.0, 1.0)
    if dark:
        c1 = np.minimum(c1, 0.09)
    angle = rng.uniform(0, math.pi) if rng.random() < 0.5 else float(rng.integers(0, 2)) * math.pi / 2
    phase = (float(rng.uniform(0, 10)), float(rng.uniform(0, 10)))
    seed = int(rng.integers(0, 2**31 - 1))
    variant = int(rng.integers(0, 6))
    specular = float(rng.uniform(0.25, 0.6))
    shininess = float(rng.uniform(20, 80))
    return Material(
        kind=kind,
        color0=tuple(float(x) for x in c0),
        color1=tuple(float(x) for x in c1),
        frequency=float(frequency),
        angle=float(angle),
        phase=phase,
        seed=seed,
        variant=variant,
        glossy=bool(glossy),
        specular=specular if glossy else 0.0,
        shininess=shininess,
    )
