"""Shared pieces of the experiment scripts' markdown reports: the git revision, the machine, mean ± std cells.

The scripts run as files (``python scripts/experiments/NAME.py``), so this module is imported as a sibling.
"""

from __future__ import annotations

import math
import os
import platform
import statistics
import subprocess
from pathlib import Path

import torch

__all__ = ["git_revision", "machine", "mean_std"]


def git_revision() -> str:
    """``git rev-parse --short HEAD`` of the checkout holding these scripts, plus " with uncommitted changes" when
    tracked files differ from it."""
    here = Path(__file__).resolve().parent
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=here, capture_output=True, text=True, check=True
        )
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=here,
            capture_output=True,
            text=True,
            check=True,
        )
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"
    return rev.stdout.strip() + (" with uncommitted changes" if dirty.stdout.strip() else "")


def machine() -> str:
    """Processor, CPU count, torch version and thread count (or the GPU's name) of this process."""
    device = (
        torch.cuda.get_device_name(0)
        if torch.cuda.is_available()
        else f"{os.cpu_count()} CPUs, {torch.get_num_threads()} torch thread(s)"
    )
    return f"{platform.processor() or platform.machine()} {platform.system()}, {device}, torch {torch.__version__}"


def mean_std(values: list[float]) -> str:
    """``"m ± s"`` (sample std) over the finite values, the value itself for one, ``"n/a"`` for none."""
    finite = [v for v in values if not math.isnan(v)]
    if not finite:
        return "n/a"
    if len(finite) == 1:
        return f"{finite[0]:.4f}"
    return f"{statistics.mean(finite):.4f} ± {statistics.stdev(finite):.4f}"
