"""Parameters, FLOPs and CPU latency of PAD-Net / MTI-Net with the FAFE ladder, and the DCT share of FAFE's overhead.

FAFE, issue 5 "Speed": each model (hrnet_w18_small, 40 classes + depth, batch 1) as baseline, +PI,
+PI+FD, +FAFE and +conv side by side, with ratios to the baseline measured in the same run. FLOPs are
``torch.utils.flop_counter`` counts on the meta device (2 x multiply-adds of convolutions and matrix products: the
DCT/IDCT, done as matmuls, and PI's attention products are counted; norms, activations, pooling and interpolation
are not). Latency is the median of ``--runs`` forward passes (eval, no grad), variants interleaved round-robin so
that load changes hit all of them alike.

DCT share of the FAFE overhead, two ways:

- ``identity``: +FAFE with ``dct2d``/``idct2d`` replaced by the identity inside FD (same work otherwise, the
  spectral weights then multiply the spatial map): share = (t(+FAFE) - t(identity)) / (t(+FAFE) - t(baseline));
  the same for FLOPs.
- ``isolated``: the DCT + IDCT calls of every FD branch timed alone on tensors of their shapes (8 transforms per
  block: 2 tasks x 2 branches x (DCT, IDCT)), divided by the same overhead.

    python -m benchmarks.bench_fafe [--size 480 640] [--runs 5] [--threads 1] [--models pad_net mti_net]
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import statistics
import time
from collections.abc import Callable, Iterator

import torch
from torch.utils.flop_counter import FlopCounterMode

from freqdense.models import create_model
from freqdense.nn import dct_disentangle
from freqdense.nn.fafe import FAFEBlock
from freqdense.ops import dct2d, idct2d

ROWS: dict[str, dict | None] = {
    "baseline": None,
    "+PI": {"pi": True, "fd": False, "fr": False},
    "+PI+FD": {"fr": False},
    "+FAFE": {},
    "+conv": {"variant": "conv"},
}
NO_DCT = "+FAFE, DCT = identity"


@contextlib.contextmanager
def dct_as_identity() -> Iterator[None]:
    """Replace FD's DCT and IDCT by the identity (module-level names looked up at call time)."""
    saved = dct_disentangle.dct2d, dct_disentangle.idct2d
    dct_disentangle.dct2d = dct_disentangle.idct2d = lambda x: x
    try:
        yield
    finally:
        dct_disentangle.dct2d, dct_disentangle.idct2d = saved


def fafe_options(row: str, size: tuple[int, int]) -> dict | None:
    opts = ROWS["+FAFE" if row == NO_DCT else row]
    return None if opts is None else {**opts, "input_size": list(size)}


def build(name: str, row: str, size: tuple[int, int], backbone: str, classes: int) -> torch.nn.Module:
    return create_model(name, backbone=backbone, num_classes=classes, fafe=fafe_options(row, size)).eval()


def count_flops(name: str, row: str, size: tuple[int, int], backbone: str, classes: int) -> tuple[int, int]:
    """(parameters, FLOPs) of one image, on the meta device."""
    with torch.device("meta"):
        net = build(name, row, size, backbone, classes)
        ctx = dct_as_identity() if row == NO_DCT else contextlib.nullcontext()
        with ctx, FlopCounterMode(display=False) as counter:
            net(torch.empty(1, 3, *size))
    return sum(p.numel() for p in net.parameters()), counter.get_total_flops()


def timed(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def isolated_dct_seconds(net: torch.nn.Module, size: tuple[int, int], runs: int) -> float:
    """Median time of all DCT + IDCT calls FD makes in ``net`` for one ``size`` image, measured alone."""
    shapes = []
    for module in net.modules():
        if isinstance(module, FAFEBlock) and module.disentangle is not None:
            shapes += [(1, module.channels, *module.size)] * 4  # 2 tasks x 2 branches, each DCT then IDCT
    if size != tuple(net.fafe.input_size):
        raise ValueError("isolated DCT timing assumes the benchmark runs at input_size")
    xs = [torch.randn(s) for s in shapes]

    def run() -> None:
        for x in xs:
            idct2d(dct2d(x))

    run()
    return statistics.median(timed(run) for _ in range(runs))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, nargs=2, default=[480, 640], metavar=("H", "W"), help="input = input_size")
    p.add_argument("--runs", type=int, default=5, help="timed forward passes per variant (median)")
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    p.add_argument("--models", nargs="+", default=["pad_net", "mti_net"])
    p.add_argument("--backbone", default="hrnet_w18_small")
    p.add_argument("--classes", type=int, default=40)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    size = (args.size[0], args.size[1])
    print(f"# FAFE overhead: {args.backbone}, {args.classes} classes + depth, input {size[0]}x{size[1]}, batch 1, ")
    print(f"# CPU threads {args.threads}, median of {args.runs} runs (torch {torch.__version__})\n")
    rows = [*ROWS, NO_DCT]
    for name in args.models:
        counts = {row: count_flops(name, row, size, args.backbone, args.classes) for row in rows}
        torch.manual_seed(0)
        nets = {row: build(name, row, size, args.backbone, args.classes) for row in rows}
        image = torch.rand(1, 3, *size)
        times: dict[str, list[float]] = {row: [] for row in rows}
        with torch.no_grad():
            for r in range(args.warmup + args.runs):
                for row in rows:
                    ctx = dct_as_identity() if row == NO_DCT else contextlib.nullcontext()
                    with ctx:
                        t = timed(functools.partial(nets[row], image))
                    if r >= args.warmup:
                        times[row].append(t)
            dct_alone = isolated_dct_seconds(nets["+FAFE"], size, args.runs)
        med = {row: statistics.median(ts) for row, ts in times.items()}
        p0, f0 = counts["baseline"]
        t0 = med["baseline"]
        print(f"## {name}\n")
        print("| row | params (M) | x base | GFLOPs | x base | latency (ms) | x base |")
        print("|---|---:|---:|---:|---:|---:|---:|")
        for row in rows:
            n, fl = counts[row]
            print(
                f"| {row} | {n / 1e6:.3f} | {n / p0:.2f} | {fl / 1e9:.1f} | {fl / f0:.2f} | "
                f"{med[row] * 1e3:.0f} | {med[row] / t0:.2f} |"
            )
        over_t = med["+FAFE"] - t0
        over_f = counts["+FAFE"][1] - f0
        dct_f = counts["+FAFE"][1] - counts[NO_DCT][1]
        dct_t = med["+FAFE"] - med[NO_DCT]
        print(f"\nFAFE overhead: {over_f / 1e9:.1f} GFLOPs, {over_t * 1e3:.0f} ms.")
        print(f"DCT/IDCT FLOPs: {dct_f / 1e9:.1f} G = {100 * dct_f / over_f:.0f} % of the FAFE FLOP overhead.")
        print(
            f"DCT/IDCT time, identity method: {dct_t * 1e3:.0f} ms = {100 * dct_t / over_t:.0f} % of the FAFE "
            f"latency overhead; isolated calls: {dct_alone * 1e3:.0f} ms = {100 * dct_alone / over_t:.0f} %.\n"
        )


if __name__ == "__main__":
    main()
