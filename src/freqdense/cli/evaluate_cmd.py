"""``freqdense eval RUN_OR_CHECKPOINT [--split val]``"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="evaluate a trained model on a split of its dataset")
    p.add_argument("checkpoint", type=Path, help="run directory (uses the best checkpoint) or checkpoint directory")
    p.add_argument(
        "overrides", nargs="*", help="section.key=value overrides of the saved config, e.g. data.args.root=..."
    )
    p.add_argument("--split", default=None, help="split to evaluate (default: the config's val split)")
    p.add_argument("--latest", action="store_true", help="use the latest instead of the best checkpoint")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--out", type=Path, default=None, help="write the metrics JSON here")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..engine.checkpoint import write_json_atomic
    from ..engine.evaluate import evaluate_checkpoint

    metrics = evaluate_checkpoint(
        args.checkpoint,
        split=args.split,
        overrides=args.overrides,
        prefer="latest" if args.latest else "best",
        device=args.device,
    )
    text = json.dumps(metrics, indent=2, sort_keys=True)
    sys.stdout.write(text + "\n")
    if args.out:
        write_json_atomic(args.out, metrics)
    return 0
