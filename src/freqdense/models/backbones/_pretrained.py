"""Load ImageNet weights into a backbone from a LOCAL file (freqdense never downloads anything).

Accepted files: torch pickles (``.pth``, ``.pt``, ``.pth.tar``, ``.tar``, ``.ckpt``, ``.bin``; read with
``torch.load(weights_only=True)``) and ``.safetensors``. Key formats: torchvision ResNet and the official
HRNet-Image-Classification release (our module names equal theirs). Wrappers ``{"state_dict": ...}`` /
``{"model": ...}`` and ``module.`` prefixes (DataParallel) are removed. Classification-only keys are dropped and
reported at INFO; anything else that does not fit raises :class:`~freqdense.errors.CheckpointError`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

import torch
import torch.nn as nn

from ...errors import CheckpointError, ConfigError

__all__ = ["CLASSIFIER_PREFIXES", "PretrainedReport", "adapt_input_conv", "load_pretrained", "read_state_dict"]

log = logging.getLogger(__name__)

#: Keys of ImageNet classification heads that dense backbones never build (torchvision ``fc``, HRNet-Image-
#: Classification ``incre_modules``/``downsamp_modules``/``final_layer``/``classifier``).
CLASSIFIER_PREFIXES = ("fc.", "classifier.", "incre_modules.", "downsamp_modules.", "final_layer.")

_TORCH_SUFFIXES = (".pth", ".pt", ".tar", ".ckpt", ".bin")
_MAX_LISTED = 8


class PretrainedReport(NamedTuple):
    """What :func:`load_pretrained` did."""

    loaded: int  #: number of tensors copied into the backbone
    dropped: tuple[str, ...]  #: checkpoint keys ignored (classification heads, stages not built)
    adapted: tuple[str, ...]  #: keys whose input channels were adapted (``in_channels != 3``)


def _check_weights_path(path: Any) -> None:
    """``pretrained`` must be a path: ``pretrained=True`` (torchvision/timm style) would mean a download."""
    if isinstance(path, (str, os.PathLike)) and str(path):
        return
    if isinstance(path, bool):
        got = f"pretrained={path}"
        fix = (
            "pass pretrained=PATH to a local torchvision (ResNet) or official HRNet-Image-Classification "
            "checkpoint file (.pth/.safetensors)"
            if path
            else "leave pretrained out (None) for random initialisation"
        )
    else:
        got = f"pretrained={path!r} ({type(path).__name__})"
        fix = "pass pretrained=PATH to a local .pth/.safetensors file, or None for random initialisation"
    raise ConfigError(
        f"{got} is not a weights file path: freqdense never downloads weights, it loads them from a local file; {fix}"
    )


def read_state_dict(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """Read a flat ``{key: tensor}`` dict from a local checkpoint file, unwrapping common containers.

    Raises:
        ConfigError: ``path`` is not a path (e.g. ``pretrained=True``: weights are never downloaded).
        CheckpointError: the file is missing, unreadable, corrupt or holds no tensor dict.
    """
    _check_weights_path(path)
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(
            f"pretrained weights file {str(path)!r} does not exist; pass the path of a local .pth/.safetensors file "
            "(freqdense never downloads weights)"
        )
    name = path.name.lower()
    try:
        if name.endswith(".safetensors"):
            from safetensors.torch import load_file

            obj: Any = load_file(str(path), device="cpu")
        elif name.endswith(_TORCH_SUFFIXES):
            obj = torch.load(path, map_location="cpu", weights_only=True)
        else:
            raise CheckpointError(
                f"cannot read pretrained weights {str(path)!r}: unknown file type; use .pth, .pt, .pth.tar, "
                ".ckpt, .bin (torch.save) or .safetensors"
            )
    except CheckpointError:
        raise
    except Exception as err:  # pickle, zip and safetensors errors have no common base class
        raise CheckpointError(
            f"cannot read pretrained weights {str(path)!r} ({type(err).__name__}: {err}); the file is corrupt or not "
            "a tensor checkpoint. Re-download it, or re-save it with torch.save(model.state_dict(), path)"
        ) from err

    for _ in range(3):  # {'state_dict': {...}}, {'model': {...}}, possibly nested
        if isinstance(obj, Mapping):
            inner = next((obj[k] for k in ("state_dict", "model") if isinstance(obj.get(k), Mapping)), None)
            if inner is None:
                break
            obj = inner
    if not isinstance(obj, Mapping) or not obj:
        raise CheckpointError(f"pretrained weights {str(path)!r} hold no state dict (got {type(obj).__name__})")
    bad = [k for k, v in obj.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise CheckpointError(
            f"pretrained weights {str(path)!r}: entries {bad[:_MAX_LISTED]} are not tensors; expected a state dict "
            "(optionally wrapped as {'state_dict': ...} or {'model': ...})"
        )
    return {(k[len("module.") :] if k.startswith("module.") else k): v for k, v in obj.items()}


def adapt_input_conv(weight: torch.Tensor, in_channels: int) -> torch.Tensor:
    """Turn an RGB first-conv weight ``(O, 3, k, k)`` into ``(O, in_channels, k, k)``.

    * ``in_channels`` a multiple of 3 (stacked RGB frames): tile the RGB filters and divide by the number of
      copies (Monodepth2's rule), so ``[x, x, ...]`` gives the RGB response to ``x``.
    * otherwise (1 = depth, 4 = RGB-D ...): every channel gets the mean RGB filter scaled by ``3 / in_channels``,
      so an input whose channels all equal ``g`` gives the RGB response to the grey image ``(g, g, g)``.
    """
    if weight.shape[1] != 3:
        raise CheckpointError(f"can only adapt an RGB input conv (3 input channels), got weight {tuple(weight.shape)}")
    if in_channels % 3 == 0:
        copies = in_channels // 3
        return weight.repeat(1, copies, 1, 1) / copies
    mean = weight.mean(dim=1, keepdim=True)
    return mean.repeat(1, in_channels, 1, 1) * (3.0 / in_channels)


def load_pretrained(backbone: nn.Module, path: str | os.PathLike[str]) -> PretrainedReport:
    """Copy ImageNet weights from a local file into ``backbone`` (strict apart from classification keys).

    Args:
        backbone: a freqdense backbone (ResNet or HRNet); its ``first_conv`` is adapted when ``in_channels != 3``
            and its ``checkpoint_ignore_prefixes`` (stages it did not build) are dropped.
        path: local ``.pth``/``.pt``/``.pth.tar``/``.safetensors`` file.

    Returns:
        A :class:`PretrainedReport`.

    Raises:
        ConfigError: ``path`` is not a path (e.g. ``pretrained=True``: weights are never downloaded).
        CheckpointError: unreadable file, or missing/unexpected keys or shape mismatches (all are named).
    """
    state = read_state_dict(path)
    ignore = CLASSIFIER_PREFIXES + tuple(getattr(backbone, "checkpoint_ignore_prefixes", ()))
    dropped = tuple(sorted(k for k in state if k.startswith(ignore)))
    for k in dropped:
        del state[k]
    if dropped:
        groups = sorted({k.split(".")[0] for k in dropped})
        log.info("%s: dropped %d keys not used by the backbone (%s)", path, len(dropped), ", ".join(groups))

    expected = backbone.state_dict()
    adapted: list[str] = []
    first = getattr(backbone, "first_conv", None)
    if first in state and first in expected:
        got, want = state[first], expected[first]
        if got.dim() == 4 and got.shape[1] == 3 and want.shape[1] != 3 and got.shape[0] == want.shape[0]:
            state[first] = adapt_input_conv(got, want.shape[1])
            adapted.append(first)
            log.info("%s: adapted %s from 3 to %d input channels", path, first, want.shape[1])

    missing = [k for k in expected if k not in state and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in expected]
    mismatched = [
        f"{k}: file {tuple(v.shape)}, model expects {tuple(expected[k].shape)}"
        for k, v in state.items()
        if k in expected and v.shape != expected[k].shape
    ]
    if missing or unexpected or mismatched:
        what = type(backbone).__name__
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing key(s) {_listed(missing)}")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected key(s) {_listed(unexpected)}")
        if mismatched:
            parts.append(
                f"{len(mismatched)} shape mismatch(es) [{'; '.join(mismatched[:_MAX_LISTED])}"
                + (", ..." if len(mismatched) > _MAX_LISTED else "")
                + "]"
            )
        raise CheckpointError(
            f"pretrained weights {str(path)!r} do not fit this {what}: " + "; ".join(parts) + ". Expected a "
            f"{'torchvision ResNet' if what == 'ResNet' else 'HRNet-Image-Classification'} state dict for the same "
            "architecture and width (e.g. resnet50 weights for resnet50 with base_width=64); check the backbone "
            "name and its width/in_channels arguments"
        )
    for k, v in expected.items():  # old files lack BN counters; keep the model's own
        if k not in state:
            state[k] = v
    backbone.load_state_dict(state, strict=True)
    log.info("%s: loaded %d tensors into %s", path, len(state), type(backbone).__name__)
    return PretrainedReport(len(state), dropped, tuple(adapted))


def _listed(keys: list[str]) -> str:
    return str(keys[:_MAX_LISTED])[:-1] + (", ...]" if len(keys) > _MAX_LISTED else "]")
