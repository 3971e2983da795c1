"""The spectral-analysis paper (AAAI 2020) on the synthetic scenes: block-wise annotation, feature truncation and
the R(nu_max) relation (Fig. 6).

Run (full setting; NOT run in this repository so far: 33 trainings at 96x128 plus 3 at twice the steps, one
2000-step DeepLab v3+ run an estimated 20-25 min on one CPU thread (48x64: 0.18 s per step, measured), and 2000
steps are far from converged at 48x64; the runs made are in docs/results/spectral_synthetic*.md):

    python scripts/experiments/spectral_synthetic.py --out runs/spectral_synthetic --seeds 0 1 2 \\
        --nu-max 4 8 16 32 --grids 13 7 --train-truncated --doubling-check

Per seed it trains ``synthetic/deeplabv3plus_r50_os16`` (96x128 crops, 2000 steps; or ``--config``) with
(a) pixel-wise labels (the full band, the reference), (b) block-wise labels at each ``--nu-max`` and each ``--void``
convention (``data.train_transforms.blockwise_labels={nu_max: NU, void: keep|fill}``: the crop's labels on a
``(2 NU + 1)^2`` grid, cycles per image of the label map; ``keep``, the default, keeps void pixels void, ``fill`` gives
them their block's label; validation always uses pixel-wise labels) and, with ``--train-truncated``, (c) the decoder
truncated to each ``--grids`` size (``model.decoder_grid=S``). Every model is evaluated on the validation split
(pixel-wise labels); the pixel-wise model is also evaluated with its decoder truncated to each grid
(evaluate-only truncation, ``freqdense.spectral.truncate_decoder``), and its CE spectrum on the same data gives
``R(nu_max)`` (Eq. 14) at every block-wise ``nu_max`` and at ``(S - 1) // 2`` for each grid. The label-only R
(label-energy tail) comes from ``analyze labels``' computation. Output: ``OUT/results.json`` (or ``--results``;
per-run records, see
``freqdense.analysis.spectral_relation``), the report ``--report`` with tables and Spearman correlations, and the
Fig. 6 plot ``--plot``. Finished runs are reused (``OUT/<run>/record.json``), so an interrupted sweep resumes; a run
directory already trained with the same resolved config (e.g. by ``freqdense train`` in parallel) is resumed at its
end, i.e. only evaluated; a record is reused only when its run's ``config.yaml`` is the config this sweep builds
for it (another ``--steps`` or override into the same ``--out`` is refused, not reported under the new settings).
``--jobs N`` trains N runs at once, each in a child process of this script (``--only RUN``, its output in
``OUT/logs/RUN.log``), then collects the records into the report; on a CPU give every job one core
(``train.num_threads=1`` with ``--jobs`` = the core count). ``--only RUN [RUN ...]`` trains and evaluates just those
runs (same arguments otherwise) and writes no report: for sharing one sweep between machines, then run the command
once more without ``--only`` to collect.

Convergence: every record keeps its validation history (``eval.every``; ``--eval-every``). With
``--doubling-check`` each seed's pixel-wise model is also trained for twice the steps (``pixelwise_x2_seed<S>``, not a
point of the relation) and the criterion is that doubling the schedule raises its validation mIoU by less than
``--doubling-tol``. Without it the criterion is that the validation mIoU varies by less than ``--converge-tol``
(max - min) over the last ``--converge-window`` evaluations; a poly schedule flattens every curve at its end, so
that weaker test can pass on an unconverged model (it did at 2000 steps: docs/results/spectral_synthetic.md).

Smoke test (minutes on a CPU, not a result): ``--steps 10 --seeds 0 --nu-max 4 8 --grids 7 --val-samples 8
--train-samples 80``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shlex
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
from _report import git_revision, machine
from _runs import check_reusable

from freqdense.analysis.spectral_relation import (
    plot_relation,
    relation_correlations,
    relation_points,
    relation_table,
    series_name,
)
from freqdense.cli.analyze_cmd import compute_label_analysis, compute_truncation
from freqdense.config import config_to_dict, load_config, parse_overrides
from freqdense.config.load import build_config, merge_dicts
from freqdense.data.io import atomic_write
from freqdense.engine.checkpoint import META_FILE, latest_checkpoint, load_model
from freqdense.engine.data import build_dataset
from freqdense.engine.train import resolve_device, train
from freqdense.errors import ConfigError, FreqdenseError
from freqdense.spectral import blockwise_annotation

log = logging.getLogger("spectral_synthetic")

CONFIG = "synthetic/deeplabv3plus_r50_os16"

FULL_COMMAND = (
    "python scripts/experiments/spectral_synthetic.py --out runs/spectral_synthetic --seeds 0 1 2 "
    "--nu-max 4 8 16 32 --grids 13 7 --train-truncated --doubling-check"
)


def reading(height: int, width: int) -> str:
    """How the settings map to the paper's, with the block and grid sizes of a ``height x width`` crop."""
    block = f"{height / 17:.1f} x {width / 17:.1f} px"
    return f"""## How the settings map to the paper's

- **Band limits** are in cycles per image of the {height}x{width} label map, on an `n x n` grid with
  `n = 2 nu_max + 1` points per axis (`units="index"`, square shells: `R(nu_max)` is then exactly the CE an `n x n`
  grid cannot carry). Cycles per image do not depend on the pixel count: `n` grid points cover the same share of the
  scene on a 513 crop and on a {height}x{width} one, so `nu_max = 8` here gives the same blocks, relative to the
  objects, as the paper's `nu_max = 8` (30 px at 513, {block} here). The full band here is
  `nu_max = {width // 2}` (x) / {height // 2} (y).
- **Feature truncation**: DeepLab v3+ and DAN run their decoders at stride 4, {height // 4}x{width // 4} here (the
  paper's 129 at 513). The paper's 65 and 33 are 1/8 and 1/16 of the input side ({height // 8}x{width // 8} and
  {height // 16}x{width // 16} here); we use square grids (13x13: `nu_max = 6`, 7x7: `nu_max = 3`), so the band limit
  is the same on both axes, as for the block-wise labels. `truncation_eval` is the pixel-wise model evaluated with
  its decoder on the grid; `truncation_train` (with `--train-truncated`) is trained that way, as in the paper.
- **R** (`r_model`) is Eq. 14 of the same seed's pixel-wise model on the validation split, as in Fig. 6 (Table 1's
  values for both applications); `R, labels` is the label-energy tail of the validation labels (no model).
  Relative mIoU is per seed against the pixel-wise model of that seed, then averaged; `±` is the standard
  deviation over the seeds (n - 1 in the denominator).
- **Spearman ρ** between R and the mIoU drop leaves out the pixel-wise point (0, 0 by construction). Within one
  family R decreases with `nu_max` by construction, so a per-family ρ mostly tests that the drop is monotone in
  `nu_max`; the pooled ρ (block-wise and truncation points at different band limits) is the informative one. The
  paper pools three datasets; we have one, and at most 6 points: no significance is claimed.
"""


