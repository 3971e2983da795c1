"""Every member of the feature up-sampler family at a realistic decoder size: time, memory, parameters, FLOPs.

Run: ``python -m benchmarks.bench_upsamplers [--threads N] [--repeats 7] [--only carafe,fade] [--json out.json]``
(``--quick``: 16 channels at 32 x 64, for tests). Each member of ``freqdense.nn.upsamplers.UPSAMPLERS`` is built with
``build_upsampler(name, 256, 256)`` and called as ``module(hr, lr)`` with hr (1, 256, 128, 256) and lr
(1, 256, 64, 128); the whole call is timed. Bilinear is always measured too: every ratio is to bilinear in the same
run. A member whose module cannot be imported, built or run is listed as "not available" with the reason.

Time: median over ``--repeats`` rounds of process CPU time (``time.process_time``; wall-clock in the JSON), with
the members alternating inside each round so that load from other processes hits all of them alike. Forward:
``eval()`` under ``torch.no_grad``. Forward + backward: ``train()``, hr and lr require grad, and the backward of
a fixed random weighting of every output. glibc's mmap threshold is pinned (``_pin_malloc``), so that whether a
32 MB output pays its page faults does not change from run to run: here it always does, as in ``bench_carafe``.

Peak memory: as in ``bench_carafe``, each member runs in a fresh subprocess; after the module, the inputs and a tiny
warm-up call, the peak-RSS mark is reset to the current RSS (``/proc/self/clear_refs``), the resident set size
(``/proc/self/statm``) is the baseline and the peak is the mark (``VmHWM``) after one call, minus that baseline: the
extra memory the call needed, outputs included (``ru_maxrss``, which ``bench_carafe`` reads, would also hold the
parent's peak: ``subprocess`` starts children by vfork + exec). Forward (no grad) and forward + backward (with the
output-gradient weights allocated before the baseline).

FLOPs: one forward under ``torch.utils.flop_counter.FlopCounterMode`` (2 x multiply-adds of convolutions,
transposed convolutions and matrix products: ``mm``, ``bmm``, ``baddbmm``, ``addmm``, ``conv``). Not counted:
elementwise work (additions, products, softmax, normalisation, activations), pooling, ``F.interpolate``,
``grid_sample``, pixel shuffle, and CARAFE reassembly when it runs as a tap loop (while compiling or off the CPU);
on the CPU ``carafe`` runs its reassembly as ``bmm``, so it is counted for every member that uses it. Bilinear and
nearest therefore show 0.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from benchmarks._memory import current_rss, peak_rss, reset_peak_rss
from freqdense.nn.upsamplers import UPSAMPLERS, build_upsampler, check_upsampler

BASELINE = "bilinear"
FULL = {"channels": 256, "hr": (128, 256), "lr": (64, 128)}
QUICK = {"channels": 16, "hr": (32, 64), "lr": (16, 32)}
HEADER = (
    f"{'method':<17}{'params':>10}{'GFLOPs':>9}{'fwd ms':>9}{'x bil':>7}{'fwd+bwd ms':>12}{'x bil':>7}"
    f"{'mem fwd MB':>12}{'mem f+b MB':>12}"
)


def _pin_malloc() -> bool:
    """Fix glibc's mmap threshold at its 32 MiB cap (trim threshold 64 MiB) instead of letting it adapt.

    Large CPU tensors served by ``mmap`` are fresh pages, and their first touch (page faults) costs about as much
    as a bilinear up-sampling of them (about 10 ms per 32 MiB output here); the adaptive threshold decides per
    allocation whether that happens, depending on what earlier members freed, so bilinear's time swung between
    13 and 32 ms from run to run. Pinned, every tensor of 32 MiB or more is fresh memory in every run (glibc's
    steady state for them) and smaller ones come from the heap. Returns False where ``mallopt`` is missing."""
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3
    return bool(mallopt(m_mmap_threshold, 32 << 20)) and bool(mallopt(m_trim_threshold, 64 << 20))


def _sizes(quick: bool) -> dict[str, Any]:
    return QUICK if quick else FULL


def _inputs(size: dict[str, Any], grad: bool, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    c = size["channels"]
    hr = torch.randn(1, c, *size["hr"], generator=gen).requires_grad_(grad)
    lr = torch.randn(1, c, *size["lr"], generator=gen).requires_grad_(grad)
    return hr, lr


def _outputs(out: Any) -> list[torch.Tensor]:
    """Every tensor a member returns (``UpsamplerOutput``, FreqFusion's three fields, or a plain tuple)."""
    items = out if isinstance(out, tuple | list) else (out,)
    return [t for t in items if isinstance(t, torch.Tensor)]


def _build(name: str, channels: int) -> nn.Module:
    torch.manual_seed(0)
    return build_upsampler(name, channels, channels)


def _reason(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0] if text else ''}"[:160]


