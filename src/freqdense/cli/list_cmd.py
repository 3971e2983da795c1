"""``freqdense list``: registered models, backbones, datasets and shipped configs."""

from __future__ import annotations

import argparse
import sys


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("list", help="list models, backbones, datasets and shipped configs")
    p.add_argument("what", nargs="?", choices=["models", "backbones", "datasets", "configs"], default=None)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..config import list_shipped_configs
    from ..data import list_datasets
    from ..models import list_models
    from ..models.backbones import list_backbones

    sections = {
        "models": list_models(),
        "backbones": list_backbones(),
        "datasets": list_datasets(),
        "configs": list_shipped_configs(),
    }
    for name, items in sections.items():
        if args.what not in (None, name):
            continue
        sys.stdout.write(f"{name}:\n")
        for item in items:
            sys.stdout.write(f"  {item}\n")
    return 0
