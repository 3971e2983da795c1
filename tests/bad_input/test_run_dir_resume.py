"""Bad inputs against an existing run directory: a resume with a changed experiment, ``--no-resume`` into a run,
damaged or tampered run files, another DDP world size. Each is refused with exit 1, one message naming the culprit
and the run directory byte-identical (one finished tiny run is copied per case)."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
import yaml
from _harness import refused

from freqdense.cli.main import main

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """``(config file, run directory)`` of one finished 8-step tiny run (checkpoints at steps 4 and 8)."""
    from tiny_config import tiny_config

    root = tmp_path_factory.mktemp("finished")
    cfg = root / "cfg.yaml"
    cfg.write_text(yaml.safe_dump(tiny_config(root / "cache", **{"train.keep_checkpoints": 2})))
    run = root / "run"
    assert main(["train", str(cfg), "--out", str(run)]) == 0
    return cfg, run


@pytest.fixture
def run_copy(finished, tmp_path):
    cfg, run = finished
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    return cfg, copy


CHANGED_EXPERIMENT = [
    (["model.num_classes=5"], "model.num_classes"),
    (["optim.name=sgd"], "optim.name"),
    (["train.seed=2"], "train.seed"),
    (["train.seed=2", "--resume-with-changes"], "train.seed"),
    (["model.backbone=resnet34"], "model.backbone"),
    (["model.backbone_kwargs.base_width=16"], "model.backbone_kwargs.base_width"),
    (["data.batch_size=2"], "data.batch_size"),
    (["data.train_args.num_samples=8"], "data.train_args.num_samples"),
    (["task.max_depth=10.0"], "task.max_depth"),
    (["optim.weight_decay=0.5"], "optim.weight_decay"),
    (["optim.clip_grad_norm=1.0"], "optim.clip_grad_norm"),
    (["schedule.warmup_steps=3"], "schedule.warmup_steps"),
    (["eval.mode=min"], "eval.mode"),
    (["optim.lr=0.001"], "--resume-with-changes"),  # resumable, but only when asked for
    (["schedule.total_steps=12"], "--resume-with-changes"),
    (["schedule.total_steps=4", "--resume-with-changes"], "schedule.total_steps=4"),  # below the step reached
]


@pytest.mark.parametrize("extra, culprit", CHANGED_EXPERIMENT, ids=[" ".join(c[0]) for c in CHANGED_EXPERIMENT])
def test_resume_with_a_changed_experiment_is_refused(run_copy, cli, unchanged, extra, culprit):
    cfg, run = run_copy
    with unchanged(run):
        refused(cli("train", cfg, "--out", run, *extra), culprit, str(run))


def test_no_resume_into_a_run_is_refused(run_copy, cli, unchanged):
    cfg, run = run_copy
    with unchanged(run):
        message = refused(cli("train", cfg, "--out", run, "--no-resume"), str(run), "--no-resume")
    assert "new --out" in message


def _set_pointer(run, which, name):
    path = run / "checkpoints" / "pointers.json"
    data = json.loads(path.read_text())
    data[which]["dir"] = name
    path.write_text(json.dumps(data))


@pytest.mark.parametrize("name", ["../../outside", "/etc", "step_00000008/../../x", 7])
def test_a_tampered_latest_pointer_is_refused_by_train(run_copy, cli, unchanged, name):
    cfg, run = run_copy
    _set_pointer(run, "latest", name)
    with unchanged(run):
        refused(cli("train", cfg, "--out", run), "pointers.json", "latest")


@pytest.mark.parametrize("which, argv", [("best", []), ("latest", ["--latest"])])
def test_a_tampered_pointer_is_refused_by_eval(run_copy, cli, unchanged, which, argv):
    _, run = run_copy
    _set_pointer(run, which, "../../../etc")
    with unchanged(run):
        refused(cli("eval", run, *argv, "--out", run / "eval_out"), "pointers.json", which)


def _truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


@pytest.mark.parametrize(
    "damage, culprit",
    [
        (lambda run: _truncate(run / "checkpoints/step_00000008/train_state.pt"), "train_state.pt"),
        (lambda run: _truncate(run / "checkpoints/step_00000008/model.safetensors"), "model.safetensors"),
        (lambda run: (run / "config.yaml").write_text("model: {name: [\n"), "config.yaml"),
        (lambda run: (run / "config.yaml").write_text("- a list\n- not a config\n"), "config.yaml"),
        (
            lambda run: ((run / "config.yaml").unlink(), (run / "checkpoints/step_00000008/meta.json").write_text("{")),
            "meta.json",
        ),
    ],
    ids=["train_state", "weights", "config-yaml-syntax", "config-yaml-list", "meta-json"],
)
def test_a_damaged_run_file_is_refused_on_resume(run_copy, cli, unchanged, damage, culprit):
    cfg, run = run_copy
    damage(run)
    with unchanged(run):
        refused(cli("train", cfg, "--out", run, "schedule.total_steps=12", "--resume-with-changes"), culprit)


def _edit_state(run, edit):
    path = run / "checkpoints/step_00000008/train_state.pt"
    state = torch.load(path, weights_only=True)
    edit(state)
    torch.save(state, path)


def test_resume_with_another_world_size_is_refused(run_copy, cli, unchanged):
    cfg, run = run_copy
    _edit_state(run, lambda state: state.update(world_size=2))  # as a 2-process torchrun run saves it
    with unchanged(run):
        refused(
            cli("train", cfg, "--out", run, "schedule.total_steps=12", "--resume-with-changes"),
            "2 process",
            "--nproc_per_node 2",
        )


def test_an_optimizer_state_that_does_not_fit_is_refused(run_copy, cli, unchanged):
    cfg, run = run_copy
    _edit_state(run, lambda state: state["optimizer"]["param_groups"].pop())  # as another optimizer layout
    with unchanged(run):
        refused(
            cli("train", cfg, "--out", run, "schedule.total_steps=12", "--resume-with-changes"),
            "step_00000008",
            "optim.name",
        )


def test_an_lr_change_on_resume_is_applied_and_recorded_with_its_step(run_copy, cli):
    """Not a refusal: the one experiment key that may change on resume takes effect, as run.json says."""
    from freqdense.config import load_config
    from freqdense.engine.logger import read_jsonl
    from freqdense.engine.optim import lr_factor

    cfg, run = run_copy
    argv = ["optim.lr=0.0005", "schedule.total_steps=12"]
    assert cli("train", cfg, "--out", run, *argv, "--resume-with-changes").code == 0
    schedule = load_config(str(cfg), argv).schedule
    rows = {r["step"]: r for r in read_jsonl(run / "log.jsonl") if r["kind"] == "train"}
    assert rows[10]["lr"] == pytest.approx(0.0005 * lr_factor(10, schedule), rel=1e-6)  # the new lr, not 0.002's
    start = json.loads((run / "run.json").read_text())["starts"][-1]
    assert start["step"] == 8 and start["config_changes"]["optim.lr"] == {"from": 0.002, "to": 0.0005}
    assert yaml.safe_load((run / "config.yaml").read_text())["optim"]["lr"] == 0.0005