def build_run_config(base: str, seed: int, overrides: list[str], extra: list[str]):
    raw = merge_dicts(config_to_dict(load_config(base)), parse_overrides([f"train.seed={seed}", *overrides, *extra]))
    return build_config(raw)


def evaluate(run_dir: Path, cfg, *, grids: list[int], device: torch.device) -> dict[str, Any]:
    """mIoU on the pixel-wise val labels, the truncated-decoder rows and the CE spectrum (final weights)."""
    model, _ = load_model(run_dir, map_location=device, prefer="latest")
    dataset = build_dataset(cfg.data, cfg.data.val_split, train=False)
    return compute_truncation(
        model,
        dataset,
        sizes=grids,
        num_classes=int(cfg.model.kwargs["num_classes"]),
        batch_size=cfg.data.val_batch_size,
        device=device,
        ignore_index=cfg.task.ignore_index,
    )


def eval_history(run_dir: Path) -> list[dict[str, Any]]:
    """Validation evaluations of a run (``log.jsonl``): step, mIoU and every per-class IoU."""
    out = []
    for line in (run_dir / "log.jsonl").read_text().splitlines():
        row = json.loads(line)
        if row.get("kind") == "eval":
            out.append(
                {k.removeprefix("semantic/"): v for k, v in row.items() if k == "step" or k.startswith("semantic/")}
            )
    return out