class _Member:
    """One member, its inputs and fixed output-gradient weights; ``forward()`` and ``forward_backward()`` time it."""

    def __init__(self, name: str, size: dict[str, Any]) -> None:
        self.name = name
        self.module = _build(name, size["channels"])
        self.x = _inputs(size, False)
        self.xg = _inputs(size, True)
        self.module.train()
        outs = _outputs(self.module(*self.xg))
        gen = torch.Generator().manual_seed(1)
        self.weights = [torch.randn(t.shape, generator=gen) for t in outs]

    def forward(self) -> None:
        self.module.eval()
        with torch.no_grad():
            self.module(*self.x)

    def forward_backward(self) -> None:
        self.module.train()
        pairs = [(t, g) for t, g in zip(_outputs(self.module(*self.xg)), self.weights) if t.requires_grad]
        torch.autograd.backward([t for t, _ in pairs], [g for _, g in pairs])
        self.module.zero_grad(set_to_none=True)
        for t in self.xg:
            t.grad = None


def _alternating_times(
    members: dict[str, _Member], call: Callable[[_Member], None], repeats: int
) -> tuple[dict[str, tuple[float, float]], dict[str, str]]:
    """Median (CPU, wall) seconds per member over ``repeats`` rounds, members alternating within each round."""
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in members}
    failed: dict[str, str] = {}
    for name, member in members.items():  # warm-up (and first-touch of every kernel)
        try:
            call(member)
        except Exception as err:  # noqa: BLE001 - a member in progress must not stop the table
            failed[name] = _reason(err)
    for _ in range(repeats):
        for name, member in members.items():
            if name in failed:
                continue
            cpu, wall = time.process_time(), time.perf_counter()
            call(member)
            times[name].append((time.process_time() - cpu, time.perf_counter() - wall))
    medians = {
        name: (statistics.median(t[0] for t in ts), statistics.median(t[1] for t in ts))
        for name, ts in times.items()
        if ts
    }
    return medians, failed


def _flops(member: _Member) -> int:
    member.module.eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        member.module(*member.x)
    return int(counter.get_total_flops())


def _child(name: str, backward: bool, quick: bool) -> None:
    """Peak extra memory of one call of ``name`` in this fresh process (see the module docstring)."""
    _pin_malloc()
    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", "1")))
    size = _sizes(quick)
    module = _build(name, size["channels"]).train(backward)
    tiny = {"channels": size["channels"], "hr": (8, 16), "lr": (4, 8)}
    with torch.set_grad_enabled(backward):
        outs = _outputs(module(*_inputs(tiny, backward)))
        if backward:
            torch.autograd.backward([t for t in outs if t.requires_grad], [torch.ones_like(t) for t in outs])
    module.zero_grad(set_to_none=True)
    hr, lr = _inputs(size, backward)
    # Output-gradient weights of the full-size outputs (channels from the warm-up), allocated before the baseline.
    gen = torch.Generator().manual_seed(1)
    weights = [torch.randn(t.shape[0], t.shape[1], *size["hr"], generator=gen) for t in outs] if backward else []
    reset_peak_rss()
    rss_before = current_rss()
    with torch.set_grad_enabled(backward):
        outs = _outputs(module(hr, lr))
        if backward:
            pairs = [(t, g) for t, g in zip(outs, weights) if t.requires_grad]
            torch.autograd.backward([t for t, _ in pairs], [g for _, g in pairs])
    sys.stdout.write(json.dumps({"peak_mb": (peak_rss() - rss_before) / 2**20}) + "\n")


def _peak_mb(name: str, backward: bool, quick: bool) -> float | str:
    cmd = [sys.executable, "-m", "benchmarks.bench_upsamplers", "--child", name, str(int(backward))]
    cmd += ["--quick"] if quick else []
    env = {**os.environ, "BENCH_THREADS": str(torch.get_num_threads())}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if done.returncode:
        lines = done.stderr.strip().splitlines()
        return f"memory child failed: {lines[-1] if lines else done.returncode}"[:160]
    return float(json.loads(done.stdout.strip().splitlines()[-1])["peak_mb"])


def _names(only: str | None) -> list[str]:
    if not only:
        return list(UPSAMPLERS)
    names = [check_upsampler(n.strip()) for n in only.split(",") if n.strip()]
    return names if BASELINE in names else [BASELINE, *names]


def _fmt(value: float | None, spec: str, width: int) -> str:
    return f"{value:>{width}{spec}}" if value is not None else f"{'-':>{width}}"


