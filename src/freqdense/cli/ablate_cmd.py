"""``freqdense ablate CONFIG [CONFIG ...] --seeds N | --seed-list S [S ...] --out DIR [options]``

Trains every config over the seeds (``freqdense.engine.ablate.run_ablation``) and writes a markdown table in the
shape of FAFE Table 1 (mean ± std per metric, change and Δm vs the reference row, seconds per run) to
``DIR/ablation.md`` and every raw number to ``DIR/ablation.json``; ``--report FILE.md`` writes a copy there (and
``FILE.json`` beside it). The reproducing command line heads the report. ``DIR/report.html`` shows the table and
every run's curves (``freqdense report``).
"""

from __future__ import annotations

import argparse
import datetime
import logging
import os
import platform
import shlex
import sys
from pathlib import Path

log = logging.getLogger("freqdense")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "ablate",
        help="train configs over seeds and tabulate them (FAFE Table 1 shape)",
        description="Train every CONFIG x seed into DIR/<config>/seed<k> (finished runs are reused with --resume), "
        "then write a markdown table: mean ± sample std per metric, change and Δm vs the reference row (the first "
        "config unless --reference), seconds per run; plus a JSON of all raw numbers.",
    )
    p.add_argument("configs", nargs="+", metavar="CONFIG", help="YAML files or shipped config names, one row each")
    seeds = p.add_mutually_exclusive_group(required=True)
    seeds.add_argument("--seeds", type=int, metavar="N", help="seeds 0 .. N-1")
    seeds.add_argument("--seed-list", type=int, nargs="+", metavar="S", help="explicit seeds, e.g. 0 1 2")
    p.add_argument("--out", type=Path, required=True, help="root of the run directories")
    p.add_argument(
        "--set",
        dest="overrides",
        action="extend",
        nargs="+",
        default=[],
        metavar="KEY=VALUE",
        help="section.key=value overrides for every config (e.g. schedule.total_steps=100)",
    )
    p.add_argument("--report", type=Path, default=None, help="also write the table here (and FILE.json beside it)")
    p.add_argument(
        "--metrics",
        nargs="+",
        default=None,
        metavar="TASK/METRIC",
        help="table columns (default: semantic/miou and depth/rmse, those the runs report)",
    )
    p.add_argument(
        "--delta-m",
        nargs="+",
        default=["mtl"],
        choices=["mtl", "columns"],
        metavar="CONVENTION",
        help="Δm columns, the first is the main one: 'mtl' (default) = one metric per task as "
        "Multi-Task-Learning-PyTorch (semantic mIoU, depth RMSE); 'columns' = every --metrics column, averaged "
        "within its task first",
    )
    p.add_argument(
        "--reference",
        default=None,
        help="row name or config the changes and Δm are measured against (default: the first config); a config "
        "that is not in the list is trained too and shown first",
    )
    p.add_argument("--labels", nargs="+", default=None, help="row names, one per CONFIG (default: config file stems)")
    p.add_argument("--title", default=None, help="report title")
    p.add_argument("--resume", action="store_true", help="reuse finished runs and continue unfinished ones in --out")
    p.set_defaults(func=run)


def _command(args: argparse.Namespace) -> str:
    parts = ["freqdense", "ablate", *map(str, args.configs)]
    parts += ["--seeds", str(args.seeds)] if args.seeds is not None else ["--seed-list", *map(str, args.seed_list)]
    parts += ["--out", str(args.out)]
    if args.overrides:
        parts += ["--set", *args.overrides]
    if args.metrics:
        parts += ["--metrics", *args.metrics]
    if list(args.delta_m) != ["mtl"]:
        parts += ["--delta-m", *args.delta_m]
    if args.reference:
        parts += ["--reference", args.reference]
    if args.labels:
        parts += ["--labels", *args.labels]
    if args.title:
        parts += ["--title", args.title]
    if args.report:
        parts += ["--report", str(args.report)]
    return shlex.join(parts)


def run(args: argparse.Namespace) -> int:
    import torch

    from ..config.load import resolve_config_path
    from ..engine.ablate import config_slugs, format_markdown, run_ablation, summarise
    from ..engine.checkpoint import write_json_atomic
    from ..engine.distributed import shutdown
    from ..engine.train import git_revision
    from ..errors import ConfigError

    if args.seeds is not None and args.seeds < 1:
        raise ConfigError(f"--seeds must be >= 1, got {args.seeds}")
    seeds = list(range(args.seeds)) if args.seeds is not None else list(args.seed_list)
    configs = [str(c) for c in args.configs]
    if args.labels is not None and len(args.labels) != len(configs):
        raise ConfigError(f"--labels needs one name per config ({len(configs)}), got {len(args.labels)}")
    names = list(args.labels) if args.labels is not None else config_slugs(configs)
    reference = args.reference
    if reference is not None and reference not in names:
        if reference in configs:
            reference = names[configs.index(reference)]
        else:
            resolve_config_path(reference)  # a clear error if it is neither a row nor a config
            configs.insert(0, reference)
            names.insert(0, config_slugs(configs)[0])
            reference = names[0]
    try:
        rows = run_ablation(configs, seeds, args.out, overrides=args.overrides, names=names, resume=args.resume)
    finally:
        shutdown()
    summary = summarise(rows, args.metrics, reference=reference, delta_m_conventions=args.delta_m)
    command = _command(args)
    if torch.cuda.is_available():
        device = f"CUDA ({torch.cuda.get_device_name()})"
    else:
        threads, cores = torch.get_num_threads(), os.cpu_count()
        device = f"CPU ({platform.machine()}, {threads} torch thread{'s' * (threads != 1)}, {cores} cores)"
    note = (
        f"Measured {datetime.date.today().isoformat()} on {device}, torch {torch.__version__}, freqdense "
        f"{git_revision()}; raw numbers of every run in the JSON next to this file."
    )
    text = format_markdown(summary, title=args.title or "Ablation", command=command, notes=[note])
    raw = {
        "command": command,
        "git_revision": git_revision(),
        "machine": f"{device}, {platform.platform()}",
        "torch": torch.__version__,
        "date": datetime.date.today().isoformat(),
        "configs": configs,
        "names": names,
        "seeds": seeds,
        "overrides": list(args.overrides),
    }
    raw.update(runs=rows, summary=summary)
    targets = [args.out / "ablation.md"] + ([args.report] if args.report else [])
    for path in targets:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        write_json_atomic(path.with_suffix(".json"), raw)
        log.info("wrote %s and %s", path, path.with_suffix(".json"))
    sys.stdout.write(text)
    from ..report import try_write_report  # DIR/report.html; a failing report only logs a warning

    try_write_report(args.out)
    return 0
