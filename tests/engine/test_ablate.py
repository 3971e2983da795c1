"""`freqdense ablate`: summary statistics, Δm and the markdown table (hand-computed), resume, and a tiny real run."""

from __future__ import annotations

import json
import math

import pytest
import yaml

from freqdense.cli.main import main
from freqdense.engine.ablate import config_slugs, format_markdown, metric_direction, run_ablation, summarise
from freqdense.errors import ConfigError


def _rec(miou: float, rmse: float, seconds: float = 10.0) -> dict:
    return {"metrics": {"semantic/miou": miou, "depth/rmse": rmse, "depth/abs_rel": 0.2}, "seconds": seconds}


ROWS = {
    "base": [_rec(0.40, 0.60, 10.0), _rec(0.42, 0.58, 12.0)],
    "pi": [_rec(0.44, 0.54, 20.0), _rec(0.46, 0.50, 22.0)],
}


def test_summarise_mean_std_improvement_and_delta_m_by_hand():
    s = summarise(ROWS)
    assert s["metrics"] == ["semantic/miou", "depth/rmse"] and s["reference"] == "base"
    base, pi = s["rows"]
    assert base["mean"]["semantic/miou"] == pytest.approx(0.41)
    assert base["std"]["semantic/miou"] == pytest.approx(math.sqrt(2 * 0.01**2 / 1))  # sample std, n - 1 = 1
    assert pi["mean"]["depth/rmse"] == pytest.approx(0.52)
    assert pi["std"]["depth/rmse"] == pytest.approx(math.sqrt(2 * 0.02**2 / 1))
    assert pi["seconds"] == pytest.approx(21.0) and pi["seeds"] == 2
    # improvement: positive = better (mIoU up, RMSE down), as the paper's Table 1
    assert pi["improvement"]["semantic/miou"] == pytest.approx(0.04)
    assert pi["improvement"]["depth/rmse"] == pytest.approx(0.07)
    # Δm = 100/2 * ((0.45 - 0.41)/0.41 + (0.59 - 0.52)/0.59)
    assert pi["delta_m"] == pytest.approx(50 * (0.04 / 0.41 + 0.07 / 0.59))
    assert base["delta_m"] == pytest.approx(0.0) and base["improvement"]["semantic/miou"] == 0.0


def test_summarise_three_seeds_reference_and_metric_choice():
    rows = {
        "a": [_rec(1.0, 1.0), _rec(2.0, 1.0), _rec(4.0, 1.0)],
        "b": [_rec(2.0, 2.0)],
    }
    columns = ["semantic/miou", "depth/rmse", "depth/abs_rel"]
    s = summarise(rows, columns, reference="b", delta_m_conventions=["columns", "mtl"])
    a, b = s["rows"]
    assert a["std"]["semantic/miou"] == pytest.approx(math.sqrt(7 / 3))  # values 1, 2, 4: sample var 7/3
    assert math.isnan(b["std"]["semantic/miou"])  # one seed
    # "columns": depth averages its two metrics first (rmse: -(1-2)/2 = +0.5, abs_rel: 0), then over the two tasks
    seg = (7 / 3 - 2.0) / 2.0
    assert a["delta_m"] == pytest.approx(100 * (seg + (0.5 + 0.0) / 2) / 2)
    assert a["delta_m_by"]["columns"] == a["delta_m"]
    assert s["delta_m_metrics"] == {"semantic": [("miou", True)], "depth": [("rmse", False), ("abs_rel", False)]}
    # "mtl" (Multi-Task-Learning-PyTorch): mIoU and RMSE only
    assert a["delta_m_by"]["mtl"] == pytest.approx(100 * (seg + 0.5) / 2)
    assert s["delta_m_conventions"]["mtl"] == {"semantic": [("miou", True)], "depth": [("rmse", False)]}
    # the default convention is "mtl", also when the table shows more columns
    assert summarise(rows, columns, reference="b")["rows"][0]["delta_m"] == pytest.approx(100 * (seg + 0.5) / 2)


