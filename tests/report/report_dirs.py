"""Directories for the report tests: hand-written run, demo and ablation directories (fast), and a tiny real config."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import yaml
from PIL import Image

CLASSES = ("floor", "wall", "table")


def _png(path: Path, seed: int = 0, size: tuple[int, int] = (40, 64)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 255, (*size, 3), dtype=np.uint8)).save(path)
    return path


def _metrics(miou: float, rmse: float) -> dict:
    val = {"semantic/miou": miou, "semantic/pixel_acc": miou + 0.3, "depth/rmse": rmse, "depth/abs_rel": rmse / 5}
    val.update({f"semantic/iou/{c}": miou + 0.05 * i for i, c in enumerate(CLASSES)})
    val["semantic/iou/table"] = None  # an absent class: NaN written as null
    return val


def write_fake_run(path: Path, *, miou: float = 0.4, rmse: float = 0.8, seed: int = 0) -> Path:
    """A run directory as `freqdense train` leaves it (without checkpoints), plus analyses, written by hand."""
    path.mkdir(parents=True, exist_ok=True)
    config = {
        "model": {"name": "fpn", "backbone": "resnet18", "num_classes": 3, "fusion": "freqfusion"},
        "data": {"dataset": "synthetic", "args": {"size": [32, 48]}, "batch_size": 4},
        "task": {"name": "multitask"},
        "optim": {"name": "adamw", "lr": 0.002},
        "schedule": {"name": "poly", "total_steps": 8, "warmup_steps": 2},
        "eval": {"every": 4, "metric": "semantic/miou", "mode": "max"},
        "train": {"seed": seed, "device": "cpu"},
    }
    (path / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    val = _metrics(miou, rmse)
    best = {"metric": "semantic/miou", "value": miou, "step": 8}
    (path / "metrics.json").write_text(json.dumps({"step": 8, "val": val, "best": best}))
    rows = []
    for step in (2, 4, 6, 8):
        loss = 3.0 / step
        rows.append(
            {
                "kind": "train",
                "step": step,
                "loss/semantic": loss,
                "loss/depth": loss / 2,
                "loss/total": 1.5 * loss,
                "lr": 0.002 * (1 - step / 8),
                "epoch": 0.0,
                "images_per_s": 20.0,
            }
        )
        if step % 4 == 0:
            rows.append({"kind": "eval", "step": step, **_metrics(miou * step / 8, rmse * 8 / step)})
    (path / "log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    start = {
        "step": 0,
        "date": "2026-01-02T03:04:05+00:00",
        "freqdense_version": "0.1.0",
        "git_revision": "abc123def",
        "argv": ["/x/bin/freqdense", "train", "cfg.yaml", "--out", str(path)],
    }
    resumed = {
        **start,
        "step": 4,
        "date": "2026-01-02T04:00:00+00:00",
        "git_revision": "abc123def+dirty",
        "config_changes": {"schedule.total_steps": {"from": 4, "to": 8}},
    }
    (path / "run.json").write_text(json.dumps({**resumed, "starts": [start, resumed]}))
    _png(path / "predictions.png", seed)
    spectrum = path / "analysis" / "spectrum"
    spectrum.mkdir(parents=True)
    (spectrum / "spectrum.json").write_text(
        json.dumps(
            {
                "checkpoint": str(path),
                "split": "val",
                "shells": "square",
                "table": [{"nu_max": n, "R": 1.0 / (n + 1), "mean_image_R": 1.1 / (n + 1)} for n in (1, 2, 4)],
                "spectrum": {"ce_mean": 1.25, "num_images": 3, "loss": [0.5, 0.25, 0.125] * 10},
            }
        )
    )
    _png(spectrum / "spectrum.png", seed + 1)
    custom = path / "analysis" / "custom"
    custom.mkdir()
    (custom / "whatever.json").write_text(json.dumps({"answer": 42, "nested": {"x": [1, 2], "name": "n"}}))
    (custom / "notes.md").write_text("| a | b |\n|---|---|\n| 1 | 2 |\n")
    return path


def write_fake_demo(path: Path, method: Path | None = None, control: Path | None = None) -> Path:
    """A demo directory following the demo.json contract, its arms ``method/`` and ``control/`` (hand-written runs
    unless given)."""
    path.mkdir(parents=True, exist_ok=True)
    arms = {}
    for role, given, miou in (("method", method, 0.5), ("control", control, 0.4)):
        run = given if given is not None else write_fake_run(path / role, miou=miou, seed=int(miou * 10))
        arms[role] = json.loads((run / "metrics.json").read_text())["val"]
    rows = [
        {
            "name": "trivial",
            "role": "trivial",
            "run_dir": None,
            "config": None,
            "metrics": {k: (0.05 if v is not None else None) for k, v in arms["method"].items()},
            "analyses": {},
        },
        {
            "name": "bilinear-FPN",
            "role": "control",
            "run_dir": "control",
            "config": "synthetic/demo_bilinear",
            "metrics": arms["control"],
            "analyses": {"similarity": {"intra": 0.6, "inter": 0.3, "margin": 0.3}, "spectrum": {"ce_mean": 1.4}},
        },
        {
            "name": "FreqFusion-FPN",
            "role": "method",
            "run_dir": "method",
            "config": "synthetic/demo_freqfusion",
            "metrics": arms["method"],
            "analyses": {"similarity": {"intra": 0.7, "inter": 0.2, "margin": 0.5}, "spectrum": {"ce_mean": 1.2}},
        },
    ]
    demo = {
        "kind": "demo",
        "title": "FreqFusion-FPN vs bilinear-FPN",
        "wall_time_s": 12.5,
        "seed": 0,
        "steps": 8,
        "rows": rows,
    }
    (path / "demo.json").write_text(json.dumps(demo))
    return path


def write_fake_ablation(path: Path) -> Path:
    """An ablation directory as `freqdense ablate` writes it (summary from the real `summarise`)."""
    from freqdense.engine.ablate import format_markdown, summarise

    runs = {}
    for name, miou in (("base", 0.4), ("fafe", 0.45)):
        runs[name] = []
        for seed in (0, 1):
            run = write_fake_run(path / name / f"seed{seed}", miou=miou + 0.01 * seed, seed=seed)
            val = json.loads((run / "metrics.json").read_text())["val"]
            runs[name].append(
                {"seed": seed, "seconds": 10.0 + seed, "trained": True, "run_dir": str(run), "metrics": val}
            )
    summary = summarise(runs)
    command = f"freqdense ablate base.yaml fafe.yaml --seeds 2 --out {path}"
    (path / "ablation.md").write_text(format_markdown(summary, title="FAFE ladder", command=command))
    raw = {
        "command": command,
        "configs": ["base.yaml", "fafe.yaml"],
        "names": ["base", "fafe"],
        "seeds": [0, 1],
        "overrides": [],
        "runs": runs,
        "summary": summary,
    }
    (path / "ablation.json").write_text(json.dumps(raw))
    return path


def tiny_train_config(cache_dir: Path, **overrides) -> dict:
    """A seconds-long multi-task run on 32x48 synthetic scenes (as tests/e2e's ``tiny_config``, 4 steps)."""
    from freqdense.data import create_dataset

    num_classes = create_dataset("synthetic", split="val", num_samples=1).num_classes
    cfg = {
        "model": {
            "name": "multitask_baseline",
            "backbone": "resnet18",
            "num_classes": num_classes,
            "backbone_kwargs": {"base_width": 8},
        },
        "data": {
            "dataset": "synthetic",
            "args": {"size": [32, 48], "cache_dir": str(cache_dir)},
            "train_args": {"num_samples": 8},
            "val_args": {"num_samples": 3},
            "batch_size": 4,
            "val_batch_size": 3,
        },
        "task": {"name": "multitask", "max_depth": 20.0},
        "optim": {"name": "adamw", "lr": 2.0e-3},
        "schedule": {"name": "poly", "total_steps": 4, "warmup_steps": 1},
        "eval": {"every": 2, "metric": "semantic/miou", "mode": "max"},
        "train": {"seed": 1, "log_every": 1, "device": "cpu"},
    }
    for key, value in overrides.items():
        section, name = key.split(".", 1)
        cfg[section][name] = value
    return cfg
