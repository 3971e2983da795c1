"""Fairness statistics of the self-supervised depth ablation on the synthetic video (Freq-aware depth, Table 4 style).

Frequency-aware self-supervised depth (Chen et al., "Frequency-Aware Self-Supervised Monocular Depth Estimation",
WACV 2023) argues that the photometric loss is unfair to ambiguous pixels: at the *true* geometry they still carry a
larger loss. This script measures that on the validation scenes of an ablation config, and summarises the runs of
``freqdense ablate`` over that config's rows:

1. **Data**: for every video source (t-1, t+1), the source is warped into the target with the true depth and the
   true pose; per pixel the photometric error is ``0.85 (1 - SSIM) / 2 + 0.15 L1`` and a pixel is *ambiguous* when
   ``max(A(target), A(source) warped) >= delta`` (the Ambiguity-Masking rule, ``freqdense.ops.ambiguity_map``).
   Pixels without ground-truth depth (windows) or warped from outside the source are left out. Printed: the
   ambiguous share of the pixels, the ratio of their mean loss to the others', and their share of the summed loss.
   Also printed: the AbsRel of a **constant depth** on the same scenes under the config's evaluation protocol
   (median scaling makes it the ground truth's median everywhere), the floor a trained model must beat.
2. **Runs** (``--runs DIR`` = the ``--out`` of ``freqdense ablate``): per row and seed, the last logged training
   step's photometric loss, the share of pixels where a warped source beat the identity (automask) and the share
   the ambiguity mask removed, plus the final evaluation's AbsRel.

    python scripts/experiments/selfsup_fairness_synthetic.py \\
        --config src/freqdense/configs/synthetic/selfsup_ablation_m/base.yaml --runs runs/selfsup_ablation_m

Prints markdown (docs/results/selfsup_ablation_synthetic_m.md quotes it).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import torch

from freqdense.config import load_config
from freqdense.engine.data import build_dataset
from freqdense.losses.ambiguity_mask import warp_with_grid
from freqdense.losses.photometric import photometric_error
from freqdense.ops import backproject, project
from freqdense.ops.ambiguity import ambiguity_map
from freqdense.tasks import build_task

SOURCES = {"t-1": ("image_prev", "pose_prev"), "t+1": ("image_next", "pose_next")}


def data_fairness(config: str, num_samples: int | None, delta: float) -> list[str]:
    cfg = load_config(config)
    data = cfg.data
    if num_samples is not None:
        data = dataclasses.replace(data, val_args={**data.val_args, "num_samples": num_samples})
    dataset = build_dataset(data, data.val_split, train=False)
    metric = build_task(cfg.task, num_classes=None).make_metrics().metrics["depth"]
    sums = {name: {"amb": 0.0, "other": 0.0, "n_amb": 0, "n_other": 0} for name in SOURCES}
    for i in range(len(dataset)):
        sample = torch.utils.data.default_collate([dataset[i]])
        image, depth = sample["image"].double(), sample["depth"].double()
        K = sample["intrinsics"].double()
        valid_depth = depth > 0
        points = backproject(torch.where(valid_depth, depth, torch.ones_like(depth)), torch.linalg.inv(K))
        target_amb = ambiguity_map(image)
        metric.update(torch.ones_like(sample["depth"]), sample["depth"], sample.get("depth_valid"))
        for name, (image_key, pose_key) in SOURCES.items():
            source = sample[image_key].double()
            grid = project(points, K, sample[pose_key].double(), size=tuple(image.shape[-2:]))
            inside = (grid.abs() <= 1).all(dim=-1)[:, None]
            warped = warp_with_grid(source, grid)
            error = photometric_error(warped, image)
            ambiguous = torch.maximum(target_amb, warp_with_grid(ambiguity_map(source), grid)) >= delta
            keep = valid_depth & inside
            s = sums[name]
            s["amb"] += float(error[keep & ambiguous].sum())
            s["other"] += float(error[keep & ~ambiguous].sum())
            s["n_amb"] += int((keep & ambiguous).sum())
            s["n_other"] += int((keep & ~ambiguous).sum())
    lines = [
        "| source | ambiguous share of pixels | mean loss ambiguous / other | ambiguous share of the summed loss |",
        "|---|---:|---:|---:|",
    ]
    for name, s in sums.items():
        share = s["n_amb"] / max(s["n_amb"] + s["n_other"], 1)
        ratio = (s["amb"] / max(s["n_amb"], 1)) / max(s["other"] / max(s["n_other"], 1), 1e-12)
        loss_share = s["amb"] / max(s["amb"] + s["other"], 1e-12)
        lines.append(f"| {name} | {share:.3f} | {ratio:.2f} | {loss_share:.3f} |")
    constant = metric.compute()["abs_rel"]
    lines.append(
        f"\n({len(dataset)} validation scenes of `{config}`, delta {delta}.) A constant depth scores AbsRel "
        f"{constant:.4f} on them under the config's evaluation protocol."
    )
    return lines


def run_statistics(runs: Path) -> list[str]:
    lines = [
        "| row | seed | step | photometric loss | automask share | masked by AM | AbsRel |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for log in sorted(runs.glob("*/seed*/log.jsonl")):
        rows = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
        train = [r for r in rows if r.get("kind") == "train"]
        evals = [r for r in rows if r.get("kind") == "eval"]
        if not train:
            continue
        last = train[-1]
        masked = last.get("loss/ambiguity_mask_mean")
        masked_text = f"{1.0 - masked:.3f}" if masked is not None else "-"
        abs_rel = f"{evals[-1]['depth/abs_rel']:.4f}" if evals else "-"
        lines.append(
            f"| {log.parent.parent.name} | {log.parent.name.removeprefix('seed')} | {last['step']} | "
            f"{last['loss/photometric']:.4f} | {last.get('loss/automask_fraction', float('nan')):.3f} | "
            f"{masked_text} | {abs_rel} |"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, help="ablation config whose validation scenes are measured")
    parser.add_argument("--runs", type=Path, default=None, help="the --out directory of freqdense ablate")
    parser.add_argument("--num-samples", type=int, default=None, help="override data.val_args.num_samples")
    parser.add_argument("--delta", type=float, default=0.3, help="Ambiguity-Masking threshold")
    args = parser.parse_args()
    torch.set_num_threads(1)
    print("\n".join(data_fairness(args.config, args.num_samples, args.delta)))
    if args.runs is not None:
        print()
        print("\n".join(run_statistics(args.runs)))


if __name__ == "__main__":
    main()
