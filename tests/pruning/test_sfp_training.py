"""SFP through the training loop (config section ``prune``) and ``freqdense prune`` into a smaller checkpoint."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn as nn

import freqdense.engine.train as train_module
from freqdense.cli.main import main
from freqdense.engine.checkpoint import load_model
from freqdense.pruning import SoftFilterPruner, encoder_decoder_scopes, num_pruned_filters

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


def _target_zero_counts(model: nn.Module) -> dict[str, tuple[int, int]]:
    """conv name -> (zero filters now, floor(n * rate)) for every conv SFP selects (the config's scopes)."""
    rates = SoftFilterPruner(model, scopes=encoder_decoder_scopes(model, 0.5, 0.25)).rates  # selects, zeroes nothing
    out = {}
    for name, rate in rates.items():
        w = model.get_submodule(name).weight.detach()
        out[name] = (int(w.flatten(1).eq(0).all(1).sum()), num_pruned_filters(w.shape[0], rate))
    return out


def test_mask_at_the_end_and_before_every_evaluation_when_steps_are_not_whole_epochs(tmp_path, monkeypatch):
    # 8 samples / batch 4 = 2 steps per epoch; 5 steps end mid-epoch, and the evaluation at step 3 is mid-epoch.
    # Between masks the zeroed filters regrow (SGD momentum, and the gradient through BN into a residual sum), so
    # without a mask at the end / before evaluating, the final weights and both evaluations would be unmasked.
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        "model: {name: segmentation_baseline, backbone: resnet18, num_classes: 10, backbone_kwargs: {base_width: 8}}\n"
        f"data: {{dataset: synthetic, args: {{size: [32, 48], cache_dir: '{tmp_path / 'cache'}', "
        "modalities: [image, semantic]}, train_args: {num_samples: 8}, val_args: {num_samples: 4}, batch_size: 4}\n"
        "task: {name: segmentation}\n"
        "schedule: {total_steps: 5}\n"
        "eval: {every: 3}\n"
        "prune: {encoder_rate: 0.5, decoder_rate: 0.25}\n"
    )
    seen = []
    real_evaluate = train_module.evaluate

    def recording_evaluate(net, *args, **kwargs):
        seen.append(_target_zero_counts(getattr(net, "module", net)))
        return real_evaluate(net, *args, **kwargs)

    monkeypatch.setattr(train_module, "evaluate", recording_evaluate)
    run = tmp_path / "run"
    assert main(["train", str(cfg), "--out", str(run)]) == 0
    assert len(seen) == 2  # steps 3 and 5
    for counts in seen:
        assert counts and all(zero == target for zero, target in counts.values()), counts
    model, _ = load_model(run, prefer="latest")
    final = _target_zero_counts(model)
    assert all(zero == target for zero, target in final.values()), final
    # the regrowth the masks undo is real: one optimisation step from the final weights un-zeroes filters
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    model.train()
    model(torch.rand(2, 3, 32, 48))["semantic"].square().mean().backward()
    opt.step()
    assert any(zero < target for zero, target in _target_zero_counts(model).values())
