"""Run-directory integrity without a training run: the pointer and log-rewrite kill windows (failures injected
deterministically between two writes), full disks, the divergence guard and an lr change applied on resume."""

from __future__ import annotations

import errno
import json
import math
import os
import subprocess

import pytest
import torch
from torch import nn

from freqdense.engine import checkpoint as ck
from freqdense.engine import logger as logger_module
from freqdense.engine.logger import RunLogger
from freqdense.engine.train import DivergenceGuard, _apply_lr_change
from freqdense.errors import CheckpointError, DiskFullError, TrainingDivergedError


def _model(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))


def _save(run, step, model=None, *, best=None, keep=1, state_best=None):
    return ck.save_checkpoint(
        run,
        step,
        model or _model(),
        meta={"config": {"model": {"name": "x"}}},
        train_state={"step": step, "rng": {}, "best": state_best},
        keep=keep,
        best=best,
    )


class _Killed(BaseException):
    """Stands for SIGKILL: nothing after it runs (BaseException, so no ``except Exception`` swallows it)."""


def _fail_on_write(monkeypatch, module, name, *, after: int):
    """Let ``after`` calls of ``module.name`` through, then raise :class:`_Killed` (the injected kill)."""
    real = getattr(module, name)
    calls = {"n": 0}

    def wrapper(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] > after:
            raise _Killed(f"killed at {name} call {calls['n']}")
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, wrapper)


# --- pointer window ---------------------------------------------------------------------------------------------


def test_kill_at_the_pointer_update_keeps_best_and_latest_consistent(tmp_path, monkeypatch):
    _save(tmp_path, 4, best={"metric": "m", "value": 0.5})
    # step 8 is the new best: kill the run at its pointer write (the only one: latest and best share one file)
    _fail_on_write(monkeypatch, ck, "write_json_atomic", after=0)
    with pytest.raises(_Killed):
        _save(tmp_path, 8, best={"metric": "m", "value": 0.9}, state_best={"step": 8, "metric": "m", "value": 0.9})
    monkeypatch.undo()
    # the resume sees the state before the kill: latest = best = step 4, both present
    assert ck.latest_checkpoint(tmp_path).name == "step_00000004"
    assert ck.best_checkpoint(tmp_path).name == "step_00000004"
    # the resumed run redoes steps 5-8 and saves step 8 again as the best: both pointers move together
    _save(tmp_path, 8, best={"metric": "m", "value": 0.9})
    _save(tmp_path, 12)
    dirs = sorted(p.name for p in (tmp_path / "checkpoints").glob("step_*"))
    assert dirs == ["step_00000008", "step_00000012"]  # step 4 pruned, the best (8) and the latest (12) kept
    assert ck.resolve_checkpoint(tmp_path).name == "step_00000008"  # what eval / predict / export use
    assert ck.resolve_checkpoint(tmp_path, prefer="latest").name == "step_00000012"


def test_legacy_two_file_pointers_cut_by_a_kill_are_repaired_from_the_training_state(tmp_path):
    # A run made before pointers.json: latest.json moved to step 8 (the new best) but the kill came before best.json.
    _save(tmp_path, 4, best={"metric": "m", "value": 0.5})
    _save(tmp_path, 8, keep=2, state_best={"step": 8, "metric": "m", "value": 0.9})
    root = tmp_path / "checkpoints"
    (root / ck.POINTERS_FILE).unlink()
    (root / "latest.json").write_text(json.dumps({"dir": "step_00000008", "step": 8}))
    (root / "best.json").write_text(json.dumps({"dir": "step_00000004", "step": 4, "metric": "m", "value": 0.5}))
    assert ck.latest_checkpoint(tmp_path).name == "step_00000008"  # the legacy files are still read
    best = ck.load_train_state(ck.latest_checkpoint(tmp_path))["best"]
    ck.restore_best_pointer(tmp_path, best)  # what train() does on resume
    assert ck.best_checkpoint(tmp_path).name == "step_00000008"
    _save(tmp_path, 12)
    _save(tmp_path, 16)
    assert ck.resolve_checkpoint(tmp_path).name == "step_00000008"  # never pruned
    assert not (root / "latest.json").exists() and not (root / "best.json").exists()