def converged(history: list[dict[str, Any]], *, window: int, tol: float) -> dict[str, Any]:
    """The convergence criterion: max - min of the last ``window`` validation mIoUs is below ``tol``."""
    last = [h["miou"] for h in history[-window:]]
    spread = max(last) - min(last) if len(last) == window else float("nan")
    return {"window": window, "tol": tol, "spread": spread, "met": bool(spread < tol)}


def doubling(base: dict[str, Any], doubled: dict[str, Any], *, tol: float) -> dict[str, Any]:
    """The schedule-doubling criterion: twice the steps raise the pixel-wise model's mIoU by less than ``tol``."""
    gain = doubled["miou"] - base["miou"]
    steps = doubled["history"][-1]["step"] if doubled.get("history") else None
    return {"steps": steps, "miou": doubled["miou"], "gain": gain, "tol": tol, "met": bool(gain < tol)}


def training_wall_seconds(run_dir: Path) -> float | None:
    """Wall time from the run's first start (``run.json``) to its final checkpoint: the training time, also when
    another process trained the run and this sweep only evaluated it (``None`` when either is missing)."""
    ckpt = latest_checkpoint(run_dir)
    try:
        first = json.loads((run_dir / "run.json").read_text())["starts"][0]["date"]
    except (OSError, KeyError, IndexError, ValueError):
        return None
    if ckpt is None:
        return None
    return (ckpt / META_FILE).stat().st_mtime - datetime.fromisoformat(first).timestamp()


def run_one(name: str, record: dict[str, Any], cfg, out: Path, *, grids: list[int], nus: list[int], device) -> list:
    """Train (or reuse) one run and return its records (several for the pixel-wise run).

    A finished run (``record.json``) is reused when it is this run's; ``main`` has checked, before training anything,
    that its ``config.yaml`` is this sweep's config for it (:func:`check_reusable`)."""
    run_dir = out / name
    done = run_dir / "record.json"
    if done.exists():
        try:
            records = json.loads(done.read_text())
        except ValueError as err:  # empty or cut short: not a record this script wrote (it writes them atomically)
            raise ConfigError(
                f"{done} is not a run record ({err}); delete it to evaluate {run_dir} as {name} again"
            ) from err
        found = {k: records[0].get(k) for k in record} if records else {}
        if found != record:  # e.g. a copied or renamed run directory
            raise ConfigError(
                f"{done} holds the records of another run of the sweep ({found}, expected {record}); delete it to "
                f"evaluate {run_dir} as {name} again"
            )
        log.info("reusing %s", done)
        return records
    start = time.perf_counter()
    train(cfg, run_dir)
    trained = training_wall_seconds(run_dir) or time.perf_counter() - start
    res = evaluate(run_dir, cfg, grids=grids, device=device)
    rows = res["rows"]
    history = eval_history(run_dir)
    final = history[-1] if history else {}
    records = [
        {
            **record,
            "miou": rows[0]["miou"],
            "pixel_acc": rows[0]["pixel_acc"],
            "iou": {k.removeprefix("iou/"): v for k, v in final.items() if k.startswith("iou/")},
            "history": [{"step": h["step"], "miou": h["miou"]} for h in history],
            "train_seconds": trained,
        }
    ]
    if record["family"] == "pixelwise":
        r = res["spectrum"].relative_discrepancy
        records[0]["r_model"] = {str(nu): float(r[min(nu, len(r) - 1)]) for nu in nus}
        for row in rows[1:]:
            records.append(
                {
                    "family": "truncation_eval",
                    "grid": row["grid"],
                    "nu_max": row["nu_max"],
                    "seed": record["seed"],
                    "miou": row["miou"],
                    "pixel_acc": row["pixel_acc"],
                }
            )
    with atomic_write(done, "w") as f:  # an interrupted write leaves no half record that would count as done
        f.write(json.dumps(records, indent=2))
    return records


