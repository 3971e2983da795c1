"""The seconds-long multi-task training config shared by the end-to-end and bad-input tests."""

from __future__ import annotations

from pathlib import Path

import yaml


def tiny_config(cache_dir, **overrides) -> dict:
    """A seconds-long multi-task run on 32x48 synthetic scenes with a slim ResNet-18."""
    cfg = {
        "model": {
            "name": "multitask_baseline",
            "backbone": "resnet18",
            "num_classes": NUM_CLASSES,
            "backbone_kwargs": {"base_width": 8},
        },
        "data": {
            "dataset": "synthetic",
            "args": {"size": [32, 48], "cache_dir": str(cache_dir)},
            "train_args": {"num_samples": 16},
            "val_args": {"num_samples": 6},
            "batch_size": 4,
            "val_batch_size": 3,
            "train_transforms": {"hflip": True, "scale": [1.0, 1.25], "crop": [32, 48]},
        },
        "task": {"name": "multitask", "max_depth": 20.0},
        "optim": {"name": "adamw", "lr": 2.0e-3, "clip_grad_norm": 5.0},
        "schedule": {"name": "poly", "total_steps": 8, "warmup_steps": 2},
        "eval": {"every": 4, "metric": "semantic/miou", "mode": "max"},
        "train": {"seed": 1, "log_every": 2, "device": "cpu"},
    }
    for key, value in overrides.items():
        section, name = key.split(".", 1)
        cfg[section][name] = value
    return cfg


def _num_classes() -> int:
    from freqdense.data import create_dataset

    return create_dataset("synthetic", split="val", num_samples=1).num_classes


NUM_CLASSES = _num_classes()


def write_tiny_config(folder: Path, name: str = "cfg.yaml", **overrides) -> Path:
    """Write :func:`tiny_config` (scene cache in ``folder/cache``) to ``folder/name``; returns the path."""
    path = Path(folder) / name
    path.write_text(yaml.safe_dump(tiny_config(Path(folder) / "cache", **overrides)))
    return path
