"""``freqdense`` / ``python -m freqdense``: one entry point, one module per subcommand.

Each subcommand module in this package exposes ``register(subparsers)``, which adds its parser and sets
``func=run`` where ``run(args) -> int`` is the exit code.
"""

from __future__ import annotations

import argparse
import errno
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


#: What an OSError of each kind means for the path it names, and how to fix it (bad output locations, full disks,
#: missing inputs). Any other OSError is a bug and keeps its traceback.
_OS_ERROR_HINTS = {
    errno.ENOSPC: "no space left on the device holding {path}: free some space or write to another location",
    errno.EDQUOT: "the disk quota is exhausted writing {path}: free some space or write to another location",
    errno.EROFS: "{path} is on a read-only file system: choose a writable location (e.g. another --out)",
    errno.EACCES: "permission denied for {path}: choose a location you may write to, or fix its permissions",
    errno.EPERM: "operation not permitted on {path}: choose another location, or fix its permissions",
    errno.EISDIR: "{path} is a directory where a file is expected: give a file path, or remove the directory",
    errno.ENOTDIR: "{path}: a part of this path is a file where a directory is expected: choose another location "
    "or remove that file",
    errno.EEXIST: "{path} already exists (a file where a directory is expected?): choose another location or remove it",
    errno.ENOENT: "{path} does not exist: check the path",
    errno.ENAMETOOLONG: "{path}: the file name is too long: choose a shorter path",
}


def os_error_message(err: OSError) -> str | None:
    """One line naming the path of an OSError and the fix, or None for kinds that are not the user's to fix."""
    hint = _OS_ERROR_HINTS.get(err.errno)
    if hint is None:
        return None
    path = err.filename if err.filename is not None else "a file"
    if err.filename2 is not None:
        path = f"{err.filename!r} -> {err.filename2!r}"
    elif err.filename is not None:
        path = repr(str(err.filename))
    return f"{hint.format(path=path)} ({err.strerror or err})"


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
    except OSError as err:  # a bad output location or a full disk, wherever the command first writes
        message = os_error_message(err)
        if message is None:
            raise
        log.error("%s", message)
        return 1


if __name__ == "__main__":
    sys.exit(main())
