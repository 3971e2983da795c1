"""Shared harness of the bad-input suite (issue: nothing lost, nothing silent).

Every case runs one CLI command (``freqdense.cli.main.main``, in process) or one public API call on a bad input and
asserts, through :func:`refused`:

- the exit code (1 for a refused command; argparse usage errors are 2),
- that no Python traceback was printed or logged,
- that the one error message names the culprit (a file, key, tensor or value given by the case),
- that nothing was half-written: the watched folders are byte-identical before and after (or, where the command is
  allowed to create its output folder, that it left nothing behind).
"""

from __future__ import annotations

import functools
import logging
from pathlib import Path

import pytest
from _harness import Outcome, api_refused, refused, snapshot  # noqa: F401  (re-exported)

from freqdense.cli.main import main


@pytest.fixture
def cli(capsys, caplog):
    """``cli(*argv)`` runs ``freqdense ARGV`` in process and returns an :class:`Outcome` (SystemExit is caught)."""

    def run(*argv) -> Outcome:
        caplog.clear()
        capsys.readouterr()
        with caplog.at_level(logging.INFO):
            try:
                code = main([str(a) for a in argv])
            except SystemExit as exc:  # argparse
                code = exc.code if isinstance(exc.code, int) else 1
        captured = capsys.readouterr()
        records = [r.getMessage() for r in caplog.records]
        tracebacks = [r.exc_text or "" for r in caplog.records if r.exc_info or r.exc_text]
        errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
        if code == 2 and not errors and captured.err.strip():  # argparse prints its usage error to stderr
            errors = [captured.err.strip().splitlines()[-1]]
        output = "\n".join([captured.out, captured.err, *records, *tracebacks])
        return Outcome(code, errors, output)

    return run


@pytest.fixture
def unchanged():
    """``with unchanged(folder, ...):`` asserts that the block leaves every file under the folders byte-identical."""
    from contextlib import contextmanager

    @contextmanager
    def watch(*folders: Path):
        before = snapshot(*folders)
        yield
        after = snapshot(*folders)
        assert after == before, (
            f"files changed: {sorted(set(before) ^ set(after) | {k for k in before if before.get(k) != after.get(k)})}"
        )

    return watch


@pytest.fixture
def write_config(tmp_path):
    """``write_config(name, **{"section.key": value})``: the tiny multi-task config of tests/tiny_config.py."""
    from tiny_config import write_tiny_config

    return functools.partial(write_tiny_config, tmp_path)
