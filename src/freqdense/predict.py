"""Run a dense-prediction model on image files and write label maps, overlays and depth maps.

For every input image ``<stem>.<ext>`` the output directory gets, at the image's original size:

* ``<stem>_seg.png``: indexed (palette, mode ``P``) PNG whose pixel values are the predicted class ids;
* ``<stem>_seg_overlay.png``: the class colours blended over the image (alpha 0.5) with white boundaries;
* ``<stem>_depth.png``: colour map (magma) of the inverse depth, near = bright, on one fixed range for the whole
  output directory (``depth_range``; default: taken from the first image, see :func:`predict_images`);
* ``<stem>_depth.npy``: float32 (H, W) depth in metres (unit recorded in ``predictions.json``);
* ``depth_colorbar.png`` (once): the colour bar of that range, ticks in metres.

Segmentation files are written when the model returns ``semantic``, depth files when it returns ``depth``.
``predictions.json`` lists the inputs, the files written per image, classes, palette and the depth unit.

Nothing is half-written: every file goes to a hidden staging folder inside the output directory first, and is
moved into place (``os.replace``) only after every image was predicted, ``predictions.json`` last, so its presence
means the whole output is complete. A refused input (unreadable file, NaN/inf in a ``.npy`` input) or a non-finite
model output (NaN/inf logits or depth) raises before any output is moved, and leaves the output directory as it was
(removed again if predict created it).

Two-input (RGB-D) models, whose checkpoint config has ``task.inputs: [image, <key>]``, read the second input of
``<stem>.<ext>`` from ``extra_inputs[<key>]/<stem>.npy`` or ``<stem>.png`` (see :func:`read_extra_input`).
Multi-scale and flip inference: ``scales=`` / ``flip=`` (:class:`freqdense.engine.multiscale.MultiScaleFlip`),
averaged as the run's config says (``eval.average``, ``eval.align_corners``), as ``freqdense evaluate`` does.
Formats and choices: docs/export_and_predict.md.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ._checks import check_shape
from ._finite import check_finite, non_finite_count
from ._progress import Progress
from .data.io import atomic_write, read_depth_png, read_image, read_npy, write_png_atomic
from .data.sample import DENSE_FLOAT_KEYS
from .data.transforms import resize
from .errors import ConfigError, DataError, NonFiniteError
from .viz import default_palette, overlay, save_indexed_png
from .viz.depth_scale import check_depth_range, colorize_depth_range, depth_range_of, save_depth_colorbar

__all__ = ["IMAGE_SUFFIXES", "find_images", "predict_images", "model_input_keys", "read_extra_input"]

log = logging.getLogger(__name__)

#: File suffixes picked up when an input is a directory (case-insensitive).
IMAGE_SUFFIXES: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".bmp")
#: Name of the summary file written next to the predictions.
SUMMARY_NAME = "predictions.json"
#: Colour bar of the depth PNGs, written once per output directory.
DEPTH_COLORBAR_NAME = "depth_colorbar.png"


def find_images(inputs: Sequence[str | Path]) -> list[Path]:
    """Expand files and directories into a list of image files.

    Directories contribute their files with a suffix in :data:`IMAGE_SUFFIXES`, sorted by name (not recursive);
    files are taken as given, in argument order. Duplicates are dropped.

    Raises:
        DataError: an input does not exist, nothing was found, or two images share a file stem (their outputs
            would overwrite each other).
    """
    if isinstance(inputs, (str, Path)):
        inputs = [inputs]
    files: list[Path] = []
    seen: set[Path] = set()
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
            if not found:
                log.warning("no %s files in directory %s", "/".join(IMAGE_SUFFIXES), path)
        elif path.is_file():
            found = [path]
        else:
            raise DataError(f"input {str(path)!r} does not exist; pass image files or directories of images")
        for p in found:
            key = p.resolve()
            if key not in seen:
                seen.add(key)
                files.append(p)
    if not files:
        raise DataError(
            f"no images found in {[str(p) for p in inputs]}; supported suffixes: {', '.join(IMAGE_SUFFIXES)}"
        )
    by_stem: dict[str, Path] = {}
    for p in files:
        if p.stem in by_stem:
            raise DataError(
                f"images {str(by_stem[p.stem])!r} and {str(p)!r} share the stem {p.stem!r}, so their outputs "
                f"({p.stem}_seg.png, ...) would overwrite each other; predict them into separate output directories"
            )
        by_stem[p.stem] = p
    return files


def model_input_keys(meta: Mapping[str, Any]) -> tuple[str, ...]:
    """The model's positional input keys from checkpoint metadata (``config.task.inputs``, default ``image``)."""
    config = meta.get("config") or {}
    task = config.get("task") if isinstance(config, Mapping) else None
    keys = (task or {}).get("inputs") if isinstance(task, Mapping) else None
    return tuple(keys) if keys else ("image",)


