"""``freqdense train CONFIG [section.key=value ...] [--out DIR]``"""

from __future__ import annotations

import argparse
import json
import logging
import os
from pathlib import Path

from ..engine.run_config import RESUMABLE_KEYS

log = logging.getLogger("freqdense")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train a model from a config (resumes automatically)",
        description="Train from a YAML config or a shipped config name; dotted overrides apply last. "
        "Re-running with the same --out resumes from the latest checkpoint. A run directory holds one experiment: "
        "if the resolved config differs from the run's config.yaml, train stops before writing anything and lists "
        "the differing keys; train into a new --out, or pass --resume-with-changes for the keys that may change "
        f"on resume ({', '.join(RESUMABLE_KEYS)}). Device, threads, workers and log cadence may always change. "
        "A non-finite or exploding loss, or a full disk, stops the run with exit 1 and keeps the last good checkpoint; "
        "re-running the same command resumes from it.",
        epilog="example: freqdense train synthetic/demo_multitask --out runs/mt schedule.total_steps=600 "
        "--resume-with-changes   (extend a finished 300-step run to 600 steps)",
    )
    p.add_argument("config", help="YAML file or shipped config name (see `freqdense list`)")
    p.add_argument("overrides", nargs="*", help="section.key=value overrides, e.g. optim.lr=0.01")
    p.add_argument("--out", type=Path, default=None, help="run directory (default: runs/<config name>)")
    p.add_argument(
        "--no-resume",
        action="store_true",
        help="never resume: refuses a directory that already holds a run (config.yaml or checkpoints/), never "
        "mixing two runs; use a new --out or delete the directory",
    )
    p.add_argument(
        "--resume-with-changes",
        action="store_true",
        help=f"resume although {', '.join(RESUMABLE_KEYS)} changed; the new values apply from the resume step on "
        "and run.json records them with that step",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..config import load_config
    from ..engine.distributed import shutdown
    from ..engine.train import train

    cfg = load_config(args.config, args.overrides)
    out = args.out or Path("runs") / Path(str(args.config)).with_suffix("").name
    try:
        result = train(cfg, out, resume=not args.no_resume, allow_changes=args.resume_with_changes)
    finally:
        shutdown()
    if int(os.environ.get("RANK", "0")) == 0:  # torchrun: the main process writes the page
        from ..report import try_write_report  # a failing report only logs a warning

        try_write_report(out)
    log.info("final metrics: %s", json.dumps(result["val"], sort_keys=True))
    log.info("run directory: %s", out)
    return 0
