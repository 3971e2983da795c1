"""The synthetic scenes as a torch ``Dataset`` of :mod:`freqdense.data.sample` dicts, and its registry factory."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from ..._progress import progress
from ...errors import ConfigError, DataError
from ..sample import Sample
from .camera import intrinsics
from .classes import CLASSES, IGNORE_INDEX, PALETTE
from .config import DEFAULT_TEXTURE_MIX, SyntheticConfig
from .instances import DEFAULT_MIN_AREA, THING_CLASSES, instance_boxes, thing_labels
from .render import GROUP_KEYS, render_group
from .scene import SPLIT_CODES, generate_scene
from .sensor import flow_field
from .storage import SampleCache, default_cache_dir, read_meta, read_record

__all__ = ["MODALITIES", "DEFAULT_MODALITIES", "DEFAULT_SPLIT_SIZES", "MIN_SIZE", "SyntheticScenes", "synthetic"]

log = logging.getLogger(__name__)

#: Modality names accepted by ``modalities=`` and the Sample keys each one returns. ``intrinsics`` and
#: ``meta`` are always returned. Sample key names (e.g. ``"image_right"``) select their whole modality.
#: ``instance`` (instances.py): ``instance`` (H, W) int64 ids (0 = no thing), ``boxes`` (N, 4) float32 xyxy pixels,
#: ``labels`` (N,) int64 thing labels (0..5, index into ``THING_CLASSES``: table, cabinet, ball, bin, pole, picture)
#: and ``instance_ids`` (N,) int64, the id of each box in ``instance``.
MODALITIES: dict[str, tuple[str, ...]] = {
    "image": ("image",),
    "semantic": ("semantic",),
    "depth": ("depth", "depth_valid"),
    "stereo": ("image_right", "pose_right", "baseline"),
    "temporal": ("image_prev", "image_next", "pose_prev", "pose_next"),
    "sensor": ("sensor_depth", "sensor_flow"),
    "instance": ("instance", "boxes", "labels", "instance_ids"),
}
#: What ``modalities=None`` returns: everything but ``instance``, whose variable-length boxes need a detection
#: collate function (``freqdense.data.coco.collate_detection``) and which the joint transforms do not move yet.
DEFAULT_MODALITIES: tuple[str, ...] = tuple(m for m in MODALITIES if m != "instance")
_GROUP_OF_MODALITY = {
    "image": "target",
    "semantic": "target",
    "depth": "target",
    "stereo": "stereo",
    "temporal": "temporal",
    "sensor": "sensor",
    "instance": "instance",
}
_MODALITY_OF_KEY = {key: name for name, keys in MODALITIES.items() for key in keys}

#: Samples per split when ``num_samples`` is not given.
DEFAULT_SPLIT_SIZES: dict[str, int] = {"train": 2000, "val": 200, "test": 200}

_IMAGE_KEYS = ("image", "image_right", "image_prev", "image_next")
_POSE_KEYS = ("pose_right", "pose_prev", "pose_next")


def _resolve_modalities(modalities: Iterable[str] | None) -> tuple[str, ...]:
    if modalities is None:
        return DEFAULT_MODALITIES
    if isinstance(modalities, str):
        modalities = (modalities,)
    chosen = []
    for name in modalities:
        if name in ("intrinsics", "meta"):
            continue
        canonical = name if name in MODALITIES else _MODALITY_OF_KEY.get(name)
        if canonical is None:
            raise ConfigError(
                f"unknown synthetic modality {name!r}; use any of {', '.join(MODALITIES)} (or a Sample key such as "
                "'image_right')."
            )
        if canonical not in chosen:
            chosen.append(canonical)
    return tuple(m for m in MODALITIES if m in chosen)


#: Smallest height and width the synthetic loader accepts (the models here run and train at 4x4 too: measured with
#: the tiny multi-task config, HRNet-18s, FPN+FreqFusion and DeepLab v3+ R50).
MIN_SIZE = 4


def _check_size(size: Any) -> tuple[int, int]:
    try:
        h, w = (int(s) for s in size)
    except (TypeError, ValueError):
        raise ConfigError(f"synthetic size must be (height, width), got {size!r}") from None
    if h < MIN_SIZE or w < MIN_SIZE or (h, w) != tuple(size):
        raise ConfigError(f"synthetic size must be two integers >= {MIN_SIZE}, e.g. (96, 128); got {size!r}")
    return h, w


def decode(
    record: Mapping[str, np.ndarray],
    modalities: tuple[str, ...],
    K: np.ndarray,
    meta: dict[str, Any],
    *,
    min_area: int = DEFAULT_MIN_AREA,
) -> Sample:
    """Encoded record arrays -> a Sample dict with the documented dtypes (see ``data/sample.py``).

    ``min_area``: things with fewer visible pixels get no box (``instance`` modality; see instances.py).
    """
    sample: Sample = {}
    keys = [k for m in modalities for k in MODALITIES[m]]
    if "instance" in modalities:
        found = instance_boxes(record["instance"], record["instance_labels"], min_area=min_area)
        sample["instance"] = torch.from_numpy(record["instance"].astype(np.int64))
        sample["boxes"] = torch.from_numpy(found.boxes)
        sample["labels"] = torch.from_numpy(thing_labels(found.class_ids))
        sample["instance_ids"] = torch.from_numpy(found.ids)
    for key in keys:
        if key in _IMAGE_KEYS:
            # numpy, not torch, for the conversion: torch's intra-op threads add ~10 ms per call on a busy CPU.
            chw = np.ascontiguousarray(record[key].transpose(2, 0, 1))
            sample[key] = torch.from_numpy(np.divide(chw, np.float32(255.0), dtype=np.float32))
        elif key == "semantic":
            sample[key] = torch.from_numpy(record["semantic"].astype(np.int64))
        elif key == "depth":
            sample[key] = torch.from_numpy(np.ascontiguousarray(record["depth"], dtype=np.float32))[None]
        elif key == "depth_valid":
            d = record["depth"]
            sample[key] = torch.from_numpy(np.isfinite(d) & (d > 0))[None]
        elif key in _POSE_KEYS:
            sample[key] = torch.from_numpy(np.asarray(record[key], dtype=np.float32).copy())
        elif key == "baseline":
            sample[key] = torch.tensor(float(record["baseline"]), dtype=torch.float32)
        elif key == "sensor_depth":
            sample[key] = torch.from_numpy(np.ascontiguousarray(record["sensor_depth"], dtype=np.float32))[None]
        elif key == "sensor_flow":
            h, w = record["sensor_depth"].shape
            sample[key] = torch.from_numpy(flow_field(record["sensor_affine"], h, w))
    sample["intrinsics"] = torch.from_numpy(K.astype(np.float32))
    sample["meta"] = meta
    return sample


class SyntheticScenes(Dataset):
    """Procedural indoor scenes with exact ground truth for every modality (docs/data/synthetic.md).

    Renders sample ``index`` of ``split`` on the fly from (seed, split, index, config), reading and filling an
    on-disk cache when ``cache_dir`` is given, or reads a directory written by ``freqdense data synth``
    when ``root`` is given.

    Args:
        split: ``"train"``, ``"val"`` or ``"test"`` (disjoint scenes).
        config: scene/render/sensor knobs; ignored with ``root`` (the directory's own config is used).
        size: (height, width) in pixels; the same scenes at any resolution.
        seed: dataset seed.
        num_samples: length; defaults to :data:`DEFAULT_SPLIT_SIZES` (or everything under ``root``).
        modalities: which of :data:`MODALITIES` to return (and render); None = :data:`DEFAULT_MODALITIES` (all
            but ``instance``).
        transform: callable Sample -> Sample applied last (joint transforms).
        cache_dir: directory of the render cache; None renders without caching.
        root: directory written by ``freqdense data synth`` (contains ``<split>/meta.json``).
        min_area: things with fewer visible pixels get no box in the ``instance`` modality (default 4).
    """

    classes: tuple[str, ...] = CLASSES
    #: Names of the ``labels`` of the ``instance`` modality (thing classes only).
    thing_classes: tuple[str, ...] = THING_CLASSES
    palette: list[tuple[int, int, int]] = list(PALETTE)
    num_classes: int = len(CLASSES)
    ignore_index: int = IGNORE_INDEX

    def __init__(
        self,
        *,
        split: str = "train",
        config: SyntheticConfig | None = None,
        size: tuple[int, int] = (96, 128),
        seed: int = 0,
        num_samples: int | None = None,
        modalities: Iterable[str] | None = None,
        transform: Callable[[Sample], Sample] | None = None,
        cache_dir: str | os.PathLike | None = None,
        root: str | os.PathLike | None = None,
        min_area: int = DEFAULT_MIN_AREA,
    ) -> None:
        if split not in SPLIT_CODES:
            raise ConfigError(f"unknown synthetic split {split!r}; use one of {', '.join(SPLIT_CODES)}.")
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ConfigError(f"synthetic seed must be an integer >= 0, got {seed!r}")
        if isinstance(min_area, bool) or not isinstance(min_area, int) or min_area < 1:
            raise ConfigError(f"synthetic min_area must be an integer >= 1 (pixels), got {min_area!r}")
        self.min_area = min_area
        self.split = split
        self.modalities = _resolve_modalities(modalities)
        self.transform = transform
        self.root = Path(root) if root is not None else None
        if self.root is not None:
            meta = read_meta(self.root, split)
            self.config = SyntheticConfig.from_dict(meta["config"])
            self.size = _check_size(meta["size"])
            self.seed = int(meta["seed"])
            available = int(meta["num_samples"])
        else:
            self.config = config or SyntheticConfig()
            self.size = _check_size(size)
            self.seed = seed
            available = DEFAULT_SPLIT_SIZES[split]
        if num_samples is None:
            num_samples = available
        elif isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < 0:
            raise ConfigError(f"synthetic num_samples must be an integer >= 0, got {num_samples!r}")
        elif self.root is not None and num_samples > available:
            raise ConfigError(
                f"{self.root / split} holds {available} samples but num_samples={num_samples}; "
                f"write more with `freqdense data synth --out {self.root} --split {split} --num {num_samples}`"
            )
        self.num_samples = num_samples
        self.cache = (
            SampleCache(cache_dir, self.config, self.size, self.seed)
            if cache_dir is not None and root is None
            else None
        )
        self.K = intrinsics(self.size[0], self.size[1], self.config.hfov_deg)
        self.groups = tuple(dict.fromkeys(_GROUP_OF_MODALITY[m] for m in self.modalities))

    def __len__(self) -> int:
        return self.num_samples

    def sample_id(self, index: int) -> str:
        return f"synthetic_{self.split}_{index:06d}"

    def record(self, index: int) -> dict[str, np.ndarray]:
        """The encoded arrays of the needed modality groups (rendered, cached or read from ``root``)."""
        if self.root is not None:
            path = self.root / self.split / f"{index:06d}.npz"
            keys = tuple(k for g in self.groups for k in GROUP_KEYS[g])
            try:
                return read_record(path, keys, size=self.size)
            except FileNotFoundError:
                raise DataError(
                    f"{path} is missing; finish writing the split with `freqdense data synth --out {self.root} "
                    f"--split {self.split} --num {self.num_samples}`"
                ) from None
        record: dict[str, np.ndarray] = {}
        scene = None
        for group in self.groups:
            arrays = self.cache.get(self.split, index, group) if self.cache is not None else None
            if arrays is None:
                if scene is None:
                    scene = generate_scene(self.config, self.seed, self.split, index)
                arrays = render_group(group, self.config, self.size, self.seed, self.split, index, scene=scene)
                if self.cache is not None:
                    self.cache.put(self.split, index, group, arrays)
            record.update(arrays)
        return record

    def uncached(self, indices: Iterable[int] | None = None) -> list[int]:
        """The sample indices (default: all) whose records are not in the render cache yet.

        Empty when the dataset has no cache (``cache=False``, or ``root`` given): nothing can be rendered ahead.
        """
        if self.cache is None:
            return []
        indices = range(self.num_samples) if indices is None else indices
        return [
            int(i) for i in indices if any(not self.cache.path(self.split, int(i), g).is_file() for g in self.groups)
        ]

    def render_cache(self, indices: Iterable[int] | None = None, *, enabled: bool = True) -> int:
        """Render the uncached samples of ``indices`` (default: all) into the cache, showing progress.

        Without it the samples are rendered lazily the first time they are read, which stalls the first epoch
        (about 0.04 s per 96x128 scene on one core, minutes for a few thousand scenes) with no sign of what is
        going on; ``freqdense train`` calls this before the first step. A bar on a terminal, else a log line
        every ~10 s (:mod:`freqdense._progress`).

        Args:
            indices: sample indices to render (e.g. one rank's share).
            enabled: False renders without any output (non-main processes).

        Returns:
            How many samples were rendered (0 when all were cached or there is no cache).
        """
        todo = self.uncached(indices)
        if not todo:
            return 0
        if enabled:
            log.info(
                "rendering %d of %d synthetic %s scenes at %dx%d into the cache %s (once per config, size and seed)",
                len(todo),
                self.num_samples,
                self.split,
                *self.size,
                self.cache.dir,  # type: ignore[union-attr]
            )
        for index in progress(todo, f"rendering synthetic {self.split} scenes", unit="scene", enabled=enabled):
            self.record(index)
        return len(todo)

    def __getitem__(self, index: int) -> Sample:
        if not -self.num_samples <= index < self.num_samples:
            raise IndexError(
                f"index {index} out of range for synthetic {self.split} split of {self.num_samples} samples"
            )
        index = int(index) % self.num_samples
        meta = {"id": self.sample_id(index), "index": index, "split": self.split}
        sample = decode(self.record(index), self.modalities, self.K, meta, min_area=self.min_area)
        return self.transform(sample) if self.transform is not None else sample

    def __repr__(self) -> str:
        source = f"root={str(self.root)!r}" if self.root is not None else f"seed={self.seed}"
        return (
            f"SyntheticScenes(split={self.split!r}, size={self.size}, num_samples={self.num_samples}, {source}, "
            f"modalities={self.modalities})"
        )


def _knob_defaults() -> dict[str, Any]:
    return SyntheticConfig().to_dict()


def synthetic(
    *,
    split: str = "train",
    transform: Callable[[Sample], Sample] | None = None,
    size: tuple[int, int] = (96, 128),
    num_samples: int | None = None,
    seed: int = 0,
    root: str | os.PathLike | None = None,
    cache_dir: str | os.PathLike | None = None,
    cache: bool = True,
    modalities: Iterable[str] | None = None,
    min_objects: int = 4,
    max_objects: int = 10,
    max_poles: int = 3,
    max_pictures: int = 4,
    texture_mix: Mapping[str, float] | None = None,
    texture_frequency: float = 1.0,
    dark_fraction: float = 0.2,
    glossy_fraction: float = 0.25,
    unlabeled_fraction: float = 0.4,
    supersample: int = 3,
    hfov_deg: float = 62.0,
    baseline: float = 0.1,
    camera_motion: str = "handheld",
    camera_speed: float = 1.0,
    image_noise: float = 0.01,
    shadows: bool = True,
    sensor_noise: float = 1.0,
    sensor_holes: float = 1.0,
    sensor_quantization: bool = True,
    misalignment: float = 1.0,
    min_area: int = DEFAULT_MIN_AREA,
) -> SyntheticScenes:
    """The embedded default dataset (registered as ``"synthetic"``).

    ``root=None`` renders on the fly, caching under ``cache_dir`` (default ``$FREQDENSE_CACHE/synthetic`` or
    ``~/.cache/freqdense/synthetic``; ``cache=False`` disables it). ``root=DIR`` reads what
    ``freqdense data synth --out DIR`` wrote; its size and knobs come from ``DIR/<split>/meta.json``, and
    passing a different non-default size or knob raises ConfigError. The knobs are documented on
    :class:`SyntheticConfig`; ``texture_mix=None`` means the default mix. ``min_area`` is the smallest visible
    thing that gets a box in the ``instance`` modality (not a render knob: it never changes the cache).
    """
    knobs = {
        "min_objects": min_objects,
        "max_objects": max_objects,
        "max_poles": max_poles,
        "max_pictures": max_pictures,
        "texture_mix": dict(DEFAULT_TEXTURE_MIX) if texture_mix is None else dict(texture_mix),
        "texture_frequency": texture_frequency,
        "dark_fraction": dark_fraction,
        "glossy_fraction": glossy_fraction,
        "unlabeled_fraction": unlabeled_fraction,
        "supersample": supersample,
        "hfov_deg": hfov_deg,
        "baseline": baseline,
        "camera_motion": camera_motion,
        "camera_speed": camera_speed,
        "image_noise": image_noise,
        "shadows": shadows,
        "sensor_noise": sensor_noise,
        "sensor_holes": sensor_holes,
        "sensor_quantization": sensor_quantization,
        "misalignment": misalignment,
    }
    config = SyntheticConfig.from_dict(knobs)
    if root is not None:
        meta = read_meta(root, split)
        stored, defaults = SyntheticConfig.from_dict(meta["config"]).to_dict(), _knob_defaults()
        given = config.to_dict()
        clash = [k for k in given if given[k] != defaults[k] and given[k] != stored[k]]
        if tuple(size) != (96, 128) and list(size) != list(meta["size"]):
            clash.append(f"size (stored {meta['size']})")
        if clash:
            raise ConfigError(
                f"synthetic root={str(root)!r} was written with other settings: {', '.join(clash)}; drop those "
                "arguments (the directory's own are used) or write a new directory with `freqdense data synth`"
            )
        return SyntheticScenes(
            split=split,
            root=root,
            num_samples=num_samples,
            modalities=modalities,
            transform=transform,
            min_area=min_area,
        )
    resolved_cache = None
    if cache:
        resolved_cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    return SyntheticScenes(
        split=split,
        config=config,
        size=tuple(size),
        seed=seed,
        num_samples=num_samples,
        modalities=modalities,
        transform=transform,
        cache_dir=resolved_cache,
        min_area=min_area,
    )
