"""Overhead of Auto-Blur + Ambiguity-Masking on the self-supervised depth loss (Freq-aware depth claims <= 10 %).

Times the loss side of one training step (forward + backward into the disparities): B images, 4 scales whose
disparities are upsampled to full resolution, 2 source frames + identity auto-masking, photometric + smoothness
terms, with the baseline loss and with ``PhotometricLoss(auto_blur=..., ambiguity_mask=...)``, on the same batch in
the same run (interleaved repeats, median). Networks are not included: the full-step ratio is smaller, since the
added work is the same while the denominator grows by the encoder/decoder/pose passes.

    python benchmarks/bench_selfsup_overhead.py [--height 96 --width 320 --batch 4 --repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from freqdense.losses import AmbiguityMask, AutoBlur, PhotometricLoss, smoothness_loss
from freqdense.ops import backproject, project


def _step(loss_fn: PhotometricLoss, batch: dict, disps: list[torch.Tensor]) -> float:
    t0 = time.perf_counter()
    target, sources = batch["target"], batch["sources"]
    images = loss_fn.prepare(target, sources)
    h, w = target.shape[-2:]
    total = 0.0
    for s, disp in enumerate(disps):
        up = F.interpolate(disp, (h, w), mode="bilinear", align_corners=False)
        depth = 1.0 / (0.01 + 9.99 * up)
        points = backproject(depth, batch["inv_K"])
        grids = [project(points, batch["K"], T, size=(h, w)) for T in batch["poses"]]
        total = total + loss_fn(images, grids=grids).loss
        small = F.interpolate(target, disp.shape[-2:], mode="area")
        total = total + 1e-3 / 2**s * smoothness_loss(disp, small)
    (total / len(disps)).backward()
    if target.is_cuda:
        torch.cuda.synchronize()
    return time.perf_counter() - t0


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--height", type=int, default=96)
    p.add_argument("--width", type=int, default=320)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = p.parse_args()
    dev = torch.device(args.device)
    torch.manual_seed(0)
    b, h, w = args.batch, args.height, args.width
    K = torch.tensor([[0.58 * w, 0, 0.5 * w], [0, 1.92 * h, 0.5 * h], [0, 0, 1.0]]).expand(b, 3, 3).to(dev)
    poses = []
    for tx in (0.05, -0.05):
        T = torch.eye(4).repeat(b, 1, 1)
        T[:, 2, 3] = tx
        poses.append(T.to(dev))
    batch = {
        "target": torch.rand(b, 3, h, w, device=dev),
        "sources": [torch.rand(b, 3, h, w, device=dev) for _ in range(2)],
        "K": K,
        "inv_K": torch.linalg.inv(K),
        "poses": poses,
    }
    logits = [torch.randn(b, 1, h >> s, w >> s, device=dev, requires_grad=True) for s in range(4)]
    variants = {
        "baseline": PhotometricLoss(),
        "auto_blur+ambiguity": PhotometricLoss(auto_blur=AutoBlur(), ambiguity_mask=AmbiguityMask()),
        "auto_blur": PhotometricLoss(auto_blur=AutoBlur()),
        "ambiguity": PhotometricLoss(ambiguity_mask=AmbiguityMask()),
    }
    times: dict[str, list[float]] = {k: [] for k in variants}
    for r in range(args.repeats + 1):
        for name, fn in variants.items():
            t = _step(fn, batch, [torch.sigmoid(x) for x in logits])
            if r > 0:  # first round is warm-up
                times[name].append(t)
    base = statistics.median(times["baseline"])
    print(f"loss forward+backward, B={b}, {h}x{w}, 4 scales, 2 sources + identity, {dev}, median of {args.repeats}")
    for name, ts in times.items():
        med = statistics.median(ts)
        print(f"{name:<22}{1e3 * med:9.1f} ms   ratio {med / base:6.3f}")


if __name__ == "__main__":
    main()
