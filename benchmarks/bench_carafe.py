"""CARAFE peak memory and time: ``carafe`` (tap accumulation) vs ``carafe_unfold`` (the official fallback's
formulation) vs ``F.interpolate(bilinear)`` of the same tensor (the cheapest up-sampler), in one run.

Run: ``python -m benchmarks.bench_carafe``. Case: features (1, 256, 64, 128) -> (1, 256, 128, 256), k = 5, group 1,
float32, CPU. Targets: >= 3x less peak memory than the unfold formulation; the time ratio to bilinear is reported.

Peak memory: each formulation runs in a fresh subprocess; after the inputs are allocated and one tiny warm-up call
has loaded every kernel, the current resident set size (``/proc/self/statm``) is the baseline, and the peak is
``ru_maxrss`` (``resource.getrusage``, the kernel's high-water mark) after one call, minus that baseline. Large CPU
tensors are mmap-ed and returned to the OS when freed, so this is the extra memory the call needed, output included.
Forward only (inference, ``torch.no_grad``) and forward + backward (kernels and features require grad).
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import time

import torch
import torch.nn.functional as F

from freqdense.ops.reassemble import carafe, carafe_unfold

SHAPE = (1, 256, 64, 128)
K, SCALE = 5, 2
METHODS = ("carafe", "carafe_unfold", "bilinear")


def _run(method: str, x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    if method == "bilinear":
        return F.interpolate(x, scale_factor=SCALE, mode="bilinear", align_corners=False)
    fn = carafe if method == "carafe" else carafe_unfold
    return fn(x, m, K, 1, SCALE)


def _inputs(shape: tuple[int, ...], grad: bool) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    b, _, h, w = shape
    x = torch.randn(shape, generator=gen)
    m = torch.rand(b, K * K, h * SCALE, w * SCALE, generator=gen)
    m = m / m.sum(1, keepdim=True)
    return x.requires_grad_(grad), m.requires_grad_(grad)


def _child(method: str, backward: bool) -> None:
    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", "2")))
    small = _inputs((1, 4, 8, 8), backward)
    out = _run(method, *small)
    if backward:
        out.sum().backward()
    x, m = _inputs(SHAPE, backward)
    page = os.sysconf("SC_PAGE_SIZE")
    with open("/proc/self/statm") as f:
        rss_before = int(f.read().split()[1]) * page
    with torch.set_grad_enabled(backward):
        out = _run(method, x, m)
        if backward:
            out.sum().backward()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # kB on Linux
    sys.stdout.write(json.dumps({"peak_mb": (peak - rss_before) / 2**20}) + "\n")


def _peak_mb(method: str, backward: bool) -> float:
    cmd = [sys.executable, "-m", "benchmarks.bench_carafe", "--child", method, str(int(backward))]
    env = {**os.environ, "BENCH_THREADS": str(torch.get_num_threads())}
    done = subprocess.run(cmd, capture_output=True, text=True, check=True, env=env)
    return json.loads(done.stdout.strip().splitlines()[-1])["peak_mb"]


def _median_times(repeats: int) -> dict[str, float]:
    x, m = _inputs(SHAPE, False)
    times: dict[str, list[float]] = {name: [] for name in METHODS}
    with torch.no_grad():
        for name in METHODS:
            _run(name, x, m)
        for _ in range(repeats):  # interleaved, so load bursts from other processes hit every method
            for name in METHODS:
                start = time.perf_counter()
                _run(name, x, m)
                times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def main(repeats: int = 7) -> dict[str, float]:
    x, m = _inputs((1, 8, 6, 7), False)
    err = (carafe(x.double(), m.double(), K, 1, SCALE) - carafe_unfold(x.double(), m.double(), K, 1, SCALE)).abs().max()
    results: dict[str, float] = {}
    for backward in (False, True):
        for name in METHODS:
            results[f"{name}_{'fwd_bwd' if backward else 'fwd'}_mb"] = _peak_mb(name, backward)
    results.update({f"{name}_s": t for name, t in _median_times(repeats).items()})
    out = sys.stdout
    b, c, h, w = SHAPE
    out_mb = b * c * h * w * SCALE * SCALE * 4 / 2**20
    out.write(
        f"CARAFE benchmark: features {SHAPE} -> ({b}, {c}, {h * SCALE}, {w * SCALE}), k={K}, group=1, float32, CPU, "
        f"{torch.get_num_threads()} threads, torch {torch.__version__}\n"
        f"  max |carafe - carafe_unfold| (float64) = {err:.1e}; output tensor = {out_mb:.0f} MB\n"
        "  peak extra memory per call (fresh subprocess, ru_maxrss - RSS before the call):\n"
    )
    for kind in ("fwd", "fwd_bwd"):
        ours, unf, bil = (results[f"{n}_{kind}_mb"] for n in METHODS)
        out.write(
            f"    {kind:<8} carafe {ours:8.0f} MB   carafe_unfold {unf:8.0f} MB   bilinear {bil:8.0f} MB   "
            f"unfold / carafe = {unf / ours:.1f}x\n"
        )
    ours, unf, bil = (results[f"{n}_s"] for n in METHODS)
    out.write(
        f"  median forward time ({repeats} runs): carafe {ours * 1e3:.0f} ms   carafe_unfold {unf * 1e3:.0f} ms   "
        f"bilinear {bil * 1e3:.1f} ms\n"
        f"  carafe / bilinear = {ours / bil:.1f}x slower;  carafe_unfold / carafe = {unf / ours:.1f}x\n"
    )
    return results


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--child":
        _child(sys.argv[2], bool(int(sys.argv[3])))
    else:
        main()