def read_extra_input(directory: str | Path, stem: str, key: str, *, depth_png_scale: float = 1000.0) -> torch.Tensor:
    """Read the non-RGB input ``key`` of image ``stem`` from ``directory`` as a (C, H, W) float32 tensor.

    ``<stem>.npy`` is preferred over ``<stem>.png``. Depth-like keys (``depth``, ``sensor_depth``): a ``.npy``
    of metres, (H, W) or (1, H, W), or a 16-bit PNG of ``depth_png_scale`` units per metre (1000: millimetres,
    as NYU's and SUN RGB-D's raw PNGs before SUN's bit shift); 0 = invalid. Other keys (``hha``): an 8-bit PNG
    divided by 255, or a ``.npy`` (C, H, W) already in the model's range.

    Raises:
        DataError: no file, or an unreadable/badly shaped one (the message names it).
        NonFiniteError: the ``.npy`` holds NaN/inf (the message names the file and the share of such values);
            invalid depth is 0, never NaN.
    """
    directory = Path(directory)
    npy, png = directory / f"{stem}.npy", directory / f"{stem}.png"
    if npy.is_file():
        array = np.asarray(read_npy(npy), dtype=np.float32)
        if array.ndim == 2:
            array = array[None]
        if array.ndim != 3 or (key in DENSE_FLOAT_KEYS and array.shape[0] != 1):
            want = "(H, W) or (1, H, W)" if key in DENSE_FLOAT_KEYS else "(C, H, W)"
            raise DataError(f"{str(npy)!r} has shape {array.shape}; input {key!r} needs {want}")
        check_finite(
            array,
            f"input {key!r} file {str(npy)!r}",
            "one NaN spreads to every output pixel; mark invalid depth with 0 (HHA: 0) instead of NaN/inf",
        )
        return torch.from_numpy(array.copy())
    if png.is_file():
        if key in DENSE_FLOAT_KEYS:
            return read_depth_png(png, depth_png_scale)
        return read_image(png)
    raise DataError(
        f"no {key!r} input for image {stem!r}: neither {str(npy)!r} nor {str(png)!r} exists; the model takes "
        f"{key!r} as a second input, so give one file per image with the image's stem"
    )


