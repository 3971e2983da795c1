"""Training throughput (images/s) of the multi-task baseline on CPU at 96x128 and 192x256.

Baseline in the same run: a bare ResNet-18 segmentation step (1x1 classifier at stride 32, bilinear upsampling:
the reference setting of docs/reference_code.md#cpu-reference-throughput), so the ratio shows what the two HRNet-style
heads cost. Also measures a full step through the engine's data path (synthetic scenes from the on-disk cache, joint
transforms, collation) to show the loader overhead.

Run: ``python -m benchmarks.bench_train_throughput [--steps 8] [--batch 8]``.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import torch
import torch.nn.functional as F
from torch import nn

from freqdense.models import create_model
from freqdense.models.backbones import create_backbone
from freqdense.tasks import DepthEstimation, SemanticSegmentation, Task


class BareSegmenter(nn.Module):
    def __init__(self, num_classes: int, base_width: int) -> None:
        super().__init__()
        self.backbone = create_backbone("resnet18", base_width=base_width, out_indices=(4,))
        self.head = nn.Conv2d(self.backbone.out_channels[-1], num_classes, 1)

    def forward(self, x):
        logits = self.head(self.backbone(x)[-1])
        return {"semantic": F.interpolate(logits, size=x.shape[-2:], mode="bilinear", align_corners=False)}


def time_steps(model, task, batch, steps: int) -> float:
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    model.train()
    times = []
    for i in range(steps + 2):
        t0 = time.perf_counter()
        loss = task.losses(model(batch["image"]), batch)["total"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        if i >= 2:
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def synthetic_batch(size, batch, num_classes):
    h, w = size
    return {
        "image": torch.rand(batch, 3, h, w),
        "semantic": torch.randint(0, num_classes, (batch, h, w)),
        "depth": torch.rand(batch, 1, h, w) * 5 + 0.5,
        "depth_valid": torch.ones(batch, 1, h, w, dtype=torch.bool),
    }


def loader_rate(size, batch: int, n_batches: int) -> float:
    """Batches/s through the engine's dataset wrapper (cache warm) with the demo's train transforms."""
    from freqdense.config.schema import DataConfig
    from freqdense.engine.data import build_dataset

    with tempfile.TemporaryDirectory() as cache:
        cfg = DataConfig(
            args={"size": list(size), "modalities": ["image", "semantic", "depth"], "cache_dir": cache},
            train_args={"num_samples": batch * n_batches},
            batch_size=batch,
            train_transforms={"hflip": True, "scale": [1.0, 1.25], "crop": list(size)},
        )
        ds = build_dataset(cfg, "train", train=True)
        loader = torch.utils.data.DataLoader(ds, batch_size=batch)
        for _ in loader:  # fills the cache
            pass
        t0 = time.perf_counter()
        for _ in loader:
            pass
        return n_batches / (time.perf_counter() - t0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--batch", type=int, default=8)
    args = parser.parse_args()
    torch.manual_seed(0)
    num_classes = 10
    task = Task({"semantic": SemanticSegmentation(num_classes), "depth": DepthEstimation()})
    seg_task = Task({"semantic": SemanticSegmentation(num_classes)})
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {args.batch}, median of {args.steps}")
    print(f"{'model':<46}{'size':>9}{'step [ms]':>11}{'img/s':>8}{'ratio':>8}")
    for size in ((96, 128), (192, 256)):
        batch = synthetic_batch(size, args.batch, num_classes)
        rows = []
        for width in (32, 64):
            bare = time_steps(BareSegmenter(num_classes, width), seg_task, batch, args.steps)
            rows.append((f"bare resnet18 seg step (w={width}, baseline)", bare, 1.0))
            model = create_model(
                "multitask_baseline",
                backbone="resnet18",
                num_classes=num_classes,
                backbone_kwargs={"base_width": width},
            )
            t = time_steps(model, task, batch, args.steps)
            rows.append((f"multitask_baseline resnet18 (w={width})", t, t / bare))
        model = create_model("multitask_baseline", backbone="hrnet_w18_small", num_classes=num_classes)
        t = time_steps(model, task, batch, args.steps)
        rows.append(("multitask_baseline hrnet_w18_small", t, t / rows[-2][1]))
        for name, t, ratio in rows:
            print(f"{name:<46}{f'{size[0]}x{size[1]}':>9}{t * 1e3:>11.1f}{args.batch / t:>8.1f}{ratio:>8.2f}")
    for size in ((96, 128), (192, 256)):
        rate = loader_rate(size, args.batch, 4)
        print(f"data path (cache, transforms, collate) {size[0]}x{size[1]}: {rate * args.batch:.0f} img/s")


if __name__ == "__main__":
    main()