@pytest.mark.parametrize("name", ["../../etc", "/tmp", "step_00000004/../../x", 5])
def test_a_pointer_outside_the_run_is_refused(tmp_path, name):
    _save(tmp_path, 4, best={"metric": "m", "value": 0.5})
    pointers = tmp_path / "checkpoints" / ck.POINTERS_FILE
    data = json.loads(pointers.read_text())
    data["best"]["dir"] = name
    pointers.write_text(json.dumps(data))
    with pytest.raises(CheckpointError, match="pointers.json"):
        ck.resolve_checkpoint(tmp_path)


# --- log rewrite window -----------------------------------------------------------------------------------------


def _logged(tmp_path):
    log = RunLogger(tmp_path, tensorboard=False)
    for step in (10, 20, 30, 40):
        log.log("train", step, {"loss/total": 1.0 / step, "lr": 0.1})
        if step % 20 == 0:
            log.log("eval", step, {"semantic/miou": step / 100})
    return {p.name: p.read_bytes() for p in tmp_path.iterdir()}


@pytest.mark.parametrize("after", [0, 1, 2])
def test_kill_while_resume_rewrites_the_logs_leaves_the_old_logs_intact(tmp_path, monkeypatch, after):
    before = _logged(tmp_path)
    # the kill comes while the new files are written aside (after 0, 1 or 2 of the 3 staged files were fsynced)
    _fail_on_write(monkeypatch, logger_module.os, "fsync", after=after)
    with pytest.raises(_Killed):
        RunLogger(tmp_path, tensorboard=False).truncate(20)
    monkeypatch.undo()
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before  # no temp file left, no byte lost
    RunLogger(tmp_path, tensorboard=False).truncate(20)  # the next resume does the rewrite
    rows = logger_module.read_jsonl(tmp_path / "log.jsonl")
    assert [(r["kind"], r["step"]) for r in rows] == [("train", 10), ("train", 20), ("eval", 20)]
    assert (tmp_path / "train.csv").read_text().splitlines()[1:] == ["10,0.1,0.1", "20,0.05,0.1"]


def test_kill_between_the_renames_is_repaired_by_the_next_resume(tmp_path, monkeypatch):
    _logged(tmp_path)
    _fail_on_write(monkeypatch, logger_module.os, "replace", after=1)  # log.jsonl renamed, the CSVs not yet
    with pytest.raises(_Killed):
        RunLogger(tmp_path, tensorboard=False).truncate(20)
    monkeypatch.undo()
    assert len(logger_module.read_jsonl(tmp_path / "log.jsonl")) == 3
    assert len((tmp_path / "train.csv").read_text().splitlines()) == 5  # still the old one, complete
    RunLogger(tmp_path, tensorboard=False).truncate(20)
    assert len((tmp_path / "train.csv").read_text().splitlines()) == 3
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


# --- full disk --------------------------------------------------------------------------------------------------


def _enospc(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_full_disk_during_a_checkpoint_names_the_space_and_the_kept_checkpoint(tmp_path, monkeypatch):
    first = _save(tmp_path, 4)
    size = sum(f.stat().st_size for f in first.iterdir())
    monkeypatch.setattr(ck.os, "fsync", _enospc)
    with pytest.raises(DiskFullError) as info:
        _save(tmp_path, 8)
    monkeypatch.undo()
    message = str(info.value)
    assert "no space left" in message and str(first) in message
    needed = float(message.split("free at least ")[1].split(" MB")[0])
    assert needed == pytest.approx(size / 2**20, abs=0.06)  # the size of one checkpoint
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == [ck.POINTERS_FILE, "step_00000004"]
    assert ck.latest_checkpoint(tmp_path) == first


def test_full_disk_in_an_atomic_write_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "config.yaml"
    path.write_text("model: {name: x}\n")
    monkeypatch.setattr(ck.os, "fsync", _enospc)
    with pytest.raises(DiskFullError, match="config.yaml"):
        ck.write_text_atomic(path, "model: {name: y}\n" * 1000)
    assert path.read_text() == "model: {name: x}\n"
    assert [p.name for p in tmp_path.iterdir()] == ["config.yaml"]


def test_full_disk_while_logging_is_one_clear_error(tmp_path, monkeypatch):
    log = RunLogger(tmp_path, tensorboard=False)
    log.log("train", 1, {"loss/total": 1.0})

    def full_open(path, mode="r", *args, **kwargs):
        if "a" in mode:
            _enospc()
        return open(path, mode, *args, **kwargs)

    monkeypatch.setattr(logger_module, "open", full_open, raising=False)
    with pytest.raises(DiskFullError, match="log.jsonl"):
        log.log("train", 2, {"loss/total": 0.5})


def test_full_disk_on_a_real_small_tmpfs(tmp_path):
    mount = tmp_path / "tiny"
    mount.mkdir()
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)], capture_output=True, text=True
    )
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root or CAP_SYS_ADMIN): {result.stderr.strip()}")
    try:
        model = nn.Linear(64, 64)  # 16.6 kB of weights
        _save(mount, 1, model)
        with pytest.raises(DiskFullError) as info:
            for step in range(2, 20):
                _save(mount, step, model, keep=20)
        assert "no space left" in str(info.value)
        kept = ck.latest_checkpoint(mount)
        ck.load_weights(nn.Linear(64, 64), kept)  # the last good checkpoint is whole
        assert not list((mount / "checkpoints").glob(".tmp-*"))
    finally:
        subprocess.run(["umount", str(mount)], check=False)


