"""Physically pruned checkpoints that freqdense can load again.

SFP itself runs inside the training loop (config section ``prune``: ``freqdense train CONFIG
prune.encoder_rate=0.4 prune.decoder_rate=0.2``). :func:`prune_checkpoint` then applies the final mask, removes the
zero filters and saves a checkpoint of the registered ``pruned_model(base=..., structure=...)``: the base model with
the convs / BNs listed in ``structure`` replaced by empty ones of the stored shapes, the weights coming from the
checkpoint, so ``eval``, ``predict`` and ``export`` keep working.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch.nn as nn

from ..errors import ConfigError
from ..models._registry import register_model
from .physical import ConstantInputConv2d, remove_pruned_filters
from .soft_filter import SoftFilterPruner, encoder_decoder_scopes

log = logging.getLogger(__name__)

__all__ = ["pruned_model", "pruned_structure", "prune_checkpoint"]


def _build(name: str, kwargs: dict[str, Any] | None) -> nn.Module:
    from ..models import create_model

    return create_model(name, **dict(kwargs or {}))


def pruned_structure(model: nn.Module) -> dict[str, dict[str, Any]]:
    """Shapes of every conv / BN of ``model`` (JSON-able), enough to rebuild it with :func:`pruned_model`."""
    out: dict[str, dict[str, Any]] = {}
    for name, m in model.named_modules():
        if isinstance(m, nn.Conv2d):
            out[name] = {
                "type": "const_conv" if isinstance(m, ConstantInputConv2d) else "conv",
                "in": m.in_channels,
                "out": m.out_channels,
                "bias": m.bias is not None,
            }
        elif isinstance(m, nn.BatchNorm2d):
            out[name] = {"type": "bn", "num_features": m.num_features}
    return out


@register_model
def pruned_model(*, base: dict[str, Any], structure: dict[str, dict[str, Any]]) -> nn.Module:
    """A physically pruned model: ``base`` (``{"name": ..., **kwargs}``) with the layer shapes of ``structure``."""
    kwargs = dict(base)
    name = kwargs.pop("name")
    kwargs.pop("pretrained", None)
    net = _build(name, kwargs)
    for key, spec in structure.items():
        try:
            old = net.get_submodule(key)
        except AttributeError as err:
            raise ConfigError(f"pruned_model: the base model {name!r} has no layer {key!r}") from err
        if spec["type"] == "bn":
            new: nn.Module = nn.BatchNorm2d(spec["num_features"], eps=old.eps, momentum=old.momentum)
        else:
            cls = ConstantInputConv2d if spec["type"] == "const_conv" else nn.Conv2d
            new = cls(
                spec["in"],
                spec["out"],
                old.kernel_size,
                stride=old.stride,
                padding=old.padding,
                dilation=old.dilation,
                bias=spec["bias"],
                padding_mode=old.padding_mode,
            )
        parent, _, leaf = key.rpartition(".")
        setattr(net.get_submodule(parent) if parent else net, leaf, new)
    return net


def prune_checkpoint(
    path: str | Path,
    out_dir: str | Path,
    *,
    encoder_rate: float | None = None,
    decoder_rate: float | None = None,
    encoder_output: str | None = None,
) -> tuple[nn.Module, Path]:
    """Final SFP mask + physical removal of a trained run / checkpoint; saves a loadable checkpoint in ``out_dir``.

    Rates default to the run's ``prune`` config section (needed for a run trained without SFP). Returns the
    small model (eval mode) and the checkpoint directory written (``freqdense eval/predict/export`` accept it).
    """
    from ..engine.checkpoint import load_model, save_checkpoint

    model, meta = load_model(path)
    base = dict(meta["config"]["model"])
    trained = meta["config"].get("prune") or {}
    encoder_rate = trained.get("encoder_rate", 0.0) if encoder_rate is None else encoder_rate
    decoder_rate = trained.get("decoder_rate", 0.0) if decoder_rate is None else decoder_rate
    encoder_output = trained.get("encoder_output", "decoder") if encoder_output is None else encoder_output
    if not encoder_rate and not decoder_rate:
        raise ConfigError(f"{path}: not trained with soft filter pruning (prune rates 0); pass --encoder-rate")
    scopes = encoder_decoder_scopes(model, encoder_rate, decoder_rate or 0.0, encoder_output=encoder_output)
    pruner = SoftFilterPruner(model, scopes=scopes)
    pruner.step()
    small = remove_pruned_filters(model).eval()
    config = dict(meta["config"])
    config["model"] = {"name": "pruned_model", "base": base, "structure": pruned_structure(small)}
    meta = {k: v for k, v in meta.items() if k not in ("checkpoint_dir", "step")}
    meta["config"] = config
    meta["pruning"] = {
        "encoder_rate": encoder_rate,
        "decoder_rate": decoder_rate,
        "encoder_output": encoder_output,
        "filters": pruner.pruned_filters(),
    }
    ckpt = save_checkpoint(Path(out_dir), 0, small, meta=meta)
    return small, ckpt