def test_mtl_delta_m_reads_its_metrics_beyond_the_table_columns():
    # columns: abs_rel only; "mtl" still uses mIoU and RMSE from the runs
    s = summarise(ROWS, ["depth/abs_rel"], delta_m_conventions=["mtl"])
    assert s["rows"][1]["delta_m"] == pytest.approx(100 * (0.07 / 0.59))  # depth task only, as in the columns
    with pytest.raises(ConfigError, match="unknown Δm convention 'libmtl'"):
        summarise(ROWS, delta_m_conventions=["libmtl"])
    with pytest.raises(ConfigError, match="use --delta-m columns"):
        summarise({"x": [{"metrics": {"normals/abs_rel": 1.0}}]}, ["normals/abs_rel"], delta_m_conventions=["mtl"])


def test_summarise_errors():
    with pytest.raises(ConfigError, match="reference row 'nope'"):
        summarise(ROWS, reference="nope")
    with pytest.raises(ConfigError, match="has no metric 'depth/delta1'"):
        summarise(ROWS, ["depth/delta1"])
    with pytest.raises(ConfigError, match="direction of metric 'depth/foo'"):
        summarise(ROWS, ["depth/foo"])
    with pytest.raises(ConfigError, match="report none of"):
        summarise({"x": [{"metrics": {"depth/abs_rel": 1.0}}]})
    assert metric_direction("semantic/iou/wall") == ("semantic", "iou/wall", True)


def test_format_markdown_rows():
    text = format_markdown(summarise(ROWS), title="T", command="freqdense ablate a.yaml b.yaml --seeds 2 --out x")
    lines = text.splitlines()
    assert lines[0] == "# T"
    assert lines[2] == "Reproduce: `freqdense ablate a.yaml b.yaml --seeds 2 --out x`"
    assert "| method | seeds | semantic/miou ↑ | depth/rmse ↓ | Δm [%] ↑ (miou, rmse) | s/run |" in lines
    assert "| base | 2 | 0.4100 ± 0.0141 | 0.5900 ± 0.0141 | 0 (reference) | 11 |" in lines
    dm = 50 * (0.04 / 0.41 + 0.07 / 0.59)
    assert f"| pi | 2 | 0.4500 ± 0.0141 (+0.0400) | 0.5200 ± 0.0283 (+0.0700) | +{dm:.2f} | 21 |" in lines


def test_config_slugs():
    assert config_slugs(["x/nyud/mti_fafe.yaml", "x/cityscapes/mti_fafe.yaml", "y/pad.yaml"]) == [
        "nyud-mti_fafe",
        "cityscapes-mti_fafe",
        "pad",
    ]
    with pytest.raises(ConfigError, match="more than once"):
        config_slugs(["a.yaml", "a.yaml"])


def _tiny(cache, **task) -> dict:
    return {
        "model": {
            "name": "multitask_baseline",
            "backbone": "resnet18",
            "num_classes": 10,
            "backbone_kwargs": {"base_width": 4},
        },
        "data": {
            "dataset": "synthetic",
            "args": {"size": [32, 32], "cache_dir": str(cache), "modalities": ["image", "semantic", "depth"]},
            "train_args": {"num_samples": 4},
            "val_args": {"num_samples": 2},
            "batch_size": 2,
            "val_batch_size": 2,
        },
        "task": {"name": "multitask", "max_depth": 20.0, **task},
        "optim": {"name": "adamw", "lr": 1.0e-3},
        "schedule": {"name": "constant", "total_steps": 2},
        "eval": {"every": 0},
        "train": {"seed": 0, "log_every": 1, "device": "cpu"},
    }


def _fake_train(calls):
    def train(cfg, run_dir):
        calls.append((run_dir.parent.name, cfg.train.seed))
        (run_dir / "config.yaml").write_text(yaml.safe_dump(__import__("freqdense").config.config_to_dict(cfg)))
        seed = cfg.train.seed
        val = {"semantic/miou": 0.1 * (seed + 1), "depth/rmse": 1.0 + seed, "semantic/iou/x": None}
        (run_dir / "metrics.json").write_text(json.dumps({"step": cfg.schedule.total_steps, "val": val}))

    return train


