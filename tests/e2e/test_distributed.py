"""Two CPU processes under torchrun (gloo): DDP training runs, and its rank-reduced metrics equal a single process."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from freqdense.cli.main import main

pytestmark = pytest.mark.slow


def test_torchrun_two_processes_metrics_equal_single_process(tmp_path, write_config, capsys):
    cfg = write_config()
    run = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc-per-node",
        "2",
        "-m",
        "freqdense",
        "train",
        str(cfg),
        "--out",
        str(run),
    ]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ddp = json.loads((run / "metrics.json").read_text())
    assert ddp["step"] == 8

    # Only rank 0 logs: one row per logged step, not two.
    rows = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    steps = [r["step"] for r in rows if r["kind"] == "train"]
    assert steps == sorted(set(steps))

    # The 2-rank evaluation (each rank half of the validation set, metrics all-reduced) equals one process
    # evaluating the same final weights on the whole set.
    capsys.readouterr()
    assert main(["eval", str(run), "--latest", "--out", str(tmp_path / "single.json")]) == 0
    single = json.loads((tmp_path / "single.json").read_text())["metrics"]
    assert set(single) == set(ddp["val"])
    for key, value in single.items():
        if value is None or ddp["val"][key] is None:
            assert value is None and ddp["val"][key] is None, key
        else:
            assert ddp["val"][key] == pytest.approx(value, rel=1e-6, abs=1e-9), key
