"""Paper 001 Table 2 ablation on the synthetic scenes: Monodepth2 (M) base, +Auto-Blur, +Ambiguity-Masking, both.

Run (full setting: 4 rows x 3 seeds of ``synthetic/selfsup_m_r18``, 2000 steps of batch 8 at 96x128 each). One
training step takes ~0.56 s (base) / ~0.59 s (+AB+AM) on the shared 2-core CPU (``benchmarks/bench_selfsup_step``),
so a run is ~20-25 min with evaluation and scene rendering, ~4-5 hours for all 12 (not run yet):

    python scripts/experiments/selfsup_ablation.py --out runs/selfsup_ablation --seeds 0 1 2

Each run trains the shipped config with ``train.seed=S`` and the row's switches
(``task.self_supervised.auto_blur`` / ``.ambiguity_mask``) through ``freqdense.engine.train.train`` and reads the
final validation metrics (median-scaled, per-image mean; ``DepthMetrics``). The table (mean +- sample std over
seeds) goes to ``docs/results/selfsup_ablation_synthetic.md`` (``--report``). ``--steps N`` shortens every run
(smoke test: ``--steps 2 --train-samples 16 --val-samples 4 --seeds 0``).
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

from freqdense.config import config_to_dict, load_config, parse_overrides
from freqdense.config.load import build_config, merge_dicts
from freqdense.engine.train import train

BASE = "synthetic/selfsup_m_r18"
#: Table 2 rows: name -> overrides of the base config.
ROWS = {
    "Monodepth2 (M)": ["task.self_supervised.auto_blur=false", "task.self_supervised.ambiguity_mask=null"],
    "+ Auto-Blur": ["task.self_supervised.auto_blur=true", "task.self_supervised.ambiguity_mask=null"],
    "+ Ambiguity-Masking": ["task.self_supervised.auto_blur=false", "task.self_supervised.ambiguity_mask=hard"],
    "+ both (full)": ["task.self_supervised.auto_blur=true", "task.self_supervised.ambiguity_mask=hard"],
}
COLUMNS = ("abs_rel", "sq_rel", "rmse", "rmse_log", "delta1", "delta2", "delta3")
LOWER_IS_BETTER = {"abs_rel", "sq_rel", "rmse", "rmse_log"}


def run_one(row: str, seed: int, out: Path, overrides: list[str]) -> dict[str, float]:
    raw = merge_dicts(
        config_to_dict(load_config(BASE)), parse_overrides([*ROWS[row], f"train.seed={seed}", *overrides])
    )
    cfg = build_config(raw)
    slug = row.strip("+ ").split(" ")[0].lower().replace("-", "_")
    run_dir = out / f"{slug}_seed{seed}"
    start = time.perf_counter()
    train(cfg, run_dir)
    metrics = json.loads((run_dir / "metrics.json").read_text())["val"]
    result = {c: metrics[f"depth/{c}"] for c in COLUMNS}
    result["seconds"] = time.perf_counter() - start
    return result


def _fmt(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.4f}"
    return f"{statistics.mean(values):.4f} ± {statistics.stdev(values):.4f}"


def write_report(rows: dict[str, list[dict[str, float]]], path: Path, command: str, note: str) -> None:
    arrows = [f"{c} {'↓' if c in LOWER_IS_BETTER else '↑'}" for c in COLUMNS]
    lines = [
        "# Self-supervised depth ablation (paper 001, Table 2) on synthetic scenes",
        "",
        f"Reproduce: `{command}`",
        "",
        note,
        "",
        "| method | seeds | " + " | ".join(arrows) + " | s/run |",
        "|---|---|" + "---|" * len(COLUMNS) + "---|",
    ]
    for name, rs in rows.items():
        cells = [_fmt([r[c] for r in rs]) for c in COLUMNS]
        lines.append(
            f"| {name} | {len(rs)} | " + " | ".join(cells) + f" | {statistics.mean(r['seconds'] for r in rs):.0f} |"
        )
    lines += [
        "",
        "Monodepth2 mode M (ResNet-18 at half width, predicted poses), synthetic video at 96x128; metrics on the",
        "validation split after the last step: per-image median scaling, per-image mean, ground truth in (1e-3, 20) m,",
        "predictions clamped to that range. mean ± sample std over seeds. Details: docs/methods/selfsup_pipeline.md.",
        "",
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="paper 001 Table 2 ablation on synthetic scenes")
    p.add_argument("--out", type=Path, default=Path("runs/selfsup_ablation"))
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--steps", type=int, default=None, help="override schedule.total_steps (smoke tests)")
    p.add_argument("--train-samples", type=int, default=None, help="override data.train_args.num_samples")
    p.add_argument("--val-samples", type=int, default=None, help="override data.val_args.num_samples")
    p.add_argument("--report", type=Path, default=Path("docs/results/selfsup_ablation_synthetic.md"))
    p.add_argument("overrides", nargs="*", help="extra section.key=value overrides for every row")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    overrides = list(args.overrides)
    if args.steps is not None:
        overrides += [
            f"schedule.total_steps={args.steps}",
            f"schedule.step_size={max(1, (3 * args.steps) // 4)}",
            f"eval.every={args.steps}",
        ]
    if args.train_samples is not None:
        overrides.append(f"data.train_args.num_samples={args.train_samples}")
    if args.val_samples is not None:
        overrides += [f"data.val_args.num_samples={args.val_samples}", f"data.val_batch_size={args.val_samples}"]
    rows: dict[str, list[dict[str, float]]] = {r: [] for r in ROWS}
    for seed in args.seeds:
        for row in ROWS:
            rows[row].append(run_one(row, seed, args.out, overrides))
    command = "python " + " ".join(shlex.quote(a) for a in [sys.argv[0], *(argv if argv is not None else sys.argv[1:])])
    shortened = args.steps is not None or args.train_samples is not None or args.val_samples is not None
    note = (
        "**Smoke-test setting, not a result**: the runs were shortened (" + ", ".join(overrides) + ")."
        if shortened
        else "Full setting: the shipped config (2000 steps, 600 training / 100 validation scenes at 96x128)."
    )
    write_report(rows, args.report, command, note)
    sys.stdout.write(args.report.read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
