"""``freqdense demo``: the main job on the embedded synthetic scenes, in a few minutes on a laptop CPU."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

log = logging.getLogger("freqdense")

DEMO_CONFIG = "synthetic/demo_multitask"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo",
        help="train + evaluate the multi-task baseline on synthetic scenes (~5 min on CPU)",
        description="Trains the FAFE '1-predict' multi-task baseline on the embedded synthetic scenes, "
        "evaluates it against trivial predictors and writes metrics.json, loss_curves.png "
        "and predictions.png into the run directory.",
    )
    p.add_argument("overrides", nargs="*", help="section.key=value overrides of the demo config")
    p.add_argument("--out", type=Path, default=Path("runs/demo"), help="run directory (default: runs/demo)")
    p.add_argument("--config", default=DEMO_CONFIG, help=f"config to run (default: {DEMO_CONFIG})")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..config import load_config
    from ..engine.demo import run_demo

    cfg = load_config(args.config, args.overrides)
    t0 = time.perf_counter()
    summary = run_demo(cfg, args.out)
    wall = time.perf_counter() - t0
    summary["wall_time_s"] = round(wall, 1)
    rows = [
        ("model", summary["model"]),
        ("majority class / mean depth", summary["trivial"]),
    ]
    out = sys.stdout
    out.write(
        f"\nfreqdense demo: {cfg.model.name} on synthetic scenes, {cfg.schedule.total_steps} steps, "
        f"{wall:.0f} s wall time\n"
    )
    out.write(f"{'predictor':<30}{'mIoU':>8}{'pixel acc':>11}{'RMSE [m]':>10}{'AbsRel':>9}\n")
    for name, m in rows:
        out.write(
            f"{name:<30}{m.get('semantic/miou', float('nan')):>8.3f}{m.get('semantic/pixel_acc', float('nan')):>11.3f}"
            f"{m.get('depth/rmse', float('nan')):>10.3f}{m.get('depth/abs_rel', float('nan')):>9.3f}\n"
        )
    out.write(f"run directory: {args.out} (metrics.json, loss_curves.png, predictions.png)\n")
    (args.out / "demo_summary.json").write_text(json.dumps(summary, indent=2))
    return 0
