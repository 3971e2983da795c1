"""``freqdense`` / ``python -m freqdense``: one entry point, one module per subcommand.

Each subcommand module in this package exposes ``register(subparsers)``, which adds its parser and sets
``func=run`` where ``run(args) -> int`` is the exit code.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from .. import __version__
from ..errors import FreqdenseError

log = logging.getLogger("freqdense")

#: Subcommand modules, in the order `freqdense --help` lists them.
_COMMAND_MODULES = (
    "train",
    "ablate",
    "evaluate",
    "eval_depth",
    "predict",
    "export",
    "convert",
    "prune",
    "config",
    "list",
    "demo",
    "data",
    "analyze",
    "report",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="freqdense", description="Frequency-aware dense prediction.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("--version", action="version", version=f"freqdense {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in _COMMAND_MODULES:
        try:
            module = importlib.import_module(f"{__package__}.{name}_cmd")
        except ModuleNotFoundError as err:
            if err.name != f"{__package__}.{name}_cmd":
                raise
            continue
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    # argparse stops filling a trailing ``overrides`` list at the first option: accept overrides after options too
    # (``train CONFIG --out DIR optim.lr=0.1``).
    if extra and hasattr(args, "overrides") and all("=" in e and not e.startswith("-") for e in extra):
        args.overrides = [*args.overrides, *extra]
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except FreqdenseError as err:
        log.error("%s", err)
        return 1


if __name__ == "__main__":
    sys.exit(main())
