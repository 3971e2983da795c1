"""What every checkpoint converter shares: the conversion record, unwrapping and renaming; safe reading and strict
checking live in :mod:`freqdense.models._state_dict` (also used by the models' own weight loaders)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from torch import Tensor

from ...errors import CheckpointError
from .._state_dict import check_state_dict, complete_state_dict, read_checkpoint_file

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
