"""task.inputs: the sample keys passed positionally to the model, through Task, build_task, evaluate and analyses."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from freqdense.config import build_config
from freqdense.config.schema import TaskConfig
from freqdense.engine.evaluate import evaluate
from freqdense.errors import ConfigError
from freqdense.tasks import SemanticSegmentation, Task, build_task, model_inputs


class TwoInputSeg(nn.Module):
    """Stand-in RGB-D segmenter: logits = conv(image) + conv(depth); records what it was called with."""

    def __init__(self, num_classes: int = 3) -> None:
        super().__init__()
        self.rgb = nn.Conv2d(3, num_classes, 1)
        self.depth = nn.Conv2d(1, num_classes, 1)
        self.calls: list[tuple[torch.Size, ...]] = []

    def forward(self, image: torch.Tensor, depth: torch.Tensor) -> dict[str, torch.Tensor]:
        self.calls.append((image.shape, depth.shape))
        return {"semantic": self.rgb(image) + self.depth(depth)}


def _batch(b: int = 2, h: int = 6, w: int = 8) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    return {
        "image": torch.rand(b, 3, h, w, generator=gen),
        "sensor_depth": torch.rand(b, 1, h, w, generator=gen) * 4,
        "semantic": torch.randint(0, 3, (b, h, w), generator=gen),
    }


def test_model_inputs_orders_keys_and_names_missing_ones():
    batch = _batch()
    got = model_inputs(batch, ["sensor_depth", "image"])
    assert got[0] is batch["sensor_depth"] and got[1] is batch["image"]
    with pytest.raises(ConfigError, match=r"\['hha'\].*'image', 'semantic', 'sensor_depth'"):
        model_inputs(batch, ["image", "hha"])


def test_training_step_feeds_both_inputs_and_the_loss_reaches_both_branches():
    model = TwoInputSeg()
    task = Task({"semantic": SemanticSegmentation(3)}, inputs=("image", "sensor_depth"))
    batch = _batch()
    losses = task.training_step(model, batch)
    expected = F.cross_entropy(model.rgb(batch["image"]) + model.depth(batch["sensor_depth"]), batch["semantic"])
    torch.testing.assert_close(losses["total"], expected)
    losses["total"].backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    assert model.calls[0] == (torch.Size([2, 3, 6, 8]), torch.Size([2, 1, 6, 8]))


def test_default_task_still_calls_model_with_the_image_only():
    seen = []

    def model(*args):
        seen.append(len(args))
        return {"semantic": torch.zeros(args[0].shape[0], 3, *args[0].shape[-2:])}

    task = Task({"semantic": SemanticSegmentation(3)})
    task.training_step(model, _batch())
    assert seen == [1] and task.inputs == ("image",)


@pytest.mark.parametrize("bad", [[], "image", ["image", ""]])
def test_bad_inputs_are_config_errors(bad):
    with pytest.raises(ConfigError, match="task.inputs"):
        Task({"semantic": SemanticSegmentation(3)}, inputs=bad)


def test_build_task_passes_inputs_and_self_supervised_refuses_them():
    cfg = build_config(
        {"model": {"name": "deeplabv3plus"}, "task": {"name": "segmentation", "inputs": ["image", "hha"]}},
        check_model=False,
    )
    assert cfg.task.inputs == ["image", "hha"]
    assert build_task(cfg.task, num_classes=3).inputs == ("image", "hha")
    assert build_task(TaskConfig(name="segmentation"), num_classes=3).inputs == ("image",)
    with pytest.raises(ConfigError, match="self_supervised_depth"):
        build_task(TaskConfig(name="self_supervised_depth", inputs=["image", "hha"]), num_classes=None)


def test_evaluate_uses_task_inputs_and_gives_the_same_miou_as_a_hand_loop():
    torch.manual_seed(0)
    model = TwoInputSeg()
    task = Task({"semantic": SemanticSegmentation(3)}, inputs=("image", "sensor_depth"))
    data = [{k: v[i] for k, v in _batch(4).items()} for i in range(4)]
    metrics = evaluate(model, task, DataLoader(data, batch_size=2), device=torch.device("cpu"))
    # Hand reference: per-class IoU from the argmax of the stand-in's closed form.
    batch = _batch(4)
    with torch.no_grad():
        pred = (model.rgb(batch["image"]) + model.depth(batch["sensor_depth"])).argmax(1)
    ious = []
    for c in range(3):
        inter = ((pred == c) & (batch["semantic"] == c)).sum().item()
        union = ((pred == c) | (batch["semantic"] == c)).sum().item()
        if union:
            ious.append(inter / union)
    assert metrics["semantic/miou"] == pytest.approx(sum(ious) / len(ious))


def test_spectral_analysis_respects_inputs():
    from freqdense.cli.analyze_cmd import compute_truncation

    class Data(torch.utils.data.Dataset):
        def __len__(self):
            return 2

        def __getitem__(self, i):
            return {k: v[i] for k, v in _batch(2, 8, 8).items()}

    class WithDecoder(TwoInputSeg):
        def __init__(self):
            super().__init__()
            self.decoder = nn.Identity()

        def forward(self, image, depth):
            return {"semantic": self.decoder(self.rgb(image) + self.depth(depth))}

    rows = compute_truncation(
        WithDecoder(), Data(), sizes=[], num_classes=3, inputs=("image", "sensor_depth"), attribute="decoder"
    )["rows"]
    assert len(rows) == 1 and 0.0 <= rows[0]["pixel_acc"] <= 1.0
