"""Converters from official checkpoint layouts to freqdense models (``freqdense convert``).

Each format maps a checkpoint (a file, or Monodepth2's folder) to a :class:`Conversion`: the registered model to
build, with the options read from the weights, and the state dict in freqdense key names. Reading never unpickles
arbitrary objects (see :func:`read_checkpoint_file`); :func:`convert` checks that the result loads strictly.

Formats (``FORMATS``):

- ``mtl-pytorch``: Multi-Task-Learning-PyTorch MTI-Net, PAD-Net, multi-task and single-task HRNet baselines;
- ``monodepth2``: a Monodepth2 / Freq-aware depth weights folder (``encoder.pth``, ``depth.pth``, pose files);
- ``deeplab-jfzhang95``: pytorch-deeplab-xception's DeepLab v3+ with a ResNet backbone (``.pth.tar``);
- ``fafnet``: the official FAFNet code's network (``GetFAFNet_D``) -> ``fafnet_official``;
- ``freqfusion``: the FreqFusion repository's mmseg SegNeXt(+FreqFusion) checkpoints -> ``segnext`` (its mmdet
  detection checkpoints convert only partially, backbone + neck: :func:`.freqfusion.write_partial_conversion`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from torch import nn

from ...errors import CheckpointError, UnknownNameError
from ._common import Conversion, check_state_dict, complete_state_dict, read_checkpoint_file, unwrap_state_dict
from .deeplab_jfzhang95 import convert_deeplab_jfzhang95
from .fafnet import convert_fafnet
from .freqfusion import convert_freqfusion
from .monodepth2 import convert_monodepth2
from .mtl_pytorch import convert_mtl_pytorch

__all__ = ["FORMATS", "Conversion", "convert", "read_checkpoint_file", "register_format", "unwrap_state_dict"]


def _mtl(source: Path, options: dict[str, Any]) -> Conversion:
    state = unwrap_state_dict(read_checkpoint_file(source), str(source))
    conv = convert_mtl_pytorch(state)
    return _with_options(conv, options, allowed=("depth_activation", "fpm_grouping"))


def _deeplab(source: Path, options: dict[str, Any]) -> Conversion:
    state = unwrap_state_dict(read_checkpoint_file(source), str(source))
    return convert_deeplab_jfzhang95(state, options)


def _fafnet(source: Path, options: dict[str, Any]) -> Conversion:
    state = unwrap_state_dict(read_checkpoint_file(source), str(source))
    return convert_fafnet(state, options)


def _monodepth2(source: Path, options: dict[str, Any]) -> Conversion:
    return convert_monodepth2(source, options)


def _with_options(conv: Conversion, options: dict[str, Any], *, allowed: tuple[str, ...]) -> Conversion:
    clash = {k: (v, conv.model[k]) for k, v in options.items() if k in conv.model and conv.model[k] != v}
    if clash:
        detail = "; ".join(f"model.{k}={a!r} but the checkpoint has {b!r}" for k, (a, b) in clash.items())
        raise CheckpointError(f"the model options contradict the checkpoint: {detail}")
    unknown = [k for k in options if k not in conv.model and k not in allowed]
    if unknown:
        raise CheckpointError(
            f"model options {unknown} cannot be set for this format (allowed: {list(allowed)}; the rest is read from "
            "the checkpoint)"
        )
    conv.model = {**conv.model, **options}
    return conv


#: format name -> (converter(source, model options) -> Conversion, what SOURCE is)
FORMATS: dict[str, tuple[Callable[[Path, dict[str, Any]], Conversion], str]] = {
    "mtl-pytorch": (_mtl, "best_model.pth.tar / checkpoint.pth.tar of Multi-Task-Learning-PyTorch"),
    "monodepth2": (_monodepth2, "a Monodepth2 / Freq-aware depth weights folder (encoder.pth, depth.pth, ...)"),
    "deeplab-jfzhang95": (_deeplab, "model_best.pth.tar of pytorch-deeplab-xception (ResNet backbone)"),
    "fafnet": (_fafnet, "a checkpoint of the official FAFNet code (GetFAFNet_D, models/fafnet_alignD.py)"),
    "freqfusion": (
        convert_freqfusion,
        "an mmseg SegNeXt(+FreqFusion) checkpoint of the FreqFusion repository (iter_*.pth / best_mIoU_*.pth)",
    ),
}


def register_format(name: str, fn: Callable[[Path, dict[str, Any]], Conversion], source: str) -> None:
    """Add a format (used by the FAFNet and FreqFusion converters)."""
    FORMATS[name] = (fn, source)


def convert(fmt: str, source: str | Path, model_options: dict[str, Any] | None = None) -> tuple[nn.Module, Conversion]:
    """Convert ``source`` of format ``fmt``; returns the freqdense model with the weights loaded strictly (eval mode)
    and the :class:`Conversion` describing what was mapped."""
    from .. import create_model

    if fmt not in FORMATS:
        raise UnknownNameError(f"unknown checkpoint format {fmt!r}; formats: {', '.join(FORMATS)}")
    source = Path(source)
    if not source.exists():
        raise CheckpointError(f"{str(source)!r} does not exist; give the official checkpoint ({FORMATS[fmt][1]})")
    conv = FORMATS[fmt][0](source, dict(model_options or {}))
    kwargs = {k: v for k, v in conv.model.items() if k != "name"}
    model = create_model(conv.model["name"], **kwargs)
    check_state_dict(model, conv.state_dict, str(source))
    conv.state_dict = complete_state_dict(model, conv.state_dict)
    model.load_state_dict(conv.state_dict, strict=True)
    return model.eval(), conv
