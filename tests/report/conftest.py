"""Fixtures of the report tests: hand-written run, demo and ablation directories in ``tmp_path``."""

from __future__ import annotations

import pytest
from report_dirs import write_fake_ablation, write_fake_demo, write_fake_run


@pytest.fixture
def fake_run(tmp_path):
    return write_fake_run(tmp_path / "run")


@pytest.fixture
def fake_demo(tmp_path):
    return write_fake_demo(tmp_path / "demo")


@pytest.fixture
def fake_ablation(tmp_path):
    return write_fake_ablation(tmp_path / "ablation")
