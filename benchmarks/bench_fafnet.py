"""Parameters, FLOPs and CPU latency of FAFNet and its ablation rows against the two-stream baseline.

Run: ``python -m benchmarks.bench_fafnet [--backbone resnet101] [--size 480 640] [--rows all_fams official]
[--repeats 3] [--threads N] [--no-latency]``.

Rows are :data:`freqdense.models.fafnet.FAFNET_VARIANTS` (40 classes, HHA input, output stride 16). FLOPs are
``torch.utils.flop_counter.FlopCounterMode`` counts on the meta device (2 x multiply-adds of convolutions and
matrix products; ``grid_sample`` warps, interpolation, pooling and normalisation are not counted). Latency: batch 1,
eval mode, no grad, median of ``--repeats`` runs, each row timed *alternately* with the baseline so the ratio is
robust to load from other processes.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from freqdense.models import MODELS
from freqdense.models.fafnet import FAFNET_VARIANTS

DEFAULT_ROWS = (
    "no_fam",
    "decoder_fam",
    "fuse_fam",
    "all_fams",
    "all_fams_no_acfm",
    "sagate_fusion",
    "sagate_deeplabv3plus",
    "official",
)


def _build(row: str, backbone: str, num_classes: int, device: str = "cpu") -> torch.nn.Module:
    name, kwargs = FAFNET_VARIANTS[row]
    with torch.device(device):
        model = MODELS.create(name, backbone=backbone, num_classes=num_classes, **kwargs)
    return model.eval()


def _flops(model: torch.nn.Module, size: tuple[int, int]) -> int:
    image = torch.empty(1, 3, *size, device="meta")
    depth = torch.empty(1, model.depth_channels, *size, device="meta")
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(image, depth)
    return counter.get_total_flops()


def _time(fn, repeats: int) -> list[float]:
    out = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="resnet101", choices=("resnet18", "resnet34", "resnet50", "resnet101"))
    parser.add_argument("--size", type=int, nargs=2, default=(480, 640), metavar=("H", "W"))
    parser.add_argument("--num-classes", type=int, default=40)
    parser.add_argument("--rows", nargs="+", default=list(DEFAULT_ROWS), choices=sorted(FAFNET_VARIANTS))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--no-latency", action="store_true")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    size = (int(args.size[0]), int(args.size[1]))
    rows = [r for r in args.rows if r != "baseline"]
    out = sys.stdout
    out.write(
        f"FAFNet rows vs two-stream DeepLab v3+ (sum), {args.backbone}, {args.num_classes} classes, HHA, input "
        f"{size[0]}x{size[1]}, batch 1, CPU threads {torch.get_num_threads()}, torch {torch.__version__}\n"
    )
    counts = {}
    for row in ["baseline", *rows]:
        meta = _build(row, args.backbone, args.num_classes, device="meta")
        counts[row] = (sum(p.numel() for p in meta.parameters()), _flops(meta, size))
    base_params, base_flops = counts["baseline"]

    torch.manual_seed(0)
    image, depth = torch.rand(1, 3, *size), torch.rand(1, 3, *size)
    latency: dict[str, tuple[float, float]] = {}
    if not args.no_latency:
        baseline = _build("baseline", args.backbone, args.num_classes)
        with torch.no_grad():
            baseline(image, depth)  # warm-up
            base_only = _time(lambda: baseline(image, depth), args.repeats)
            latency["baseline"] = (statistics.median(base_only), 1.0)
            for row in rows:
                model = _build(row, args.backbone, args.num_classes)
                model(image, depth)
                tb, tr = [], []
                for _ in range(args.repeats):
                    tb += _time(lambda: baseline(image, depth), 1)
                    tr += _time(lambda m=model: m(image, depth), 1)
                latency[row] = (statistics.median(tr), statistics.median(r / b for r, b in zip(tr, tb)))
                del model

    out.write(f"{'row':<22}{'params M':>10}{'x base':>8}{'GFLOPs':>9}{'x base':>8}{'latency ms':>12}{'x base':>8}\n")
    for row in ["baseline", *rows]:
        params, flops = counts[row]
        lat = latency.get(row)
        lat_txt = f"{lat[0] * 1e3:>12.0f}{lat[1]:>8.2f}" if lat else f"{'-':>12}{'-':>8}"
        out.write(
            f"{row:<22}{params / 1e6:>10.2f}{params / base_params:>8.3f}{flops / 1e9:>9.1f}{flops / base_flops:>8.3f}"
            f"{lat_txt}\n"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
