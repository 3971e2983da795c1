"""On-disk records of synthetic samples: the render cache and the ``freqdense data synth`` format.

One record is a ``.npz`` (numpy zip, ``allow_pickle=False``) holding the *encoded* arrays of
``render.render_group``: images (H, W, 3) uint8, ``semantic`` (H, W) uint8 (255 = ignore), depths (H, W)
float32 metres (0 = invalid), poses (4, 4) float32, ``baseline`` () float32, ``sensor_affine`` (2, 3) float64,
``instance`` (H, W) int32 (0 = no thing) and ``instance_labels`` (M,) uint8 (class of instances 1..M).
Rendering also produces exactly these arrays, so a cached or written sample is bit-identical to a freshly
rendered one.

Layouts:

- ``data synth --out DIR``: ``DIR/<split>/meta.json`` and ``DIR/<split>/<index:06d>.npz`` with every key.
- cache: ``<cache_dir>/<key>/<split>/<index:06d>.<group>.npz``, one file per modality group, where ``key``
  hashes the renderer version, config, size and seed (``<cache_dir>/<key>/config.json`` says which).

Every file is written to a temporary name and moved into place with ``os.replace``, so an interrupted run
never leaves a half-written record, and concurrent DataLoader workers can share one cache.

Every record is checked on read (:func:`check_record`): keys present, dtype and shape of each array against the
requested size, finite depths and poses, labels and instance ids in range; cache records also carry
``cache_version``. The instance ids are their own group (``<index>.instance.npz`` in the cache), so caches written
before it existed stay valid and only gain that file; a ``data synth`` record without them is refused (naming the
file) when the ``instance`` modality is asked for, and re-rendered by ``data synth`` on resume. A cache record
that fails is re-rendered (with a warning naming the file), never used; a ``data synth`` record that fails raises
:class:`~freqdense.errors.DataError` naming the file and the array.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import uuid
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import DataError
from .camera import intrinsics
from .classes import CLASSES, PALETTE
from .config import SyntheticConfig
from .instances import THING_CLASS_IDS
from .render import GROUP_KEYS, GROUPS, render_group
from .scene import generate_scene

__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "RENDERER_VERSION",
    "RECORD_KEYS",
    "write_record",
    "read_record",
    "check_record",
    "CACHE_RECORD_VERSION",
    "write_json",
    "cache_key",
    "default_cache_dir",
    "SampleCache",
    "dataset_meta",
    "read_meta",
    "synthesize",
]

log = logging.getLogger(__name__)

FORMAT_NAME = "freqdense-synthetic"
FORMAT_VERSION = 1
#: Bump whenever rendering changes the pixels of any sample: it invalidates every cache.
RENDERER_VERSION = 1
#: Every key of a full record, in group order.
RECORD_KEYS: tuple[str, ...] = tuple(k for g in GROUPS for k in GROUP_KEYS[g])
#: Version stamp stored in every render-cache record (key ``cache_version``); bump when the record layout changes.
CACHE_RECORD_VERSION = 1
_VERSION_KEY = "cache_version"

_IMAGE = ("image", "image_right", "image_prev", "image_next")
_DEPTH = ("depth", "sensor_depth")
_POSE = ("pose_right", "pose_prev", "pose_next")


def _expected(key: str, size: tuple[int, int]) -> tuple[tuple[int, ...], np.dtype]:
    """(shape, dtype) of the encoded array ``key`` at ``size`` (what ``render_group`` returns)."""
    h, w = size
    if key in _IMAGE:
        return (h, w, 3), np.dtype(np.uint8)
    if key == "semantic":
        return (h, w), np.dtype(np.uint8)
    if key == "instance":
        return (h, w), np.dtype(np.int32)
    if key in _DEPTH:
        return (h, w), np.dtype(np.float32)
    if key in _POSE:
        return (4, 4), np.dtype(np.float32)
    if key == "baseline":
        return (), np.dtype(np.float32)
    if key == "sensor_affine":
        return (2, 3), np.dtype(np.float64)
    raise KeyError(key)


def check_record(arrays: Mapping[str, np.ndarray], size: tuple[int, int], path: str | os.PathLike) -> None:
    """Raise DataError naming ``path`` and the array when a record does not hold what rendering at ``size`` gives.

    Checks each known key's dtype and shape, that depths are finite and >= 0 (0 = invalid), that poses, the
    baseline and the sensor affine are finite (baseline > 0), that labels are class ids or 255 (ignore), that
    ``instance_labels`` are thing class ids and that ``instance`` ids lie in [0, len(instance_labels)].
    """
    for key, value in arrays.items():
        if key == _VERSION_KEY or key not in RECORD_KEYS:
            continue
        if key == "instance_labels":
            _check_instance_labels(value, path)
            continue
        shape, dtype = _expected(key, size)
        if value.dtype != dtype or tuple(value.shape) != shape:
            raise DataError(
                f"{path}: array {key!r} is {value.dtype} {tuple(value.shape)}, expected {dtype} {shape} for size "
                f"{list(size)}; delete the file and render it again"
            )
        if value.dtype.kind == "f":
            bad = int(np.count_nonzero(~np.isfinite(value)))
            if bad:
                raise DataError(f"{path}: array {key!r} holds {bad} non-finite values; delete it and render it again")
            if key in _DEPTH and value.size and float(value.min()) < 0:
                raise DataError(f"{path}: depth {key!r} holds negative values; delete it and render it again")
            if key == "baseline" and not float(value) > 0:
                raise DataError(f"{path}: 'baseline' is {float(value)}, must be > 0; delete it and render it again")
        if key == "semantic":
            ids = np.unique(value)
            bad_ids = ids[(ids >= len(CLASSES)) & (ids != 255)]
            if bad_ids.size:
                raise DataError(
                    f"{path}: 'semantic' holds ids {bad_ids[:10].tolist()} outside [0, {len(CLASSES)}) and not 255; "
                    "delete it and render it again"
                )
        if key == "instance" and value.size:
            low, high = int(value.min()), int(value.max())
            count = arrays["instance_labels"].size if "instance_labels" in arrays else None
            if low < 0 or (count is not None and high > count):
                raise DataError(
                    f"{path}: 'instance' holds ids in [{low}, {high}], expected 0 (no thing) to {count} (the number of "
                    "'instance_labels'); delete it and render it again"
                )


def _check_instance_labels(value: np.ndarray, path: str | os.PathLike) -> None:
    if value.dtype != np.uint8 or value.ndim != 1:
        raise DataError(
            f"{path}: array 'instance_labels' is {value.dtype} {tuple(value.shape)}, expected uint8 (M,); delete the "
            "file and render it again"
        )
    bad = sorted(set(np.unique(value).tolist()) - set(THING_CLASS_IDS))
    if bad:
        raise DataError(
            f"{path}: 'instance_labels' holds {bad[:10]}, not thing class ids {list(THING_CLASS_IDS)}; delete it and "
            "render it again"
        )


def _atomic_write(path: Path, write: Callable[[Any], None], *, binary: bool = True) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    # A unique name in the same directory (so os.replace is atomic); plain open() keeps the umask's mode.
    tmp = path.parent / f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:12]}.tmp"
    try:
        with open(tmp, "xb" if binary else "x") as handle:
            write(handle)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def write_record(path: str | os.PathLike, arrays: Mapping[str, np.ndarray]) -> None:
    """Write arrays to ``path`` (.npz, uncompressed) atomically."""
    _atomic_write(Path(path), lambda handle: np.savez(handle, **arrays))


def read_record(
    path: str | os.PathLike,
    keys: tuple[str, ...] | None = None,
    *,
    size: tuple[int, int] | None = None,
    version: int | None = None,
) -> dict[str, np.ndarray]:
    """Read a record, checking that ``keys`` are present; DataError names the file and the fix.

    With ``size``, every array is also checked by :func:`check_record`; with ``version``, the record's
    ``cache_version`` must equal it (render-cache records).
    """
    path = Path(path)
    if path.is_file() and path.stat().st_size == 0:
        raise DataError(f"synthetic record {path} is empty (0 bytes); delete it and render it again")
    try:
        loaded = np.load(path, allow_pickle=False)
        if not isinstance(loaded, np.lib.npyio.NpzFile):
            raise DataError(f"{path} holds a single array, not an .npz record; delete it and render it again")
        with loaded as data:
            if version is not None:
                found = int(data[_VERSION_KEY]) if _VERSION_KEY in data.files and data[_VERSION_KEY].size == 1 else None
                if found != version:
                    raise DataError(f"{path} has cache record version {found}, expected {version}; it is re-rendered")
            names = data.files if keys is None else keys
            missing = [k for k in names if k not in data.files]
            if missing:
                raise DataError(
                    f"{path} lacks {missing} (has {sorted(data.files)}); re-create it with `freqdense data synth` "
                    "or delete the cache directory"
                )
            arrays = {k: data[k] for k in names if k != _VERSION_KEY}
    except FileNotFoundError:
        raise
    except DataError:
        raise
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError) as err:
        raise DataError(f"cannot read synthetic record {path}: {err}; delete it and render it again") from err
    if size is not None:
        check_record(arrays, size, path)
    return arrays


def write_json(path: Path, data: Mapping[str, Any]) -> None:
    _atomic_write(path, lambda handle: json.dump(data, handle, indent=2, sort_keys=True), binary=False)


def cache_key(config: SyntheticConfig, size: tuple[int, int], seed: int) -> str:
    """A stable hex key of everything that changes the pixels (not Python's salted ``hash()``)."""
    blob = json.dumps(
        {"renderer": RENDERER_VERSION, "config": config.to_dict(), "size": list(size), "seed": seed}, sort_keys=True
    )
    return hashlib.sha1(blob.encode()).hexdigest()[:16]


def default_cache_dir() -> Path:
    """``$FREQDENSE_CACHE/synthetic``, else ``~/.cache/freqdense/synthetic``."""
    base = os.environ.get("FREQDENSE_CACHE")
    return (Path(base) if base else Path.home() / ".cache" / "freqdense") / "synthetic"


class SampleCache:
    """Per-group records of one (config, size, seed) under ``root / cache_key``."""

    def __init__(self, root: str | os.PathLike, config: SyntheticConfig, size: tuple[int, int], seed: int) -> None:
        self.dir = Path(root) / cache_key(config, size, seed)
        self._config_written = (self.dir / "config.json").exists()
        self._meta = {"renderer": RENDERER_VERSION, "config": config.to_dict(), "size": list(size), "seed": seed}
        self.size = (int(size[0]), int(size[1]))

    def path(self, split: str, index: int, group: str) -> Path:
        return self.dir / split / f"{index:06d}.{group}.npz"

    def get(self, split: str, index: int, group: str) -> dict[str, np.ndarray] | None:
        """The cached record, or None when absent or invalid (it is then re-rendered and overwritten).

        Invalid: unreadable, truncated, empty, not an .npz, another ``cache_version``, a key missing, or an array
        of the wrong dtype/shape/values (:func:`check_record`); a warning names the file.
        """
        path = self.path(split, index, group)
        try:
            return read_record(path, GROUP_KEYS[group], size=self.size, version=CACHE_RECORD_VERSION)
        except FileNotFoundError:
            return None
        except DataError as err:
            log.warning("re-rendering a bad render-cache record: %s", err)
            return None

    def put(self, split: str, index: int, group: str, arrays: Mapping[str, np.ndarray]) -> None:
        if not self._config_written:
            write_json(self.dir / "config.json", self._meta)
            self._config_written = True
        write_record(self.path(split, index, group), {**arrays, _VERSION_KEY: np.array(CACHE_RECORD_VERSION)})


def dataset_meta(
    config: SyntheticConfig, size: tuple[int, int], seed: int, split: str, num_samples: int
) -> dict[str, Any]:
    """The ``meta.json`` of a ``data synth`` split directory."""
    return {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "renderer_version": RENDERER_VERSION,
        "split": split,
        "num_samples": num_samples,
        "size": list(size),
        "seed": seed,
        "config": config.to_dict(),
        "classes": list(CLASSES),
        "palette": [list(c) for c in PALETTE],
        "intrinsics": intrinsics(size[0], size[1], config.hfov_deg).tolist(),
        "keys": list(RECORD_KEYS),
    }


def read_meta(root: str | os.PathLike, split: str) -> dict[str, Any]:
    """Read and check ``root/<split>/meta.json`` written by ``freqdense data synth``."""
    path = Path(root) / split / "meta.json"
    if not path.exists():
        present = sorted(p.parent.name for p in Path(root).glob("*/meta.json")) if Path(root).is_dir() else []
        raise DataError(
            f"{path} not found: no synthetic {split!r} split in {root} (splits present: {present or 'none'}); "
            f"write it with `freqdense data synth --out {root} --split {split} --num N`"
        )
    try:
        meta = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise DataError(f"cannot read {path}: {err}; re-run `freqdense data synth`") from err
    if meta.get("format") != FORMAT_NAME or meta.get("format_version") != FORMAT_VERSION:
        raise DataError(
            f"{path} is not a {FORMAT_NAME} v{FORMAT_VERSION} directory (format={meta.get('format')!r}, "
            f"version={meta.get('format_version')!r}); re-create it with `freqdense data synth`"
        )
    return meta


def synthesize(
    out: str | os.PathLike,
    *,
    num_samples: int,
    split: str = "train",
    size: tuple[int, int] = (96, 128),
    seed: int = 0,
    config: SyntheticConfig | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Path:
    """Render ``num_samples`` samples of ``split`` into ``out/<split>/`` (the documented format).

    Re-running with the same arguments resumes: complete records are kept, missing ones rendered. A
    directory written with other settings raises DataError instead of mixing two datasets.
    """
    config = config or SyntheticConfig()
    split_dir = Path(out) / split
    meta = dataset_meta(config, size, seed, split, num_samples)
    meta_path = split_dir / "meta.json"
    if meta_path.exists():
        old = read_meta(out, split)
        same = {k: old.get(k) for k in ("renderer_version", "size", "seed", "config")}
        new = {k: meta[k] for k in ("renderer_version", "size", "seed", "config")}
        if same != new:
            raise DataError(
                f"{split_dir} already holds synthetic data written with other settings ({meta_path}); "
                "choose another --out or delete that directory"
            )
    write_json(meta_path, meta)
    for index in range(num_samples):
        path = split_dir / f"{index:06d}.npz"
        if path.exists():
            try:
                read_record(path, RECORD_KEYS, size=size)
                if progress:
                    progress(index + 1, num_samples)
                continue
            except DataError as err:
                log.warning("re-rendering %s: %s", path, err)
        scene = generate_scene(config, seed, split, index)
        arrays: dict[str, np.ndarray] = {}
        for group in GROUPS:
            arrays.update(render_group(group, config, size, seed, split, index, scene=scene))
        write_record(path, arrays)
        if progress:
            progress(index + 1, num_samples)
    return split_dir
