"""``freqdense predict RUN_OR_CKPT IMAGES... --out DIR``: label PNGs, overlays and depth maps for image files."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

import torch

from ..errors import ConfigError

log = logging.getLogger(__name__)


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "predict",
        help="run a trained model on images; write label PNGs, overlays and depth maps",
        description=(
            "For each image writes <stem>_seg.png (indexed label map), <stem>_seg_overlay.png, <stem>_depth.png "
            "(inverse-depth colour map on one fixed range for the whole --out, see --depth-range) and "
            "<stem>_depth.npy (float32 metres) to --out, at the image's size, plus depth_colorbar.png (the colour "
            "bar in metres) and predictions.json. A detection model (task detection) writes <stem>_det.png (boxes "
            "and class names drawn) and <stem>_det.json (boxes, scores, classes) instead. See "
            "docs/export_and_predict.md and docs/methods/detection.md."
        ),
    )
    p.add_argument("checkpoint", metavar="RUN_OR_CKPT", help="a run directory or a checkpoint directory")
    p.add_argument("images", nargs="+", metavar="IMAGES", help="image files or directories of png/jpg/jpeg/bmp")
    p.add_argument("--out", required=True, type=Path, metavar="DIR", help="output directory")
    p.add_argument("--device", default="cpu", help="torch device: cpu, cuda, cuda:1, mps or auto (default: cpu)")
    p.add_argument(
        "--size",
        nargs=2,
        type=int,
        metavar=("H", "W"),
        help="network input size (default: the training input size stored in the checkpoint)",
    )
    p.add_argument("--batch-size", type=int, default=4, help="images per forward pass (default: 4)")
    p.add_argument("--no-npy", action="store_true", help="do not write the float32 depth .npy files")
    p.add_argument(
        "--depth",
        type=Path,
        metavar="DIR",
        help="second input of a two-input (RGB-D) model: DIR/<image stem>.npy (metres, or HHA in [0, 1]) or .png "
        "(16-bit depth, see --depth-png-scale; 8-bit HHA)",
    )
    p.add_argument(
        "--depth-png-scale", type=float, default=1000.0, help="16-bit depth PNG units per metre (default: 1000, mm)"
    )
    p.add_argument(
        "--scales", type=float, nargs="+", default=[1.0], metavar="S", help="multi-scale inference, e.g. 0.75 1 1.25"
    )
    p.add_argument("--flip", action="store_true", help="average with horizontally flipped inputs")
    p.add_argument(
        "--depth-range",
        type=float,
        nargs=2,
        metavar=("MIN", "MAX"),
        help="depth colour range in metres for every <stem>_depth.png (MIN and closer brightest, MAX and farther "
        "darkest). Default: from the first image with valid depth (its 5th percentile to its maximum, rounded "
        "outwards), kept for all images of the run; predictions.json and depth_colorbar.png state it",
    )
    p.add_argument("--score-thr", type=float, help="detection: minimum score (default: the run's task.detection)")
    p.add_argument("--nms-iou", type=float, help="detection: class-wise NMS IoU threshold (default: the run's)")
    p.add_argument("--max-per-image", type=int, help="detection: detections kept per image (default: the run's)")
    p.set_defaults(func=run)


def _is_detection(meta: dict) -> bool:
    task = (meta.get("config") or {}).get("task") or {}
    return isinstance(task, dict) and task.get("name") == "detection"


def _run_detection(args: argparse.Namespace, model: torch.nn.Module, meta: dict, device: torch.device) -> int:
    from ..predict_detection import predict_detections

    if args.depth is not None or args.flip or list(args.scales) != [1.0] or args.depth_range is not None:
        raise ConfigError(
            "--depth, --scales, --flip and --depth-range do not apply to a detection model; drop them (detection "
            "options: --score-thr, --nms-iou, --max-per-image, --size)"
        )
    written = predict_detections(
        model,
        args.images,
        args.out,
        meta=meta,
        size=args.size,
        device=device,
        batch_size=args.batch_size,
        score_thr=args.score_thr,
        nms_iou=args.nms_iou,
        max_per_image=args.max_per_image,
    )
    log.info("%d files in %s (summary: %s)", len(written), args.out, written[-1].name)
    return 0


def run(args: argparse.Namespace) -> int:
    from ..predict import model_input_keys, predict_images

    device = resolve_device(args.device)
    model, meta = _load_model(args.checkpoint)
    if _is_detection(meta):
        return _run_detection(args, model, meta, device)
    if any(getattr(args, k, None) is not None for k in ("score_thr", "nms_iou", "max_per_image")):
        raise ConfigError("--score-thr, --nms-iou and --max-per-image apply to detection models only; drop them")
    keys = model_input_keys(meta)
    if len(keys) > 2:
        raise ConfigError(f"the model takes {len(keys)} inputs {list(keys)}; the CLI supports at most image + --depth")
    if len(keys) == 2 and args.depth is None:
        raise ConfigError(f"the model takes the inputs {list(keys)}; pass --depth DIR with one {keys[1]!r} per image")
    if len(keys) == 1 and args.depth is not None:
        raise ConfigError("--depth was given but the model takes only the image; drop --depth")
    written = predict_images(
        model,
        args.images,
        args.out,
        meta=meta,
        size=args.size,
        device=device,
        batch_size=args.batch_size,
        save_npy=not args.no_npy,
        extra_inputs={keys[1]: args.depth} if len(keys) == 2 else None,
        scales=args.scales,
        flip=args.flip,
        depth_png_scale=args.depth_png_scale,
        depth_range=args.depth_range,
    )
    log.info("%d files in %s (summary: %s)", len(written), args.out, written[-1].name)
    return 0


def resolve_device(name: str) -> torch.device:
    """``auto`` -> cuda if available, then mps, else cpu; anything else is parsed by ``torch.device``."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError) as err:
        raise ConfigError(f"--device {name!r} is not a torch device; use cpu, cuda, cuda:N, mps or auto") from err
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"--device {name!r} but CUDA is not available; use --device cpu")
    return device


def _load_model(path: str) -> tuple[torch.nn.Module, dict]:
    # Imported here so `freqdense --help` works without importing the engine; tests replace this function.
    from ..engine.checkpoint import load_model

    return load_model(path, map_location="cpu")
