"""Training actually learns on synthetic scenes: clearly better than the trivial predictors."""

from __future__ import annotations

import pytest

from freqdense.config.load import build_config
from freqdense.engine.data import build_dataset
from freqdense.engine.demo import trivial_predictor
from freqdense.engine.evaluate import evaluate
from freqdense.engine.train import train
from freqdense.tasks import build_task

pytestmark = pytest.mark.slow


def test_multitask_baseline_beats_trivial_predictors(tmp_path, make_config):
    # The setting must learn depth with a wide margin, not by luck: at 32x48 / 120 steps / lr 2e-3 the depth RMSE ratio
    # to the mean-depth predictor was 0.89-1.01 over seeds 1-4 and moved with the thread count (1.27 m with two idle
    # threads, 1.39 m with one, 1.10 m under load), so the same commit passed on one machine and failed on another.
    # Here (48x64, 200 scenes, 300 steps, lr 4e-3, 32 validation scenes) it is 0.66-0.71 over seeds 1-3.
    raw = make_config(tmp_path / "cache")
    raw["data"]["args"] = {**raw["data"]["args"], "size": [48, 64], "modalities": ["image", "semantic", "depth"]}
    raw["data"]["train_transforms"] = {**raw["data"]["train_transforms"], "crop": [48, 64]}
    raw["data"]["train_args"] = {"num_samples": 200}
    raw["data"]["val_args"] = {"num_samples": 32}
    raw["data"]["batch_size"] = 8
    raw["optim"] = {**raw["optim"], "lr": 4.0e-3}
    raw["schedule"] = {"name": "poly", "total_steps": 300, "warmup_steps": 5}
    raw["eval"] = {"every": 0, "metric": "semantic/miou"}
    raw["model"]["backbone_kwargs"] = {"base_width": 16}
    cfg = build_config(raw)
    result = train(cfg, tmp_path / "run")

    import torch

    val = build_dataset(cfg.data, "val", train=False)
    task = build_task(cfg.task, num_classes=val.num_classes)
    loader = torch.utils.data.DataLoader(val, batch_size=4)
    trivial = evaluate(
        trivial_predictor(build_dataset(cfg.data, "train", train=False)), task, loader, device=torch.device("cpu")
    )
    model = result["val"]
    assert model["semantic/pixel_acc"] > trivial["semantic/pixel_acc"] + 0.15
    assert model["semantic/miou"] > 1.5 * trivial["semantic/miou"]
    assert model["depth/rmse"] < 0.8 * trivial["depth/rmse"]
