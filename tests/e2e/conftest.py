from __future__ import annotations

import functools

import pytest

from tiny_config import NUM_CLASSES, tiny_config, write_tiny_config  # noqa: F401  (re-exported for the e2e tests)


@pytest.fixture
def make_config():
    return tiny_config


@pytest.fixture
def write_config(tmp_path):
    return functools.partial(write_tiny_config, tmp_path)
