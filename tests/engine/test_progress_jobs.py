"""Long jobs report progress in logs when stderr is not a terminal: the synthetic pre-render, an analysis, ablation."""

from __future__ import annotations

import io
import logging

import pytest

from freqdense import _progress
from freqdense.cli.main import main
from freqdense.data.synthetic import synthetic
from freqdense.engine.data import PreparedDataset, render_ahead
from freqdense.engine.distributed import DistInfo

LOGGER = "freqdense.progress"


@pytest.fixture
def every_update(monkeypatch):
    """No terminal, and a log line at every update (the ~10 s cadence itself is tested in tests/test_progress.py)."""
    monkeypatch.setattr("sys.stderr", io.StringIO())
    monkeypatch.setattr(_progress, "LOG_INTERVAL_S", 0.0)


def _progress_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == LOGGER]


def test_train_renders_the_synthetic_cache_ahead_with_progress(tmp_path, caplog, every_update):
    caplog.set_level(logging.INFO)
    scenes = synthetic(split="train", size=(16, 20), num_samples=3, cache_dir=tmp_path, modalities=["image"])
    dataset = PreparedDataset(scenes)
    assert scenes.uncached() == [0, 1, 2]

    assert render_ahead(dataset, DistInfo()) == 3
    assert scenes.uncached() == []
    assert any("rendering 3 of 3 synthetic train scenes at 16x20" in r.getMessage() for r in caplog.records)
    assert _progress_lines(caplog) == [
        "rendering synthetic train scenes: 1/3 (33%), 0 s elapsed, eta 0 s",
        "rendering synthetic train scenes: 2/3 (67%), 0 s elapsed, eta 0 s",
        "rendering synthetic train scenes: done 3/3 in 0 s",
    ]
    caplog.clear()
    assert render_ahead(dataset, DistInfo()) == 0  # cached: nothing to render, nothing logged
    assert caplog.records == []
    # a second rank renders only its share, silently
    other = synthetic(split="val", size=(16, 20), num_samples=4, cache_dir=tmp_path, modalities=["image"])
    assert render_ahead(PreparedDataset(other), DistInfo(rank=1, world_size=2)) == 2
    assert other.uncached() == [0, 2] and _progress_lines(caplog) == []


def test_analyze_labels_logs_its_progress(tmp_path, caplog, every_update, monkeypatch):
    monkeypatch.setenv("FREQDENSE_CACHE", str(tmp_path / "cache"))
    caplog.set_level(logging.INFO)
    argv = ["analyze", "labels", "--dataset", "synthetic", "--arg", "size=[16, 16]", "--num", "3"]
    assert main([*argv, "--nu-max", "1", "2", "--out", str(tmp_path / "labels")]) == 0
    lines = _progress_lines(caplog)
    assert lines[0].startswith("label spectra: 1/3 (33%), ")
    assert lines[-1].startswith("label spectra: done 3/3 in ")
    assert (tmp_path / "labels" / "labels.png").is_file()


def test_ablate_logs_which_run_of_how_many_and_the_eta(tmp_path, caplog):
    from freqdense.engine import ablate

    def fake_train(cfg, run_dir):
        from freqdense.engine.checkpoint import write_json_atomic

        result = {"step": cfg.schedule.total_steps, "val": {"semantic/miou": 0.5}, "best": None}
        write_json_atomic(run_dir / "metrics.json", result)

    caplog.set_level(logging.INFO, logger="freqdense.engine.ablate")
    ablate.run_ablation(["synthetic/demo_bilinear"], [0, 1, 2], tmp_path, train_fn=fake_train)
    messages = [r.getMessage() for r in caplog.records]
    starts = [m for m in messages if "training into" in m]
    assert [m.split(" ")[0] for m in starts] == ["[1/3]", "[2/3]", "[3/3]"]
    assert "left" not in starts[0]  # no ETA before a run has finished
    assert "about" in starts[1] and "left for 2 runs" in starts[1]
    done = [m for m in messages if "trained in" in m]
    assert len(done) == 3 and "left for 1 run" in done[1] and "left" not in done[2]
