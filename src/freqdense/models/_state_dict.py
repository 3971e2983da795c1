"""Reading and checking state dicts, shared by the checkpoint converters and the weight loaders of the models.

Nothing here unpickles arbitrary objects: ``.safetensors`` files are read with safetensors, everything else with
``torch.load(weights_only=True)`` plus an allowlist of numpy scalar/array reconstructors (training scripts often
store a metric such as ``best_pred`` as a numpy float next to the weights).
"""

from __future__ import annotations

import difflib
import os
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ..errors import CheckpointError

__all__ = ["read_checkpoint_file", "check_state_dict", "complete_state_dict"]


def _numpy_allowlist() -> list[Any]:
    import numpy as np

    try:  # numpy >= 2
        from numpy._core import multiarray
    except ImportError:  # pragma: no cover - numpy 1.x
        from numpy.core import multiarray  # type: ignore[no-redef]
    allowed: list[Any] = [np.dtype, np.ndarray, multiarray.scalar, multiarray._reconstruct]
    # Files written with numpy 1.x name the reconstructors under numpy.core.
    allowed += [
        (multiarray.scalar, "numpy.core.multiarray.scalar"),
        (multiarray._reconstruct, "numpy.core.multiarray._reconstruct"),
    ]
    dtypes = getattr(np, "dtypes", None)
    if dtypes is not None:
        allowed += [getattr(dtypes, n) for n in dir(dtypes) if n.endswith("DType")]
    return allowed


def read_checkpoint_file(path: str | os.PathLike[str]) -> Any:
    """The object stored in ``path`` (``.safetensors`` or a torch file), read without executing any code."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{str(path)!r} is not a file; give the checkpoint file itself")
    if path.suffix == ".safetensors":
        import safetensors.torch

        try:
            return safetensors.torch.load_file(str(path))
        except Exception as err:  # noqa: BLE001  (several error types for corrupt files: name the file)
            raise CheckpointError(f"{path}: not a readable safetensors file ({err})") from None
    try:
        with torch.serialization.safe_globals(_numpy_allowlist()), warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Detected pickle protocol")  # plain pickles: refused below
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001
        text = str(err).splitlines()[0] if str(err) else type(err).__name__
        if "Weights only load failed" in str(err) or "Unsupported global" in str(err):
            unsafe = _unsafe_globals(path)
            raise CheckpointError(
                f"{path}: refused to unpickle it: it holds Python objects other than tensors and numbers "
                f"({', '.join(unsafe) or text}). freqdense never executes code from a checkpoint; re-save only the "
                "state dict (torch.save(ckpt['state_dict'], 'weights.pth')) in a trusted environment"
            ) from None
        raise CheckpointError(
            f"{path}: cannot read the checkpoint ({text}); the file is truncated or not a torch file"
        ) from None


def _unsafe_globals(path: Path) -> list[str]:
    try:
        return list(torch.serialization.get_unsafe_globals_in_checkpoint(path))[:5]
    except Exception:  # noqa: BLE001
        return []


def check_state_dict(
    model: nn.Module,
    state: Mapping[str, Tensor],
    source: str,
    *,
    hint: str = "Check the model options (backbone, number of classes, variant) or the format",
) -> None:
    """Strict comparison of ``state`` with ``model``: every missing, unexpected or mis-shaped key is named, with
    the closest key on the other side, then ``hint``. ``num_batches_tracked`` counters may be missing (see
    :func:`complete_state_dict`)."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in state and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in expected]
    shapes = [
        f"{k}: checkpoint {tuple(v.shape)} vs model {tuple(expected[k].shape)}"
        for k, v in state.items()
        if k in expected and tuple(v.shape) != tuple(expected[k].shape)
    ]
    if not (missing or unexpected or shapes):
        return

    def closest(key: str, pool: list[str]) -> str:
        match = difflib.get_close_matches(key, pool, n=1, cutoff=0.6)
        return f"{key} (closest: {match[0]})" if match else key

    parts = []
    if missing:
        parts.append(f"{len(missing)} missing: " + "; ".join(closest(k, unexpected) for k in missing[:6]))
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected: " + "; ".join(closest(k, missing) for k in unexpected[:6]))
    if shapes:
        parts.append(f"{len(shapes)} shape mismatches: " + "; ".join(shapes[:6]))
    raise CheckpointError(f"{source} does not fit the model: {' | '.join(parts)}. {hint}")


def complete_state_dict(model: nn.Module, state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """``state`` plus the model's own ``num_batches_tracked`` counters where the checkpoint has none."""
    out = dict(state)
    for key, value in model.state_dict().items():
        if key.endswith("num_batches_tracked") and key not in out:
            out[key] = torch.zeros_like(value)
    return out
