"""CARAFE peak memory and time: ``carafe`` (sub-pixel phases at input resolution) vs ``carafe_unfold`` (the official
fallback's formulation) vs ``taps_at_output`` (the previous ``carafe``: taps accumulated at output resolution,
defined here as a baseline) vs ``F.interpolate(bilinear)`` of the same tensor (the cheapest up-sampler), in one run.

Run: ``python -m benchmarks.bench_carafe``. Case: features (1, 256, 64, 128) -> (1, 256, 128, 256), k = 5, group 1,
float32, CPU. Targets: >= 3x less peak memory than the unfold formulation; the time ratio to bilinear is reported.

Peak memory: each formulation runs in a fresh subprocess; after the inputs are allocated and one tiny warm-up call
has loaded every kernel, the peak-RSS mark is reset and the current resident set size is the baseline; the peak is
the mark (``VmHWM``) after one call, minus that baseline (``benchmarks._memory``). Large CPU
tensors are mmap-ed and returned to the OS when freed, so this is the extra memory the call needed, output included.
Forward only (inference, ``torch.no_grad``) and forward + backward (kernels and features require grad).

Time: methods alternate, median of the repeats, as wall-clock and as process CPU time (the CPU-time ratios are the
steadier ones on a shared machine). Forward + backward time is measured for ``carafe``, ``taps_at_output`` and
bilinear only (the unfold formulation's backward takes seconds).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time

import torch
import torch.nn.functional as F

from benchmarks._memory import current_rss, peak_rss, reset_peak_rss
from freqdense.ops.reassemble import carafe, carafe_unfold

SHAPE = (1, 256, 64, 128)
K, SCALE = 5, 2
METHODS = ("carafe", "carafe_unfold", "taps_at_output", "bilinear")
TIMED_BACKWARD = ("carafe", "taps_at_output", "bilinear")


def taps_at_output(features: torch.Tensor, kernels: torch.Tensor, kernel_size: int, scale: int) -> torch.Tensor:
    """The previous ``carafe`` (zero padding, group 1): each of the k^2 taps is multiplied at output resolution,
    broadcasting the shifted input over the s x s phases (innermost dimension of size s); autograd backward.
    """
    b, c, h, w = features.shape
    k, s = kernel_size, scale
    x = F.pad(features, (k // 2,) * 4)
    m = kernels.reshape(b, k * k, h, s, w, s)
    out = x.new_zeros(b, c, h, s, w, s)
    for t in range(k * k):
        dy, dx = divmod(t, k)
        out.addcmul_(x[:, :, dy : dy + h, None, dx : dx + w, None], m[:, None, t])
    return out.reshape(b, c, h * s, w * s)


def _run(method: str, x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    if method == "bilinear":
        return F.interpolate(x, scale_factor=SCALE, mode="bilinear", align_corners=False)
    if method == "taps_at_output":
        return taps_at_output(x, m, K, SCALE)
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
    reset_peak_rss()
    rss_before = current_rss()
    with torch.set_grad_enabled(backward):
        out = _run(method, x, m)
        if backward:
            out.sum().backward()
    sys.stdout.write(json.dumps({"peak_mb": (peak_rss() - rss_before) / 2**20}) + "\n")


def _peak_mb(method: str, backward: bool) -> float:
    cmd = [sys.executable, "-m", "benchmarks.bench_carafe", "--child", method, str(int(backward))]
    env = {**os.environ, "BENCH_THREADS": str(torch.get_num_threads())}
    done = subprocess.run(cmd, capture_output=True, text=True, check=True, env=env)
    return json.loads(done.stdout.strip().splitlines()[-1])["peak_mb"]


def _median_times(repeats: int, backward: bool, methods: tuple[str, ...]) -> dict[str, tuple[float, float]]:
    """Median (wall, CPU) seconds per method; methods alternate so load bursts from other processes hit all."""
    x, m = _inputs(SHAPE, backward)

    def call(name: str) -> None:
        out = _run(name, x, m)
        if backward:
            out.backward(torch.ones_like(out))

    times: dict[str, list[tuple[float, float]]] = {name: [] for name in methods}
    with torch.set_grad_enabled(backward):
        for name in methods:
            call(name)
        for _ in range(repeats):
            for name in methods:
                wall, cpu = time.perf_counter(), time.process_time()
                call(name)
                times[name].append((time.perf_counter() - wall, time.process_time() - cpu))
    return {n: (statistics.median(t[0] for t in v), statistics.median(t[1] for t in v)) for n, v in times.items()}


def main(repeats: int = 7) -> dict[str, float]:
    x, m = _inputs((1, 8, 6, 7), False)
    err = (carafe(x.double(), m.double(), K, 1, SCALE) - carafe_unfold(x.double(), m.double(), K, 1, SCALE)).abs().max()
    results: dict[str, float] = {}
    for backward in (False, True):
        for name in METHODS:
            results[f"{name}_{'fwd_bwd' if backward else 'fwd'}_mb"] = _peak_mb(name, backward)
    bwd_repeats = max(3, repeats // 2)
    for kind, timed in (
        ("", _median_times(repeats, False, METHODS)),
        ("fwd_bwd_", _median_times(bwd_repeats, True, TIMED_BACKWARD)),
    ):
        for name, (wall, cpu) in timed.items():
            results[f"{name}_{kind}s"], results[f"{name}_{kind}cpu_s"] = wall, cpu
    out = sys.stdout
    b, c, h, w = SHAPE
    out_mb = b * c * h * w * SCALE * SCALE * 4 / 2**20
    out.write(
        f"CARAFE benchmark: features {SHAPE} -> ({b}, {c}, {h * SCALE}, {w * SCALE}), k={K}, group=1, float32, CPU, "
        f"{torch.get_num_threads()} threads, torch {torch.__version__}\n"
        f"  max |carafe - carafe_unfold| (float64) = {err:.1e}; output tensor = {out_mb:.0f} MB\n"
        "  peak extra memory per call (fresh subprocess, VmHWM - RSS before the call):\n"
    )
    for kind in ("fwd", "fwd_bwd"):
        ours, unf, old, bil = (results[f"{n}_{kind}_mb"] for n in METHODS)
        out.write(
            f"    {kind:<8} carafe {ours:6.0f} MB   carafe_unfold {unf:6.0f} MB   taps_at_output {old:6.0f} MB   "
            f"bilinear {bil:5.0f} MB   unfold / carafe = {unf / ours:.1f}x\n"
        )
    out.write(f"  median time ({repeats} forward runs, {bwd_repeats} forward + backward runs), wall / CPU:\n")
    for name in METHODS:
        wall, cpu = results[f"{name}_s"] * 1e3, results[f"{name}_cpu_s"] * 1e3
        line = f"    {name:<15} fwd {wall:7.1f} / {cpu:7.1f} ms"
        if name in TIMED_BACKWARD:
            wall, cpu = results[f"{name}_fwd_bwd_s"] * 1e3, results[f"{name}_fwd_bwd_cpu_s"] * 1e3
            line += f"   fwd+bwd {wall:7.1f} / {cpu:7.1f} ms"
        out.write(line + "\n")
    for suffix, label in (("s", "wall"), ("cpu_s", "CPU")):
        ours, unf, old, bil = (results[f"{n}_{suffix}"] for n in METHODS)
        out.write(
            f"  forward ({label}): carafe / bilinear = {ours / bil:.1f}x; taps_at_output / bilinear = {old / bil:.1f}x;"
            f"  taps_at_output / carafe = {old / ours:.1f}x;  carafe_unfold / carafe = {unf / ours:.1f}x\n"
        )
        ours, old, bil = (results[f"{n}_fwd_bwd_{suffix}"] for n in TIMED_BACKWARD)
        out.write(
            f"  fwd+bwd ({label}): carafe / bilinear = {ours / bil:.1f}x; taps_at_output / carafe = {old / ours:.1f}x\n"
        )
    return results


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--child":
        _child(sys.argv[2], bool(int(sys.argv[3])))
    else:
        main()
