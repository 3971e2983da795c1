"""The difficulty knobs of the synthetic scenes, validated once.

Every knob is also an explicit keyword of the registered ``synthetic`` dataset factory and a
``freqdense data synth`` flag. The config, the image size and the seed fully determine every sample.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ...errors import ConfigError

__all__ = ["SyntheticConfig", "TEXTURE_KINDS", "DEFAULT_TEXTURE_MIX", "CAMERA_MOTIONS"]

#: Camera paths of the video frames t-1, t, t+1: a slow hand-held drift in any direction, or driving-like forward
#: motion along the optical axis with some yaw (see ``scene._camera_path``).
CAMERA_MOTIONS: tuple[str, ...] = ("handheld", "forward")

#: Procedural texture families, from lowest to highest typical spatial frequency.
TEXTURE_KINDS: tuple[str, ...] = ("flat", "gradient", "checker", "stripes", "noise", "fine")

#: Relative sampling weights of the texture families (normalised at use).
DEFAULT_TEXTURE_MIX: dict[str, float] = {
    "flat": 1.0,
    "gradient": 1.0,
    "checker": 1.0,
    "stripes": 1.0,
    "noise": 1.5,
    "fine": 1.0,
}


def _default_mix() -> dict[str, float]:
    return dict(DEFAULT_TEXTURE_MIX)


@dataclass(frozen=True)
class SyntheticConfig:
    """Scene, camera, rendering and sensor knobs (see docs/data/synthetic.md).

    Args:
        min_objects: fewest free-standing objects (tables, cabinets, balls, bins, unlabeled clutter) per room.
        max_objects: most free-standing objects per room (inclusive).
        max_poles: most thin poles per room (at least one is placed when > 0).
        max_pictures: most picture rectangles on the walls.
        texture_mix: relative weights of the texture families in :data:`TEXTURE_KINDS`; missing kinds get 0.
        texture_frequency: multiplies every texture frequency (cycles per metre); > 1 means finer patterns.
        dark_fraction: probability that an object gets a very dark albedo (dark in RGB, holes in sensor depth).
        glossy_fraction: probability that an object is glossy (specular highlight, sensor holes facing the camera).
        unlabeled_fraction: probability of each "unlabeled" element (a window, clutter objects) that
            gets label 255; windows also have invalid depth (0). 0 disables both.
        supersample: odd n; n x n samples per pixel are averaged for the RGB (anti-aliasing).
        hfov_deg: horizontal field of view; fx = fy = (W / 2) / tan(hfov / 2).
        baseline: stereo baseline in metres (right camera at +baseline along x).
        camera_motion: ``"handheld"`` (4-15 cm per frame in a random direction, the original path) or
            ``"forward"`` (50-80 cm per frame along the optical axis with up to 2 deg of yaw per frame, like a
            driving camera; rooms are 1.6x deeper so the path stays inside them).
        camera_speed: multiplies the per-frame camera translation and rotation of the video path.
        image_noise: std of Gaussian noise added to the RGB (after the camera response, before 8-bit).
        shadows: cast shadows from the point light.
        sensor_noise: multiplies the depth-dependent noise of the sensor depth (0 = noise-free).
        sensor_holes: multiplies the hole probabilities of the sensor depth (0 = no holes, no range limit).
        sensor_quantization: quantise sensor depth in disparity space (1/8 px) and to millimetres.
        misalignment: multiplies the sensor-to-RGB misalignment (shift, rotation, scale); 0 = aligned.
    """

    min_objects: int = 4
    max_objects: int = 10
    max_poles: int = 3
    max_pictures: int = 4
    texture_mix: Mapping[str, float] = field(default_factory=_default_mix)
    texture_frequency: float = 1.0
    dark_fraction: float = 0.2
    glossy_fraction: float = 0.25
    unlabeled_fraction: float = 0.4
    supersample: int = 3
    hfov_deg: float = 62.0
    baseline: float = 0.1
    camera_motion: str = "handheld"
    camera_speed: float = 1.0
    image_noise: float = 0.01
    shadows: bool = True
    sensor_noise: float = 1.0
    sensor_holes: float = 1.0
    sensor_quantization: bool = True
    misalignment: float = 1.0

    def __post_init__(self) -> None:
        def fail(name: str, value: Any, need: str) -> None:
            raise ConfigError(f"synthetic dataset knob {name}={value!r} is invalid: {need}.")

        for name in ("min_objects", "max_objects", "max_poles", "max_pictures", "supersample"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                fail(name, value, "use a non-negative integer")
        if self.max_objects < self.min_objects:
            fail("max_objects", self.max_objects, f"must be >= min_objects={self.min_objects}")
        if self.max_objects > 40:
            fail("max_objects", self.max_objects, "use at most 40 (rooms get too crowded to place them)")
        if self.supersample < 1 or self.supersample % 2 == 0:
            fail("supersample", self.supersample, "use an odd number >= 1 so a sample sits at the pixel centre")
        for name in ("texture_frequency", "camera_speed", "hfov_deg", "baseline"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
                fail(name, value, "use a positive number")
        if self.camera_motion not in CAMERA_MOTIONS:
            fail("camera_motion", self.camera_motion, f"use one of {', '.join(CAMERA_MOTIONS)}")
        if self.hfov_deg >= 170:
            fail("hfov_deg", self.hfov_deg, "use a field of view below 170 degrees")
        for name in ("dark_fraction", "glossy_fraction", "unlabeled_fraction"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not 0 <= value <= 1:
                fail(name, value, "use a probability in [0, 1]")
        for name in ("image_noise", "sensor_noise", "sensor_holes", "misalignment"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                fail(name, value, "use a non-negative number (0 disables it)")
        for name in ("shadows", "sensor_quantization"):
            if not isinstance(getattr(self, name), bool):
                fail(name, getattr(self, name), "use true or false")
        if not isinstance(self.texture_mix, Mapping):
            fail("texture_mix", self.texture_mix, f"use a mapping kind -> weight with kinds in {TEXTURE_KINDS}")
        unknown = [k for k in self.texture_mix if k not in TEXTURE_KINDS]
        if unknown:
            fail("texture_mix", dict(self.texture_mix), f"unknown kind(s) {unknown}; valid kinds are {TEXTURE_KINDS}")
        weights = [float(self.texture_mix.get(k, 0.0)) for k in TEXTURE_KINDS]
        if any(not math.isfinite(w) or w < 0 for w in weights) or sum(weights) <= 0:
            fail("texture_mix", dict(self.texture_mix), "weights must be >= 0 with a positive sum")
        # Normalise to a plain dict with every kind, in a fixed order, so equal mixes compare and hash equal.
        object.__setattr__(self, "texture_mix", {k: float(self.texture_mix.get(k, 0.0)) for k in TEXTURE_KINDS})

    def texture_weights(self) -> list[float]:
        """Weights in :data:`TEXTURE_KINDS` order, summing to 1."""
        weights = [self.texture_mix[k] for k in TEXTURE_KINDS]
        total = sum(weights)
        return [w / total for w in weights]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict (round-trips through :meth:`from_dict`)."""
        out = dataclasses.asdict(self)
        out["texture_mix"] = dict(self.texture_mix)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SyntheticConfig:
        """Build from a dict, failing with the valid knob names on unknown keys."""
        names = [f.name for f in dataclasses.fields(cls)]
        unknown = [k for k in data if k not in names]
        if unknown:
            raise ConfigError(f"unknown synthetic dataset knob(s) {unknown}; valid knobs: {', '.join(names)}.")
        return cls(**dict(data))

    @classmethod
    def knob_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls))