def predict_images(
    model: nn.Module,
    inputs: Sequence[str | Path],
    out_dir: str | Path,
    *,
    meta: Mapping[str, Any],
    size: Sequence[int] | None = None,
    device: str | torch.device = "cpu",
    batch_size: int = 4,
    save_npy: bool = True,
    extra_inputs: Mapping[str, str | Path] | None = None,
    scales: Sequence[float] = (1.0,),
    flip: bool = False,
    depth_png_scale: float = 1000.0,
    depth_range: Sequence[float] | None = None,
) -> list[Path]:
    """Predict every image in ``inputs`` and write the files described in the module docstring.

    Each image is resized (bilinear, ``align_corners=False``, antialiased when shrinking; the same resize as
    :func:`freqdense.data.transforms.resize`) to the network input size, which is ``size`` if given, else
    ``meta["input_size"]``, else the image's own size. Predictions are resized back to the original size:
    logits bilinearly, then argmax; depth bilinearly. Images with the same network input size are batched.

    Args:
        model: maps ``image`` (B, 3, H, W) RGB in [0, 1] (followed by the extra inputs of a multi-input model)
            to a dict with ``semantic`` logits (B, K, H, W) and/or ``depth`` (B, 1, H, W). It is moved to
            ``device`` and put in eval mode.
        inputs: image files and/or directories (see :func:`find_images`).
        out_dir: output directory (created if missing; existing files of the same names are replaced).
        meta: checkpoint metadata; uses ``palette`` (list of [r, g, b]; default: ``default_palette(K)``),
            ``classes``, ``input_size`` ([H, W]) and ``depth_unit`` (default ``"m"``).
        size: network input size (H, W) overriding ``meta["input_size"]``.
        device: torch device to run on.
        batch_size: images per forward pass.
        save_npy: also write ``<stem>_depth.npy``.
        extra_inputs: for a multi-input model (``meta["config"]["task"]["inputs"]``), a directory per extra key
            holding ``<stem>.npy``/``<stem>.png`` (:func:`read_extra_input`). Extra inputs are resized with the
            image: depth-like keys nearest-neighbour, others bilinearly.
        scales: multi-scale inference factors (``[1.0]`` = off).
        flip: average with horizontally flipped inputs.
        depth_png_scale: units per metre of 16-bit depth PNGs among the extra inputs.
        depth_range: ``(near, far)`` in metres of the depth colour maps, the same for every image (near and closer
            brightest, far and farther darkest). Default: from the first image with valid predicted depth, its 5th
            percentile to its maximum rounded outwards to 2 significant digits, then kept for all the others
            (so the colours of one output directory are comparable; pass a range to compare directories). The
            range and its source go to ``predictions.json``; ``depth_colorbar.png`` shows it in metres.

    Returns:
        The paths written, per image in input order, then ``predictions.json``.

    Raises:
        DataError: an input is missing or unreadable (the message names the file).
        NonFiniteError: an input ``.npy`` or a model output for an image holds NaN/inf (names the file); nothing
            is written then (see the module docstring).
        ConfigError: bad ``size``/``batch_size``/``device``, a model without ``semantic``/``depth`` outputs, a
            palette with fewer colours than the model has classes, or extra inputs that do not match the model's.
    """
    from .engine.multiscale import MultiScaleFlip, check_tta, is_single_pass

    scales, flip = check_tta(scales, flip)
    keys = model_input_keys(meta)
    if keys[0] != "image":
        raise ConfigError(f"predict feeds image files as the first model input, but the model's inputs are {keys}")
    extra = dict(extra_inputs or {})
    if set(extra) != set(keys[1:]):
        raise ConfigError(
            f"the model takes the inputs {list(keys)}; give a directory for each of {list(keys[1:]) or 'none'} "
            f"besides the images (got {sorted(extra) or 'none'}; CLI: --depth DIR for the second input)"
        )
    files = find_images(inputs)
    out_dir = Path(out_dir)
    net_size = _resolve_size(size if size is not None else meta.get("input_size"))
    if batch_size < 1:
        raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ConfigError(f"invalid device {device!r}: {err}; use e.g. 'cpu' or 'cuda:0'") from err
    model.to(device).eval()
    # Multi-scale averaging as the run evaluated it (eval.average, eval.align_corners of the checkpoint's config).
    eval_cfg = (meta.get("config") or {}).get("eval") or {}
    tta = {"average": eval_cfg.get("average", "probs"), "align_corners": eval_cfg.get("align_corners", False)}
    single = is_single_pass(scales, flip)
    net = model if single else MultiScaleFlip(model, keys, scales=scales, flip=flip, **tta)
    checked_range = None if depth_range is None else check_depth_range(depth_range)
    if net_size is None:
        log.info("no input size given or in the checkpoint metadata; running at each image's own size")
    with _Staging(out_dir) as stage:
        writer = _Writer(stage, meta, save_npy, checked_range)
        _predict_files(net, files, keys, extra, writer, net_size, device, batch_size, depth_png_scale, scales, flip)
        if not single:
            writer.inference.update(tta)
        writer.write_colorbar()
        writer.write_summary(net_size)
        written = _commit(stage, out_dir, writer.written)
    log.info("wrote predictions for %d images to %s", len(files), out_dir)
    return written


