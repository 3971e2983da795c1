"""Decoder cost of FreqFusion-FPN against bilinear-FPN at a 256x512 input on CPU.

Run: ``python -m benchmarks.bench_freqfusion_fpn [--channels 256] [--repeats 15]``. The FPN decoders get random
ResNet-50 features of a 256x512 image (strides 4..32: 64x128 ... 8x16, channels 256..2048) and run alternately
(eval mode, no grad); prints median latencies, the latency ratio (aim: <= 1.5x), parameters and FLOPs
(``torch.utils.flop_counter.FlopCounterMode``, 2 x MACs; CARAFE's gather-multiply-sum is elementwise and not
counted) and their overhead. The official README reports +0.3 M parameters for three FreqFusion modules in a
Panoptic FPN (256 channels, offset generator on).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from freqdense.models.decoders import FPNDecoder

IN_CHANNELS = (256, 512, 1024, 2048)
STRIDES = (4, 8, 16, 32)
INPUT = (256, 512)


def _median_pair(fa, fb, repeats: int) -> tuple[float, float, float]:
    for _ in range(2):
        fa()
        fb()
    ta, tb = [], []
    for _ in range(repeats):
        t = time.perf_counter()
        fa()
        ta.append(time.perf_counter() - t)
        t = time.perf_counter()
        fb()
        tb.append(time.perf_counter() - t)
    return statistics.median(ta), statistics.median(tb), statistics.median(b / a for a, b in zip(ta, tb))


def _flops(module: torch.nn.Module, feats) -> int:
    with FlopCounterMode(display=False) as counter:
        module(feats)
    return counter.get_total_flops()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--channels", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    feats = [torch.randn(1, c, INPUT[0] // s, INPUT[1] // s) for c, s in zip(IN_CHANNELS, STRIDES)]
    c = args.channels
    variants = {
        "bilinear": FPNDecoder(IN_CHANNELS, c, fusion="bilinear"),
        "freqfusion": FPNDecoder(IN_CHANNELS, c, fusion="freqfusion"),
        "freqfusion+offsets": FPNDecoder(IN_CHANNELS, c, fusion="freqfusion", fusion_kwargs={"feature_resample": True}),
    }
    base = variants["bilinear"].eval()
    base_params = sum(p.numel() for p in base.parameters())
    with torch.no_grad():
        base_flops = _flops(base, feats)
        out = sys.stdout
        out.write(
            f"FPN decoder, {c} channels, input {INPUT[0]}x{INPUT[1]} (ResNet-50 features), CPU threads "
            f"{torch.get_num_threads()}, torch {torch.__version__}\n"
        )
        out.write(
            f"{'variant':<20}{'latency ms':>12}{'ratio':>8}{'params':>12}{'+params':>10}{'GFLOPs':>9}{'+GFLOPs':>9}\n"
        )
        out.write(f"{'bilinear':<20}{'':>12}{'1.00':>8}{base_params:>12,}{0:>10,}{base_flops / 1e9:>9.2f}{0:>9.2f}\n")
        for name, dec in variants.items():
            if name == "bilinear":
                continue
            dec.eval()
            tb, tf, ratio = _median_pair(lambda: base(feats), lambda d=dec: d(feats), args.repeats)
            params = sum(p.numel() for p in dec.parameters())
            flops = _flops(dec, feats)
            out.write(
                f"{name:<20}{tf * 1e3:>12.1f}{ratio:>8.2f}{params:>12,}{params - base_params:>10,}"
                f"{flops / 1e9:>9.2f}{(flops - base_flops) / 1e9:>9.2f}   (bilinear {tb * 1e3:.1f} ms)\n"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
