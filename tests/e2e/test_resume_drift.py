"""A run directory never silently changes meaning: a resumed run's config must equal the run's, or be an allowed,
recorded change (``--resume-with-changes``); a refused start writes nothing."""

from __future__ import annotations

import json
import logging

import pytest
import yaml

from freqdense.cli.main import main
from freqdense.config import load_config
from freqdense.engine.logger import read_jsonl
from freqdense.engine.optim import lr_factor
from freqdense.engine.run_config import config_differences, flatten_config

pytestmark = pytest.mark.slow


def _snapshot(run_dir):
    """Bytes of every file in a run directory (what a refused start must leave untouched)."""
    return {p.relative_to(run_dir).as_posix(): p.read_bytes() for p in sorted(run_dir.rglob("*")) if p.is_file()}


def _errors(caplog):
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]


def _refused(argv, run, caplog):
    """Run ``freqdense ARGV``, expect exit code 1 with exactly one one-line error and ``run`` untouched; return it."""
    before = _snapshot(run)
    caplog.clear()
    assert main(argv) == 1
    (message,) = _errors(caplog)
    assert "\n" not in message
    assert _snapshot(run) == before  # config.yaml, run.json, logs and checkpoints untouched
    return message


@pytest.fixture
def finished_run(tmp_path, write_config):
    cfg = write_config()
    run = tmp_path / "run"
    assert main(["train", str(cfg), "--out", str(run)]) == 0
    return cfg, run


def test_changed_lr_is_refused_with_the_key_and_the_fix_and_nothing_is_written(finished_run, caplog):
    cfg, run = finished_run
    message = _refused(["train", str(cfg), "--out", str(run), "optim.lr=1e-3"], run, caplog)
    assert "optim.lr: 0.002 -> 0.001" in message and str(run / "config.yaml") in message
    assert "new --out" in message


def test_an_incompatible_model_is_refused_before_config_yaml_is_rewritten(finished_run, caplog):
    cfg, run = finished_run
    message = _refused(["train", str(cfg), "--out", str(run), "model.backbone_kwargs.base_width=16"], run, caplog)
    assert "model.backbone_kwargs.base_width: 8 -> 16" in message


def test_several_keys_are_listed_and_the_resumable_one_is_named(finished_run, caplog):
    cfg, run = finished_run
    argv = ["train", str(cfg), "--out", str(run), "train.seed=2", "schedule.total_steps=12", "--resume-with-changes"]
    message = _refused(argv, run, caplog)
    assert "train.seed: 1 -> 2" in message and "schedule.total_steps: 8 -> 12" in message
    assert "only schedule.total_steps may change with --resume-with-changes" in message


def test_extending_total_steps_needs_the_flag_then_continues_on_the_longer_schedule(finished_run, caplog):
    cfg, run = finished_run
    assert "--resume-with-changes" in _refused(
        ["train", str(cfg), "--out", str(run), "schedule.total_steps=12"], run, caplog
    )

    assert main(["train", str(cfg), "--out", str(run), "schedule.total_steps=12", "--resume-with-changes"]) == 0
    assert json.loads((run / "metrics.json").read_text())["step"] == 12
    assert yaml.safe_load((run / "config.yaml").read_text())["schedule"]["total_steps"] == 12
    starts = json.loads((run / "run.json").read_text())["starts"]
    assert [s["step"] for s in starts] == [0, 8]
    assert starts[1]["config_changes"] == {"schedule.total_steps": {"from": 8, "to": 12}}
    # The lr after the resume is the 12-step schedule's, not the finished 8-step schedule's (0 at step 8).
    schedule = load_config(str(cfg), ["schedule.total_steps=12"]).schedule
    logged = {r["step"]: r["lr"] for r in read_jsonl(run / "log.jsonl") if r["kind"] == "train"}
    for step in (10, 12):  # logged after the scheduler's step: the lr of the next update
        assert logged[step] == pytest.approx(2.0e-3 * lr_factor(step, schedule), rel=1e-6)
    assert logged[10] > 0


def test_total_steps_below_the_reached_step_is_refused(finished_run, caplog):
    cfg, run = finished_run
    argv = ["train", str(cfg), "--out", str(run), "schedule.total_steps=6", "--resume-with-changes"]
    assert "schedule.total_steps=6 is below step 8" in _refused(argv, run, caplog)


def test_runtime_keys_may_change_and_are_recorded(finished_run):
    cfg, run = finished_run
    assert main(["train", str(cfg), "--out", str(run), "train.log_every=4"]) == 0
    starts = json.loads((run / "run.json").read_text())["starts"]
    assert starts[-1]["config_changes"] == {"train.log_every": {"from": 2, "to": 4}}


def test_the_same_config_resumes_silently(finished_run):
    cfg, run = finished_run
    assert main(["train", str(cfg), "--out", str(run)]) == 0
    starts = json.loads((run / "run.json").read_text())["starts"]
    assert len(starts) == 2 and "config_changes" not in starts[-1]


def test_no_resume_refuses_a_directory_holding_a_run(finished_run, caplog):
    cfg, run = finished_run
    assert "already holds a run" in _refused(["train", str(cfg), "--out", str(run), "--no-resume"], run, caplog)


def test_a_run_that_cannot_start_writes_nothing(tmp_path, write_config, caplog):
    cfg = write_config()
    run = tmp_path / "never"
    assert main(["train", str(cfg), "--out", str(run), "data.dataset=voc", f"data.root={tmp_path / 'no_voc'}"]) == 1
    assert _errors(caplog)
    assert not (run / "config.yaml").exists() and not (run / "run.json").exists()


def test_config_differences_flattens_nested_sections():
    old = {"optim": {"lr": 0.1, "betas": (0.9, 0.99)}, "model": {"name": "fpn", "backbone_kwargs": {"w": 8}}}
    new = {"optim": {"lr": 0.1, "betas": [0.9, 0.999]}, "model": {"name": "fpn", "backbone_kwargs": {"w": 8, "x": 1}}}
    assert flatten_config(old)["model.backbone_kwargs.w"] == 8
    assert config_differences(old, new) == {
        "model.backbone_kwargs.x": ("<absent>", 1),
        "optim.betas": ([0.9, 0.99], [0.9, 0.999]),
    }
