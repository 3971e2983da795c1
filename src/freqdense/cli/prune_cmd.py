"""``freqdense prune RUN_OR_CKPT --out DIR``: final SFP mask + physical filter removal -> a smaller checkpoint."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "prune",
        help="physically remove the soft-pruned filters of a trained run (a smaller, faster model)",
        description=(
            "Applies the final soft-filter-pruning mask (L2 norm per filter, per layer) and cuts the zero filters "
            "out, writing a checkpoint that `freqdense eval/predict/export` load. Rates default to the run's "
            "prune config section (train with `prune.encoder_rate=... prune.decoder_rate=...`). "
            "See docs/methods/soft_filter_pruning.md."
        ),
    )
    p.add_argument("checkpoint", metavar="RUN_OR_CKPT", help="a run directory or a checkpoint directory")
    p.add_argument("--out", required=True, type=Path, metavar="DIR", help="directory of the pruned checkpoint")
    p.add_argument("--encoder-rate", type=float, help="pruned fraction of encoder filters (0.4 = 40%% zeroed)")
    p.add_argument("--decoder-rate", type=float, help="pruned fraction of decoder filters")
    p.add_argument(
        "--encoder-output",
        choices=["encoder", "decoder"],
        help="rate of the encoder's output layer (DeepLab: ASPP projection); default: the run's, else decoder",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from .._progress import heartbeat
    from ..engine.checkpoint import load_model
    from ..engine.prune import prune_checkpoint

    # No loop to count: a heartbeat logs "still <stage>... 20 s" every ~10 s while a stage runs.
    with heartbeat(f"loading {args.checkpoint}") as beat:
        big, _ = load_model(args.checkpoint)
        beat.set(f"pruning {args.checkpoint} (SFP mask, filter removal, saving to {args.out})")
        small, ckpt = prune_checkpoint(
            args.checkpoint,
            args.out,
            encoder_rate=args.encoder_rate,
            decoder_rate=args.decoder_rate,
            encoder_output=args.encoder_output,
        )
    n_big = sum(p.numel() for p in big.parameters())
    n_small = sum(p.numel() for p in small.parameters())
    sys.stdout.write(f"parameters {n_big:,} -> {n_small:,} ({n_small / n_big:.3f}); checkpoint {ckpt}\n")
    return 0
