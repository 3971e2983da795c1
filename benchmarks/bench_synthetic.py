"""Synthetic dataset throughput: raw rendering rate vs loading rate through the on-disk cache.

Usage: python benchmarks/bench_synthetic.py [--num 40] [--size 96 128]

Prints samples/s for (1) rendering every modality from scratch, (2) rendering only image + semantic + depth,
(3) loading every modality from a warm cache (``SyntheticScenes(cache_dir=...)``), and the ratio (3) / (1).
Rates are wall-clock in this process (single-threaded numpy); other load on the machine lowers them.
"""

from __future__ import annotations

import argparse
import tempfile
import time

import torch

from freqdense.data.synthetic import SyntheticScenes
from freqdense.data.synthetic.render import GROUPS, render_group
from freqdense.data.synthetic.scene import generate_scene


def _rate(dataset: SyntheticScenes, num: int) -> float:
    start = time.perf_counter()
    for index in range(num):
        dataset[index]
    return num / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num", type=int, default=40)
    parser.add_argument("--size", type=int, nargs=2, default=(96, 128))
    args = parser.parse_args()
    size = tuple(args.size)
    torch.set_num_threads(1)

    # Per-group rendering time (scene generation included once per sample).
    config = SyntheticScenes(size=size).config
    group_time = dict.fromkeys(("scene",) + GROUPS, 0.0)
    for index in range(args.num):
        t0 = time.perf_counter()
        scene = generate_scene(config, 0, "train", 10_000 + index)
        group_time["scene"] += time.perf_counter() - t0
        for group in GROUPS:
            t0 = time.perf_counter()
            render_group(group, config, size, 0, "train", 10_000 + index, scene=scene)
            group_time[group] += time.perf_counter() - t0

    raw = _rate(SyntheticScenes(split="train", size=size, num_samples=args.num), args.num)
    seg = _rate(
        SyntheticScenes(split="val", size=size, num_samples=args.num, modalities=("image", "semantic", "depth")),
        args.num,
    )
    with tempfile.TemporaryDirectory() as cache:
        cached = SyntheticScenes(split="test", size=size, num_samples=args.num, cache_dir=cache)
        fill = _rate(cached, args.num)
        load = max(_rate(cached, args.num) for _ in range(3))

    print(f"synthetic scenes at {size[0]}x{size[1]}, 3x3 supersampling, {args.num} samples, single process")
    print(
        "  per-sample rendering time by modality group: "
        + ", ".join(f"{k} {1e3 * v / args.num:.1f} ms" for k, v in group_time.items())
    )
    print(f"  raw rendering, all modalities        : {raw:7.1f} samples/s")
    print(f"  raw rendering, image+semantic+depth  : {seg:7.1f} samples/s")
    print(f"  first pass through the cache (render + write): {fill:7.1f} samples/s")
    print(f"  loading through a warm cache, all modalities : {load:7.1f} samples/s")
    print(f"  ratio cache load / raw render (all modalities): {load / raw:.1f}x")


if __name__ == "__main__":
    main()
