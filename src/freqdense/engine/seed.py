"""Seeds, determinism and RNG state capture (for bit-exact resume)."""

from __future__ import annotations

import dataclasses
import os
import random
from typing import Any

import numpy as np
import torch

__all__ = ["seed_everything", "rng_state", "set_rng_state", "resolve_num_threads"]


def seed_everything(seed: int, *, deterministic: bool = True) -> None:
    """Seed python, numpy and torch; optionally ask torch for deterministic kernels."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False


def resolve_num_threads(cfg: Any) -> Any:
    """Set torch's intra-op thread count from ``train.num_threads`` and return the config with the count explicit.

    ``None`` means what this machine gives (``torch.get_num_threads()``, i.e. ``OMP_NUM_THREADS`` or the cores);
    the returned config holds that number, so ``config.yaml`` and ``run.json`` record it. CPU float results depend
    on the thread count (reductions are split differently), so a run repeats bit for bit only with the same count.
    """
    threads = cfg.train.num_threads or torch.get_num_threads()
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    return dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, num_threads=threads))


def rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
