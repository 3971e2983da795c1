"""Sweeps on a CPU: N runs at once with one thread each (``spectral_synthetic.py --jobs N train.num_threads=1``)
against one run at a time with N threads, in one benchmark run.

Case: the relation experiment's training step (``dan`` and ``deeplabv3plus``, ResNet-50 at 1/8 width, OS16, 10
classes, batch 8 of 48x64, SGD with momentum), random inputs. Each measurement is a fresh process that times
``--steps`` steps after two warm-up steps; ``jobs`` mode starts N such processes together, each with one thread,
``threads`` mode one process with N threads. Printed: images/s of the whole machine in each mode and their ratio
(> 1: parallel runs finish a sweep sooner).

Run: ``python -m benchmarks.bench_sweep_parallel [--workers 2] [--steps 40] [--models dan deeplabv3plus]``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

import torch
import torch.nn.functional as F

from freqdense.models import create_model

BATCH, SIZE, CLASSES = 8, (48, 64), 10


def worker(model_name: str, threads: int, steps: int) -> float:
    """Images per second of this process's training steps (after two warm-up steps)."""
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = create_model(
        model_name, backbone="resnet50", output_stride=16, num_classes=CLASSES, backbone_kwargs={"base_width": 8}
    )
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    x = torch.rand(BATCH, 3, *SIZE)
    y = torch.randint(0, CLASSES, (BATCH, *SIZE))
    for i in range(steps + 2):
        if i == 2:
            start = time.perf_counter()
        loss = F.cross_entropy(model(x)["semantic"], y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return steps * BATCH / (time.perf_counter() - start)


def measure(model_name: str, mode: str, workers: int, steps: int) -> float:
    """Images per second of the whole machine: ``workers`` one-thread processes together, or one process with
    ``workers`` threads."""
    count, threads = (workers, 1) if mode == "jobs" else (1, workers)
    cmd = [sys.executable, "-m", "benchmarks.bench_sweep_parallel", "--worker", model_name, str(threads), str(steps)]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True) for _ in range(count)]
    rates = []
    for proc in procs:
        out, _ = proc.communicate()
        if proc.returncode != 0:
            raise SystemExit(f"worker {' '.join(cmd)} failed with exit {proc.returncode}")
        rates.append(float(json.loads(out.strip().splitlines()[-1])["images_per_s"]))
    return sum(rates)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--workers", type=int, default=2, help="processes (jobs mode) = threads (threads mode)")
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--models", nargs="+", default=["dan", "deeplabv3plus"])
    p.add_argument("--worker", nargs=3, metavar=("MODEL", "THREADS", "STEPS"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        name, threads, steps = args.worker
        print(json.dumps({"images_per_s": worker(name, int(threads), int(steps))}))
        return 0
    print(f"{args.workers} workers, {args.steps} timed steps each, batch {BATCH} of {SIZE[0]}x{SIZE[1]}, torch "
          f"{torch.__version__}")  # fmt: skip
    print("| model | one run, N threads (img/s) | N runs, 1 thread each (img/s) | ratio |")
    print("|---|---|---|---|")
    for name in args.models:
        threads = measure(name, "threads", args.workers, args.steps)
        jobs = measure(name, "jobs", args.workers, args.steps)
        print(f"| {name} | {threads:.0f} | {jobs:.0f} | {jobs / threads:.2f}x |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
