"""``freqdense demo`` at toy size: both arms trained, evaluated and analysed, ``demo.json``, the terminal table, reuse
of finished runs and refusal of a changed config."""

from __future__ import annotations

import json
import logging

import pytest
import yaml

from freqdense.cli.main import main
from freqdense.engine.checkpoint import latest_checkpoint

pytestmark = pytest.mark.slow

#: Applied to both arms: 32x48 scenes, a slim encoder and decoder, two steps; one thread (two OpenMP threads stall
#: when another process holds a core of a 2-core machine).
TINY = [
    "data.args.size=[32,48]",
    "data.train_transforms.crop=[32,48]",
    "data.train_args.num_samples=8",
    "data.val_args.num_samples=4",
    "data.batch_size=4",
    "data.val_batch_size=2",
    "model.backbone_kwargs.base_width=8",
    "model.decoder_channels=32",
    "schedule.total_steps=2",
    "schedule.warmup_steps=1",
    "train.log_every=1",
    "train.device=cpu",
    "train.num_threads=1",
]

ARM_FILES = (
    "config.yaml",
    "run.json",
    "metrics.json",
    "log.jsonl",
    "checkpoints",
    "predictions.png",
    "loss_curves.png",
    "analysis/spectrum/spectrum.json",
    "analysis/spectrum/spectrum.png",
    "analysis/similarity/similarity.json",
)


@pytest.fixture
def report_calls(monkeypatch):
    """Record the report pages the demo asks for instead of rendering them (tests/report covers the pages)."""
    calls: list[str] = []
    try:
        import freqdense.report as report
    except ImportError:  # the report package is optional for the demo
        return None
    monkeypatch.setattr(report, "write_report", lambda path, **_: calls.append(str(path)))
    monkeypatch.setattr(report, "try_write_report", lambda path, **_: calls.append(str(path)), raising=False)
    return calls


def test_demo_trains_evaluates_and_analyses_both_arms(tmp_path, capsys, caplog, report_calls):
    out = tmp_path / "demo"
    argv = ["demo", "--out", str(out), f"data.args.cache_dir={tmp_path / 'cache'}", *TINY]
    assert main(argv) == 0
    if report_calls is not None:
        assert report_calls[-1] == str(out)  # the demo's page, after the arms'
    printed = capsys.readouterr().out

    summary = json.loads((out / "demo.json").read_text())
    assert summary["kind"] == "demo" and summary["title"]
    assert summary["steps"] == 2 and summary["seed"] == 0 and summary["wall_time_s"] > 0
    assert [r["role"] for r in summary["rows"]] == ["method", "control", "trivial"]
    method, control, trivial = summary["rows"]
    assert (method["name"], control["name"]) == ("FreqFusion-FPN", "bilinear-FPN")
    classes = yaml.safe_load((out / "method" / "config.yaml").read_text())["model"]["num_classes"]
    for row in (method, control):
        assert row["run_dir"] == row["role"] and row["config"].startswith("synthetic/demo_")
        run = out / row["run_dir"]
        for name in ARM_FILES:
            assert (run / name).exists(), f"{row['role']}: {name}"
        m = row["metrics"]
        for key in ("semantic/miou", "semantic/boundary_f", "depth/rmse", "depth/abs_rel"):
            assert isinstance(m[key], float), key
        assert len([k for k in m if k.startswith("semantic/iou/")]) == classes
        spectrum, similarity = row["analyses"]["spectrum"], row["analyses"]["similarity"]
        assert spectrum["num_images"] == 4 and set(spectrum["R"]) >= {"1", "8", "16"}
        assert all(isinstance(similarity[k], float) for k in ("intra", "inter", "margin"))
        # the overrides reached both arms
        cfg = yaml.safe_load((run / "config.yaml").read_text())
        assert cfg["model"]["backbone_kwargs"]["base_width"] == 8 and cfg["model"]["decoder_channels"] == 32
        assert cfg["schedule"]["total_steps"] == 2 and cfg["data"]["args"]["size"] == [32, 48]
    assert (method["fusion"], control["fusion"]) == ("freqfusion", "bilinear")
    assert trivial["run_dir"] is None and trivial["name"] == "majority class / mean depth"
    for key in ("semantic/miou", "semantic/boundary_f", "depth/rmse", "depth/abs_rel"):
        assert key in trivial["metrics"]

    header = next(line for line in printed.splitlines() if line.startswith("predictor"))
    for column in ("mIoU", "boundary F", "RMSE", "AbsRel", "train s"):
        assert column in header
    for name in ("FreqFusion-FPN", "bilinear-FPN", "majority class / mean depth", str(out)):
        assert name in printed

    # Again into the same --out: the finished runs and their evaluation are reused, not retrained.
    steps = {role: latest_checkpoint(out / role).name for role in ("method", "control")}
    assert main(argv) == 0
    again = json.loads((out / "demo.json").read_text())
    for old, new in zip(summary["rows"][:2], again["rows"][:2]):
        assert new["resumed_from_step"] == 2 and new["train_time_s"] == old["train_time_s"]
        assert new["metrics"]["semantic/miou"] == pytest.approx(old["metrics"]["semantic/miou"])
        assert latest_checkpoint(out / new["run_dir"]).name == steps[new["role"]]

    # A changed config is refused with train's drift error, naming the arm's run directory.
    caplog.clear()
    with caplog.at_level(logging.ERROR):
        assert main([*argv, "optim.lr=1e-3"]) == 1
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "optim.lr" in errors[0] and str(out / "method") in errors[0]
