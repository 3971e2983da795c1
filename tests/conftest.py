"""Shared fixtures. Tests run on CPU with float32; torch uses at most 2 threads (this machine has 2 cores)."""

from __future__ import annotations

import os

import pytest
import torch

torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    # Never write the synthetic-scene cache into the user's home from tests.
    monkeypatch.setenv("FREQDENSE_CACHE", str(tmp_path_factory.getbasetemp() / "freqdense_cache"))
