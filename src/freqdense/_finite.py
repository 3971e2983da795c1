"""Non-finite checks shared by prediction, evaluation, metrics and checkpoint loading.

NaN/inf must never pass silently: one NaN in an input spreads through a convolution network to every output
pixel, and one NaN prediction turns a whole split's mean metric into NaN. These helpers count the non-finite
entries and raise :class:`~freqdense.errors.NonFiniteError` (or the given error type) naming the culprit.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import torch

from .errors import CheckpointError, NonFiniteError

__all__ = ["non_finite_count", "check_finite", "check_finite_state"]


def non_finite_count(x: torch.Tensor | np.ndarray) -> int:
    """Number of NaN/inf entries of a floating tensor or array (0 for integer/bool ones)."""
    if isinstance(x, torch.Tensor):
        if not (x.is_floating_point() or x.is_complex()):
            return 0
        return int((~torch.isfinite(x)).sum())
    arr = np.asarray(x)
    if arr.dtype.kind not in "fc":
        return 0
    return int(np.count_nonzero(~np.isfinite(arr)))


def check_finite(x: torch.Tensor | np.ndarray, what: str, hint: str = "") -> None:
    """Raise NonFiniteError naming ``what`` and the share of non-finite values when ``x`` holds NaN/inf."""
    bad = non_finite_count(x)
    if bad:
        total = int(x.numel() if isinstance(x, torch.Tensor) else np.asarray(x).size)
        raise NonFiniteError(
            f"{what} holds {bad} non-finite (NaN/inf) values ({100.0 * bad / total:.3g} % of {total})"
            + (f"; {hint}" if hint else "")
        )


def check_finite_state(state: Mapping[str, Any], source: Any) -> None:
    """Raise CheckpointError naming ``source`` and the first tensor key holding NaN/inf (a corrupt weight file).

    A byte flip in a float32 exponent turns a weight into inf/NaN; loading it would make every prediction NaN.
    """
    bad_keys: list[str] = []
    for key, value in state.items():
        if isinstance(value, (torch.Tensor, np.ndarray)) and non_finite_count(value):
            bad_keys.append(str(key))
    if bad_keys:
        first = bad_keys[0]
        value = state[first]
        raise CheckpointError(
            f"{source}: tensor {first!r} holds {non_finite_count(value)} non-finite (NaN/inf) values"
            + (f" ({len(bad_keys)} tensors in all: {_head(bad_keys)})" if len(bad_keys) > 1 else "")
            + "; the weight file is corrupt (or saved from a diverged run): use another checkpoint"
        )


def _head(items: Iterable[str], n: int = 5) -> str:
    items = list(items)
    return ", ".join(items[:n]) + (f", ... (+{len(items) - n})" if len(items) > n else "")
