"""Results pages re-run to their numbers: scripts/results_check.py's checks against docs/results/checks.json."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _script():
    spec = importlib.util.spec_from_file_location("results_check", ROOT / "scripts" / "results_check.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_compare_flags_a_moved_metric():
    check = _script()
    name = next(iter(check.CHECKS))
    stored = {"metrics": {"semantic/miou": 0.2, "semantic/pixel_acc": 0.7, "depth/rmse": 2.0}}
    assert check.compare(name, {"semantic/miou": 0.2015, "semantic/pixel_acc": 0.7, "depth/rmse": 2.1}, stored) == []
    problems = check.compare(name, {"semantic/miou": 0.205, "semantic/pixel_acc": 0.7, "depth/rmse": 2.5}, stored)
    assert len(problems) == 2 and "semantic/miou" in problems[0] and "depth/rmse" in problems[1]


@pytest.mark.slow
def test_stored_checks_rerun_to_their_values(monkeypatch, tmp_path):
    check = _script()
    stored = json.loads(check.STORE.read_text())
    for name, spec in check.CHECKS.items():
        assert name in stored, f"{name} has no stored value in {check.STORE}"
        assert stored[name]["overrides"] == spec["overrides"], "the stored value is for another budget: --update"
        got = check.run_check(spec)
        assert check.compare(name, got, stored[name]) == []
