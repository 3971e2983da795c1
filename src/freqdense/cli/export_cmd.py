"""``freqdense export RUN_OR_CKPT --out model.onnx``: ONNX export checked against ONNX Runtime."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import torch

from ..errors import ConfigError


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "export",
        help="export a trained model to ONNX (checked against ONNX Runtime)",
        description=(
            "Writes FILE.onnx (input 'image': float32 RGB in [0, 1], NCHW; outputs 'semantic' logits and/or "
            "'depth' in metres) and FILE.onnx.json (classes, palette, units). A detector (task detection) exports "
            "its raw per-level head maps; decode them with freqdense.models.detection.decode_onnx_outputs (strides "
            "and settings in the sidecar). Needs pip install 'freqdense[export]'. See docs/export_and_predict.md "
            "and docs/methods/detection.md."
        ),
    )
    p.add_argument("checkpoint", metavar="RUN_OR_CKPT", help="a run directory or a checkpoint directory")
    p.add_argument("--out", required=True, type=Path, metavar="FILE.onnx", help="the ONNX file to write")
    p.add_argument("--height", type=int, help="trace height (default: the training input size)")
    p.add_argument("--width", type=int, help="trace width (default: the training input size)")
    p.add_argument("--opset", type=int, default=18, help="ONNX opset (default: 18)")
    p.add_argument("--static", action="store_true", help="fixed H/W (default: dynamic H/W where the model allows)")
    p.add_argument(
        "--outputs",
        nargs="+",
        metavar="NAME",
        help="model output keys to export, in order (default: semantic and depth, whichever the model returns)",
    )
    p.add_argument("--no-check", action="store_true", help="skip the ONNX Runtime parity check")
    p.add_argument("--atol", type=float, default=1e-4, help="parity check absolute tolerance (default: 1e-4)")
    p.add_argument("--rtol", type=float, default=1e-3, help="parity check relative tolerance (default: 1e-3)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    model, meta = _load_model(args.checkpoint)
    height, width = _export_size(args, meta)
    task = (meta.get("config") or {}).get("task") or {}
    if isinstance(task, dict) and task.get("name") == "detection":
        from ..export import export_detection_onnx

        if args.outputs:
            raise ConfigError("--outputs does not apply to a detector: its per-level head maps are all exported")
        report = export_detection_onnx(
            model,
            args.out,
            height=height,
            width=width,
            opset=args.opset,
            dynamic_hw=not args.static,
            meta=meta,
            check=not args.no_check,
            atol=args.atol,
            rtol=args.rtol,
        )
    else:
        report = _export_dense(args, model, meta, height, width)
    _print_report(report)
    return 0


def _export_dense(args: argparse.Namespace, model: torch.nn.Module, meta: dict, height: int, width: int):
    from ..export import export_onnx

    return export_onnx(
        model,
        args.out,
        height=height,
        width=width,
        opset=args.opset,
        dynamic_hw=not args.static,
        outputs=args.outputs,
        meta=meta,
        check=not args.no_check,
        atol=args.atol,
        rtol=args.rtol,
    )


def _print_report(report) -> None:
    shape = "x".join(str(d) for d in report.input_shape)
    lines = [
        f"wrote {report.path} and {report.sidecar_path}",
        f"  input  {report.input_name}: {shape} float32 RGB in [0, 1]",
        f"  outputs {', '.join(report.output_names)}",
        f"  dynamic H/W: {report.dynamic_hw}"
        + (f" (fell back: {report.fallback_reason})" if report.fallback_reason else ""),
    ]
    if report.checked_sizes:
        sizes = ", ".join(f"{h}x{w}" for h, w in report.checked_sizes)
        diffs = ", ".join(f"{k} {v:.2g}" for k, v in report.max_abs_diff.items())
        lines.append(f"  ONNX Runtime parity at {sizes}: max |diff| {diffs}")
    else:
        lines.append("  ONNX Runtime parity check skipped (--no-check)")
    sys.stdout.write("\n".join(lines) + "\n")


def _export_size(args: argparse.Namespace, meta: dict) -> tuple[int, int]:
    if (args.height is None) != (args.width is None):
        raise ConfigError("give both --height and --width, or neither (to use the training input size)")
    if args.height is not None:
        return args.height, args.width
    size = meta.get("input_size")
    if not size or len(size) != 2:
        raise ConfigError(f"the checkpoint {args.checkpoint!r} records no input_size; pass --height and --width")
    return int(size[0]), int(size[1])


def _load_model(path: str) -> tuple[torch.nn.Module, dict]:
    # Imported here so `freqdense --help` works without importing the engine; tests replace this function.
    from ..engine.checkpoint import load_model

    return load_model(path, map_location="cpu")
