"""``freqdense config show CONFIG [overrides]``: the fully resolved config."""

from __future__ import annotations

import argparse
import sys

import yaml


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("config", help="inspect configs")
    csub = p.add_subparsers(dest="config_command", metavar="ACTION", required=True)
    show = csub.add_parser("show", help="print the fully resolved, validated config")
    show.add_argument("config", help="YAML file or shipped config name")
    show.add_argument("overrides", nargs="*", help="section.key=value overrides")
    show.set_defaults(func=run_show)


def run_show(args: argparse.Namespace) -> int:
    from ..config import config_to_dict, load_config

    cfg = load_config(args.config, args.overrides)
    sys.stdout.write(yaml.safe_dump(config_to_dict(cfg), sort_keys=False))
    return 0