def train_in_parallel(names: list[str], command: list[str], logs: Path, jobs: int, *, poll: float = 2.0) -> list[str]:
    """Train the runs ``names`` with at most ``jobs`` child processes at once, each ``command --jobs 1 --only RUN``
    with its output in ``logs/RUN.log``; returns the runs whose process failed. Ctrl-C stops the children."""
    logs.mkdir(parents=True, exist_ok=True)
    pending, running, failed, seconds = list(names), {}, [], []
    try:
        while pending or running:
            while pending and len(running) < jobs:
                name = pending.pop(0)
                handle = (logs / f"{name}.log").open("w")
                child = subprocess.Popen(
                    [*command, "--jobs", "1", "--only", name], stdout=handle, stderr=subprocess.STDOUT
                )
                running[name] = (child, handle, time.perf_counter())
                log.info("started %s (%d left to start); its log: %s", name, len(pending), logs / f"{name}.log")
            time.sleep(poll)
            for name, (child, handle, start) in list(running.items()):
                if child.poll() is None:
                    continue
                handle.close()
                del running[name]
                if child.returncode != 0:
                    failed.append(name)
                    log.error("%s failed (exit %d); see %s", name, child.returncode, logs / f"{name}.log")
                    continue
                seconds.append(time.perf_counter() - start)
                left = len(pending) + len(running)
                eta = _mean(seconds) * -(-len(pending) // jobs) if pending else 0.0
                log.info(
                    "finished %s in %.1f min; %d of %d runs left (about %.0f min more after the running ones)",
                    name, seconds[-1] / 60, left, len(names), eta / 60,
                )  # fmt: skip
    except BaseException:
        for child, handle, _ in running.values():
            child.terminate()
            child.wait()
            handle.close()
        raise
    return failed


def sweep_plan(args, overrides: list[str]) -> list[tuple[str, dict[str, Any], Any, list[int]]]:
    """Every run of the sweep, in training order: ``(name, record, config, evaluate-only grids)``."""
    plan = []
    for seed in args.seeds:
        cfg = build_run_config(args.config, seed, overrides, [])
        plan.append((f"pixelwise_seed{seed}", {"family": "pixelwise", "seed": seed}, cfg, list(args.grids)))
        if args.doubling_check:
            longer = [f"schedule.total_steps={2 * cfg.schedule.total_steps}", f"eval.every={2 * cfg.eval.every}"]
            cfg2 = build_run_config(args.config, seed, [*overrides, *longer], [])
            plan.append((f"pixelwise_x2_seed{seed}", {"family": "pixelwise_x2", "seed": seed}, cfg2, []))
        for nu in args.nu_max:
            for void in args.void:
                key = "data.train_transforms.blockwise_labels"
                extra = [f"{key}.nu_max={nu}", f"{key}.method={args.method}", f"{key}.void={void}"]
                record = {"family": "blockwise", "nu_max": nu, "void": void, "seed": seed}
                cfg = build_run_config(args.config, seed, overrides, extra)
                plan.append((f"blockwise{nu}_{void}_seed{seed}", record, cfg, []))
        for grid in args.grids if args.train_truncated else []:
            cfg = build_run_config(args.config, seed, overrides, [f"model.decoder_grid={grid}"])
            record = {"family": "truncation_train", "grid": grid, "nu_max": (grid - 1) // 2, "seed": seed}
            plan.append((f"truncated{grid}_seed{seed}", record, cfg, []))
    return plan


def label_statistics(dataset, nus: list[int], *, num_classes: int, method: str, ignore_index: int = 255) -> dict:
    """What block-wise annotation does to the validation labels, per ``nu_max``: the share of non-void pixels whose
    label changes, the share of void pixels still void with ``void="fill"``, and per class the share of its pixels
    still labelled with it."""
    labels = torch.stack([torch.as_tensor(dataset[i]["semantic"]).long() for i in range(len(dataset))])
    valid = labels != ignore_index
    stats: dict[int, dict[str, Any]] = {}
    for nu in nus:
        fill = blockwise_annotation(labels, nu, method=method, ignore_index=ignore_index, num_classes=num_classes)
        kept = {
            c: int(((labels == c) & (fill == c)).sum()) / max(int((labels == c).sum()), 1) for c in range(num_classes)
        }
        stats[nu] = {
            "changed": int(((fill != labels) & valid).sum()) / max(int(valid.sum()), 1),
            "void_kept_fill": int(((fill == ignore_index) & ~valid).sum()) / max(int((~valid).sum()), 1),
            "class_kept": kept,
        }
    return {"void_share": float((~valid).float().mean()), "per_nu": stats}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description="block-wise annotation, feature truncation and R(nu_max) (the spectral-analysis paper)"
    )
    p.add_argument("--config", default=CONFIG, help=f"segmentation config (default {CONFIG})")
    p.add_argument("--out", type=Path, default=Path("runs/spectral_synthetic"))
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument(
        "--nu-max",
        type=int,
        nargs="*",
        default=[4, 8, 16, 32],
        help="block-wise band limits (none: no block-wise runs)",
    )
    p.add_argument("--grids", type=int, nargs="*", default=[13, 7], help="decoder grids for feature truncation")
    p.add_argument("--train-truncated", action="store_true", help="also train models with the truncated decoder")
    p.add_argument("--method", default="majority", choices=["majority", "nearest"], help="block label rule")
    p.add_argument(
        "--void",
        nargs="+",
        default=["keep"],
        choices=["keep", "fill"],
        help="void pixels in block-wise labels: keep (stay void; default) and/or fill (take the block's label)",
    )
    p.add_argument(
        "--steps",
        type=int,
        default=None,
        help="override schedule.total_steps (a result only if the pixel-wise model converges)",
    )
    p.add_argument("--eval-every", type=int, default=None, help="override eval.every (the convergence history)")
    p.add_argument("--converge-window", type=int, default=4, help="evaluations the convergence criterion looks at")
    p.add_argument("--converge-tol", type=float, default=0.005, help="max - min of those mIoUs to call it converged")
    p.add_argument(
        "--doubling-check",
        action="store_true",
        help="also train each pixel-wise model for twice the steps; converged when that gains < --doubling-tol mIoU",
    )
    p.add_argument(
        "--doubling-tol",
        type=float,
        default=0.01,
        help="mIoU gain of the doubled schedule that still counts as converged",
    )
    p.add_argument("--val-samples", type=int, default=None, help="override data.val_args.num_samples")
    p.add_argument("--train-samples", type=int, default=None, help="override data.train_args.num_samples")
    p.add_argument(
        "--results",
        type=Path,
        default=None,
        help="the results JSON (default OUT/results.json); give pages that share an --out their own",
    )
    p.add_argument("--report", type=Path, default=Path("docs/results/spectral_synthetic.md"))
    p.add_argument("--plot", type=Path, default=Path("docs/images/spectral_synthetic_relation.png"))
    p.add_argument(
        "--jobs",
        type=int,
        default=1,
        help="runs trained at once, each in its own process (on a CPU: one per core, with train.num_threads=1)",
    )
    p.add_argument(
        "--only",
        nargs="+",
        default=None,
        metavar="RUN",
        help="train and evaluate only these runs of the sweep (e.g. pixelwise_seed0 blockwise8_keep_seed0), then "
        "exit without a report (to share a sweep between machines); rerun without --only to collect",
    )
    p.add_argument("overrides", nargs="*", help="extra section.key=value overrides for every run")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    overrides = list(args.overrides)
    if args.steps is not None:
        every = args.eval_every if args.eval_every is not None else max(1, args.steps)
        overrides += [f"schedule.total_steps={args.steps}", f"eval.every={every}"]
    elif args.eval_every is not None:
        overrides.append(f"eval.every={args.eval_every}")
    if args.val_samples is not None:
        overrides.append(f"data.val_args.num_samples={args.val_samples}")
    if args.train_samples is not None:
        overrides.append(f"data.train_args.num_samples={args.train_samples}")
    revision = git_revision()  # before this command writes its report and plot into the checkout
    nus = sorted(set(args.nu_max) | {(g - 1) // 2 for g in args.grids})
    args.out.mkdir(parents=True, exist_ok=True)

    if args.jobs < 1:
        p.error(f"--jobs must be at least 1, got {args.jobs}")
    plan = sweep_plan(args, overrides)
    base_cfg = plan[0][2]  # the first seed's pixel-wise config: data, device and classes of every run
    device = resolve_device(base_cfg.train.device)
    for name, _, cfg, _ in plan:  # a finished run of other settings fails now, not after hours of training
        if (args.out / name / "record.json").exists():
            check_reusable(args.out / name, cfg)
    if args.jobs > 1 and args.only is None:
        threads, cores = base_cfg.train.num_threads, os.cpu_count() or 1
        if device.type == "cpu" and (threads is None or threads * args.jobs > cores):
            log.warning(
                "--jobs %d with train.num_threads=%s oversubscribes this machine's %d cores; add "
                "train.num_threads=%d",
                args.jobs, threads, cores, max(1, cores // args.jobs),
            )  # fmt: skip
        todo = [name for name, *_ in plan if not (args.out / name / "record.json").exists()]
        command = [sys.executable, str(Path(__file__).resolve()), *(argv if argv is not None else sys.argv[1:])]
        failed = train_in_parallel(todo, command, args.out / "logs", args.jobs)
        if failed:
            log.error(
                "%d of %d runs failed: %s (logs in %s); the finished ones are kept: rerun the same command to retry",
                len(failed), len(todo), " ".join(failed), args.out / "logs",
            )  # fmt: skip
            return 1
    if args.only is not None:
        names = [name for name, *_ in plan]
        unknown = [n for n in args.only if n not in names]
        if unknown:
            p.error(f"--only {' '.join(unknown)}: not a run of this sweep; its runs are {' '.join(names)}")
        for name, record, cfg, grids in plan:
            if name in args.only:
                run_one(name, record, cfg, args.out, grids=grids, nus=nus, device=device)
        log.info("trained %s; rerun without --only to write the report", ", ".join(args.only))
        return 0
    val = build_dataset(base_cfg.data, base_cfg.data.val_split, train=False)
    labels = compute_label_analysis(
        val, num_classes=int(base_cfg.model.kwargs["num_classes"]), nu_max=nus, blockwise_method=args.method
    )
    label_r = {row["nu_max"]: row["label_energy_r"] for row in labels["table"]}
    pixel_error = {row["nu_max"]: row["blockwise_pixel_error"] for row in labels["table"]}
    label_stats = label_statistics(
        val, sorted(set(args.nu_max)), num_classes=int(base_cfg.model.kwargs["num_classes"]), method=args.method
    )
    class_names = list(getattr(val, "classes", [])) or [
        str(c) for c in range(int(base_cfg.model.kwargs["num_classes"]))
    ]
    wall_start = time.perf_counter()

    runs: list[dict[str, Any]] = []
    doubled: dict[int, dict[str, Any]] = {}  # seed -> the pixel-wise model trained for twice the steps
    for name, record, cfg, grids in plan:
        records = run_one(name, record, cfg, args.out, grids=grids, nus=nus, device=device)
        if record["family"] == "pixelwise_x2":
            doubled[int(record["seed"])] = records[0]
        else:
            runs += records

    convergence = {}
    for r in runs:
        if r["family"] == "pixelwise" and r.get("history"):
            seed = int(r["seed"])
            convergence[seed] = converged(r["history"], window=args.converge_window, tol=args.converge_tol)
            if seed in doubled:  # the doubling criterion decides when it was run
                convergence[seed]["doubling"] = doubling(r, doubled[seed], tol=args.doubling_tol)
                convergence[seed]["met"] = convergence[seed]["doubling"]["met"]
    label_size = [int(n) for n in val[0]["semantic"].shape[-2:]]
    results = {
        "config": args.config,
        "revision": revision,
        "overrides": overrides,
        "label_size": label_size,
        "scenes": {
            "train": base_cfg.data.train_args.get("num_samples"),
            "val": base_cfg.data.val_args.get("num_samples"),
            "train_in_config": build_run_config(args.config, 0, [], []).data.train_args.get("num_samples"),
        },
        "runs": runs,
        "label_r": label_r,
        "blockwise_pixel_error": pixel_error,
        "label_statistics": label_stats,
        "classes": class_names,
        "convergence": convergence,
        "doubled": list(doubled.values()),
        "wall_seconds": time.perf_counter() - wall_start,
    }
    args.results = args.results if args.results is not None else args.out / "results.json"
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps(results, indent=2))
    points = relation_points(runs, label_r=label_r)
    correlations = relation_correlations(points)
    plot_relation(points, args.plot)
    command = "python " + " ".join(shlex.quote(a) for a in [sys.argv[0], *(argv if argv is not None else sys.argv[1:])])
    # A result needs every pixel-wise model converged (whatever the schedule, the config's own included) and the
    # full validation set, which a smaller one makes noisier; otherwise the page says why it is not one. The
    # training-set size is a setting of the experiment, which the page names.
    caveats = []
    if args.val_samples is not None:
        caveats.append("the validation set was subsampled")
    if not (convergence and all(c["met"] for c in convergence.values())):
        caveats.append("the pixel-wise model did not meet the convergence criterion (below)")
    write_report(args, points, correlations, pixel_error, command, overrides, caveats, runs, results)
    sys.stdout.write(args.report.read_text())
    return 0


def _number(value: float | None) -> float:
    return float("nan") if value is None else float(value)


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else float("nan")


def run_label(r: dict[str, Any]) -> str:
    """A run's row name in the per-class and per-step tables: its series and band limit."""
    return "pixelwise" if r["family"] == "pixelwise" else f"{series_name(r)} ν={r.get('nu_max', r.get('grid'))}"


def class_table(runs: list[dict[str, Any]], class_names: list[str]) -> str:
    """Per-class validation IoU of every trained run (mean over seeds), pixel-wise first."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for r in runs:
        if "iou" not in r:
            continue
        groups.setdefault(run_label(r), []).append(r)
    lines = ["| run | " + " | ".join(class_names) + " | mIoU |", "|---|" + "---|" * (len(class_names) + 1)]
    for key, rs in groups.items():
        # a class absent from the validation labels has no IoU (None in the run's log)
        cells = [f"{_mean([_number(r['iou'].get(c)) for r in rs]):.3f}" for c in class_names]
        lines.append(f"| {key} | " + " | ".join(cells) + f" | {_mean([r['miou'] for r in rs]):.4f} |")
    return "\n".join(lines) + "\n"


def relative_by_step(runs: list[dict[str, Any]]) -> str:
    """Each trained run's validation mIoU over the same seed's pixel-wise one at every evaluation step (mean over
    seeds): how the block-wise cost develops during training, not only at its end."""
    base = {int(r["seed"]): {h["step"]: h["miou"] for h in r["history"]} for r in runs if r["family"] == "pixelwise"}
    groups: dict[str, dict[int, list[float]]] = {}
    for r in runs:
        if r["family"] == "pixelwise" or not r.get("history") or int(r["seed"]) not in base:
            continue
        ref = base[int(r["seed"])]
        for h in r["history"]:
            if ref.get(h["step"]):
                groups.setdefault(run_label(r), {}).setdefault(h["step"], []).append(h["miou"] / ref[h["step"]])
    if not groups:
        return ""
    steps = sorted({step for g in groups.values() for step in g})
    lines = ["| run | " + " | ".join(str(step) for step in steps) + " |", "|---|" + "---|" * len(steps)]
    for key, by_step in groups.items():
        lines.append(f"| {key} | " + " | ".join(f"{_mean(by_step.get(step, [])):.3f}" for step in steps) + " |")
    return "\n".join(lines) + "\n"


def scenes_sentence(scenes: dict[str, int | None]) -> str:
    """The page's sentence on a sweep trained on fewer scenes (``--train-samples``); ``None`` is a whole split."""
    in_config = scenes["train_in_config"]
    in_config = "the config uses the whole split" if in_config is None else f"the config has {in_config}"
    val = "the whole validation split" if scenes["val"] is None else f"{scenes['val']} validation scenes"
    return (
        f"Trained on the first {scenes['train']} scenes of the synthetic training split (`--train-samples`; "
        f"{in_config}), evaluated on {val}."
    )


def write_report(args, points, correlations, pixel_error, command, overrides, caveats, runs, results) -> None:
    seconds = [r["train_seconds"] for r in runs if "train_seconds" in r]
    setting = f"`{args.config}`" + (" with " + ", ".join(f"`{o}`" for o in overrides) if overrides else "")
    note = (
        f"**Not a result**: {' and '.join(caveats)}, so the numbers below are those of these runs, not the "
        f"converged relation. Setting: {setting}. The full experiment (not run yet): `{FULL_COMMAND}`."
        if caveats
        else f"Setting: {setting}."
    )
    if args.train_samples is not None:
        note += " " + scenes_sentence(results["scenes"])
    errors = ", ".join(f"ν={nu}: {e:.3f}" for nu, e in sorted(pixel_error.items()))
    stats = results["label_statistics"]
    names = results["classes"]
    stat_lines = [
        "| ν_max | non-void pixels relabelled | void pixels still void, void=fill | "
        + " | ".join(f"{c} pixels kept" for c in names)
        + " |",
        "|---|---|---|" + "---|" * len(names),
    ]
    for nu, row in sorted(stats["per_nu"].items(), key=lambda kv: -int(kv[0])):
        kept = " | ".join(f"{row['class_kept'][c]:.2f}" for c in sorted(row["class_kept"], key=int))
        stat_lines.append(f"| {nu} | {row['changed']:.3f} | {row['void_kept_fill']:.2f} | {kept} |")
    conv_lines = []
    for seed, c in sorted(results["convergence"].items()):
        hist = next(r["history"] for r in runs if r["family"] == "pixelwise" and int(r["seed"]) == int(seed))
        curve = ", ".join(f"{h['step']}: {h['miou']:.3f}" for h in hist)
        verdict = "met" if c["met"] else "NOT met"
        half = hist[len(hist) // 2 - 1] if len(hist) > 1 else hist[-1]
        d = c.get("doubling")
        test = (
            f"doubling the schedule to {d['steps']} steps gives mIoU {d['miou']:.4f}, a gain of {d['gain']:+.4f} "
            f"(tolerance {d['tol']}); max - min of the last {c['window']} validation mIoUs = {c['spread']:.4f}"
            if d
            else f"max - min of the last {c['window']} validation mIoUs = {c['spread']:.4f}, tolerance {c['tol']}"
        )
        conv_lines.append(
            f"- seed {seed}: criterion {verdict} ({test}); gain over the second half of the schedule (step "
            f"{half['step']} to {hist[-1]['step']}): {hist[-1]['miou'] - half['miou']:+.4f}; validation mIoU by step: "
            f"{curve}."
        )
    criterion = (
        f"training it for twice the steps raises its validation mIoU by less than {args.doubling_tol}"
        if args.doubling_check
        else f"its validation mIoU varies by less than {args.converge_tol} over its last {args.converge_window} "
        "evaluations; a weak test under a poly schedule, see `--doubling-check`"
    )
    lines = [
        "# Block-wise annotation, feature truncation and R(ν_max) on synthetic scenes "
        "(Fig. 6 of the spectral-analysis paper)",
        "",
        f"Reproduce: `{command}`",
        "",
        f"Revision {results['revision']}; machine: {machine()}; finished "
        f"{datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M')} UTC.",
        "",
        note,
        "",
        f"Training time per run (first start to final checkpoint): mean {_mean(seconds):.0f} s, {len(seconds)} "
        f"run{'s' if len(seconds) != 1 else ''}. Results JSON (every record): `{args.results}` (not committed).",
        "",
        f"**Convergence** of the pixel-wise model (the criterion: {criterion}):",
        "",
        *conv_lines,
        "",
        relation_table(points, correlations),
        *(
            [
                "Relative mIoU (over the same seed's pixel-wise model) at every validation step of the schedule:",
                "",
                by_step,
            ]
            if (by_step := relative_by_step(runs))
            else []
        ),
        "Per-class validation IoU (pixel-wise labels; final weights):",
        "",
        class_table(runs, names),
        *(
            [
                "What block-wise annotation does to the validation labels (void is "
                f"{stats['void_share']:.1%} of the pixels; share of each class's pixels that keep their label):",
                "",
                "\n".join(stat_lines),
                "",
            ]
            if stats["per_nu"]
            else []
        ),
        f"Share of val pixels whose block-wise label differs from the pixel-wise one: {errors}.",
        "",
        f"![relative mIoU against R]({Path('..') / args.plot.relative_to('docs')})"
        if args.plot.is_relative_to("docs")
        else f"Plot: `{args.plot}`",
        "",
        reading(*results["label_size"]),
    ]
    args.report.parent.mkdir(parents=True, exist_ok=True)
    args.report.write_text("\n".join(lines))


if __name__ == "__main__":
    try:
        raise SystemExit(main())
    except FreqdenseError as err:
        raise SystemExit(f"spectral_synthetic.py: error: {err}") from None
