"""Auto-Blur and the ambiguity map: freqdense's ops vs the official code's way of computing them, same process.

The baselines below compute the same quantities the way freq-aware-depth's ``AutoBlurModule.forward`` and
``Trainer.extract_ambiguity`` do (written from reading that code, docs/reference_code.md#auto-blur): a full 2-D
11x11 depthwise Gaussian convolution after reflect padding (torchvision's ``GaussianBlur``, which is not usable on
this CPU image, so its kernel and padding are rebuilt here), forward differences padded with ``F.pad``, a 9x9 average
pool and a blend of all pixels; for the ambiguity, left/right/top/bottom differences padded with ``F.pad``, the sign
test with ``any`` over channels and ``torch.sqrt`` of the summed halves. Both sides run on the same batch, interleaved,
and the median of the repeats is reported as ours / baseline (< 1 = freqdense faster). The script also checks that
both sides agree (max |difference|), so the timing compares like with like.

    OMP_NUM_THREADS=1 python -m benchmarks.bench_freq_ops [--batch 8 --height 96 --width 320 --repeats 15]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

from freqdense.ops import ambiguity_map, auto_blur


def baseline_auto_blur(
    image: torch.Tensor, thresh: float = 0.2, area: float = 0.6, pool: int = 9, k: int = 11, sigma: float = 5.0
) -> torch.Tensor:
    """Auto-Blur computed as the official module does (2-D depthwise Gaussian, pad-based gradient, full blend)."""
    c = image.shape[1]
    t = torch.linspace(-(k - 1) / 2, (k - 1) / 2, k, dtype=image.dtype)
    g = torch.exp(-0.5 * (t / sigma) ** 2)
    g = g / g.sum()
    kernel = torch.mm(g[:, None], g[None, :]).expand(c, 1, k, k)
    blurred = F.conv2d(F.pad(image, [k // 2] * 4, mode="reflect"), kernel, groups=c)
    gu = F.pad((image[..., :, :-1] - image[..., :, 1:]).abs().sum(1, True), (0, 1))
    gv = F.pad((image[..., :-1, :] - image[..., 1:, :]).abs().sum(1, True), (0, 0, 0, 1))
    hf = torch.sqrt(gu**2 + gv**2) > thresh
    ratio = F.avg_pool2d(hf.float(), pool, stride=1, padding=(pool - 1) // 2)
    weight = ratio * (ratio > area)
    return blurred * weight + image * (1 - weight)


def baseline_ambiguity(image: torch.Tensor) -> torch.Tensor:
    """The ambiguity map computed as the official ``extract_ambiguity`` does."""
    du = image[..., :, :-1] - image[..., :, 1:]
    dv = image[..., :-1, :] - image[..., 1:, :]
    left, right = F.pad(du, (1, 0)), F.pad(du, (0, 1))
    top, bottom = F.pad(dv, (0, 0, 1, 0)), F.pad(dv, (0, 0, 0, 1))
    same = ((left * right) > 0).any(1, keepdim=True) | ((top * bottom) > 0).any(1, keepdim=True)
    gu = (left.abs() + right.abs()).sum(1, keepdim=True) / 2
    gv = (top.abs() + bottom.abs()).sum(1, keepdim=True) / 2
    return torch.sqrt(gu**2 + gv**2) * same


def _time(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> float:
    t0 = time.perf_counter()
    with torch.no_grad():
        fn(x)
    return time.perf_counter() - t0


def natural_like_batch(b: int, h: int, w: int, *, seed: int = 0) -> torch.Tensor:
    """Smooth regions + textured patches + edges, so that Auto-Blur blurs a realistic share of pixels."""
    gen = torch.Generator().manual_seed(seed)
    low = F.interpolate(torch.rand(b, 3, h // 16, w // 16, generator=gen), size=(h, w), mode="bilinear")
    texture = torch.rand(b, 3, h, w, generator=gen)
    patches = F.interpolate((torch.rand(b, 1, h // 24, w // 24, generator=gen) > 0.6).float(), size=(h, w))
    return (low * (1 - 0.6 * patches) + 0.6 * patches * texture).clamp(0, 1)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--height", type=int, default=96)
    p.add_argument("--width", type=int, default=320)
    p.add_argument("--repeats", type=int, default=15)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    x = natural_like_batch(args.batch, args.height, args.width)
    pairs = {
        "auto_blur": (auto_blur, baseline_auto_blur),
        "ambiguity_map": (ambiguity_map, baseline_ambiguity),
    }
    print(f"input {tuple(x.shape)} float32, {torch.get_num_threads()} thread(s), median of {args.repeats} repeats")
    for name, (ours, base) in pairs.items():
        with torch.no_grad():
            diff = (ours(x) - base(x)).abs().max().item()
        times: dict[str, list[float]] = {"ours": [], "baseline": []}
        for r in range(args.repeats + 2):
            for side, fn in (("ours", ours), ("baseline", base)):
                t = _time(fn, x)
                if r >= 2:  # two warm-up rounds
                    times[side].append(t)
        mo, mb = statistics.median(times["ours"]), statistics.median(times["baseline"])
        print(
            f"{name:<14} ours {1e3 * mo:8.2f} ms   official-style {1e3 * mb:8.2f} ms   ratio ours/official "
            f"{mo / mb:5.3f}   max|diff| {diff:.2e}"
        )


if __name__ == "__main__":
    main()
