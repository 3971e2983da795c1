from __future__ import annotations

import csv

from freqdense.engine.logger import RunLogger, read_jsonl


def test_jsonl_and_csv_and_truncate_on_resume(tmp_path):
    log = RunLogger(tmp_path, tensorboard=False)
    for step in (10, 20, 30):
        log.log("train", step, {"loss/total": 1.0 / step, "lr": 0.1})
    log.log("eval", 20, {"semantic/miou": 0.5})
    log.log("train", 40, {"loss/total": 0.01, "lr": 0.1, "new_metric": 3.0})  # a column appears later
    rows = read_jsonl(tmp_path / "log.jsonl")
    assert [r["step"] for r in rows] == [10, 20, 30, 20, 40]
    with open(tmp_path / "train.csv") as f:
        train_rows = list(csv.DictReader(f))
    assert [int(float(r["step"])) for r in train_rows] == [10, 20, 30, 40]
    assert train_rows[-1]["new_metric"] == "3.0" and train_rows[0]["new_metric"] == ""

    resumed = RunLogger(tmp_path, tensorboard=False)
    resumed.truncate(20)  # the killed run had logged steps 30 and 40 after its step-20 checkpoint
    resumed.log("train", 30, {"loss/total": 0.5, "lr": 0.1})
    rows = read_jsonl(tmp_path / "log.jsonl")
    assert [(r["kind"], r["step"]) for r in rows] == [("train", 10), ("train", 20), ("eval", 20), ("train", 30)]
    with open(tmp_path / "train.csv") as f:
        assert [float(r["loss/total"]) for r in csv.DictReader(f)] == [0.1, 0.05, 0.5]


def test_truncated_last_line_is_dropped(tmp_path):
    (tmp_path / "log.jsonl").write_text('{"kind": "train", "step": 1}\n{"kind": "tr')
    assert read_jsonl(tmp_path / "log.jsonl") == [{"kind": "train", "step": 1}]


def test_disabled_logger_writes_nothing(tmp_path):
    RunLogger(tmp_path / "x", enabled=False).log("train", 1, {"a": 1.0})
    assert not (tmp_path / "x").exists()
