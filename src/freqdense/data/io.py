"""Robust readers and atomic writers for dataset files.

Readers return tensors in the sample contract's layout and raise :class:`~freqdense.errors.DataError` naming the
file and the fix on a missing, corrupt or truncated file. PIL decodes lazily, so every reader forces ``.load()``
inside the error handling; truncated files are never silently padded (``PIL.ImageFile.LOAD_TRUNCATED_IMAGES`` is
left False: this module never sets it, and a reader refuses to run if something else switched it on).
EXIF orientation is deliberately ignored: label and depth maps carry no EXIF, so rotating only the RGB would
misalign them.

Writers go through :func:`atomic_write`: a temporary file in the same directory, flushed and fsync'ed, then
``os.replace``-d over the target, so readers never observe a half-written file.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, Any, Literal

import numpy as np
import torch
from PIL import Image, ImageFile

from ..errors import DataError

__all__ = ["read_image", "read_label", "read_depth_png", "read_npy", "write_png_atomic", "atomic_write"]

PathLike = str | os.PathLike

#: What PIL raises for unreadable files: OSError (truncated, unidentified), SyntaxError (some broken headers),
#: ValueError/TypeError/struct errors from plugins, DecompressionBombError (a plain Exception subclass).
_PIL_ERRORS = (OSError, SyntaxError, ValueError, TypeError, EOFError, Image.DecompressionBombError)

_LABEL_MODES = ("L", "P", "I", "I;16", "I;16B", "I;16L", "1")
_DEPTH_MODES = ("I", "I;16", "I;16B", "I;16L")


@contextlib.contextmanager
def _open_image(path: PathLike, what: str) -> Iterator[Image.Image]:
    if ImageFile.LOAD_TRUNCATED_IMAGES:
        raise DataError(
            f"PIL.ImageFile.LOAD_TRUNCATED_IMAGES is True (set by some other code), so truncated {what} files such "
            f"as {os.fspath(path)!r} would load silently padded; leave it False"
        )
    p = Path(path)
    if not p.is_file():
        raise DataError(
            f"{what} file {os.fspath(path)!r} does not exist (or is not a file); "
            f"check the dataset root and the split list"
        )
    try:
        with Image.open(p) as img:
            img.load()
            yield img
    except DataError:
        raise
    except _PIL_ERRORS as err:
        raise DataError(
            f"cannot read {what} file {os.fspath(path)!r}: it is corrupt or truncated ({type(err).__name__}: {err}); "
            f"re-download or re-extract it"
        ) from err


def read_image(path: PathLike) -> torch.Tensor:
    """Read an RGB image as a float32 tensor (3, H, W) in [0, 1] (grey, palette and RGBA converted to RGB).

    Raises:
        DataError: the file is missing, corrupt or truncated (the message names it).
    """
    with _open_image(path, "image") as img:
        if img.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
            raise DataError(
                f"image file {os.fspath(path)!r} has the {img.mode!r} (16/32-bit) mode, not 8-bit colour; "
                f"is it a depth or label map? read it with read_depth_png or read_label"
            )
        arr = np.asarray(img.convert("RGB"), dtype=np.uint8)
    return torch.from_numpy(arr.copy()).permute(2, 0, 1).contiguous().float().div_(255.0)


def read_label(path: PathLike) -> torch.Tensor:
    """Read a label PNG (mode L, P, I or 16-bit) as int64 (H, W); palette images give their indices, not colours.

    No remapping happens here (the dataset maps raw ids to train ids and void to 255).

    Raises:
        DataError: missing/corrupt file, or a colour (RGB) mask that needs a dataset-specific colour -> id map.
    """
    with _open_image(path, "label") as img:
        if img.mode not in _LABEL_MODES:
            raise DataError(
                f"label file {os.fspath(path)!r} has mode {img.mode!r}; expected a single-channel map "
                f"({', '.join(_LABEL_MODES)}). Colour-coded masks need the dataset's colour -> class mapping"
            )
        arr = np.asarray(img)
    return torch.from_numpy(arr.astype(np.int64))


def read_depth_png(path: PathLike, scale: float) -> torch.Tensor:
    """Read a 16-bit depth PNG as float32 metres (1, H, W): ``value / scale`` (0 stays 0 = invalid).

    Args:
        path: the PNG file.
        scale: stored units per metre (e.g. 1000 for millimetres, 256 for KITTI's improved ground truth).

    Raises:
        DataError: missing/corrupt file, or an image that is not single-channel 16-bit.
    """
    if not scale > 0:
        raise DataError(f"depth scale for {os.fspath(path)!r} must be positive (units per metre), got {scale}")
    with _open_image(path, "depth") as img:
        if img.mode not in _DEPTH_MODES:
            raise DataError(
                f"depth file {os.fspath(path)!r} has mode {img.mode!r}; expected a single-channel 16-bit PNG "
                f"({', '.join(_DEPTH_MODES)}). 8-bit or colour-mapped depth cannot be converted to metres"
            )
        arr = np.asarray(img).astype(np.float64)
    return torch.from_numpy((arr / scale).astype(np.float32))[None]


def read_npy(path: PathLike, *, mmap: bool = False) -> np.ndarray:
    """Load a ``.npy`` array (``allow_pickle=False``); ``mmap=True`` memory-maps it read-only.

    Raises:
        DataError: missing, truncated or malformed file (naming it), or a pickled object array.
    """
    p = Path(path)
    if not p.is_file():
        raise DataError(
            f"array file {os.fspath(path)!r} does not exist (or is not a file); "
            f"check the dataset root and the split list"
        )
    try:
        arr = np.load(p, allow_pickle=False, mmap_mode="r" if mmap else None)
    except (OSError, ValueError, EOFError) as err:
        raise DataError(
            f"cannot read array file {os.fspath(path)!r}: it is corrupt, truncated or pickled "
            f"({type(err).__name__}: {err}); re-create it with np.save (no object arrays)"
        ) from err
    if not isinstance(arr, np.ndarray):
        raise DataError(f"{os.fspath(path)!r} is an .npz archive, not a single .npy array; use np.load on it directly")
    return arr


@contextlib.contextmanager
def atomic_write(path: PathLike, mode: Literal["w", "wb"] = "wb", *, encoding: str | None = None) -> Iterator[IO[Any]]:
    """Open a file for writing such that ``path`` either keeps its old content or gets the complete new one.

    Writes go to a hidden temporary file in the same directory (same filesystem), which is flushed, fsync'ed and
    renamed over ``path`` on success, or deleted on error. Missing parent directories are created; the file gets
    the usual ``0o666 & ~umask`` permissions.

    Examples:
        >>> import json, tempfile
        >>> target = Path(tempfile.mkdtemp()) / "metrics.json"
        >>> with atomic_write(target, "w") as f:
        ...     json.dump({"miou": 0.5}, f)
        >>> json.loads(target.read_text())
        {'miou': 0.5}
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_write mode must be 'w' or 'wb', got {mode!r}")
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{secrets.token_hex(6)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, mode, encoding=encoding if mode == "w" else None) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    _fsync_dir(target.parent)


def _fsync_dir(directory: Path) -> None:
    # Makes the rename durable on POSIX; directories cannot be opened this way on Windows.
    with contextlib.suppress(OSError, AttributeError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def write_png_atomic(array: np.ndarray | torch.Tensor, path: PathLike, *, palette: Sequence[int] | None = None) -> None:
    """Write an integer array as a PNG atomically (see :func:`atomic_write`).

    Accepted layouts: uint8 (H, W) -> mode L (mode P with ``palette``: flat ``[r0, g0, b0, r1, ...]``, the
    indexed format that keeps colour label files valid label maps); uint8 (H, W, 3) -> RGB; uint16 (H, W) ->
    16-bit grey. Tensors may be (H, W), (1, H, W) or (3, H, W) and are converted to these layouts.

    Raises:
        DataError: a float or otherwise unsupported array (convert first, e.g. ``(img * 255).round().byte()``).
    """
    arr = _to_hwc_numpy(array)
    name = os.fspath(path)
    if palette is not None and not (arr.dtype == np.uint8 and arr.ndim == 2):
        raise DataError(f"a palette needs a uint8 (H, W) index map for {name!r}, got {arr.dtype} {arr.shape}")
    if palette is not None and (len(palette) % 3 or not 0 < len(palette) <= 768):
        raise DataError(f"palette for {name!r} must be a flat [r, g, b, ...] list of 3..768 values, got {len(palette)}")
    if (arr.dtype == np.uint8 and (arr.ndim == 2 or (arr.ndim == 3 and arr.shape[2] == 3))) or (
        arr.dtype == np.uint16 and arr.ndim == 2
    ):
        img = Image.fromarray(arr)  # uint8 -> L / RGB, uint16 -> I;16
        if palette is not None:
            img.putpalette(list(palette))  # turns L into P and keeps the indices
    else:
        raise DataError(
            f"cannot write {name!r} as PNG: got dtype {arr.dtype} with shape {arr.shape}; expected uint8 (H, W), "
            f"uint8 (H, W, 3) or uint16 (H, W). Convert floats first, e.g. (img * 255).round().byte() or "
            f"(depth_m * 1000).round().astype(np.uint16)"
        )
    with atomic_write(path, "wb") as f:
        img.save(f, format="PNG")


def _to_hwc_numpy(array: np.ndarray | torch.Tensor) -> np.ndarray:
    if isinstance(array, torch.Tensor):
        t = array.detach().cpu()
        if t.dim() == 3 and t.shape[0] in (1, 3):
            t = t.permute(1, 2, 0)
            if t.shape[2] == 1:
                t = t[..., 0]
        if t.dtype == torch.int64 or t.dtype == torch.int32:
            raise DataError(
                f"cannot write a {t.dtype} tensor as PNG; convert labels with .to(torch.uint8) (values <= 255) "
                f"or use numpy uint16"
            )
        return np.ascontiguousarray(t.numpy())
    return np.ascontiguousarray(np.asarray(array))