def _predict_files(
    net: nn.Module,
    files: list[Path],
    keys: tuple[str, ...],
    extra: dict[str, str | Path],
    writer: _Writer,
    net_size: tuple[int, int] | None,
    device: torch.device,
    batch_size: int,
    depth_png_scale: float,
    scales: Sequence[float],
    flip: bool,
) -> None:
    from .engine.multiscale import resize_input

    writer.inference = {"inputs": list(keys), "scales": list(scales), "flip": flip}
    pending: list[tuple[Path, torch.Tensor, list[torch.Tensor]]] = []
    with Progress("predict", len(files), unit="img") as bar:
        for path in files:
            image = read_image(path)
            net_in = [image if net_size is None else resize({"image": image}, net_size)["image"]]
            for key in keys[1:]:
                x = read_extra_input(extra[key], path.stem, key, depth_png_scale=depth_png_scale)
                if tuple(x.shape[-2:]) != tuple(image.shape[-2:]):
                    source = Path(extra[key]) / f"{path.stem}.npy"
                    source = source if source.is_file() else source.with_suffix(".png")
                    raise DataError(
                        f"input {key!r} file {str(source)!r} for {str(path)!r} is {tuple(x.shape[-2:])} but the image "
                        f"is {tuple(image.shape[-2:])}; extra inputs must be registered to the image at its size"
                    )
                net_in.append(x if net_size is None else resize_input(x[None], net_size, key=key)[0])
            if pending and (len(pending) == batch_size or pending[0][2][0].shape != net_in[0].shape):
                _run_batch(net, pending, device, writer)
                bar.update(len(pending))
                pending = []
            pending.append((path, image, net_in))
        if pending:
            _run_batch(net, pending, device, writer)
            bar.update(len(pending))


class _Staging:
    """A hidden folder inside ``out_dir`` that receives every output first; removed on exit, whatever happens.

    On an error, ``out_dir`` is left as it was: the folders this created (``out_dir`` and missing parents) are
    removed again when they hold nothing else.
    """

    def __init__(self, out_dir: Path) -> None:
        self.out_dir = out_dir
        self.created: list[Path] = []
        self.dir: Path | None = None

    def __enter__(self) -> Path:
        missing = [p for p in (self.out_dir, *self.out_dir.parents) if not p.exists()]
        try:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            self.created = missing  # deepest first
            self.dir = Path(tempfile.mkdtemp(prefix=".predict-staging-", dir=self.out_dir))
        except OSError as err:
            self.__exit__(type(err), err, None)
            raise ConfigError(
                f"cannot write predictions to --out {str(self.out_dir)!r}: {err.strerror or err}; give a writable "
                "directory (or a path where one can be created)"
            ) from None
        return self.dir

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)
        if exc_type is not None:
            for folder in self.created:
                try:
                    folder.rmdir()  # only if empty
                except OSError:
                    break


def _commit(stage: Path, out_dir: Path, staged: list[Path]) -> list[Path]:
    """Move the staged files into ``out_dir`` (``os.replace``, atomic per file), ``predictions.json`` last."""
    final: list[Path] = []
    for path in staged:
        if path.name == SUMMARY_NAME:
            continue
        os.replace(path, out_dir / path.name)
        final.append(out_dir / path.name)
    os.replace(stage / SUMMARY_NAME, out_dir / SUMMARY_NAME)
    final.append(out_dir / SUMMARY_NAME)
    return final


