"""The demo job: train, then compare with trivial predictors and draw the loss curves and a prediction panel."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ..config import ExperimentConfig
from ..tasks import build_task
from .checkpoint import load_model, write_json_atomic
from .data import build_dataset
from .evaluate import evaluate
from .logger import read_jsonl
from .train import train

log = logging.getLogger(__name__)

__all__ = ["ConstantPredictor", "trivial_predictor", "write_prediction_panels", "run_demo"]


class ConstantPredictor(nn.Module):
    """Predicts one class everywhere and/or one depth everywhere: the trivial baselines."""

    def __init__(self, num_classes: int | None, majority_class: int | None, mean_depth: float | None) -> None:
        super().__init__()
        self.num_classes, self.majority_class, self.mean_depth = num_classes, majority_class, mean_depth

    def forward(self, image: Tensor) -> dict[str, Tensor]:
        b, _, h, w = image.shape
        out = {}
        if self.majority_class is not None:
            logits = torch.zeros(b, self.num_classes, h, w, device=image.device)
            logits[:, self.majority_class] = 1.0
            out["semantic"] = logits
        if self.mean_depth is not None:
            out["depth"] = torch.full((b, 1, h, w), self.mean_depth, device=image.device)
        return out


def trivial_predictor(dataset, *, max_samples: int = 200) -> ConstantPredictor:
    """Majority class and mean valid depth of (a prefix of) the training split."""
    num_classes = getattr(dataset, "num_classes", None)
    counts = torch.zeros(num_classes or 1, dtype=torch.float64)
    depth_sum, depth_n = 0.0, 0
    for i in range(min(len(dataset), max_samples)):
        sample = dataset[i]
        if "semantic" in sample and num_classes:
            labels = sample["semantic"]
            labels = labels[labels != 255]
            counts += torch.bincount(labels.flatten(), minlength=num_classes).double()
        if "depth" in sample:
            valid = sample["depth_valid"] if "depth_valid" in sample else sample["depth"] > 0
            depth_sum += float(sample["depth"][valid].double().sum())
            depth_n += int(valid.sum())
    return ConstantPredictor(
        num_classes,
        int(counts.argmax()) if num_classes and counts.sum() > 0 else None,
        depth_sum / depth_n if depth_n else None,
    )


def write_prediction_panels(model: nn.Module, dataset, palette, path: Path, *, num: int = 3) -> Path:
    """Stack ``num`` validation samples, each as rows image | ground truth | prediction per task."""
    import numpy as np
    from PIL import Image

    from ..viz.panels import compose_prediction_panel

    tiles = []
    for i in range(min(num, len(dataset))):
        sample = dataset[i]
        with torch.no_grad():
            out = model(sample["image"][None])
        tiles.append(
            compose_prediction_panel(
                sample["image"],
                sample.get("semantic"),
                out["semantic"][0].argmax(0) if "semantic" in out else None,
                sample.get("depth"),
                out["depth"][0] if "depth" in out else None,
                palette,
            )
        )
    gap = np.full((8, tiles[0].shape[1], 3), 255, dtype=np.uint8)
    stacked = np.concatenate([part for tile in tiles for part in (tile, gap)][:-1], axis=0)
    Image.fromarray(stacked).save(path)
    return path


def run_demo(cfg: ExperimentConfig, run_dir: str | Path) -> dict[str, Any]:
    from ..viz import plot_loss_curves

    run_dir = Path(run_dir)
    result = train(cfg, run_dir)
    model, meta = load_model(run_dir)
    train_set = build_dataset(cfg.data, cfg.data.train_split, train=False)
    val_set = build_dataset(cfg.data, cfg.data.val_split, train=False)
    task = build_task(
        cfg.task, num_classes=getattr(val_set, "num_classes", None), class_names=getattr(val_set, "classes", None)
    )
    loader = torch.utils.data.DataLoader(val_set, batch_size=cfg.data.val_batch_size)
    device = torch.device("cpu")
    best_metrics = evaluate(model, task, loader, device=device)
    trivial = evaluate(trivial_predictor(train_set), task, loader, device=device)

    plot_loss_curves(read_jsonl(run_dir / "log.jsonl"), run_dir / "loss_curves.png")
    write_prediction_panels(model, val_set, meta["palette"], run_dir / "predictions.png")
    summary = {"model": best_metrics, "trivial": trivial, "best": result["best"], "final": result["val"]}
    write_json_atomic(run_dir / "metrics.json", {**result, "best_checkpoint": best_metrics, "trivial": trivial})
    return summary
