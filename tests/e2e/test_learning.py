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
    raw = make_config(tmp_path / "cache")
    raw["data"]["train_args"] = {"num_samples": 64}
    raw["data"]["val_args"] = {"num_samples": 12}
    raw["data"]["batch_size"] = 8
    raw["schedule"] = {"name": "poly", "total_steps": 120, "warmup_steps": 5}
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
