"""dct2d / idct2d (cached basis matmuls) against torch-dct's FFT-based ``dct_2d(norm="ortho")`` on CPU.

Run: ``python -m benchmarks.bench_dct`` (or ``python benchmarks/bench_dct.py``). Prints the median time of each
implementation on a (8, 64, 60, 80) float32 tensor, forward and round trip, and the speed-up ratio. Target: >= 4x.
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable

import torch

from freqdense.ops.dct import dct2d, idct2d

SHAPE = (8, 64, 60, 80)


def paired_times(
    fn_a: Callable[[], object], fn_b: Callable[[], object], *, repeats: int = 30, warmup: int = 3
) -> tuple[float, float, float]:
    """Median times of ``fn_a`` and ``fn_b`` and the median of per-pair ratios ``b / a``.

    The two run alternately, so a burst of load from other processes hits both sides of a pair.
    """
    for _ in range(warmup):
        fn_a()
        fn_b()
    ta, tb = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        fn_a()
        ta.append(time.perf_counter() - start)
        start = time.perf_counter()
        fn_b()
        tb.append(time.perf_counter() - start)
    return statistics.median(ta), statistics.median(tb), statistics.median(b / a for a, b in zip(ta, tb))


def main(repeats: int = 30) -> dict[str, float]:
    try:
        import torch_dct
    except ImportError:
        sys.stdout.write("torch-dct is not installed (pip install torch-dct); nothing to compare against\n")
        return {}
    torch.manual_seed(0)
    x = torch.randn(*SHAPE)
    ref = torch_dct.dct_2d(x, norm="ortho")
    err = (dct2d(x) - ref).abs().max().item()
    rt_err = (idct2d(dct2d(x)) - x).abs().max().item()
    results: dict[str, float] = {}
    with torch.inference_mode():
        pairs = {
            "forward": (lambda: dct2d(x), lambda: torch_dct.dct_2d(x, norm="ortho")),
            "roundtrip": (
                lambda: idct2d(dct2d(x)),
                lambda: torch_dct.idct_2d(torch_dct.dct_2d(x, norm="ortho"), norm="ortho"),
            ),
        }
        for kind, (ours, theirs) in pairs.items():
            a, b, ratio = paired_times(ours, theirs, repeats=repeats)
            results.update({f"freqdense_{kind}": a, f"torch_dct_{kind}": b, f"{kind}_ratio": ratio})
    out = sys.stdout
    threads = torch.get_num_threads()
    out.write(f"dct2d benchmark: shape {SHAPE} float32, CPU, {threads} threads, torch {torch.__version__}\n")
    out.write(f"  max |dct2d - torch_dct.dct_2d| = {err:.2e}; round-trip error {rt_err:.2e}\n")
    for kind in ("forward", "roundtrip"):
        out.write(
            f"  {kind:<9}  freqdense {results[f'freqdense_{kind}'] * 1e3:8.2f} ms   "
            f"torch-dct {results[f'torch_dct_{kind}'] * 1e3:8.2f} ms   median ratio {results[f'{kind}_ratio']:.1f}x\n"
        )
    return results


if __name__ == "__main__":
    main()
