"""scripts/experiments/spectral_synthetic.py: the convergence criteria on hand-made histories, and one tiny sweep end
to end (pixel-wise, its doubled schedule, one block-wise run, evaluate-only truncation, report, resume)."""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path

import pytest
import yaml

from freqdense.config import config_to_dict
from freqdense.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = ROOT / "scripts" / "experiments"


@pytest.fixture(scope="module")
def script():
    sys.path.insert(0, str(SCRIPTS))  # the script imports its sibling _report
    try:
        spec = importlib.util.spec_from_file_location("spectral_synthetic", SCRIPTS / "spectral_synthetic.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.path.remove(str(SCRIPTS))


def _history(mious):
    return [{"step": 100 * (i + 1), "miou": m} for i, m in enumerate(mious)]


def test_spread_criterion(script):
    # last 4: 0.300, 0.302, 0.304, 0.3045 -> spread 0.0045 < 0.005
    c = script.converged(_history([0.1, 0.2, 0.300, 0.302, 0.304, 0.3045]), window=4, tol=0.005)
    assert c["met"] and c["spread"] == pytest.approx(0.0045)
    c = script.converged(_history([0.1, 0.2, 0.300, 0.302, 0.304, 0.3065]), window=4, tol=0.005)
    assert not c["met"] and c["spread"] == pytest.approx(0.0065)
    short = script.converged(_history([0.3, 0.3]), window=4, tol=0.005)  # too few evaluations: never met
    assert math.isnan(short["spread"]) and not short["met"]


def test_doubling_criterion(script):
    base = {"miou": 0.300}
    d = script.doubling(base, {"miou": 0.309, "history": _history([0.2, 0.309])}, tol=0.01)
    assert d["met"] and d["gain"] == pytest.approx(0.009) and d["steps"] == 200
    d = script.doubling(base, {"miou": 0.311, "history": _history([0.311])}, tol=0.01)
    assert not d["met"] and d["gain"] == pytest.approx(0.011)
    d = script.doubling(base, {"miou": 0.290, "history": []}, tol=0.01)  # a loss also counts as converged
    assert d["met"] and d["steps"] is None


def test_scenes_sentence_names_whole_splits(script):
    # a config without num_samples uses its whole split; the page must not print "None"
    sentence = script.scenes_sentence({"train": 40, "val": None, "train_in_config": None})
    assert sentence == (
        "Trained on the first 40 scenes of the synthetic training split (`--train-samples`; the config uses the "
        "whole split), evaluated on the whole validation split."
    )
    assert "None" not in sentence


@pytest.mark.slow
def test_tiny_sweep_end_to_end_and_resume(script, tmp_path):
    out, report, plot = tmp_path / "runs", tmp_path / "page.md", tmp_path / "relation.png"
    argv = [
        "--out", str(out), "--seeds", "0", "--nu-max", "4", "--void", "keep", "--grids", "7",
        "--steps", "4", "--eval-every", "2", "--doubling-check", "--val-samples", "4", "--train-samples", "8",
        "--report", str(report), "--plot", str(plot),
        "data.args.size=[48,64]", "data.train_transforms.crop=[48,64]", "data.batch_size=2",
        "data.val_batch_size=2", "train.num_threads=1",
    ]  # fmt: skip
    assert script.main(argv) == 0
    results = json.loads((out / "results.json").read_text())
    families = sorted(r["family"] for r in results["runs"])
    assert families == ["blockwise", "pixelwise", "truncation_eval"]
    pixel = next(r for r in results["runs"] if r["family"] == "pixelwise")
    assert [h["step"] for h in pixel["history"]] == [2, 4]
    assert 0.0 < pixel["train_seconds"] < 600.0  # run.json's first start to the final checkpoint
    assert set(pixel["r_model"]) == {"3", "4"}  # the block-wise nu and the 7x7 grid's (7 - 1) // 2
    # Eq. 14 is |sum of the CE components above nu| / |CE|; components can be negative, so R need not be monotone
    assert all(math.isfinite(r) and r >= 0.0 for r in pixel["r_model"].values())
    (doubled,) = results["doubled"]
    assert doubled["family"] == "pixelwise_x2" and [h["step"] for h in doubled["history"]] == [4, 8]
    check = results["convergence"]["0"]["doubling"]
    assert check["steps"] == 8 and check["gain"] == pytest.approx(doubled["miou"] - pixel["miou"])
    page = report.read_text()
    assert "**Not a result**" in page and "the validation set was subsampled" in page
    # the training-set size is a setting the page names, not a caveat
    assert (
        "Trained on the first 8 scenes of the synthetic training split (`--train-samples`; the config has 600), "
        "evaluated on 4 validation scenes." in page
    )
    assert results["scenes"] == {"train": 8, "val": 4, "train_in_config": 600}
    assert f"doubling the schedule to 8 steps gives mIoU {doubled['miou']:.4f}" in page
    assert plot.stat().st_size > 0

    # A second call trains nothing: every run's record is reused and the numbers are the same.
    stamps = {p: p.stat().st_mtime_ns for p in out.glob("*/record.json")}
    assert len(stamps) == 3
    assert script.main(argv) == 0
    assert {p: p.stat().st_mtime_ns for p in out.glob("*/record.json")} == stamps
    assert json.loads((out / "results.json").read_text())["runs"] == results["runs"]

    # A record.json that describes another run (a copied run directory) is refused, not reported as this run.
    (out / "pixelwise_seed0" / "record.json").write_text((out / "pixelwise_x2_seed0" / "record.json").read_text())
    with pytest.raises(ConfigError, match=r"pixelwise_seed0/record\.json holds the records of another run"):
        script.main(argv)
    # An empty record (e.g. made by hand while copying a run) is named, not a bare JSON error.
    (out / "pixelwise_seed0" / "record.json").write_text("")
    with pytest.raises(ConfigError, match=r"pixelwise_seed0/record\.json is not a run record .*delete it"):
        script.main(argv)


@pytest.mark.slow
def test_only_trains_the_named_runs_and_writes_no_report(script, tmp_path, capsys):
    out, report = tmp_path / "runs", tmp_path / "page.md"
    argv = [
        "--out", str(out), "--seeds", "0", "--nu-max", "4", "--void", "keep", "fill", "--grids", "7",
        "--steps", "2", "--doubling-check", "--val-samples", "2", "--train-samples", "4",
        "--report", str(report), "--plot", str(tmp_path / "relation.png"),
        "data.args.size=[48,64]", "data.train_transforms.crop=[48,64]", "data.batch_size=2",
        "data.val_batch_size=2", "train.num_threads=1",
    ]  # fmt: skip
    with pytest.raises(SystemExit):
        script.main([*argv, "--only", "blockwise4_keep_seed0", "blockwise5_keep_seed0"])
    err = capsys.readouterr().err
    assert "--only blockwise5_keep_seed0: not a run of this sweep" in err
    assert "pixelwise_seed0 pixelwise_x2_seed0 blockwise4_keep_seed0 blockwise4_fill_seed0" in err
    assert not (out / "blockwise4_keep_seed0").exists()  # nothing trained when a name is wrong

    assert script.main([*argv, "--only", "blockwise4_fill_seed0"]) == 0
    assert sorted(p.parent.name for p in out.glob("*/record.json")) == ["blockwise4_fill_seed0"]
    (record,) = json.loads((out / "blockwise4_fill_seed0" / "record.json").read_text())
    assert record["family"] == "blockwise" and record["void"] == "fill" and record["nu_max"] == 4
    assert not report.exists() and not (out / "results.json").exists()
    # A finished run is never reported under other settings: another --steps into the same --out is refused before
    # anything trains, naming the run and the key.
    with pytest.raises(
        ConfigError, match=r"blockwise4_fill_seed0 was trained with another config.*schedule\.total_steps"
    ):
        script.main([*argv, "--steps", "3", "--only", "pixelwise_seed0"])
    assert not (out / "pixelwise_seed0").exists()


@pytest.mark.slow
def test_jobs_trains_runs_in_child_processes_then_reports(script, tmp_path):
    out, report = tmp_path / "runs", tmp_path / "page.md"
    argv = [
        "--out", str(out), "--seeds", "0", "--nu-max", "4", "--void", "keep", "fill", "--grids", "7",
        "--steps", "2", "--val-samples", "2", "--train-samples", "4", "--jobs", "2",
        "--report", str(report), "--plot", str(tmp_path / "relation.png"), "--results", str(tmp_path / "r.json"),
        "data.args.size=[48,64]", "data.train_transforms.crop=[48,64]", "data.batch_size=2",
        "data.val_batch_size=2", "train.num_threads=1",
    ]  # fmt: skip
    # A child that fails (here: a file stands where its run directory goes) fails the sweep with its log named; the
    # other runs finish and are kept.
    stray = out / "blockwise4_fill_seed0"
    out.mkdir()
    stray.write_text("not a run directory")
    assert script.main(argv) == 1
    assert sorted(p.parent.name for p in out.glob("*/record.json")) == ["blockwise4_keep_seed0", "pixelwise_seed0"]
    assert "blockwise4_fill_seed0" in (out / "logs" / "blockwise4_fill_seed0.log").read_text()
    assert not report.exists()

    stray.unlink()
    kept = {p: p.stat().st_mtime_ns for p in out.glob("*/record.json")}
    assert script.main(argv) == 0  # trains only the failed run, then writes the report
    assert {p: p.stat().st_mtime_ns for p in out.glob("*/record.json") if p in kept} == kept
    assert not (out / "results.json").exists()  # --results names the file (pages that share an --out)
    results = json.loads((tmp_path / "r.json").read_text())
    assert sorted((r["family"], r.get("void")) for r in results["runs"]) == [
        ("blockwise", "fill"), ("blockwise", "keep"), ("pixelwise", None), ("truncation_eval", None),
    ]  # fmt: skip
    page = report.read_text()
    assert "--jobs 2" in page and f"Results JSON (every record): `{tmp_path / 'r.json'}`" in page


def test_check_reusable_refuses_another_config_but_not_other_threads(script, tmp_path):
    from _runs import check_reusable  # the scripts' shared reuse check (spectral, detection, up-sampler sweeps)

    cfg = script.build_run_config(script.CONFIG, 0, ["schedule.total_steps=40"], [])
    run_dir = tmp_path / "pixelwise_seed0"
    run_dir.mkdir()
    with pytest.raises(ConfigError, match=r"holds results but no config\.yaml"):
        check_reusable(run_dir, cfg)
    (run_dir / "config.yaml").write_text(yaml.safe_dump(config_to_dict(cfg)))
    check_reusable(run_dir, cfg)
    check_reusable(
        run_dir, script.build_run_config(script.CONFIG, 0, ["schedule.total_steps=40", "train.num_threads=3"], [])
    )
    other = script.build_run_config(script.CONFIG, 1, ["schedule.total_steps=80"], [])
    with pytest.raises(ConfigError, match=r"schedule\.total_steps: 40 there, 80 here, train\.seed: 0 there, 1 here"):
        check_reusable(run_dir, other)
