"""Atomic checkpoints: pointers, retention, corrupt files, a kill in the middle of a save."""

from __future__ import annotations

import json
import os

import pytest
import torch
from torch import nn

from freqdense.engine import checkpoint as ck
from freqdense.errors import CheckpointError


def _model(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))


def _save(run, step, model, **kw):
    return ck.save_checkpoint(
        run, step, model, meta={"config": {"model": {"name": "x"}}}, train_state={"step": step, "rng": {}}, **kw
    )


def test_roundtrip_weights_meta_and_state(tmp_path):
    m = _model(0)
    path = _save(tmp_path, 5, m)
    assert path.name == "step_00000005"
    m2 = _model(1)
    ck.load_weights(m2, path)
    for (k, a), (_, b) in zip(m.state_dict().items(), m2.state_dict().items()):
        assert torch.equal(a, b), k
    assert ck.read_meta(path)["step"] == 5
    assert ck.load_train_state(path)["step"] == 5
    assert ck.latest_checkpoint(tmp_path) == path


def test_rng_state_survives_weights_only_load(tmp_path):
    from freqdense.engine.seed import rng_state, set_rng_state

    torch.manual_seed(3)
    state = rng_state()
    expected = (torch.rand(3), __import__("numpy").random.rand(2))
    ck.save_checkpoint(tmp_path, 1, _model(), meta={}, train_state={"rng": state, "step": 1})
    set_rng_state(ck.load_train_state(ck.latest_checkpoint(tmp_path))["rng"])
    assert torch.equal(torch.rand(3), expected[0])
    assert (__import__("numpy").random.rand(2) == expected[1]).all()


def test_retention_keeps_latest_and_best(tmp_path):
    m = _model()
    _save(tmp_path, 1, m, best={"metric": "m", "value": 0.9})
    for step in (2, 3, 4):
        _save(tmp_path, step, m, keep=1)
    dirs = sorted(p.name for p in (tmp_path / "checkpoints").glob("step_*"))
    assert dirs == ["step_00000001", "step_00000004"]
    assert ck.best_checkpoint(tmp_path).name == "step_00000001"
    assert ck.resolve_checkpoint(tmp_path).name == "step_00000001"
    assert ck.resolve_checkpoint(tmp_path, prefer="latest").name == "step_00000004"


def test_kill_during_save_leaves_previous_checkpoint_intact(tmp_path, monkeypatch):
    m = _model()
    _save(tmp_path, 1, m)

    def boom(*args, **kwargs):
        raise KeyboardInterrupt("killed while writing")

    monkeypatch.setattr(ck.torch, "save", boom)  # dies after the weights were written, before rename
    with pytest.raises(KeyboardInterrupt):
        _save(tmp_path, 2, m)
    monkeypatch.undo()
    assert ck.latest_checkpoint(tmp_path).name == "step_00000001"
    assert not (tmp_path / "checkpoints" / "step_00000002").exists()
    ck.load_weights(_model(), ck.latest_checkpoint(tmp_path))


def test_missing_pointer_falls_back_to_highest_complete_dir(tmp_path):
    m = _model()
    _save(tmp_path, 1, m)
    _save(tmp_path, 2, m, keep=2)
    os.remove(tmp_path / "checkpoints" / ck.POINTERS_FILE)
    (tmp_path / "checkpoints" / "step_00000009").mkdir()  # incomplete directory: no meta.json
    assert ck.latest_checkpoint(tmp_path).name == "step_00000002"


def test_corrupt_weights_and_mismatch_raise_checkpoint_error(tmp_path):
    path = _save(tmp_path, 1, _model())
    data = (path / ck.MODEL_FILE).read_bytes()
    (path / ck.MODEL_FILE).write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="missing or corrupt"):
        ck.load_weights(_model(), path)
    path = _save(tmp_path, 2, nn.Linear(2, 2))
    with pytest.raises(CheckpointError, match="does not match the model"):
        ck.load_weights(_model(), path)


def test_resolve_gives_actionable_error(tmp_path):
    with pytest.raises(CheckpointError, match="freqdense train"):
        ck.resolve_checkpoint(tmp_path)


def test_write_json_atomic_replaces(tmp_path):
    ck.write_json_atomic(tmp_path / "a.json", {"x": 1})
    ck.write_json_atomic(tmp_path / "a.json", {"x": 2})
    assert json.loads((tmp_path / "a.json").read_text()) == {"x": 2}
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]


@pytest.mark.parametrize("umask", [0o022, 0o027, 0o002])
def test_weights_file_gets_the_same_permissions_as_the_json_files(tmp_path, umask):
    old = os.umask(umask)
    try:
        path = _save(tmp_path, 1, _model())
    finally:
        os.umask(old)
    mode = {p.name: p.stat().st_mode & 0o777 for p in path.iterdir()}
    assert mode[ck.MODEL_FILE] == mode[ck.META_FILE] == 0o666 & ~umask, {k: oct(v) for k, v in mode.items()}
    assert mode[ck.STATE_FILE] == mode[ck.META_FILE]
