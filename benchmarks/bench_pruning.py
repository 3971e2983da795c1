"""Table 2 rows of the spectral-analysis paper: DeepLab v3+ R101 with feature truncation (decoder grid 129/65/33) and
soft filter pruning (encoder 20/40/60 %, decoder 20 %, filters physically removed): FLOPs, CPU latency and FLOPs per
IoU.

Random weights (latency and FLOPs do not depend on them); the SFP mask is the L2-norm rule of
freqdense.pruning.SoftFilterPruner. FLOPs = 2 x multiply-adds (torch.utils.flop_counter), the paper's unit.
FPI = FLOPs / mIoU (mIoU as a fraction; paper Table 2: 139 G / 0.786 = 177). The mIoU values are the paper's
(we do not train here). Ratios are against the unpruned, untruncated row measured in the same run. The pruned rows
are the models remove_pruned_filters builds (SFP's small ResNet: stem and conv3 outputs removed too); the "paper"
column counts with the paper's own rules (freqdense.models.flops.pruned_flops).

    .venv/bin/python benchmarks/bench_pruning.py                 # 513 input, paper accounting (OS32), 3 repeats
    .venv/bin/python benchmarks/bench_pruning.py --size 257 --repeats 2 --dataset cityscapes
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from freqdense.models import create_model
from freqdense.pruning import SoftFilterPruner, encoder_decoder_scopes, remove_pruned_filters

#: Table 2 of the spectral-analysis paper: mIoU (%) per (encoder rate, grid) and dataset; paper FLOPs (G) in the last
#: entry.
PAPER = {
    (0.0, 129): (78.6, 53.9, 67.8, 139),
    (0.0, 65): (78.1, 53.6, 62.7, 107),
    (0.0, 33): (75.6, 53.1, 53.3, 98),
    (0.2, 129): (76.6, 53.7, 67.2, 100),
    (0.2, 65): (76.0, 53.4, 62.4, 76),
    (0.2, 33): (73.2, 52.7, 53.4, 70),
    (0.4, 129): (74.4, 53.0, 66.1, 77),
    (0.4, 65): (73.9, 52.7, 61.5, 53),
    (0.4, 33): (72.1, 52.0, 52.8, 47),
    (0.6, 129): (65.1, 50.1, 58.6, 59),
    (0.6, 65): (64.7, 49.9, 54.8, 35),
    (0.6, 33): (63.3, 49.4, 47.4, 29),
}
DATASETS = {"pascal": (0, 21), "deepglobe": (1, 7), "cityscapes": (2, 19)}


def flops(model: torch.nn.Module, x: torch.Tensor) -> float:
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(x)
    return counter.get_total_flops() / 1e9


def latency(model: torch.nn.Module, x: torch.Tensor, repeats: int) -> float:
    with torch.inference_mode():
        model(x)  # warm-up
        times = []
        for _ in range(repeats):
            t = time.perf_counter()
            model(x)
            times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=513, help="input side (513 = paper); grids scale with it")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--dataset", choices=sorted(DATASETS), default="pascal", help="which mIoU column (and K)")
    ap.add_argument("--accounting", choices=["paper", "standard"], default="paper", help="paper = OS32 (95.6 G)")
    ap.add_argument("--rates", type=float, nargs="+", default=[0.0, 0.2, 0.4, 0.6], help="encoder pruned fractions")
    ap.add_argument("--decoder-rate", type=float, default=0.2, help="decoder pruned fraction of the SFP rows")
    ap.add_argument(
        "--encoder-output",
        choices=["encoder", "decoder"],
        default="decoder",
        help="rate of the ASPP projection (the decoder's input channels); decoder = Table 2's accounting",
    )
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    col, k = DATASETS[args.dataset]
    low = (args.size - 1) // 4 + 1  # layer1 size: 129 at 513
    grids = [low, (low - 1) // 2 + 1, (low - 1) // 4 + 1]  # 129, 65, 33 at 513
    x = torch.rand(1, 3, args.size, args.size)
    sys.stdout.write(
        f"DeepLab v3+ R101 ({args.accounting} accounting, ASPP projection at the {args.encoder_output} rate), "
        f"input {args.size}, K={k} ({args.dataset} mIoU), "
        f"{args.threads} threads, median of {args.repeats}\n"
    )
    header = (
        f"{'enc':>4} {'dec':>4} {'grid':>4} {'params M':>8} {'GFLOPs':>7} {'paper':>6} {'ratio':>6} "
        f"{'latency s':>9} {'speed-up':>8} {'mIoU':>5} {'FPI':>6} {'paperFPI':>8}\n"
    )
    sys.stdout.write(header)
    base_flops = base_lat = None
    for rate in args.rates:
        dec_rate = args.decoder_rate if rate > 0 else 0.0
        for i, grid in enumerate(grids):
            torch.manual_seed(0)
            model = create_model(
                "deeplabv3plus",
                backbone="resnet101",
                num_classes=k,
                accounting=args.accounting,
                decoder_grid=grid,
            ).eval()
            if rate > 0:
                scopes = encoder_decoder_scopes(model, rate, dec_rate, encoder_output=args.encoder_output)
                SoftFilterPruner(model, scopes=scopes).step()
                model = remove_pruned_filters(model).eval()
            g = flops(model, x)
            t = latency(model, x, args.repeats)
            if base_flops is None:
                base_flops, base_lat = g, t
            paper_grid = (129, 65, 33)[i]
            paper = PAPER.get((rate, paper_grid))
            miou = paper[col] / 100 if paper else float("nan")
            paper_flops = f"{paper[3]:6d}" if paper else f"{'-':>6}"
            paper_fpi = f"{paper[3] / miou:8.0f}" if paper else f"{'-':>8}"
            n = sum(p.numel() for p in model.parameters()) / 1e6
            sys.stdout.write(
                f"{rate:4.0%} {dec_rate:4.0%} {grid:4d} {n:8.2f} {g:7.1f} {paper_flops} {g / base_flops:6.3f} "
                f"{t:9.3f} {base_lat / t:8.2f} {miou:5.3f} {g / miou:6.0f} {paper_fpi}\n"
            )
            sys.stdout.flush()


if __name__ == "__main__":
    main()
