"""Parameters and FLOPs per model part, and the spectral-analysis paper's Table 2 FLOPs column (DeepLab v3+ feature
truncation).

FLOPs are ``torch.utils.flop_counter.FlopCounterMode`` counts: 2 x multiply-adds of convolutions and matrix
products (the paper's "FLOPs", docs/reference_code.md#flops-accounting-that-reproduces-the-paper); normalisation,
activations, pooling and interpolation are not counted. Models are run on the meta device, so nothing is allocated or
computed.

Paper accounting (``deeplabv3plus(accounting="paper")``, same section): the encoder is a ResNet-101 whose layer4 keeps
its stride (output stride 32, ASPP on 17 x 17 for a 513 input), 95.0 GFLOPs; its parameter count includes the
unused 2048 x 1000 ImageNet classifier of a torchvision ResNet object (tools that sum all modules count it):
42.50 + 2.05 + 15.54 (ASPP) = 60.08 M. The decoder runs at 129 x 129: 43.41 GFLOPs with 7 classes (DeepGlobe),
1.31 M parameters.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any, NamedTuple

import torch
import torch.nn as nn
from torch.utils.flop_counter import FlopCounterMode

from ..errors import ConfigError

__all__ = ["PartCount", "count_flops", "count_model_flops", "truncation_flops_table", "IMAGENET_FC_OUTPUTS"]

#: Classes of the ImageNet classifier a torchvision ResNet object carries (counted by the paper's accounting).
IMAGENET_FC_OUTPUTS = 1000


class PartCount(NamedTuple):
    """Parameters and FLOPs (one image) of one model part."""

    part: str
    params: int
    flops: int


def _size2(size: int | Sequence[int]) -> tuple[int, int]:
    h, w = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
    if h < 1 or w < 1:
        raise ConfigError(f"input size must be positive, got {size!r}")
    return h, w


def _on_meta(model: nn.Module) -> nn.Module:
    tensors = [*model.parameters(), *model.buffers()]
    if tensors and all(t.device.type == "meta" for t in tensors):
        return model
    return copy.deepcopy(model).to("meta")


def count_flops(model: nn.Module, input_size: int | Sequence[int] = (513, 513)) -> list[PartCount]:
    """Parameters and FLOPs of each top-level child of ``model`` for one ``(1, 3, H, W)`` image.

    Rows: one per child with parameters or FLOPs (in registration order); ``encoder`` (the children named by the
    model's ``encoder_modules``, e.g. DeepLab v3+'s backbone + ASPP) when it has them; with
    ``model.accounting == "paper"`` a row ``backbone.fc (unused)`` with the ImageNet classifier's parameters
    (``C x 1000 + 1000`` for the backbone's last width ``C``, 0 FLOPs), included in ``encoder`` and ``total``;
    last ``total``. The model is not modified (a meta-device copy runs if it is not on meta already).

    Args:
        model: takes a ``(1, 3, H, W)`` image.
        input_size: ``H`` or ``(H, W)``.

    Returns:
        The rows as :class:`PartCount` (FLOPs = 2 x multiply-adds).
    """
    h, w = _size2(input_size)
    meta = _on_meta(model)
    was_training = meta.training
    meta.eval()
    root = type(meta).__name__
    with FlopCounterMode(display=False) as counter:
        meta(torch.empty(1, 3, h, w, device="meta"))
    meta.train(was_training)
    counts = {name: sum(ops.values()) for name, ops in counter.get_flop_counts().items()}

    rows: list[PartCount] = []
    for name, child in meta.named_children():
        params = sum(p.numel() for p in child.parameters())
        flops = int(counts.get(f"{root}.{name}", 0))
        if params or flops:
            rows.append(PartCount(name, params, flops))
    extra: list[PartCount] = []
    if getattr(meta, "accounting", "standard") == "paper":
        width = meta.backbone.out_channels[-1]
        extra.append(PartCount("backbone.fc (unused)", width * IMAGENET_FC_OUTPUTS + IMAGENET_FC_OUTPUTS, 0))
    encoder = tuple(getattr(meta, "encoder_modules", ()))
    enc_rows = [r for r in rows if r.part in encoder] + extra
    rows += extra
    if encoder:
        rows.append(PartCount("encoder", sum(r.params for r in enc_rows), sum(r.flops for r in enc_rows)))
    total_params = sum(p.numel() for p in meta.parameters()) + sum(r.params for r in extra)
    rows.append(PartCount("total", total_params, int(counter.get_total_flops())))
    return rows


def count_model_flops(name: str, input_size: int | Sequence[int] = (513, 513), **kwargs: Any) -> list[PartCount]:
    """Build the registered model ``name`` on the meta device and :func:`count_flops` it."""
    from . import create_model

    if kwargs.get("pretrained"):
        kwargs = {**kwargs, "pretrained": None}  # weights do not change counts; meta tensors cannot load them
    with torch.device("meta"):
        model = create_model(name, **kwargs)
    return count_flops(model, input_size)


def truncation_flops_table(
    grids: Sequence[int | None] = (129, 65, 33),
    *,
    model: str = "deeplabv3plus",
    input_size: int | Sequence[int] = (513, 513),
    **kwargs: Any,
) -> list[dict[str, Any]]:
    """FLOPs of a model with its decoder on each grid (``decoder_grid=g``), the spectral-analysis paper's Table 2.

    Args:
        grids: decoder grid sizes; ``None`` is the untruncated decoder. The first entry is the reference of the
            ``reduction`` column.
        model: registered model name taking ``decoder_grid``.
        input_size: image size.
        kwargs: model keywords, e.g. ``accounting="paper", num_classes=7`` for the paper's numbers.

    Returns:
        One dict per grid: ``grid``, ``encoder_flops``, ``decoder_flops``, ``total_flops``, ``reduction``
        (fraction of the first row's total saved), ``encoder_params``, ``decoder_params``, ``total_params``.
    """
    from .._progress import progress

    rows: list[dict[str, Any]] = []
    for grid in progress(grids, f"FLOPs of {model} per decoder grid", unit="grid"):
        parts = {r.part: r for r in count_model_flops(model, input_size, decoder_grid=grid, **kwargs)}
        enc = parts.get("encoder", PartCount("encoder", 0, 0))
        dec = parts.get("decoder", PartCount("decoder", 0, 0))
        rows.append(
            {
                "grid": grid,
                "encoder_flops": enc.flops,
                "decoder_flops": dec.flops,
                "total_flops": parts["total"].flops,
                "encoder_params": enc.params,
                "decoder_params": dec.params,
                "total_params": parts["total"].params,
            }
        )
    for row in rows:
        row["reduction"] = 1.0 - row["total_flops"] / rows[0]["total_flops"] if rows[0]["total_flops"] else 0.0
    return rows
