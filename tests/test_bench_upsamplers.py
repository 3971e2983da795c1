"""benchmarks/bench_upsamplers.py: the quick mode runs end to end and prints the table; failing members are listed.

No timing assertions: the numbers depend on the machine. The checks are the table's layout, the values that do not
depend on it (parameters, bilinear's ratio of 1 and its zero FLOPs) and the JSON written next to the table.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from freqdense.nn.upsamplers import build_upsampler

REPO = Path(__file__).resolve().parents[1]
HEADER_WORDS = ["method", "params", "GFLOPs", "fwd ms", "x bil", "fwd+bwd ms", "x bil", "mem fwd MB", "mem f+b MB"]
QUICK_CHANNELS = 16


def _bench_module():
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    from benchmarks import bench_upsamplers

    return bench_upsamplers


def _rows(text: str) -> dict[str, list[str]]:
    lines = text.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("method"))
    return {line.split()[0]: line.split()[1:] for line in lines[header + 1 :] if line.strip()}


@pytest.mark.slow
def test_quick_run_prints_the_table_and_writes_json(tmp_path):
    out_json = tmp_path / "bench.json"
    cmd = [sys.executable, "-m", "benchmarks.bench_upsamplers", "--quick", "--only", "bilinear,nearest,carafe"]
    cmd += ["--repeats", "1", "--json", str(out_json)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, env=env, timeout=600, check=False)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    header = next(line for line in lines if line.startswith("method"))
    pos = 0
    for word in HEADER_WORDS:  # every column, in this order
        pos = header.index(word, pos) + len(word)
    rows = _rows(done.stdout)
    assert list(rows) == ["bilinear", "nearest", "carafe"]
    carafe_params = sum(p.numel() for p in build_upsampler("carafe", QUICK_CHANNELS, QUICK_CHANNELS).parameters())
    expected_params = {"bilinear": 0, "nearest": 0, "carafe": carafe_params}
    for name, cells in rows.items():
        assert len(cells) == 8, (name, cells)  # params, GFLOPs, fwd, ratio, fwd+bwd, ratio, two memory columns
        assert int(cells[0].replace(",", "")) == expected_params[name]
        values = [float(c) for c in cells[1:]]
        assert all(v >= 0 for v in values[:5]), (name, values)
    assert rows["bilinear"][3] == "1.00" and rows["bilinear"][5] == "1.00"
    assert float(rows["bilinear"][1]) == 0.0 and float(rows["carafe"][1]) > 0  # carafe's encoder conv and bmm

    report = json.loads(out_json.read_text())
    assert report["config"]["quick"] is True and report["config"]["hr"] == [1, QUICK_CHANNELS, 32, 64]
    assert list(report["results"]) == ["bilinear", "nearest", "carafe"]
    bil, car = report["results"]["bilinear"], report["results"]["carafe"]
    assert bil["fwd_ratio"] == 1.0 and bil["fwd_bwd_ratio"] == 1.0 and bil["flops"] == 0
    assert car["available"] and car["params"] == carafe_params and car["flops"] > 0
    assert car["fwd_ratio"] == pytest.approx(car["fwd_cpu_s"] / bil["fwd_cpu_s"])
    for row in report["results"].values():
        assert row["peak_fwd_mb"] is not None and row["peak_fwd_bwd_mb"] is not None


def test_members_that_fail_are_listed_as_not_available(monkeypatch, capsys):
    bench = _bench_module()
    real = bench.build_upsampler

    def flaky(name, hr_channels, lr_channels, **kwargs):
        if name == "nearest":
            raise ImportError("No module named 'freqdense.nn.upsamplers.being_written'")
        module = real(name, hr_channels, lr_channels, **kwargs)
        if name == "carafe":  # builds, then fails when called
            module.forward = lambda hr, lr: (_ for _ in ()).throw(RuntimeError("half-written forward"))
        return module

    monkeypatch.setattr(bench, "build_upsampler", flaky)
    report = bench.run(["bilinear", "nearest", "carafe"], repeats=1, quick=True, memory=False)
    text = capsys.readouterr().out
    lines = {line.split()[0]: line for line in text.splitlines()[2:] if line.strip()}
    assert "not available: ImportError: No module named" in lines["nearest"]
    assert "not available: RuntimeError: half-written forward" in lines["carafe"]
    assert report["results"]["nearest"] == {
        "available": False,
        "reason": "ImportError: No module named 'freqdense.nn.upsamplers.being_written'",
    }
    assert report["results"]["bilinear"]["available"] and report["results"]["bilinear"]["fwd_ratio"] == 1.0


def test_only_always_keeps_the_baseline_and_refuses_unknown_names():
    bench = _bench_module()
    assert bench._names("carafe, nearest") == ["bilinear", "carafe", "nearest"]
    assert bench._names("nearest,bilinear") == ["nearest", "bilinear"]
    with pytest.raises(SystemExit):
        bench.main(["--only", "carafee"])
