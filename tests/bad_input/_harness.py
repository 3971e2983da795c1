"""Assertion helpers of the bad-input suite (the fixtures that use them are in ``conftest.py``).

Import them in a test module with ``from _harness import refused, api_refused, snapshot``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

__all__ = ["Outcome", "snapshot", "refused", "api_refused"]


def snapshot(*folders: Path) -> dict[str, bytes]:
    """Bytes of every file under ``folders`` (missing folders count as empty)."""
    out: dict[str, bytes] = {}
    for folder in folders:
        folder = Path(folder)
        if folder.is_file():
            out[str(folder)] = folder.read_bytes()
            continue
        for path in sorted(folder.rglob("*")) if folder.exists() else ():
            if path.is_file():
                out[str(path)] = path.read_bytes()
    return out


@dataclass
class Outcome:
    code: int
    errors: list[str]
    output: str  # stdout + stderr + every log record

    def __str__(self) -> str:
        return f"exit {self.code}; errors {self.errors}; output:\n{self.output[-3000:]}"


def refused(outcome: Outcome, *culprits: str, code: int = 1) -> str:
    """Assert a clear refusal: exit ``code``, no traceback, one error message naming every culprit; return it."""
    assert outcome.code == code, str(outcome)
    assert "Traceback" not in outcome.output, str(outcome)
    assert outcome.errors, f"no error message was given\n{outcome}"
    message = "\n".join(outcome.errors)
    for culprit in culprits:
        assert str(culprit) in message, f"the error does not name {culprit!r}: {message}"
    return message


def api_refused(call, error_type, *culprits: str) -> str:
    """Assert that ``call()`` raises ``error_type`` (a FreqdenseError subclass, say) naming every culprit."""
    with pytest.raises(error_type) as info:
        call()
    message = str(info.value)
    for culprit in culprits:
        assert str(culprit) in message, f"the error does not name {culprit!r}: {message}"
    return message
