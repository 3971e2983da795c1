"""End to end through the CLI: train, interrupt and resume, evaluate, predict, export, config show, list."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from freqdense.cli.main import main
from freqdense.engine import train as train_module
from freqdense.engine.logger import read_jsonl

pytestmark = pytest.mark.slow


def _train_losses(run_dir):
    return [(r["step"], r["loss/total"]) for r in read_jsonl(run_dir / "log.jsonl") if r["kind"] == "train"]


def test_train_resume_eval_predict_export(tmp_path, write_config, monkeypatch, capsys):
    cfg = write_config()
    run_a, run_b = tmp_path / "a", tmp_path / "b"

    assert main(["train", str(cfg), "--out", str(run_a)]) == 0
    metrics = json.loads((run_a / "metrics.json").read_text())
    assert metrics["step"] == 8 and "semantic/miou" in metrics["val"] and "depth/rmse" in metrics["val"]
    assert (run_a / "config.yaml").is_file() and (run_a / "train.csv").is_file() and (run_a / "eval.csv").is_file()
    assert json.loads((run_a / "run.json").read_text())["git_revision"]
    ckpt_meta = json.loads(next((run_a / "checkpoints").glob("step_*/meta.json")).read_text())
    assert ckpt_meta["depth_unit"] == "m" and len(ckpt_meta["classes"]) == len(ckpt_meta["palette"])

    # Interrupt run B after its step-4 checkpoint, once it has logged step 6, then resume it.
    original_log = train_module.RunLogger.log

    def log_then_die(self, kind, step, values):
        original_log(self, kind, step, values)
        if kind == "train" and step == 6:
            raise KeyboardInterrupt("simulated kill")

    monkeypatch.setattr(train_module.RunLogger, "log", log_then_die)
    with pytest.raises(KeyboardInterrupt):
        main(["train", str(cfg), "--out", str(run_b)])
    monkeypatch.undo()
    assert not (run_b / "metrics.json").exists()
    assert main(["train", str(cfg), "--out", str(run_b)]) == 0
    # Same seed: the resumed loss curve equals the uninterrupted one, step for step.
    assert _train_losses(run_b) == _train_losses(run_a)
    assert json.loads((run_b / "metrics.json").read_text())["val"] == pytest.approx(metrics["val"], nan_ok=True)

    # eval on the best checkpoint reproduces the tracked best value
    capsys.readouterr()
    assert main(["eval", str(run_a), "--out", str(tmp_path / "eval.json")]) == 0
    evaluated = json.loads((tmp_path / "eval.json").read_text())
    assert evaluated["metrics"]["semantic/miou"] == pytest.approx(metrics["best"]["value"], abs=1e-9)
    assert evaluated["step"] == metrics["best"]["step"]

    # predict: images of another size in, PNG + npy out at the original size
    images = tmp_path / "images"
    images.mkdir()
    rng = np.random.default_rng(0)
    for i in range(2):
        Image.fromarray(rng.integers(0, 255, (40, 56, 3), dtype=np.uint8)).save(images / f"im{i}.png")
    assert main(["predict", str(run_a), str(images), "--out", str(tmp_path / "pred")]) == 0
    seg = Image.open(tmp_path / "pred" / "im0_seg.png")
    assert seg.mode == "P" and seg.size == (56, 40)
    assert np.load(tmp_path / "pred" / "im1_depth.npy").shape[-2:] == (40, 56)
    assert (tmp_path / "pred" / "im1_depth.png").is_file()

    # analyze: the CE spectrum of the trained model sums to its cross-entropy (the spectral-analysis paper's Eq. 10)
    out = tmp_path / "spectrum"
    assert main(["analyze", "spectrum", str(run_a), "--num", "3", "--out", str(out)]) == 0
    written = sorted(p.name for p in out.iterdir())
    assert any(name.endswith(".json") for name in written) and any(name.endswith(".png") for name in written)

    # export: ONNX checked against onnxruntime inside the command
    pytest.importorskip("onnxruntime")
    assert main(["export", str(run_a), "--out", str(tmp_path / "model.onnx")]) == 0
    assert (tmp_path / "model.onnx").stat().st_size > 1000


def test_config_show_and_list(write_config, capsys):
    cfg = write_config()
    assert main(["config", "show", str(cfg), "optim.lr=0.5"]) == 0
    out = capsys.readouterr().out
    assert "lr: 0.5" in out and "name: multitask_baseline" in out
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "multitask_baseline" in out and "synthetic" in out and "resnet18" in out


def test_cli_reports_bad_config_key_without_traceback(write_config, caplog):
    cfg = write_config()
    assert main(["config", "show", str(cfg), "optim.lrr=0.5"]) == 1
    assert "Did you mean 'lr'" in caplog.text


def test_wrong_tensor_shape_at_model_entry_is_named():
    import torch

    from freqdense.errors import ShapeError
    from freqdense.models import create_model

    model = create_model("multitask_baseline", backbone="resnet18", num_classes=3, backbone_kwargs={"base_width": 8})
    with pytest.raises(ShapeError, match="image"):
        model(torch.zeros(1, 4, 32, 32))


def test_bf16_autocast_training_runs(tmp_path, write_config):
    cfg = write_config(**{"schedule.total_steps": 2, "eval.every": 0})
    assert main(["train", str(cfg), "--out", str(tmp_path / "bf16"), "train.amp=bf16"]) == 0
    metrics = json.loads((tmp_path / "bf16" / "metrics.json").read_text())
    assert metrics["step"] == 2 and metrics["val"]["depth/rmse"] > 0
