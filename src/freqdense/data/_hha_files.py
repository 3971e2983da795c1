"""The ``hha`` option of the RGB-D loaders: find precomputed HHA images, read them, or compute them on the fly.

``hha="none"`` adds nothing; ``"load"`` reads one 8-bit RGB image per sample (channels = disparity, height, angle,
the order :func:`freqdense.ops.depth_to_hha` returns and Depth2HHA's files have when read as RGB) and divides it by
255; ``"compute"`` encodes the sample's depth with :func:`freqdense.data.transforms.compute_hha`.

Two on-disk sources are understood (:func:`find_hha_files`):

* a ``freqdense data hha`` cache: ``<hha_root>/<split>/meta.json`` plus ``<index:06d>.png`` in dataset order
  (``hha_root`` may also point at the ``<split>`` folder itself); ``meta.json`` must name the same dataset and split;
* a folder of per-id files ``<dir>/<id>.png`` (or ``.jpg``, as SA-Gate ships them): ``hha_root`` if given, else the
  dataset's conventional folder (e.g. ``<root>/HHA`` for SA-Gate's layout).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import torch

from ..errors import ConfigError, DataError
from .io import read_image

__all__ = ["HHA_MODES", "HHAMode", "check_hha_mode", "find_hha_files", "read_hha"]

HHAMode = Literal["none", "load", "compute"]
HHA_MODES: tuple[str, ...] = ("none", "load", "compute")
_SUFFIXES = (".png", ".jpg", ".jpeg")


def check_hha_mode(hha: str, dataset: str) -> str:
    """``hha`` if it is one of ``none``/``load``/``compute``, else ConfigError listing them."""
    if hha not in HHA_MODES:
        raise ConfigError(
            f"{dataset} hha={hha!r} is not a valid choice; use 'none' (no HHA), 'load' (precomputed images) or "
            f"'compute' (encode the depth on the fly)"
        )
    return hha


def find_hha_files(
    *,
    hha_root: str | os.PathLike | None,
    default_dir: Path | None,
    split: str,
    ids: Sequence[str],
    dataset: str,
) -> list[Path]:
    """One HHA file per sample id, in dataset order; every file is checked to exist.

    Args:
        hha_root: a ``freqdense data hha`` cache or a folder of ``<id>.png|jpg`` files; None = ``default_dir``.
        default_dir: the dataset's conventional HHA folder (None if the layout has none).
        split: the dataset split (the cache's sub-folder).
        ids: the sample ids in dataset order (after ``num_samples``).
        dataset: registered dataset name, for messages and the cache's ``meta.json`` check.

    Raises:
        DataError: no source, a cache of another dataset/split or with too few images, or a missing file (named).
    """
    if hha_root is not None:
        root = Path(hha_root).expanduser()
        if not root.is_dir():
            raise DataError(
                f"{dataset} hha_root {os.fspath(hha_root)!r} is not a directory; point it at a `freqdense data hha` "
                f"cache (holding <split>/meta.json) or at a folder of <id>.png HHA images"
            )
        for cache in (root / split, root):
            if (cache / "meta.json").is_file():
                return _cache_files(cache, split, ids, dataset)
        folder = root
    else:
        if default_dir is None or not default_dir.is_dir():
            where = f" (looked for {os.fspath(default_dir)!r})" if default_dir is not None else ""
            raise DataError(
                f"{dataset} hha='load' needs precomputed HHA images{where}; pass hha_root=<dir> (a folder of "
                f"<id>.png files, or a cache written by `freqdense data hha CONFIG --out DIR`), or use hha='compute'"
            )
        folder = default_dir
    files = []
    for sample_id in ids:
        found = next((folder / f"{sample_id}{s}" for s in _SUFFIXES if (folder / f"{sample_id}{s}").is_file()), None)
        if found is None:
            raise DataError(
                f"{dataset}: HHA image {os.fspath(folder / f'{sample_id}.png')!r} (or .jpg) does not exist; every "
                f"sample of the {split!r} split needs one. Re-create the HHA folder or use hha='compute'"
            )
        files.append(found)
    return files


def _cache_files(cache: Path, split: str, ids: Sequence[str], dataset: str) -> list[Path]:
    meta_path = cache / "meta.json"
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, ValueError) as err:
        raise DataError(
            f"cannot read HHA cache index {os.fspath(meta_path)!r} ({err}); delete the cache and re-run "
            f"`freqdense data hha`"
        ) from err
    if meta.get("dataset") not in (None, dataset) or meta.get("split") not in (None, split):
        raise DataError(
            f"HHA cache {os.fspath(cache)!r} was written for dataset {meta.get('dataset')!r} split "
            f"{meta.get('split')!r}, not {dataset!r} {split!r}; point hha_root at the right cache"
        )
    cached_ids = meta.get("ids")
    if cached_ids is not None and list(cached_ids[: len(ids)]) != list(ids):
        raise DataError(
            f"HHA cache {os.fspath(cache)!r} lists its samples in another order than {dataset} {split!r} (the split "
            f"file changed?); delete the cache and re-run `freqdense data hha`"
        )
    files = [cache / f"{index:06d}.png" for index in range(len(ids))]
    missing = next((f for f in files if not f.is_file()), None)
    if missing is not None:
        raise DataError(
            f"HHA cache file {os.fspath(missing)!r} does not exist ({dataset} {split!r} has {len(ids)} samples); "
            f"re-run `freqdense data hha` for this split (it resumes), or lower num_samples"
        )
    return files


def read_hha(path: Path, size: tuple[int, int], dataset: str) -> torch.Tensor:
    """Read an HHA image as (3, H, W) float32 in [0, 1]; DataError if it is not ``size`` = (H, W)."""
    hha = read_image(path)
    if tuple(hha.shape[1:]) != tuple(size):
        raise DataError(
            f"{dataset}: HHA image {os.fspath(path)!r} is {tuple(hha.shape[1:])} but the RGB image is {tuple(size)}; "
            f"HHA must be encoded at the image resolution (re-create it)"
        )
    return hha
