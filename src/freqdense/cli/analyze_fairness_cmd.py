"""``freqdense analyze fairness``: fairness degree D_fair of the photometric loss with and without Auto-Blur.

``--middlebury`` uses the Middlebury 2014 "Motorcycle" pair shipped in scikit-image (Scharstein et al., GCPR 2014);
``--left L --right R --disparity D`` takes a rectified pair (images) and the left GT disparity in pixels (``.npy`` or
``.pfm``; non-finite or <= 0 = invalid). ``--fig5`` prints the constructed example of Freq-aware depth, Fig. 5.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import ConfigError, DataError

__all__ = ["register"]

log = logging.getLogger(__name__)


def register(analyses: argparse._SubParsersAction) -> None:
    """Add ``fairness`` to the ``analyze`` subparsers."""
    p = analyses.add_parser("fairness", help="D_fair of the photometric loss with/without Auto-Blur (Freq-aware depth)")
    p.add_argument("--middlebury", action="store_true", help="use skimage's Middlebury 'motorcycle' pair")
    p.add_argument("--left", type=Path, default=None, help="left (target) image")
    p.add_argument("--right", type=Path, default=None, help="right image")
    p.add_argument("--disparity", type=Path, default=None, help="left GT disparity in pixels (.npy or .pfm)")
    p.add_argument("--radius", type=int, default=8, help="sweep gt-radius .. gt+radius in 1-px steps (default 8)")
    p.add_argument("--ssim-weight", type=float, default=0.85)
    p.add_argument("--delta", type=float, default=0.3, help="ambiguity threshold for the Table 4 split")
    p.add_argument("--fig5", action="store_true", help="only the constructed example of Fig. 5")
    p.add_argument("--out", type=Path, default=None, help="directory for fairness.json and plots")
    p.set_defaults(func=_run)


def _read_pfm(path: Path) -> np.ndarray:
    """A PFM disparity map as float32 (H, W); DataError names the file for a bad header or a short payload."""
    try:
        with path.open("rb") as f:
            header = f.readline().strip()
            if header not in (b"Pf", b"PF"):
                raise DataError(f"{path} is not a PFM file (header {header[:20]!r}); pass a .pfm or .npy disparity")
            width, height = (int(v) for v in f.readline().split())
            scale = float(f.readline())
            data = np.fromfile(f, dtype="<f4" if scale < 0 else ">f4")
        channels = 3 if header == b"PF" else 1
        if width <= 0 or height <= 0 or data.size != width * height * channels:
            raise ValueError(f"{width} x {height} x {channels} values announced, {data.size} present")
    except (OSError, ValueError) as err:
        raise DataError(f"cannot read the PFM disparity {path}: {err}; the file is corrupt or truncated") from None
    return np.flipud(data.reshape(height, width, channels)[..., 0]).astype(np.float32)


def _load_user_pair(left: Path, right: Path, disparity: Path):
    from ..analysis.fairness import StereoPair
    from ..data.io import read_image, read_npy

    def image(p: Path) -> torch.Tensor:
        if not p.is_file():
            raise DataError(f"image {p} does not exist; pass --left/--right paths to readable image files")
        return read_image(p)[None].contiguous()  # DataError names a corrupt or non-image file

    if not disparity.is_file():
        raise DataError(f"disparity {disparity} does not exist; pass a .npy or .pfm file of left disparities")
    # read_npy never unpickles: a malicious (object-array) .npy is a DataError naming the file, not a traceback
    d = _read_pfm(disparity) if disparity.suffix.lower() == ".pfm" else read_npy(disparity)
    if d.ndim != 2 or d.dtype.kind not in "fiu":
        raise DataError(f"disparity {disparity} is {d.dtype} {d.shape}; expected a 2-D (H, W) array of disparities")
    d = d.astype(np.float32)
    d = np.where(np.isfinite(d) & (d > 0), d, np.inf)
    pair = StereoPair(image(left), image(right), torch.from_numpy(d)[None, None])
    if pair.left.shape != pair.right.shape or pair.disparity.shape[-2:] != pair.left.shape[-2:]:
        raise DataError(
            f"left {tuple(pair.left.shape)}, right {tuple(pair.right.shape)} and disparity "
            f"{tuple(pair.disparity.shape)} must share H x W"
        )
    return pair


def _fig5(out) -> dict[str, Any]:
    from ..analysis.fairness import fairness_degree, fig5_example, fig5_losses

    ex = fig5_example()
    res: dict[str, Any] = {}
    out.write(f"Fig. 5 example: gt disparity {ex.gt_disparity}, false positive {ex.fp_disparity}, sweep 0..15\n")
    for blur in (False, True):
        losses = fig5_losses(ex, blur=blur)
        name = "gaussian" if blur else "raw"
        df = float(fairness_degree(losses, ex.disparities, ex.gt_disparity))
        res[name] = {"losses": losses.tolist(), "d_fair": df}
        out.write(
            f"  {name:<8} D_fair {df:.4f} ({df * 15:.0f}/15)  L(gt) {float(losses[ex.gt_disparity]):.4f}  "
            f"L(fp) {float(losses[ex.fp_disparity]):.4f}\n"
        )
    return res


def _run(args: argparse.Namespace) -> int:
    from ..analysis.fairness import analyze_stereo_pair, load_middlebury_motorcycle, plot_fairness

    out = sys.stdout
    pair = source = None
    if not args.fig5:  # inputs are read and checked before any work
        if args.middlebury:
            pair, source = load_middlebury_motorcycle(), "Middlebury 2014 Motorcycle (skimage, x4 downsampled)"
        elif args.left and args.right and args.disparity:
            pair, source = _load_user_pair(args.left, args.right, args.disparity), str(args.left)
        else:
            raise ConfigError("pass --middlebury, or --left L --right R --disparity D, or --fig5")
    result: dict[str, Any] = {"fig5": _fig5(out)}
    if pair is not None:
        res = analyze_stereo_pair(pair, radius=args.radius, ssim_weight=args.ssim_weight, delta=args.delta)
        out.write(f"\n{source}: {res['baseline']['num_valid']} valid pixels, sweep gt +- {args.radius} px\n")
        out.write(
            f"{'':<12}{'D_fair':>8}{'D_fair hf':>10}{'gt=min':>8}  | "
            f"{'amb %':>6}{'L amb':>8}{'L other':>8}{'amb loss %':>11}\n"
        )
        for v in ("baseline", "auto_blur"):
            r, t = res[v], res[v]["table4"]
            out.write(
                f"{v:<12}{r['d_fair_mean']:>8.4f}{r['d_fair_high_freq']:>10.4f}{r['gt_is_sweep_minimum']:>8.3f}  | "
                f"{100 * t['ambiguous_share']:>6.2f}{t['ambiguous_mean_loss']:>8.4f}{t['other_mean_loss']:>8.4f}"
                f"{100 * t['ambiguous_loss_share']:>11.2f}\n"
            )
        out.write(
            f"high-frequency (Auto-Blur weight > 0) share of valid pixels: {100 * res['high_freq_share']:.2f} %\n"
        )
        if args.out is not None:
            for p in plot_fairness(res, args.out):
                log.info("wrote %s", p)
        result.update({k: v for k, v in res.items() if not k.startswith("_")}, source=source)
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        clean = json.loads(json.dumps(result, default=float), parse_constant=lambda c: None)
        (args.out / "fairness.json").write_text(json.dumps(clean, indent=2, allow_nan=False, default=str) + "\n")
        log.info("wrote %s", args.out / "fairness.json")
    return 0
