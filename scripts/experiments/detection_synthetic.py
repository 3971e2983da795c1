"""FCOS with a bilinear-FPN vs a FreqFusion-FPN neck on the synthetic scenes (issue 20), several seeds.

FreqFusion (Chen et al., "Frequency-aware Feature Fusion for Dense Image Prediction", TPAMI 2024) replaces every
top-down upsampling of the detection FPN. This script trains the shipped configs
``synthetic/detection/fcos_r18_{bilinear,freqfusion}`` (identical but for ``model.neck_fusion``) with
``train.seed=S`` through :func:`freqdense.engine.train.train` and reads the final evaluation on the validation
scenes: COCO box AP (AP@[.5:.95]), AP50, AP75 and AP for small / medium / large objects (COCO's area ranges; at
96x128 no object reaches 96^2 px, so APl is n/a). Finished runs are reused (their ``detection_metrics.json``);
every run shares one scene cache under ``--out``.

Trivial baseline (no learning, one row): for each class, the mean training box of that class (the mean of the
x1, y1, x2, y2 of all training boxes of the class) is predicted in every validation image, scored by the class's
share of the training boxes. It measures how much AP a detector gets from where objects usually are and how
frequent each class is, without looking at the image.

Run (2 necks x 3 seeds = 6 runs of 600 steps; 16 min in all on the 2-core development machine):

    python scripts/experiments/detection_synthetic.py --seeds 0 1 2

``--steps N`` / ``--val-samples N`` shorten every run (the page then says it is not a result). The table (mean ±
sample std over seeds) goes to ``docs/results/detection_synthetic.md`` (``--report``) with the git revision, the
command and the machine.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import shlex
import statistics
import sys
import time
from pathlib import Path

import torch
from _report import git_revision, machine, mean_std
from _runs import check_reusable

from freqdense.config import config_to_dict, load_config, parse_overrides
from freqdense.config.load import build_config, merge_dicts
from freqdense.engine.data import build_dataset
from freqdense.engine.train import train
from freqdense.metrics.detection import DetectionMetric

NECKS = {"bilinear": "bilinear FPN", "freqfusion": "FreqFusion FPN"}
KEYS = ("ap", "ap50", "ap75", "ap_small", "ap_medium", "ap_large")
HEADERS = ("AP", "AP50", "AP75", "APs", "APm", "APl")


def _config(neck: str, overrides: list[str]):
    raw = merge_dicts(config_to_dict(load_config(f"synthetic/detection/fcos_r18_{neck}")), parse_overrides(overrides))
    return build_config(raw)


def run_one(neck: str, seed: int, out: Path, overrides: list[str]) -> dict[str, float]:
    """Train one (neck, seed) run, or reuse a finished one; its final validation metrics."""
    run_dir = out / f"{neck}_seed{seed}"
    record = run_dir / "detection_metrics.json"
    cfg = _config(neck, [f"train.seed={seed}", f"data.args.cache_dir={out / 'cache'}", *overrides])
    if record.is_file():
        check_reusable(run_dir, cfg)
        return json.loads(record.read_text())
    start = time.perf_counter()
    result = train(cfg, run_dir)
    seconds = time.perf_counter() - start
    val = result["val"]
    from freqdense.models import create_model

    model = create_model(cfg.model.name, **cfg.model.kwargs)
    row = {k: float(val[f"detection/{k}"]) for k in KEYS}
    row["params"] = float(sum(p.numel() for p in model.parameters()))
    row["fusion_params"] = float(sum(p.numel() for n, p in model.named_parameters() if ".fusions." in f".{n}"))
    row["seconds"] = seconds
    record.write_text(json.dumps(row, indent=2))
    return row


def prior_box_baseline(out: Path, overrides: list[str]) -> dict[str, float]:
    """The trivial baseline of the module docstring on the validation scenes (recomputed every time: it trains
    nothing, and a stored one could be of other data overrides)."""
    record = out / "baseline_metrics.json"
    cfg = _config("bilinear", [f"data.args.cache_dir={out / 'cache'}", *overrides])
    train_set = build_dataset(cfg.data, cfg.data.train_split, train=False)
    val_set = build_dataset(cfg.data, cfg.data.val_split, train=False)
    k = int(cfg.model.kwargs["num_classes"])
    sums = torch.zeros(k, 4, dtype=torch.float64)
    counts = torch.zeros(k, dtype=torch.float64)
    for i in range(len(train_set)):
        sample = train_set[i]
        sums.index_add_(0, sample["labels"], sample["boxes"].double())
        counts += torch.bincount(sample["labels"], minlength=k).double()
    seen = counts > 0
    boxes = sums[seen] / counts[seen, None]
    scores = counts[seen] / counts.sum()
    labels = torch.nonzero(seen).flatten()
    metric = DetectionMetric(k)
    for i in range(len(val_set)):
        sample = val_set[i]
        metric.update(
            [{"boxes": boxes, "scores": scores, "labels": labels}],
            [{"boxes": sample["boxes"], "labels": sample["labels"]}],
        )
    row = metric.compute()
    record.parent.mkdir(parents=True, exist_ok=True)
    record.write_text(json.dumps(row, indent=2))
    return row


def write_report(
    rows: dict[str, list[dict[str, float]]],
    baseline: dict[str, float],
    path: Path,
    command: str,
    note: str,
    elapsed: float,
) -> None:
    lines = [
        "# FCOS detection on synthetic scenes: bilinear-FPN vs FreqFusion-FPN neck",
        "",
        f"Reproduce: `{command}`",
        "",
        f"Revision `{git_revision()}`; machine: {machine()}; {elapsed / 60:.0f} min in all.",
        "",
        note,
        "",
        "| neck | seeds | params | neck up-sampler params | " + " | ".join(f"{h} ↑" for h in HEADERS) + " | s/run |",
        "|---|---|---|---|" + "---|" * len(HEADERS) + "---|",
    ]
    for neck, rs in rows.items():
        cells = [mean_std([r[k] for r in rs]) for k in KEYS]
        secs = statistics.mean(r["seconds"] for r in rs)
        lines.append(
            f"| {NECKS[neck]} | {len(rs)} | {int(rs[0]['params']):,} | {int(rs[0]['fusion_params']):,} | "
            + " | ".join(cells)
            + f" | {secs:.0f} |"
        )
    lines.append(
        "| trivial: mean training box per class, scored by class frequency | - | 0 | - | "
        + " | ".join(mean_std([baseline[k]]) for k in KEYS)
        + " | - |"
    )
    if "bilinear" in rows and "freqfusion" in rows:
        deltas = []
        for k, h in zip(KEYS, HEADERS):
            a = [r[k] for r in rows["bilinear"] if not math.isnan(r[k])]
            b = [r[k] for r in rows["freqfusion"] if not math.isnan(r[k])]
            if a and b:
                deltas.append(f"{h} {statistics.mean(b) - statistics.mean(a):+.4f}")
        lines += ["", "FreqFusion - bilinear (means): " + ", ".join(deltas) + "."]
    lines += [
        "",
        "mean ± sample std over seeds of each run's final evaluation on the validation scenes (COCO box AP,",
        "`freqdense.metrics.detection.DetectionMetric`, checked against pycocotools; APs/m/l: COCO's area ranges",
        "< 32², 32²-96², > 96² px; n/a: no validation object in the range). `neck up-sampler params` counts the",
        "FreqFusion modules of the neck (0 for bilinear). `s/run` is the training time including its evaluation.",
        "",
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="FCOS with bilinear-FPN vs FreqFusion-FPN necks on the synthetic scenes")
    p.add_argument("--out", type=Path, default=Path("runs/detection_synthetic"))
    p.add_argument("--necks", nargs="+", choices=sorted(NECKS), default=list(NECKS))
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--steps", type=int, default=None, help="override schedule.total_steps (smoke tests)")
    p.add_argument("--val-samples", type=int, default=None, help="override data.val_args.num_samples")
    p.add_argument("--train-samples", type=int, default=None, help="override data.train_args.num_samples")
    p.add_argument("--report", type=Path, default=Path("docs/results/detection_synthetic.md"))
    p.add_argument("overrides", nargs="*", help="extra section.key=value overrides for every run")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    overrides = list(args.overrides)
    if args.steps is not None:
        overrides += [f"schedule.total_steps={args.steps}", f"schedule.warmup_steps={min(30, args.steps // 4)}"]
        overrides.append(f"train.checkpoint_every={max(args.steps, 1)}")
    if args.val_samples is not None:
        overrides.append(f"data.val_args.num_samples={args.val_samples}")
    if args.train_samples is not None:
        overrides.append(f"data.train_args.num_samples={args.train_samples}")
    start = time.perf_counter()
    baseline = prior_box_baseline(args.out, overrides)
    rows: dict[str, list[dict[str, float]]] = {n: [] for n in args.necks}
    for seed in args.seeds:
        for neck in args.necks:
            rows[neck].append(run_one(neck, seed, args.out, overrides))
    command = "python " + " ".join(shlex.quote(a) for a in [sys.argv[0], *(argv if argv is not None else sys.argv[1:])])
    shortened = args.steps is not None or args.val_samples is not None or args.train_samples is not None
    note = (
        "**Shortened runs, not a result**: " + ", ".join(overrides) + "."
        if shortened
        else "Setting: the shipped configs (ResNet-18 half width, 64-channel neck, 600 steps of batch 8 with AdamW, "
        "400 training / 100 validation scenes at 96x128, 6 thing classes)."
    )
    write_report(rows, baseline, args.report, command, note, time.perf_counter() - start)
    sys.stdout.write(args.report.read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
