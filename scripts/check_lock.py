"""Fail unless the running environment holds exactly the packages pinned in a lock file.

Usage: ``python scripts/check_lock.py requirements/lock.txt`` (``make check-lock``; ``make install`` and ``.ci/run``
call it). The project itself (installed editable) is not in the lock and is skipped. Standard library only.
"""

from __future__ import annotations

import re
import sys
from importlib import metadata
from pathlib import Path

PROJECT = "freqdense"
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)")


def normalize(name: str) -> str:
    """PEP 503 normalised project name."""
    return re.sub(r"[-_.]+", "-", name).lower()


def read_lock(path: Path) -> dict[str, str]:
    pins: dict[str, str] = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line or line[0] in "# \t-":
            continue  # comments, hash continuation lines, options
        match = _PIN.match(line)
        if match is None:
            raise SystemExit(f"{path}:{number}: not an exact pin (name==version): {line!r}; run `make lock`")
        pins[normalize(match.group(1))] = match.group(2)
    if not pins:
        raise SystemExit(f"{path}: no pinned packages; regenerate with `make lock`")
    return pins


def installed() -> dict[str, str]:
    found: dict[str, str] = {}
    for dist in metadata.distributions():
        name = dist.metadata["Name"]
        if name:
            found[normalize(name)] = dist.version
    return found


def compare(locked: dict[str, str], present: dict[str, str]) -> list[str]:
    """One line per difference between the lock and the environment (empty when they agree)."""
    problems = []
    for name in sorted(set(locked) | set(present)):
        if name == PROJECT:
            continue
        want, have = locked.get(name), present.get(name)
        if want is None:
            problems.append(f"  {name}=={have} is installed but not in the lock")
        elif have is None:
            problems.append(f"  {name}=={want} is in the lock but not installed")
        elif want != have:
            problems.append(f"  {name}: lock has {want}, installed {have}")
    return problems


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python scripts/check_lock.py LOCK_FILE", file=sys.stderr)
        return 2
    lock = Path(argv[0])
    if not lock.is_file():
        print(f"{lock}: no such lock file; generate it with `make lock`", file=sys.stderr)
        return 2
    locked = read_lock(lock)
    problems = compare(locked, installed())
    if problems:
        print(f"the environment {sys.prefix} differs from {lock}:", file=sys.stderr)
        print("\n".join(problems), file=sys.stderr)
        print(
            "reinstall with `make install` (it rebuilds .venv from the lock), or update the lock with `make lock`",
            file=sys.stderr,
        )
        return 1
    print(f"environment matches {lock}: {len(locked)} pinned packages")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
