"""The jobs that finish with a report: `freqdense train` (a failing report only warns) and `freqdense ablate`."""

from __future__ import annotations

import json
import logging

import pytest
import yaml
from report_dirs import tiny_train_config

from freqdense.cli.main import main


@pytest.mark.slow
def test_a_failing_report_never_fails_a_finished_training(tmp_path, monkeypatch, caplog):
    def broken(path):
        raise RuntimeError("boom")

    monkeypatch.setattr("freqdense.report.write.render_report", broken)
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(tiny_train_config(tmp_path / "cache", **{"schedule.total_steps": 2})))
    with caplog.at_level(logging.WARNING):
        assert main(["train", str(config), "--out", str(tmp_path / "run")]) == 0
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["step"] == 2
    assert not (tmp_path / "run" / "report.html").exists()
    warning = next(r for r in caplog.records if "could not write the HTML report" in r.getMessage())
    assert warning.levelno == logging.WARNING and "RuntimeError: boom" in warning.getMessage()


def test_ablate_writes_the_ablation_report(tmp_path, monkeypatch):
    def fake_train(cfg, run_dir):
        seed = cfg.train.seed
        val = {"semantic/miou": 0.1 * (seed + 1) + cfg.optim.lr, "depth/rmse": 1.0 + seed}
        rows = [{"kind": "train", "step": s, "loss/total": 2.0 / s, "lr": cfg.optim.lr} for s in (1, 2)]
        rows.append({"kind": "eval", "step": 2, **val})
        (run_dir / "log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        (run_dir / "metrics.json").write_text(json.dumps({"step": cfg.schedule.total_steps, "val": val}))

    monkeypatch.setattr("freqdense.engine.train.train", fake_train)
    a, b = tmp_path / "base.yaml", tmp_path / "higher_lr.yaml"
    a.write_text(yaml.safe_dump(tiny_train_config(tmp_path / "cache")))
    b.write_text(yaml.safe_dump(tiny_train_config(tmp_path / "cache", **{"optim.lr": 0.01})))
    out = tmp_path / "ablation"
    assert main(["ablate", str(a), str(b), "--seeds", "2", "--out", str(out)]) == 0
    text = (out / "report.html").read_text()
    assert '<table id="ablation-table" class="metrics">' in text
    assert 'data-key="base"' in text and 'data-key="higher_lr"' in text and "0 (reference)" in text
    assert "<summary>higher_lr: curves of 2 run(s)</summary>" in text
