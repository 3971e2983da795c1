"""What every checkpoint converter shares: safe reading, unwrapping, renaming, strict loading with named problems.

Nothing here unpickles arbitrary objects: ``.safetensors`` files are read with safetensors, everything else with
``torch.load(weights_only=True)`` plus an allowlist of numpy scalar/array reconstructors (training scripts often
store a metric such as ``best_pred`` as a numpy float next to the weights).
"""

from __future__ import annotations

import difflib
import os
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ...errors import CheckpointError

__all__ = [
    "Conversion",
    "read_checkpoint_file",
    "unwrap_state_dict",
    "rename_keys",
    "check_state_dict",
    "complete_state_dict",
]


@dataclass
class Conversion:
    """The result of a converter: the freqdense model to build and its state dict in freqdense key names.

    Attributes:
        model: ``{"name": registered model, **factory keyword arguments}`` as detected from the checkpoint.
        state_dict: tensors keyed by the freqdense model's parameter and buffer names.
        renamed: ``(official prefix, freqdense prefix)`` rules that were applied, with the number of keys each moved.
        dropped: official keys left out on purpose, with the reason (e.g. an ImageNet classifier).
        notes: anything the user should know (detected structure, options the weights cannot tell).
        extra: format-specific metadata worth recording (e.g. Monodepth2's training height/width).
    """

    model: dict[str, Any]
    state_dict: dict[str, Tensor]
    renamed: list[tuple[str, str, int]] = field(default_factory=list)
    dropped: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)


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


_WRAPPER_KEYS = ("state_dict", "model", "model_state", "model_state_dict", "net", "module")


def unwrap_state_dict(obj: Any, source: str, *, wrapper_keys: tuple[str, ...] = _WRAPPER_KEYS) -> dict[str, Tensor]:
    """The tensor mapping inside a checkpoint: ``obj`` itself or its ``state_dict`` / ``model`` entry, with a
    ``module.`` prefix (``nn.DataParallel`` / DDP) removed. Non-tensor entries are an error naming them."""
    if not isinstance(obj, Mapping):
        raise CheckpointError(
            f"{source}: expected a state dict (a mapping of names to tensors), got {type(obj).__name__}"
        )
    if not any(isinstance(v, Tensor) for v in obj.values()):
        for key in wrapper_keys:
            if isinstance(obj.get(key), Mapping):
                return unwrap_state_dict(obj[key], f"{source}[{key!r}]", wrapper_keys=())
        raise CheckpointError(
            f"{source}: no tensors found; top-level entries are {sorted(map(str, obj))[:10]}, none of "
            f"{list(wrapper_keys)} holds a state dict"
        )
    others = [str(k) for k, v in obj.items() if not isinstance(v, Tensor)]
    if others:
        raise CheckpointError(f"{source}: entries that are not tensors: {others[:5]}; is this a state dict?")
    state = {str(k): v for k, v in obj.items()}
    for prefix in ("module.", "_orig_mod."):
        if state and all(k.startswith(prefix) for k in state):
            state = {k[len(prefix) :]: v for k, v in state.items()}
    return state


def rename_keys(
    state: Mapping[str, Tensor],
    rules: list[tuple[str, str]] | Callable[[str], str],
    conversion: Conversion | None = None,
) -> dict[str, Tensor]:
    """Apply rename ``rules`` to every key: ``(old, new)`` substring pairs matched on whole dotted components (first
    match wins per rule, every rule tried), or a function. Counts per rule are added to ``conversion.renamed``."""
    if callable(rules):
        return {rules(k): v for k, v in state.items()}
    counts = [0] * len(rules)
    out: dict[str, Tensor] = {}
    for key, value in state.items():
        dotted = f".{key}."
        for i, (old, new) in enumerate(rules):
            pattern = f".{old}."
            if pattern in dotted:
                dotted = dotted.replace(pattern, f".{new}.")
                counts[i] += 1
        out[dotted[1:-1]] = value
    if conversion is not None:
        conversion.renamed += [(old, new, n) for (old, new), n in zip(rules, counts) if n]
    return out


def check_state_dict(model: nn.Module, state: Mapping[str, Tensor], source: str) -> None:
    """Strict comparison of ``state`` with ``model``: every missing, unexpected or mis-shaped key is named, with
    the closest key on the other side. ``num_batches_tracked`` counters may be missing (filled with 0)."""
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
    raise CheckpointError(
        f"{source} does not fit the model: {' | '.join(parts)}. Check the model options (backbone, number of "
        "classes, variant) or the format"
    )


def complete_state_dict(model: nn.Module, state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """``state`` plus the model's own ``num_batches_tracked`` counters where the checkpoint has none."""
    out = dict(state)
    for key, value in model.state_dict().items():
        if key.endswith("num_batches_tracked") and key not in out:
            out[key] = torch.zeros_like(value)
    return out
