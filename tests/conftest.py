"""Shared fixtures and the session-wide guards.

Tests run on CPU with float32; torch uses at most 2 threads (this machine has 2 cores). Nothing a test does may depend
on the machine it runs on: the synthetic-scene cache and matplotlib's config live in the session's temporary folder,
and an audit hook fails the run if any test opens a file outside the repository, the temporary folders and the Python
installation (``tests/read_audit.py``).
"""

from __future__ import annotations

import os
import tempfile

# Before matplotlib is imported anywhere: its font cache and config go to a temporary folder, not ~/.cache.
os.environ["MPLCONFIGDIR"] = tempfile.mkdtemp(prefix="freqdense-mpl-")
os.environ.pop("FREQDENSE_CACHE", None)  # a developer's scene cache must not feed the tests

import pytest  # noqa: E402
import torch  # noqa: E402

from read_audit import install  # noqa: E402

torch.set_num_threads(min(2, os.cpu_count() or 1))

_AUDIT = install()


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    # Never write the synthetic-scene cache into the user's home from tests.
    monkeypatch.setenv("FREQDENSE_CACHE", str(tmp_path_factory.getbasetemp() / "freqdense_cache"))


def pytest_sessionfinish(session, exitstatus):
    _AUDIT.active = False
    if _AUDIT.outside:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        lines = [f"  {path} (mode {mode})" for path, mode in sorted(_AUDIT.outside.items())]
        message = (
            f"\nthe tests opened {len(lines)} file(s) outside the repository, the temporary folders and the Python "
            "installation; a fresh machine does not have them:\n" + "\n".join(lines[:50])
        )
        if reporter is not None:
            reporter.ensure_newline()
            reporter.write_line(message, red=True)
        else:
            print(message)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
