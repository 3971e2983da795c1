"""Which files do the tests open outside the repository, the temporary folders and the Python installation?

The suite must pass on a machine that never saw the project, so no test may depend on the developer's home
directory (a rendered-scene cache, a matplotlib or torch cache, a config file) or on any other file outside the
checkout. ``tests/conftest.py`` installs :func:`install` as an audit hook for the whole session and fails the run if
anything was opened outside :func:`allowed_roots`.
"""

from __future__ import annotations

import os
import site
import sys
import sysconfig
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
#: System folders that hold the interpreter's and the libraries' own files (fonts, certificates, /proc, devices).
SYSTEM_ROOTS = ("/usr", "/lib", "/lib64", "/bin", "/sbin", "/etc", "/proc", "/sys", "/dev", "/var/cache/fontconfig")


def allowed_roots(extra: tuple[str | os.PathLike, ...] = ()) -> tuple[str, ...]:
    """Folder prefixes the tests may open files under."""
    roots = {str(REPO), os.path.realpath(tempfile.gettempdir()), tempfile.gettempdir(), *SYSTEM_ROOTS}
    for prefix in (sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix):
        roots.update({prefix, os.path.realpath(prefix)})
    for path in (*site.getsitepackages(), sysconfig.get_paths()["stdlib"], sysconfig.get_paths()["platstdlib"]):
        roots.update({path, os.path.realpath(path)})
    roots.update(os.fspath(p) for p in extra)
    return tuple(sorted(r.rstrip("/") for r in roots if r))


def is_outside(path: str | os.PathLike, roots: tuple[str, ...]) -> bool:
    """True when ``path`` (made absolute against the current directory) lies under none of ``roots``."""
    full = os.path.abspath(os.fspath(path))
    return not any(full == root or full.startswith(root + os.sep) for root in roots)


class ReadAudit:
    """An audit hook recording every ``open`` of a path outside ``roots``."""

    def __init__(self, roots: tuple[str, ...]):
        self.roots = roots
        self.outside: dict[str, str] = {}  # path -> mode of its first opening
        self.active = True

    def __call__(self, event: str, args: tuple) -> None:
        if event != "open" or not self.active:
            return
        path = args[0]
        if isinstance(path, bytes):
            path = os.fsdecode(path)
        if not isinstance(path, (str, os.PathLike)):
            return  # a file descriptor
        try:
            if is_outside(path, self.roots):
                self.outside.setdefault(os.path.abspath(os.fspath(path)), str(args[1]))
        except (ValueError, OSError):  # an odd path (NUL byte) or a removed current directory
            return


#: The session's hook, once :func:`install` ran.
SESSION_AUDIT: ReadAudit | None = None


def install(extra_roots: tuple[str | os.PathLike, ...] = ()) -> ReadAudit:
    global SESSION_AUDIT
    audit = ReadAudit(allowed_roots(extra_roots))
    sys.addaudithook(audit)  # cannot be removed: ``active`` switches it off
    SESSION_AUDIT = audit
    return audit
