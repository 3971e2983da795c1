"""SFP through the training loop (config section ``prune``) and ``freqdense prune`` into a smaller checkpoint."""

from __future__ import annotations

import json

import pytest
import torch

from freqdense.cli.main import main
from freqdense.engine.checkpoint import load_model

pytestmark = pytest.mark.slow


def test_train_with_prune_section_then_physically_prune(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        "model: {name: segmentation_baseline, backbone: resnet18, num_classes: 10, backbone_kwargs: {base_width: 8}}\n"
        f"data: {{dataset: synthetic, args: {{size: [32, 48], cache_dir: '{tmp_path / 'cache'}', "
        "modalities: [image, semantic]}, train_args: {num_samples: 8}, val_args: {num_samples: 4}, batch_size: 4}\n"
        "task: {name: segmentation}\n"
        "schedule: {total_steps: 4}\n"
        "eval: {every: 0}\n"
        "prune: {encoder_rate: 0.5, decoder_rate: 0.25}\n"
    )
    run = tmp_path / "run"
    assert main(["train", str(cfg), "--out", str(run)]) == 0
    model, meta = load_model(run, prefer="latest")
    # The final checkpoint is saved right after an epoch end (2 steps per epoch): the mask is in the weights.
    conv = model.backbone.layer1[0].conv1.weight
    zero_filters = int((conv.flatten(1).norm(dim=1) == 0).sum())
    assert zero_filters == conv.shape[0] // 2

    assert main(["prune", str(run), "--out", str(tmp_path / "small")]) == 0
    small, small_meta = load_model(tmp_path / "small")
    assert small_meta["pruning"]["encoder_rate"] == 0.5
    assert small.backbone.layer1[0].conv1.out_channels == conv.shape[0] - zero_filters
    assert sum(p.numel() for p in small.parameters()) < sum(p.numel() for p in model.parameters())
    x = torch.rand(2, 3, 32, 48)
    with torch.no_grad():
        torch.testing.assert_close(small(x)["semantic"], model(x)["semantic"], rtol=1e-4, atol=1e-4)
    assert main(["eval", str(tmp_path / "small"), "--out", str(tmp_path / "e.json")]) == 0
    assert "semantic/miou" in json.loads((tmp_path / "e.json").read_text())["metrics"]
