"""Reusing the finished runs of an experiment script's sweep, only when they are the runs the command asks for."""

from __future__ import annotations

from pathlib import Path

from freqdense.config import config_to_dict
from freqdense.engine.run_config import experiment_differences, stored_config
from freqdense.errors import ConfigError


def check_reusable(run_dir: Path, cfg) -> None:
    """Refuse to reuse ``run_dir``'s results when the run was trained with another config than ``cfg`` (e.g. another
    ``--steps`` or override into the same ``--out``): its numbers would be reported under this command's settings.

    Runtime keys (threads, device, data workers) may differ. Raises ConfigError naming the directory, every differing
    key with both values, and the two ways out.
    """
    old, _ = stored_config(run_dir, None)
    if old is None:
        raise ConfigError(
            f"{run_dir} holds results but no config.yaml, so they cannot be checked against this command's config; "
            f"delete {run_dir} to retrain that run, or use another --out"
        )
    differing = experiment_differences(old, config_to_dict(cfg))
    if differing:
        changes = ", ".join(f"{k}: {a!r} there, {b!r} here" for k, (a, b) in differing.items())
        raise ConfigError(
            f"{run_dir} was trained with another config than this command builds for it ({changes}); use another "
            f"--out for these settings, or delete {run_dir} to retrain that run"
        )
