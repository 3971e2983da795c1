from __future__ import annotations

import pytest
import yaml

from tiny_config import NUM_CLASSES, tiny_config  # noqa: F401  (re-exported for the e2e tests)


@pytest.fixture
def make_config():
    return tiny_config


@pytest.fixture
def write_config(tmp_path):
    def write(name="cfg.yaml", **overrides):
        path = tmp_path / name
        path.write_text(yaml.safe_dump(tiny_config(tmp_path / "cache", **overrides)))
        return path

    return write
