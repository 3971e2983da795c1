"""``freqdense train CONFIG [section.key=value ...] [--out DIR]``"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

log = logging.getLogger("freqdense")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train a model from a config (resumes automatically)",
        description="Train from a YAML config or a shipped config name; dotted overrides apply last. "
        "Re-running with the same --out resumes from the latest checkpoint.",
    )
    p.add_argument("config", help="YAML file or shipped config name (see `freqdense list`)")
    p.add_argument("overrides", nargs="*", help="section.key=value overrides, e.g. optim.lr=0.01")
    p.add_argument("--out", type=Path, default=None, help="run directory (default: runs/<config name>)")
    p.add_argument("--no-resume", action="store_true", help="start from scratch even if checkpoints exist")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..config import load_config
    from ..engine.distributed import shutdown
    from ..engine.train import train

    cfg = load_config(args.config, args.overrides)
    out = args.out or Path("runs") / Path(str(args.config)).with_suffix("").name
    try:
        result = train(cfg, out, resume=not args.no_resume)
    finally:
        shutdown()
    log.info("final metrics: %s", json.dumps(result["val"], sort_keys=True))
    log.info("run directory: %s", out)
    return 0