# --- divergence and lr changes ----------------------------------------------------------------------------------


def _losses(total, **terms):
    return {"total": torch.tensor(total), **{k: torch.tensor(v) for k, v in terms.items()}}


@pytest.mark.parametrize(
    "bad, term", [(float("nan"), "semantic=nan"), (float("inf"), "semantic=inf"), (-float("inf"), "semantic=-inf")]
)
def test_a_non_finite_loss_term_stops_training_with_every_term(tmp_path, bad, term):
    guard = DivergenceGuard(tmp_path)
    guard.check(0, _losses(1.0, semantic=0.6, depth=0.4))
    with pytest.raises(TrainingDivergedError) as info:
        guard.check(1, _losses(1.0, semantic=bad, depth=0.4))
    message = str(info.value)
    assert "step 2" in message and term in message and "depth=0.4" in message
    assert "optim.lr" in message and "train.amp=off" in message and "no checkpoint yet" in message


def test_an_exploding_loss_stops_training_and_a_large_but_sane_one_does_not(tmp_path):
    guard = DivergenceGuard(tmp_path)
    for step, value in enumerate([2.0, 1.0, 3.0, 0.5]):  # median of the reference: 1.5
        guard.check(step, _losses(value))
    guard.check(4, _losses(1.4e6))  # < 1e6 x 1.5: kept going
    with pytest.raises(TrainingDivergedError, match="exploding loss"):
        guard.check(5, _losses(1.3e17))


def test_an_lr_change_on_resume_is_applied_to_every_group_and_the_schedule(tmp_path):
    from freqdense.config import load_config
    from freqdense.engine.optim import build_optimizer, build_scheduler, lr_factor

    cfg = load_config("synthetic/demo_multitask", ["optim.lr=0.01", "schedule.total_steps=100"])
    model = nn.Linear(3, 3)
    opt = build_optimizer(cfg.optim, model)
    sched = build_scheduler(cfg.schedule, opt)
    for _ in range(30):
        opt.step()
        sched.step()
    _apply_lr_change(opt, sched, 0.01, 0.001)
    for _ in range(5):
        opt.step()
        sched.step()
    expected = 0.001 * lr_factor(35, cfg.schedule)
    assert all(math.isclose(g["lr"], expected, rel_tol=1e-9) for g in opt.param_groups)


def test_a_key_the_schema_gained_later_is_no_change_at_its_default():
    # A run written before optim.bias_lr_mult / schedule.milestones existed has no such keys: at their defaults the
    # resumed run computes the same thing; any other value is a change.
    from freqdense.engine.run_config import config_differences

    old = {"optim": {"name": "sgd", "lr": 0.1}, "schedule": {"name": "step"}}
    same = {"optim": {"name": "sgd", "lr": 0.1, "bias_lr_mult": 1.0}, "schedule": {"name": "step", "milestones": []}}
    assert config_differences(old, same) == {}
    changed = {"optim": {"name": "sgd", "lr": 0.1, "bias_lr_mult": 2.0}, "schedule": {"name": "step"}}
    assert config_differences(old, changed) == {"optim.bias_lr_mult": ("<absent>", 2.0)}
    # and a key a newer run has that the old one lacked the other way round is still reported
    assert config_differences(same, old) == {
        "optim.bias_lr_mult": (1.0, "<absent>"),
        "schedule.milestones": ([], "<absent>"),
    }
