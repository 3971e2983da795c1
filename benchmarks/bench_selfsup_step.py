"""Full self-supervised training step (networks + loss + backward): Monodepth2 base vs +Auto-Blur +Ambiguity-Masking.

Same model, same synthetic batch, same run, interleaved repeats (median). Inference is the same network in both
cases (the methods only touch the loss), so its time is printed once. Freq-aware depth claims at most 10 % extra
training time and +0 ms at inference.

    python -m benchmarks.bench_selfsup_step [--batch 8 --height 96 --width 128 --mode M --repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import torch

from freqdense.data.synthetic import synthetic
from freqdense.models import create_model
from freqdense.tasks import SelfSupervisedDepth


def _step(model, task, batch) -> float:
    t0 = time.perf_counter()
    model.zero_grad(set_to_none=True)
    task.training_step(model, batch)["total"].backward()
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--height", type=int, default=96)
    p.add_argument("--width", type=int, default=128)
    p.add_argument("--mode", choices=["M", "S", "MS"], default="M")
    p.add_argument("--base-width", type=int, default=32)
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args(argv)
    torch.manual_seed(0)
    ds = synthetic(
        split="train",
        size=(args.height, args.width),
        num_samples=args.batch,
        modalities=["image", "depth", "stereo", "temporal"],
    )
    batch = torch.utils.data.default_collate([ds[i] for i in range(args.batch)])
    model = create_model(
        "monodepth", backbone_kwargs={"base_width": args.base_width}, pose=args.mode != "S", max_depth=20.0
    ).train()
    tasks = {
        "base": SelfSupervisedDepth(mode=args.mode, max_depth=20.0),
        "+AB+AM": SelfSupervisedDepth(mode=args.mode, max_depth=20.0, auto_blur=True, ambiguity_mask="hard"),
    }
    for task in tasks.values():  # warm-up
        _step(model, task, batch)
    times: dict[str, list[float]] = {k: [] for k in tasks}
    for _ in range(args.repeats):
        for name, task in tasks.items():
            times[name].append(_step(model, task, batch))
    model.eval()
    with torch.no_grad():
        model(batch["image"])
        infer = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            model(batch["image"])
            infer.append(time.perf_counter() - t0)
    base = statistics.median(times["base"])
    out = sys.stdout
    out.write(
        f"self-supervised step, mode {args.mode}, batch {args.batch}, {args.height}x{args.width}, "
        f"ResNet-18 width {args.base_width}, {torch.get_num_threads()} threads, median of {args.repeats}\n"
    )
    for name, ts in times.items():
        med = statistics.median(ts)
        out.write(f"  {name:8s} train step {med * 1e3:8.1f} ms   ratio {med / base:.3f}\n")
    out.write(f"  inference (both; same network) {statistics.median(infer) * 1e3:8.1f} ms\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
