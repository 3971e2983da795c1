"""scripts/check_lock.py: an environment that differs from the lock file is named package by package."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("check_lock", ROOT / "scripts" / "check_lock.py")
check_lock = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(check_lock)


def test_read_lock_takes_pins_and_skips_hashes_and_comments(tmp_path):
    lock = tmp_path / "lock.txt"
    lock.write_text(
        "# header\nTorch==2.13.0+cpu \\\n    --hash=sha256:abc\n    # via x\nPyYAML==6.0.4 \\\n    --hash=sha256:def\n"
    )
    assert check_lock.read_lock(lock) == {"torch": "2.13.0+cpu", "pyyaml": "6.0.4"}


def test_a_range_in_the_lock_is_refused(tmp_path):
    lock = tmp_path / "lock.txt"
    lock.write_text("numpy>=1.24\n")
    with pytest.raises(SystemExit, match=r"lock.txt:1: not an exact pin"):
        check_lock.read_lock(lock)


def test_every_kind_of_difference_is_named():
    locked = {"numpy": "2.4.6", "scipy": "1.17.1", "pillow": "13.0.0"}
    present = {"numpy": "2.4.5", "pillow": "13.0.0", "requests": "2.0", "freqdense": "0.1.0"}
    assert check_lock.compare(locked, present) == [
        "  numpy: lock has 2.4.6, installed 2.4.5",
        "  requests==2.0 is installed but not in the lock",
        "  scipy==1.17.1 is in the lock but not installed",
    ]


def test_names_are_normalised():
    assert check_lock.normalize("Typing_Extensions") == check_lock.normalize("typing.extensions") == "typing-extensions"
