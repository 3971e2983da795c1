"""Which pixels FAFE's local-aware consistency loss leaves out (C_s > 1), per ``seg_mode``, on the synthetic scenes.

Treats the ground-truth label map as a perfect segmentation (confident logits at the true class; void pixels are
one more region, as a model predicts some class there) and counts, over the validation scenes of the synthetic
FAFE ladder (96x128, 100 scenes), the share of all pixels and of boundary pixels (3x3 window holding another
label) that each ``seg_mode`` masks. Prints a markdown table (docs/methods/fafe.md quotes it)::

    python scripts/experiments/consistency_mask_share.py [--size 96 128] [--num-samples 100]
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F

from freqdense.data.synthetic import synthetic
from freqdense.losses.consistency import SEG_MODES, consistency_edge_mask


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, nargs=2, default=[96, 128], metavar=("H", "W"))
    parser.add_argument("--num-samples", type=int, default=100)
    args = parser.parse_args()
    scenes = synthetic(split="val", size=tuple(args.size), num_samples=args.num_samples, modalities=["semantic"])
    masked = dict.fromkeys(SEG_MODES, 0)
    masked_boundary = dict.fromkeys(SEG_MODES, 0)
    pixels = boundary_pixels = 0
    for i in range(len(scenes)):
        labels = torch.as_tensor(scenes[i]["semantic"]).long()
        labels = torch.where(labels == 255, torch.full_like(labels, 10), labels)  # void: one more region
        classes = int(labels.max()) + 1
        logits = F.one_hot(labels, classes).permute(2, 0, 1)[None].double() * 20.0
        padded = F.pad(labels[None, None].double(), (1, 1, 1, 1), mode="replicate")
        boundary = (F.max_pool2d(padded, 3, 1) != -F.max_pool2d(-padded, 3, 1))[0, 0]
        pixels += labels.numel()
        boundary_pixels += int(boundary.sum())
        for mode in SEG_MODES:
            mask = consistency_edge_mask(logits, seg_mode=mode)[0, 0]
            masked[mode] += int(mask.sum())
            masked_boundary[mode] += int((mask & boundary).sum())
    print(
        f"{len(scenes)} synthetic val scenes at {args.size[0]}x{args.size[1]}: boundary pixels "
        f"{100 * boundary_pixels / pixels:.1f} % of all pixels\n"
    )
    print("| seg_mode | masked, % of all pixels | masked, % of boundary pixels | masked outside boundaries |")
    print("|---|---|---|---|")
    for mode in SEG_MODES:
        outside = masked[mode] - masked_boundary[mode]
        print(
            f"| `{mode}` | {100 * masked[mode] / pixels:.1f} | {100 * masked_boundary[mode] / boundary_pixels:.1f} "
            f"| {outside} |"
        )


if __name__ == "__main__":
    main()