def test_run_ablation_reuses_finished_runs_and_refuses_other_configs(tmp_path):
    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    a.write_text(yaml.safe_dump(_tiny(tmp_path / "cache")))
    b.write_text(yaml.safe_dump(_tiny(tmp_path / "cache", consistency={"weight": 0.1})))
    calls: list = []
    rows = run_ablation([a, b], [0, 1], tmp_path / "out", train_fn=_fake_train(calls))
    assert calls == [("a", 0), ("a", 1), ("b", 0), ("b", 1)]
    assert [r["metrics"]["depth/rmse"] for r in rows["b"]] == [1.0, 2.0]
    assert math.isnan(rows["a"][0]["metrics"]["semantic/iou/x"])
    record = json.loads((tmp_path / "out" / "a" / "seed1" / "ablate.json").read_text())
    assert record["finished"] and record["seed"] == 1 and record["seconds"] >= 0
    # again: nothing is trained with resume; an error without it; an error when the config changed
    again = run_ablation([a, b], [0, 1], tmp_path / "out", resume=True, train_fn=_fake_train(calls))
    assert len(calls) == 4 and not any(r["trained"] for rs in again.values() for r in rs)
    with pytest.raises(ConfigError, match="--resume"):
        run_ablation([a], [0], tmp_path / "out", train_fn=_fake_train(calls))
    with pytest.raises(ConfigError, match="differs from the config"):
        run_ablation([a], [0], tmp_path / "out", overrides=["optim.lr=0.5"], resume=True, train_fn=_fake_train(calls))
    # a new seed trains only that seed
    run_ablation([a], [0, 2], tmp_path / "out", resume=True, train_fn=_fake_train(calls))
    assert calls[4:] == [("a", 2)]


def test_cli_end_to_end_two_configs_two_seeds_and_resume(tmp_path, monkeypatch):
    base, lc = tmp_path / "base.yaml", tmp_path / "base_lc.yaml"
    base.write_text(yaml.safe_dump(_tiny(tmp_path / "cache")))
    lc.write_text(yaml.safe_dump(_tiny(tmp_path / "cache", consistency={"weight": 0.1})))
    out, report = tmp_path / "runs", tmp_path / "docs" / "table.md"
    argv = ["ablate", str(base), str(lc), "--seeds", "2", "--out", str(out), "--report", str(report)]
    argv += ["--set", "train.log_every=1"]
    assert main(argv) == 0
    text = report.read_text()
    assert text == (out / "ablation.md").read_text()
    assert f"Reproduce: `freqdense ablate {base} {lc} --seeds 2 --out {out}" in text
    rows = [line for line in text.splitlines() if line.startswith("| base")]
    assert len(rows) == 2 and rows[0].startswith("| base | 2 | ") and rows[1].startswith("| base_lc | 2 | ")
    assert "0 (reference)" in rows[0]
    raw = json.loads(report.with_suffix(".json").read_text())
    assert raw["seeds"] == [0, 1] and set(raw["runs"]) == {"base", "base_lc"}
    assert all(r["trained"] for rs in raw["runs"].values() for r in rs)
    logged = [json.loads(x) for x in (out / "base_lc" / "seed1" / "log.jsonl").read_text().splitlines()]
    assert any("loss/consistency" in row for row in logged)  # the consistency term is trained and logged
    assert not any(
        "loss/consistency" in json.loads(x) for x in (out / "base" / "seed0" / "log.jsonl").read_text().splitlines()
    )
    # mean of the two seeds, as in the table
    mious = [r["metrics"]["semantic/miou"] for r in raw["runs"]["base_lc"]]
    assert raw["summary"]["rows"][1]["mean"]["semantic/miou"] == pytest.approx(sum(mious) / 2)

    def no_training(*args, **kwargs):
        raise AssertionError("a finished run was trained again")

    monkeypatch.setattr("freqdense.engine.train.train", no_training)
    assert main([*argv, "--resume"]) == 0
    raw2 = json.loads(report.with_suffix(".json").read_text())
    assert not any(r["trained"] for rs in raw2["runs"].values() for r in rs)
    assert raw2["summary"] == raw["summary"]
