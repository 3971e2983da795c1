"""ce_spectrum of a 21-class 513 x 513 map (PASCAL-sized), against plain F.cross_entropy in the same run.

Run: ``python -m benchmarks.bench_ce_spectrum``. Prints median times for float64 (default) and float32 compute,
square and radial shells, and the Parseval check. Target: < 1 s on CPU.
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

from freqdense.spectral import ce_spectrum

C, H, W = 21, 513, 513


def median_time(fn: Callable[[], object], *, repeats: int = 5, warmup: int = 1) -> tuple[float, float]:
    """(median, min) wall time in seconds."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), min(times)


def main(repeats: int = 7) -> dict[str, tuple[float, float]]:
    torch.manual_seed(0)
    coarse = torch.randint(0, C, (1, 1, 17, 17)).float()
    labels = F.interpolate(coarse, size=(H, W), mode="nearest")[:, 0].long()
    labels[:, 200:220] = 255
    logits = F.interpolate(4 * torch.randn(1, C, 33, 33), size=(H, W), mode="bilinear", align_corners=True)
    ref = F.cross_entropy(logits.double(), labels, ignore_index=255, reduction="sum").item()
    rel = abs(ce_spectrum(logits, labels).loss.sum().item() / ref - 1)
    with torch.inference_mode():
        results = {
            "cross_entropy": median_time(
                lambda: F.cross_entropy(logits, labels, ignore_index=255, reduction="sum"), repeats=repeats
            ),
            "ce_spectrum_float64_square": median_time(lambda: ce_spectrum(logits, labels), repeats=repeats),
            "ce_spectrum_float32_square": median_time(
                lambda: ce_spectrum(logits, labels, dtype=torch.float32), repeats=repeats
            ),
            "ce_spectrum_float64_radial": median_time(
                lambda: ce_spectrum(logits, labels, shells="radial"), repeats=repeats
            ),
        }
    out = sys.stdout
    out.write(f"ce_spectrum benchmark: {C} classes, {H}x{W}, CPU, {torch.get_num_threads()} threads\n")
    out.write(f"  |sum_nu L_ce(nu) / CE - 1| = {rel:.1e}\n")
    base = results["cross_entropy"][0]
    for name, (med, best) in results.items():
        ratio = med / base
        out.write(f"  {name:<28} median {med * 1e3:8.1f} ms  min {best * 1e3:8.1f} ms  ({ratio:.1f}x cross_entropy)\n")
    return results


if __name__ == "__main__":
    main()