def _resolve_size(size: Sequence[int] | None) -> tuple[int, int] | None:
    if size is None:
        return None
    values = list(size)
    if len(values) != 2 or not all(isinstance(v, (int, np.integer)) and v > 0 for v in values):
        raise ConfigError(f"size must be two positive integers (height, width), got {size!r}")
    return int(values[0]), int(values[1])


def _run_batch(
    model: nn.Module,
    pending: list[tuple[Path, torch.Tensor, list[torch.Tensor]]],
    device: torch.device,
    writer: _Writer,
) -> None:
    num_inputs = len(pending[0][2])
    batch = [torch.stack([net_in[i] for _, _, net_in in pending]).to(device) for i in range(num_inputs)]
    with torch.inference_mode():
        out = model(*batch)
    if not isinstance(out, Mapping) or not ({"semantic", "depth"} & set(out)):
        keys = sorted(out) if isinstance(out, Mapping) else type(out).__name__
        raise ConfigError(f"predict needs a model returning a dict with 'semantic' and/or 'depth'; got {keys}")
    semantic, depth = out.get("semantic"), out.get("depth")
    if semantic is not None:
        check_shape(semantic, "B C H W", name="model output 'semantic'", B=len(pending))
    if depth is not None:
        check_shape(depth, "B C H W", name="model output 'depth'", B=len(pending), C=1)
    for i, (path, _, _) in enumerate(pending):
        for name, value in (("semantic", semantic), ("depth", depth)):
            if value is not None and non_finite_count(value[i]):
                inputs = ", ".join(str(p) for p, _, _ in pending)
                raise NonFiniteError(
                    f"model output {name!r} for {str(path)!r} holds {non_finite_count(value[i])} NaN/inf values "
                    f"({100.0 * non_finite_count(value[i]) / value[i].numel():.3g} %; batch: {inputs}); nothing was "
                    "written. The weights or another input of this image are broken (a NaN input spreads to the "
                    "whole output)"
                )
    for i, (path, image, _) in enumerate(pending):
        hw = tuple(image.shape[-2:])
        labels = None
        if semantic is not None:
            logits = _resize_to(semantic[i : i + 1].float(), hw)
            labels = logits.argmax(dim=1)[0].cpu().numpy()
        depth_m = None
        if depth is not None:
            depth_m = _resize_to(depth[i : i + 1].float(), hw)[0, 0].cpu().numpy().astype(np.float32)
        writer.write(path, image, labels, depth_m, num_classes=None if semantic is None else semantic.shape[1])


def _resize_to(x: torch.Tensor, hw: tuple[int, ...]) -> torch.Tensor:
    if tuple(x.shape[-2:]) == hw:
        return x
    return F.interpolate(x, size=hw, mode="bilinear", align_corners=False)


