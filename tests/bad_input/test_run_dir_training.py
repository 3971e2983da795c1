"""Bad values met while training: a non-finite or exploding loss, a full disk at each kind of run file. Each ends
the run with exit 1 and one message (the step and loss terms, or the space needed and the checkpoint kept); the run
directory holds no partial file, every checkpoint in it is whole and no diverged checkpoint is marked best."""

from __future__ import annotations

import errno
import json
import os

import pytest
from _harness import refused

from freqdense.engine import checkpoint as ck
from freqdense.engine import logger as logger_module
from freqdense.tasks.base import Task

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def config(tmp_path_factory):
    """The tiny config with one scene cache for the whole module (rendered once)."""
    import yaml

    from tiny_config import tiny_config

    root = tmp_path_factory.mktemp("training")
    path = root / "cfg.yaml"
    # 4 steps, evaluated and checkpointed at steps 2 and 4
    path.write_text(yaml.safe_dump(tiny_config(root / "cache", **{"schedule.total_steps": 4, "eval.every": 2})))
    return path


def _assert_whole(run):
    """No temporary or partial file anywhere; every checkpoint complete; the pointers name existing checkpoints."""
    leftovers = [p for p in run.rglob(".*")]
    assert not leftovers, leftovers
    root = run / "checkpoints"
    for ckpt in root.glob("step_*"):
        assert {p.name for p in ckpt.iterdir()} == {ck.MODEL_FILE, ck.META_FILE, ck.STATE_FILE}, ckpt
    if (root / ck.POINTERS_FILE).is_file():
        for entry in json.loads((root / ck.POINTERS_FILE).read_text()).values():
            assert (root / entry["dir"] / ck.MODEL_FILE).is_file()


def _poison_loss(monkeypatch, at_call: int, factor: float):
    """Multiply the total loss of the ``at_call``-th training step (1-based) by ``factor``."""
    real = Task.training_step
    calls = {"n": 0}

    def step(self, model, batch):
        losses = real(self, model, batch)
        calls["n"] += 1
        if calls["n"] == at_call:
            losses = {**losses, "total": losses["total"] * factor}
        return losses

    monkeypatch.setattr(Task, "training_step", step)


@pytest.mark.parametrize(
    "at_step, factor, culprits",
    [
        (1, float("nan"), ["step 1", "total=nan", "no checkpoint yet"]),
        (3, float("nan"), ["step 3", "total=nan", "step_00000002"]),
        (3, float("inf"), ["step 3", "total=inf", "step_00000002"]),
        (4, 1e17, ["step 4", "exploding loss", "step_00000002"]),  # needs 3 reference steps
    ],
    ids=["nan-before-any-checkpoint", "nan", "inf", "explosion"],
)
def test_a_diverging_loss_stops_the_run_and_keeps_the_last_good_checkpoint(
    config, tmp_path, cli, monkeypatch, at_step, factor, culprits
):
    cfg, run = config, tmp_path / "run"
    _poison_loss(monkeypatch, at_step, factor)
    message = refused(cli("train", cfg, "--out", run), *culprits, "optim.lr", "train.amp=off")
    assert "semantic=" in message and "depth=" in message  # every loss term, not only the total
    _assert_whole(run)
    latest, best = ck.latest_checkpoint(run), ck.best_checkpoint(run)
    expected = None if at_step == 1 else "step_00000002"
    assert (latest and latest.name) == expected and (best and best.name) == expected
    assert not (run / "metrics.json").exists()


def _full(monkeypatch, module, match: str, *, mode: str = "", code: int = errno.ENOSPC, after: int = 0):
    """``open`` in ``module`` raises a full disk for paths containing ``match`` (opened with ``mode``), after
    ``after`` such opens succeeded."""
    seen = {"n": 0}

    def fake_open(path, file_mode="r", *args, **kwargs):
        if match in str(path) and mode in file_mode:
            seen["n"] += 1
            if seen["n"] > after:
                raise OSError(code, os.strerror(code))
        return open(path, file_mode, *args, **kwargs)

    monkeypatch.setattr(module, "open", fake_open, raising=False)


@pytest.mark.parametrize(
    "where, culprits",
    [
        (dict(module=ck, match="config.yaml"), ["config.yaml", "no checkpoint yet"]),
        (dict(module=ck, match="run.json"), ["run.json"]),
        (dict(module=ck, match="model.safetensors"), ["model.safetensors", "free at least", "no checkpoint yet"]),
        (dict(module=ck, match="train_state.pt", after=1), ["train_state.pt", "free at least", "step_00000002"]),
        (dict(module=ck, match="pointers.json", after=1), ["pointers.json", "step_00000002"]),
        (dict(module=ck, match="metrics.json"), ["metrics.json", "step_00000004"]),
        (dict(module=logger_module, match="log.jsonl", mode="a"), ["log.jsonl"]),
        (dict(module=logger_module, match="eval.csv", mode="a", code=errno.EDQUOT), ["eval.csv", "Disk quota"]),
    ],
    ids=["config-yaml", "run-json", "weights", "train-state", "pointers", "metrics", "log-jsonl", "quota-eval-csv"],
)
def test_a_full_disk_ends_the_run_with_one_message_and_keeps_the_last_checkpoint(
    config, tmp_path, cli, monkeypatch, where, culprits
):
    cfg, run = config, tmp_path / "run"
    _full(monkeypatch, **where)
    refused(cli("train", cfg, "--out", run), "no space left", "kept:", *culprits)
    _assert_whole(run)
    monkeypatch.undo()
    config = run / "config.yaml"
    if config.exists():
        assert "schedule:" in config.read_text()  # whole, never cut
