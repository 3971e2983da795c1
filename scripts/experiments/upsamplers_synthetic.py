"""The up-sampler family compared on the synthetic scenes: FPN and SegFormer-style heads, several seeds.

The FreqFusion paper (Chen et al., "Frequency-aware Feature Fusion for Dense Image Prediction", TPAMI 2024)
compares FreqFusion with the learned feature up-samplers (CARAFE, IndexNet, A2U, FADE, SAPA, DySample) inside the
same decoders. This script runs that comparison at our scale: every shipped config
``synthetic/upsamplers/{fpn,segformer}_<name>`` (identical but for ``model.fusion``) is trained with
``train.seed=S`` through :func:`freqdense.engine.train.train`, then the final model is evaluated on the validation
split for mIoU (the run's final evaluation) and the boundary F-score (:func:`freqdense.engine.evaluate.
evaluate_boundary_f`, 2 px tolerance). Finished runs are reused (their ``upsampler_metrics.json``).

Run (every member, both heads, 3 seeds = 96 runs of 150 steps; about 1-2 min each on a free 2-core CPU):

    python scripts/experiments/upsamplers_synthetic.py --heads fpn segformer --seeds 0 1 2

``--only NAMES`` restricts the members, ``--steps N`` shortens every run (the page then says it is not a result).
The table (mean +- sample std over seeds) goes to ``docs/results/upsamplers_synthetic.md`` (``--report``), with
the git revision, the command and the machine.
"""

from __future__ import annotations

import argparse
import json
import logging
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
from freqdense.engine.checkpoint import load_model
from freqdense.engine.data import build_dataset
from freqdense.engine.evaluate import evaluate_boundary_f
from freqdense.engine.train import train
from freqdense.nn.upsamplers import UPSAMPLERS

HEADS = {"fpn": "FPN (add)", "segformer": "SegFormer-style head (concat)"}


def run_one(head: str, name: str, seed: int, out: Path, overrides: list[str]) -> dict[str, float]:
    """Train one (head, up-sampler, seed) run, or reuse a finished one, and measure it."""
    run_dir = out / head / f"{name}_seed{seed}"
    record = run_dir / "upsampler_metrics.json"
    raw = merge_dicts(
        config_to_dict(load_config(f"synthetic/upsamplers/{head}_{name}")),
        parse_overrides([f"train.seed={seed}", *overrides]),
    )
    cfg = build_config(raw)
    if record.is_file():
        check_reusable(run_dir, cfg)
        return json.loads(record.read_text())
    start = time.perf_counter()
    train(cfg, run_dir)
    seconds = time.perf_counter() - start
    metrics = json.loads((run_dir / "metrics.json").read_text())["val"]
    model, _ = load_model(run_dir, prefer="latest")
    dataset = build_dataset(cfg.data, cfg.data.val_split, train=False)
    loader = torch.utils.data.DataLoader(dataset, batch_size=cfg.data.val_batch_size, shuffle=False)
    bf = evaluate_boundary_f(
        model, loader, num_classes=int(dataset.num_classes), device=torch.device("cpu"), tolerance_px=2
    )
    fusion_params = sum(p.numel() for n, p in model.named_parameters() if ".fusions." in f".{n}")
    row = {
        "miou": float(metrics["semantic/miou"]),
        "boundary_f": float(bf["boundary_f"]),
        "fusion_params": float(fusion_params),
        "params": float(sum(p.numel() for p in model.parameters())),
        "seconds": seconds,
    }
    record.write_text(json.dumps(row, indent=2))
    return row


def write_report(
    rows: dict[str, dict[str, list[dict[str, float]]]], path: Path, command: str, note: str, elapsed: float
) -> None:
    lines = [
        "# Feature up-samplers compared on synthetic scenes",
        "",
        f"Reproduce: `{command}`",
        "",
        f"Revision `{git_revision()}`; machine: {machine()}; {elapsed / 60:.0f} min in all.",
        "",
        note,
        "",
    ]
    for head, by_name in rows.items():
        ref = by_name.get("bilinear")
        ref_miou = statistics.mean(r["miou"] for r in ref) if ref else None
        ref_bf = statistics.mean(r["boundary_f"] for r in ref) if ref else None
        lines += [
            f"## {HEADS[head]}",
            "",
            "| up-sampler | seeds | up-sampler params | mIoU ↑ | Δ mIoU | boundary F (2 px) ↑ | Δ boundary F | s/run |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for name, rs in by_name.items():
            miou, bf = [r["miou"] for r in rs], [r["boundary_f"] for r in rs]
            d_miou = f"{statistics.mean(miou) - ref_miou:+.4f}" if ref_miou is not None else "-"
            d_bf = f"{statistics.mean(bf) - ref_bf:+.4f}" if ref_bf is not None else "-"
            secs = statistics.mean(r["seconds"] for r in rs)
            lines.append(
                f"| {name} | {len(rs)} | {int(rs[0]['fusion_params']):,} | {mean_std(miou)} | {d_miou} "
                f"| {mean_std(bf)} | {d_bf} | {secs:.0f} |"
            )
        lines.append("")
    lines += [
        "mean ± sample std over seeds; Δ against bilinear in the same head; mIoU from each run's final evaluation",
        "(val split), boundary F from the final checkpoint on the same split; `up-sampler params` counts",
        "the decoder's up-sampler modules only. `s/run` includes training and both evaluations.",
        "",
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="the up-sampler family on synthetic scenes (FPN / SegFormer heads)")
    p.add_argument("--out", type=Path, default=Path("runs/upsamplers_synthetic"))
    p.add_argument("--heads", nargs="+", choices=sorted(HEADS), default=["fpn", "segformer"])
    p.add_argument("--only", nargs="+", choices=UPSAMPLERS, default=list(UPSAMPLERS), metavar="NAME")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--steps", type=int, default=None, help="override schedule.total_steps (smoke tests)")
    p.add_argument("--val-samples", type=int, default=None, help="override data.val_args.num_samples")
    p.add_argument("--report", type=Path, default=Path("docs/results/upsamplers_synthetic.md"))
    p.add_argument("overrides", nargs="*", help="extra section.key=value overrides for every run")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    overrides = list(args.overrides)
    if args.steps is not None:
        overrides += [f"schedule.total_steps={args.steps}", f"schedule.warmup_steps={min(20, args.steps // 4)}"]
    if args.val_samples is not None:
        overrides.append(f"data.val_args.num_samples={args.val_samples}")
    start = time.perf_counter()
    rows: dict[str, dict[str, list[dict[str, float]]]] = {h: {} for h in args.heads}
    for seed in args.seeds:
        for head in args.heads:
            for name in args.only:
                rows[head].setdefault(name, []).append(run_one(head, name, seed, args.out, overrides))
    command = "python " + " ".join(shlex.quote(a) for a in [sys.argv[0], *(argv if argv is not None else sys.argv[1:])])
    note = (
        "**Shortened runs, not a result**: " + ", ".join(overrides) + "."
        if args.steps is not None or args.val_samples is not None
        else "Setting: the shipped configs (150 steps, batch 16, 400 training / 100 validation scenes at 64x96)."
    )
    write_report(rows, args.report, command, note, time.perf_counter() - start)
    sys.stdout.write(args.report.read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
