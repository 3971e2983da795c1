"""Rebuilding physically pruned models: the layer shapes of a small model, and the registered ``pruned_model``.

:func:`pruned_structure` records, for every layer that :func:`~freqdense.pruning.remove_pruned_filters` can change,
what a fresh copy of the base model needs to take the small model's weights: conv / BN widths, whether a conv gained
a bias or a ones-channel (:class:`~freqdense.pruning.ConstantInputConv2d`), and which ResNet blocks add their last
conv into the residual at kept indices (:mod:`freqdense.pruning.residual`). ``pruned_model(base=..., structure=...)``
(a registered model) builds the base model and swaps those layers for empty ones of the recorded shapes; the weights
then come from the checkpoint, so ``freqdense eval/predict/export`` load pruned checkpoints like any other.
Writing such checkpoints is :func:`freqdense.engine.prune.prune_checkpoint` (``freqdense prune``).
"""

from __future__ import annotations

import logging
from typing import Any

import torch
import torch.nn as nn

from ..errors import ConfigError
from ..models._registry import register_model
from .physical import ConstantInputConv2d
from .residual import IndexAddBasicBlock, IndexAddBottleneck, index_add_block

log = logging.getLogger(__name__)

__all__ = ["pruned_model", "pruned_structure"]

_BLOCK_TYPES = {"index_add_bottleneck": IndexAddBottleneck, "index_add_basic_block": IndexAddBasicBlock}


def _build(name: str, kwargs: dict[str, Any] | None) -> nn.Module:
    from ..models import create_model

    return create_model(name, **dict(kwargs or {}))


def pruned_structure(model: nn.Module) -> dict[str, dict[str, Any]]:
    """Shapes of every conv / BN and index-add block of ``model`` (JSON-able), enough to rebuild it with
    :func:`pruned_model`. Entries are in module order, so a block comes before its children."""
    block_names = {cls: key for key, cls in _BLOCK_TYPES.items()}
    out: dict[str, dict[str, Any]] = {}
    for name, m in model.named_modules():
        if type(m) in block_names:
            out[name] = {
                "type": block_names[type(m)],
                "width": int(m.pruned_constant.numel()),
                "kept": int(m.kept_index.numel()),
            }
        elif isinstance(m, nn.Conv2d):
            out[name] = {
                "type": "const_conv" if isinstance(m, ConstantInputConv2d) else "conv",
                "in": m.in_channels,
                "out": m.out_channels,
                "bias": m.bias is not None,
            }
        elif isinstance(m, nn.BatchNorm2d):
            out[name] = {"type": "bn", "num_features": m.num_features}
    return out


def _empty_layer(old: nn.Module, spec: dict[str, Any], where: str) -> nn.Module:
    kind = spec.get("type")
    if kind in _BLOCK_TYPES:
        # buffers of the recorded shapes, filled by the checkpoint
        return index_add_block(old, torch.zeros(int(spec["kept"]), dtype=torch.long), torch.zeros(int(spec["width"])))
    if kind == "bn":
        return nn.BatchNorm2d(spec["num_features"], eps=old.eps, momentum=old.momentum)
    if kind in ("conv", "const_conv"):
        cls = ConstantInputConv2d if kind == "const_conv" else nn.Conv2d
        return cls(
            spec["in"],
            spec["out"],
            old.kernel_size,
            stride=old.stride,
            padding=old.padding,
            dilation=old.dilation,
            bias=spec["bias"],
            padding_mode=old.padding_mode,
        )
    known = sorted(["bn", "conv", "const_conv", *_BLOCK_TYPES])
    raise ConfigError(f"pruned_model: layer {where!r} has structure type {kind!r}; known types are {known}")


@register_model
def pruned_model(*, base: dict[str, Any], structure: dict[str, dict[str, Any]]) -> nn.Module:
    """A physically pruned model: ``base`` (``{"name": ..., **kwargs}``) with the layers of ``structure``."""
    kwargs = dict(base)
    name = kwargs.pop("name")
    kwargs.pop("pretrained", None)
    net = _build(name, kwargs)
    for key, spec in structure.items():
        try:
            old = net.get_submodule(key)
        except AttributeError as err:
            raise ConfigError(f"pruned_model: the base model {name!r} has no layer {key!r}") from err
        try:
            new = _empty_layer(old, spec, key)
        except TypeError as err:  # a block entry on a layer that is not a ResNet block
            raise ConfigError(f"pruned_model: layer {key!r} of {name!r}: {err}") from err
        parent, _, leaf = key.rpartition(".")
        setattr(net.get_submodule(parent) if parent else net, leaf, new)
    return net