class _Writer:
    """Writes the per-image files and remembers them for ``predictions.json``."""

    def __init__(
        self, out_dir: Path, meta: Mapping[str, Any], save_npy: bool, depth_range: tuple[float, float] | None
    ) -> None:
        self.out_dir = out_dir
        self.meta = meta
        self.save_npy = save_npy
        self.depth_range = depth_range
        self.depth_range_source = "given (depth_range / --depth-range)" if depth_range is not None else None
        self.written: list[Path] = []
        self.records: list[dict[str, Any]] = []
        self.palette: np.ndarray | None = None
        self.inference: dict[str, Any] = {}

    def _palette(self, num_classes: int) -> np.ndarray:
        if self.palette is None:
            given = self.meta.get("palette")
            if given is None:
                self.palette = default_palette(num_classes)
            else:
                self.palette = np.asarray(given, dtype=np.int64).reshape(-1, 3).clip(0, 255).astype(np.uint8)
                if len(self.palette) < num_classes:
                    raise ConfigError(
                        f"the checkpoint palette has {len(self.palette)} colours but the model predicts "
                        f"{num_classes} classes; fix meta['palette'] (one [r, g, b] per class)"
                    )
        return self.palette

    def write(
        self,
        source: Path,
        image: torch.Tensor,
        labels: np.ndarray | None,
        depth_m: np.ndarray | None,
        *,
        num_classes: int | None,
    ) -> None:
        stem = source.stem
        outputs: dict[str, str] = {}
        if labels is not None and num_classes is not None:
            palette = self._palette(num_classes)
            outputs["seg"] = self._save(f"{stem}_seg.png", lambda p: save_indexed_png(labels, palette, p))
            blend = overlay(image, labels, palette, alpha=0.5)
            outputs["seg_overlay"] = self._save(f"{stem}_seg_overlay.png", lambda p: write_png_atomic(blend, p))
        if depth_m is not None:
            if self.depth_range is None:
                self.depth_range = depth_range_of(depth_m)
                if self.depth_range is not None:
                    self.depth_range_source = (
                        f"first image with valid depth ({source.name}): 5th percentile to maximum of its predicted "
                        "depth, rounded outwards"
                    )
                    log.info(
                        "depth colour maps span %g-%g m (from %s; set --depth-range MIN MAX to fix another range)",
                        *self.depth_range,
                        source.name,
                    )
            if self.depth_range is not None:
                colours = colorize_depth_range(depth_m, self.depth_range)
            else:  # no valid depth yet: every pixel is invalid, hence black
                colours = np.zeros((*depth_m.shape, 3), dtype=np.uint8)
            outputs["depth"] = self._save(f"{stem}_depth.png", lambda p: write_png_atomic(colours, p))
            if self.save_npy:
                outputs["depth_npy"] = self._save(f"{stem}_depth.npy", lambda p: _save_npy(depth_m, p))
        self.records.append({"input": str(source), "size": list(image.shape[-2:]), "outputs": outputs})

    def _save(self, name: str, save: Any) -> str:
        path = self.out_dir / name
        save(path)
        self.written.append(path)
        return name

    def write_colorbar(self) -> None:
        """``depth_colorbar.png``: the fixed depth range of this directory's depth PNGs, in metres."""
        if self.depth_range is None:
            return
        self._save(DEPTH_COLORBAR_NAME, lambda p: save_depth_colorbar(p, self.depth_range))

    def write_summary(self, net_size: tuple[int, int] | None) -> Path:
        payload = {
            "format": "freqdense-predictions",
            "format_version": 1,
            "network_input_size": list(net_size) if net_size else None,
            "inference": self.inference,
            "classes": list(self.meta["classes"]) if self.meta.get("classes") is not None else None,
            "palette": self.palette.tolist() if self.palette is not None else None,
            "depth_unit": self.meta.get("depth_unit", "m"),
            "depth_range_m": list(self.depth_range) if self.depth_range is not None else None,
            "depth_range_source": self.depth_range_source,
            "files": {
                "seg": "indexed PNG (mode P); pixel value = class id, palette = class colours",
                "seg_overlay": "RGB PNG; class colours blended over the image (alpha 0.5), boundaries white",
                "depth": "RGB PNG; magma colour map of 1/depth (near = bright) on depth_range_m (metres) for every "
                "image, clipped outside; black = invalid",
                "depth_colorbar": f"{DEPTH_COLORBAR_NAME}: the colour bar of depth_range_m, ticks in metres",
                "depth_npy": "float32 (H, W) array of depth in depth_unit, at the input image's size",
            },
            "images": self.records,
        }
        path = self.out_dir / SUMMARY_NAME
        with atomic_write(path, "w", encoding="utf-8") as f:
            json.dump(payload, f, indent=2)
            f.write("\n")
        self.written.append(path)
        return path


def _save_npy(array: np.ndarray, path: Path) -> None:
    with atomic_write(path, "wb") as f:
        np.save(f, array, allow_pickle=False)