def run(names: Sequence[str], repeats: int, quick: bool, memory: bool = True) -> dict[str, Any]:
    """Measure ``names`` (bilinear first); returns the JSON-able results and prints the table."""
    pinned = _pin_malloc()
    size = _sizes(quick)
    results: dict[str, dict[str, Any]] = {}
    members: dict[str, _Member] = {}
    for name in names:
        try:
            members[name] = _Member(name, size)
        except Exception as err:  # noqa: BLE001 - members being written may fail to import, build or run
            results[name] = {"available": False, "reason": _reason(err)}
    fwd, fwd_failed = _alternating_times(members, _Member.forward, repeats)
    fb, fb_failed = _alternating_times(members, _Member.forward_backward, repeats)
    for name, member in members.items():
        reason = fwd_failed.get(name) or fb_failed.get(name)
        if reason:
            results[name] = {"available": False, "reason": reason}
            continue
        row: dict[str, Any] = {
            "available": True,
            "params": sum(p.numel() for p in member.module.parameters()),
            "flops": _flops(member),
            "fwd_cpu_s": fwd[name][0],
            "fwd_wall_s": fwd[name][1],
            "fwd_bwd_cpu_s": fb[name][0],
            "fwd_bwd_wall_s": fb[name][1],
        }
        if memory:
            for key, backward in (("peak_fwd_mb", False), ("peak_fwd_bwd_mb", True)):
                peak = _peak_mb(name, backward, quick)
                row[key] = peak if isinstance(peak, float) else None
                if isinstance(peak, str):
                    row.setdefault("notes", []).append(peak)
        results[name] = row
    base = results.get(BASELINE, {})
    for row in results.values():
        if row.get("available") and base.get("available"):
            row["fwd_ratio"] = row["fwd_cpu_s"] / base["fwd_cpu_s"]
            row["fwd_bwd_ratio"] = row["fwd_bwd_cpu_s"] / base["fwd_bwd_cpu_s"]
    _print_table(names, results, size, repeats)
    return {
        "config": {
            "channels": size["channels"],
            "hr": [1, size["channels"], *size["hr"]],
            "lr": [1, size["channels"], *size["lr"]],
            "threads": torch.get_num_threads(),
            "repeats": repeats,
            "torch": torch.__version__,
            "quick": quick,
            "malloc_pinned": pinned,
        },
        "results": {name: results[name] for name in names},
    }


def _print_table(names: Sequence[str], results: dict[str, dict[str, Any]], size: dict[str, Any], repeats: int) -> None:
    c, (h, w), (lh, lw) = size["channels"], size["hr"], size["lr"]
    out = sys.stdout
    out.write(
        f"Up-sampler family: hr (1, {c}, {h}, {w}), lr (1, {c}, {lh}, {lw}), float32, CPU, "
        f"{torch.get_num_threads()} threads, torch {torch.__version__}; median CPU time of {repeats} alternating "
        f"rounds, ratios to {BASELINE} in this run\n{HEADER}\n"
    )
    for name in names:
        row = results[name]
        if not row.get("available"):
            out.write(f"{name:<17}not available: {row['reason']}\n")
            continue
        out.write(
            f"{name:<17}{row['params']:>10,}{row['flops'] / 1e9:>9.2f}{row['fwd_cpu_s'] * 1e3:>9.1f}"
            f"{_fmt(row.get('fwd_ratio'), '.2f', 7)}{row['fwd_bwd_cpu_s'] * 1e3:>12.1f}"
            f"{_fmt(row.get('fwd_bwd_ratio'), '.2f', 7)}{_fmt(row.get('peak_fwd_mb'), '.1f', 12)}"
            f"{_fmt(row.get('peak_fwd_bwd_mb'), '.1f', 12)}\n"
        )
        for note in row.get("notes", []):
            out.write(f"{'':<17}{note}\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's default)")
    parser.add_argument("--repeats", type=int, default=None, help="timed rounds (default 7, 2 with --quick)")
    parser.add_argument("--only", default=None, help="comma-separated member names (bilinear is always added)")
    parser.add_argument("--json", default=None, help="also write the results to this JSON file")
    parser.add_argument("--quick", action="store_true", help="16 channels at 32 x 64 (for tests)")
    parser.add_argument("--child", nargs=2, metavar=("NAME", "BACKWARD"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        _child(args.child[0], bool(int(args.child[1])), args.quick)
        return 0
    if args.threads:
        torch.set_num_threads(args.threads)
    repeats = args.repeats if args.repeats is not None else (2 if args.quick else 7)
    if repeats < 1:
        parser.error(f"--repeats must be >= 1, got {repeats}")
    try:
        names = _names(args.only)
    except ValueError as err:
        parser.error(str(err))
    report = run(names, repeats, args.quick)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)
            f.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
