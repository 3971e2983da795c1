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

Pruned rows of Table 2 (:func:`pruned_flops`, :func:`pruning_flops_table`): the cost of a soft-filter-pruned model
under the paper's accounting, whose two rules the table's own numbers fix (docs/models/deeplabv3plus.md):

1. the decoder's cost does not depend on the encoder rate: the channels entering the decoder (ASPP output 256,
   low-level projection 48) keep their width, only the decoder's 3x3 convs lose ``floor(q n)`` filters at the
   decoder rate ``q`` (the truncation savings 129 -> 65 / 33 are 24 / 30 G at every encoder rate);
2. every bottleneck loses ``floor(p n)`` outputs of ``conv1``, ``conv2`` **and** ``conv3`` at the encoder rate
   ``p`` (and the matching inputs of ``conv2`` / ``conv3``); the residual stream (block inputs, shortcut
   projections) keeps its width; the ASPP branches lose their outputs and the projection its inputs.

The stem keeps its width too, a fitted detail (pruning it puts the 60 % rows 0.74 G lower).

In the paper accounting the encoder is read on the paper's counter: ``95.6 / 95.03`` times the conv count
(:data:`PAPER_ENCODER_SCALE`, the only constant, from the paper's unpruned encoder). With it all nine pruned
entries land within 0.43 G of the table and the "pruned FLOPs" column within 0.27 points.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from typing import Any, NamedTuple

import torch
import torch.nn as nn
from torch.utils.flop_counter import FlopCounterMode

from ..errors import ConfigError

__all__ = [
    "PartCount",
    "PlanEntry",
    "count_flops",
    "count_model_flops",
    "truncation_flops_table",
    "accounting_plan",
    "pruned_flops",
    "pruning_flops_table",
    "IMAGENET_FC_OUTPUTS",
    "PAPER_ENCODER_FLOPS",
    "CONV_ENCODER_FLOPS",
    "PAPER_ENCODER_SCALE",
]

#: Classes of the ImageNet classifier a torchvision ResNet object carries (counted by the paper's accounting).
IMAGENET_FC_OUTPUTS = 1000
#: The spectral-analysis paper's encoder (ResNet-101 + ASPP at 513, Sec. 3.2): 95.6 GFLOPs on its counter.
PAPER_ENCODER_FLOPS = 95.6e9
#: The same encoder (output stride 32) as 2 x conv multiply-adds here (closed form in tests/models/test_flops.py).
CONV_ENCODER_FLOPS = 95_030_004_096
#: Paper counter / conv count for the encoder (1.0060), applied to encoder FLOPs in the paper accounting.
PAPER_ENCODER_SCALE = PAPER_ENCODER_FLOPS / CONV_ENCODER_FLOPS


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


class PlanEntry(NamedTuple):
    """How the paper accounting prunes one conv.

    ``scope``: whose rate removes its output filters (``"encoder"``, ``"decoder"``, or ``None``: all kept).
    ``inputs``: its input channels as concatenated segments, each a producer conv (its kept outputs) or an int
    (channels at full width, e.g. a residual stream or an encoder feature entering the decoder).
    """

    conv: nn.Conv2d
    scope: str | None
    inputs: tuple[nn.Conv2d | int, ...]


def _resnet_plan(backbone: nn.Module) -> list[PlanEntry]:
    from .backbones.resnet import BasicBlock, Bottleneck

    plan: list[PlanEntry] = []
    for m in backbone.modules():
        if isinstance(m, Bottleneck):  # rule 2: conv3's outputs go too; the block input (residual) stays full
            plan += [
                PlanEntry(m.conv1, "encoder", (m.conv1.in_channels,)),
                PlanEntry(m.conv2, "encoder", (m.conv1,)),
                PlanEntry(m.conv3, "encoder", (m.conv2,)),
            ]
        elif isinstance(m, BasicBlock):
            plan += [PlanEntry(m.conv1, "encoder", (m.conv1.in_channels,)), PlanEntry(m.conv2, "encoder", (m.conv1,))]
    return plan  # stem and shortcut projections are not in the plan: full width


def _aspp_plan(aspp: nn.Module) -> list[PlanEntry]:
    branches = [aspp.aspp1.atrous_conv, aspp.aspp2.atrous_conv, aspp.aspp3.atrous_conv, aspp.aspp4.atrous_conv]
    branches.append(next(m for m in aspp.global_avg_pool if isinstance(m, nn.Conv2d)))
    plan = [PlanEntry(conv, "encoder", (conv.in_channels,)) for conv in branches]
    plan.append(PlanEntry(aspp.conv1, None, tuple(branches)))  # rule 1: the 256 channels into the decoder stay
    return plan


def accounting_plan(model: nn.Module) -> dict[int, PlanEntry]:
    """The paper accounting's plan of ``model`` (``id(conv)`` -> :class:`PlanEntry`; convs not in it keep their
    width): ResNet bottlenecks and the ASPP by the rules of the module docstring, the decoder by its own
    ``accounting_plan()`` (DeepLab v3+, DAN; a :class:`~freqdense.spectral.TruncatedDecoder` is looked through).

    Raises:
        ConfigError: the model has no ``backbone`` / ``decoder`` with an ``accounting_plan()``.
    """
    backbone = getattr(model, "backbone", None)
    decoder = getattr(model, "decoder", None)
    while decoder is not None and not hasattr(decoder, "accounting_plan") and hasattr(decoder, "decoder"):
        decoder = decoder.decoder
    if not isinstance(backbone, nn.Module) or not hasattr(decoder, "accounting_plan"):
        raise ConfigError(
            f"the paper's pruning accounting needs a model with a ResNet `backbone` and a `decoder` that has an "
            f"accounting_plan() (deeplabv3plus, dan); {type(model).__name__} has children "
            f"{[n for n, _ in model.named_children()]}"
        )
    plan = _resnet_plan(backbone)
    aspp = getattr(model, "aspp", None)
    if aspp is not None and hasattr(aspp, "aspp1"):
        plan += _aspp_plan(aspp)
    plan += [PlanEntry(*entry) for entry in decoder.accounting_plan()]
    return {id(entry.conv): entry for entry in plan}


def _kept(n: int, rate: float) -> int:
    """Filters SFP keeps: ``n - floor(n * rate)`` (the 1e-9 guards float error, as freqdense.pruning)."""
    if not 0.0 <= rate < 1.0:
        raise ConfigError(f"pruning rate must be in [0, 1) (the pruned fraction of filters), got {rate!r}")
    return n - int(math.floor(n * rate + 1e-9))


def _conv_pixels(meta: nn.Module, input_size: tuple[int, int]) -> list[tuple[str, nn.Conv2d, int]]:
    """``(name, conv, output pixels summed over its calls)`` for every conv of a meta-device model, one image."""
    pixels: dict[int, int] = {}

    def hook(module: nn.Module, _inputs: Any, output: torch.Tensor) -> None:
        pixels[id(module)] = pixels.get(id(module), 0) + output.shape[-2] * output.shape[-1]

    convs = [(name, m) for name, m in meta.named_modules() if isinstance(m, nn.Conv2d)]
    handles = [m.register_forward_hook(hook) for _, m in convs]
    was_training = meta.training
    try:
        meta.eval()
        with torch.no_grad():
            meta(torch.empty(1, 3, *input_size, device="meta"))
    finally:
        meta.train(was_training)
        for h in handles:
            h.remove()
    return [(name, m, pixels.get(id(m), 0)) for name, m in convs]


def _pruned_counts(
    meta: nn.Module, geometry: list[tuple[str, nn.Conv2d, int]], plan: dict[int, PlanEntry], rates: dict[str, float]
) -> dict[str, int]:
    encoder = tuple(getattr(meta, "encoder_modules", ("backbone",)))
    kept_out: dict[int, int] = {}

    def outputs(conv: nn.Conv2d) -> int:
        if id(conv) not in kept_out:
            entry = plan.get(id(conv))
            scope = entry.scope if entry is not None else None
            kept_out[id(conv)] = _kept(conv.out_channels, rates[scope]) if scope else conv.out_channels
        return kept_out[id(conv)]

    counts = {"encoder": 0, "decoder": 0}
    for name, conv, pixels in geometry:
        entry = plan.get(id(conv))
        cin = conv.in_channels
        if entry is not None:
            cin = sum(seg if isinstance(seg, int) else outputs(seg) for seg in entry.inputs)
        kh, kw = conv.kernel_size
        flops = 2 * pixels * outputs(conv) * (cin // conv.groups) * kh * kw
        counts["encoder" if name.split(".")[0] in encoder else "decoder"] += flops
    counts["total"] = counts["encoder"] + counts["decoder"]
    return counts


def _paper_columns(meta: nn.Module, counts: dict[str, int]) -> dict[str, float]:
    scale = PAPER_ENCODER_SCALE if getattr(meta, "accounting", "standard") == "paper" else 1.0
    paper_encoder = counts["encoder"] * scale
    return {"paper_encoder_flops": paper_encoder, "paper_flops": paper_encoder + counts["decoder"]}


def pruned_flops(
    model: nn.Module,
    input_size: int | Sequence[int] = (513, 513),
    *,
    encoder_rate: float,
    decoder_rate: float,
) -> dict[str, float]:
    """FLOPs of ``model`` soft-filter-pruned at ``encoder_rate`` / ``decoder_rate``, in the paper's accounting.

    Conv FLOPs (2 x multiply-adds, one ``(1, 3, H, W)`` image) with the filter counts of
    :func:`accounting_plan` (``floor(rate * n)`` filters removed per pruned conv). At rates 0 the counts equal
    :func:`count_flops`'s. The model is not modified (a meta-device copy runs).

    Returns:
        ``encoder_flops``, ``decoder_flops``, ``total_flops`` (conv counts) and ``paper_encoder_flops``,
        ``paper_flops`` (encoder on the paper's counter, x :data:`PAPER_ENCODER_SCALE`, when
        ``model.accounting == "paper"``; else equal to the conv counts).
    """
    meta = _on_meta(model)
    plan = accounting_plan(meta)
    geometry = _conv_pixels(meta, _size2(input_size))
    counts = _pruned_counts(meta, geometry, plan, {"encoder": float(encoder_rate), "decoder": float(decoder_rate)})
    return {f"{k}_flops": v for k, v in counts.items()} | _paper_columns(meta, counts)


def pruning_flops_table(
    model: str = "deeplabv3plus",
    *,
    encoder_rates: Sequence[float] = (0.2, 0.4, 0.6),
    decoder_rate: float = 0.2,
    grids: Sequence[int | None] = (129, 65, 33),
    input_size: int | Sequence[int] = (513, 513),
    **kwargs: Any,
) -> list[dict[str, Any]]:
    """The FLOPs columns of the spectral-analysis paper's Table 2 (and Table 4): every pruning setup x decoder grid.

    Setups: the unpruned baseline, then each encoder rate with ``decoder_rate`` (the paper: 20 / 40 / 60 % and
    20 %). ``freqdense analyze flops deeplabv3plus accounting=paper num_classes=7 --decoder-grid 129 65 33
    --encoder-rates 0.2 0.4 0.6`` prints it.

    Args:
        model: registered model name taking ``decoder_grid`` with an accounting plan (``deeplabv3plus``, ``dan``).
        encoder_rates: encoder pruning rates of the pruned setups.
        decoder_rate: decoder pruning rate of the pruned setups.
        grids: decoder grids (``None``: untruncated).
        input_size: image size.
        kwargs: model keywords, e.g. ``accounting="paper", num_classes=7``.

    Returns:
        One dict per (setup, grid), setups in order: ``encoder_rate``, ``decoder_rate``, ``grid``, the
        :func:`pruned_flops` columns, and ``pruned`` (fraction of the baseline's first-grid ``paper_flops`` saved,
        the table's "pruned FLOPs").
    """
    from .._progress import progress
    from . import create_model

    if kwargs.get("pretrained"):
        kwargs = {**kwargs, "pretrained": None}
    size = _size2(input_size)
    setups = [(0.0, 0.0)] + [(float(r), float(decoder_rate)) for r in encoder_rates]
    by_grid: dict[Any, list[dict[str, Any]]] = {}
    for grid in progress(list(grids), f"pruned FLOPs of {model} per decoder grid", unit="grid"):
        with torch.device("meta"):
            meta = create_model(model, decoder_grid=grid, **kwargs)
        plan = accounting_plan(meta)
        geometry = _conv_pixels(meta, size)
        rows = []
        for enc, dec in setups:
            counts = _pruned_counts(meta, geometry, plan, {"encoder": enc, "decoder": dec})
            rows.append(
                {"encoder_rate": enc, "decoder_rate": dec, "grid": grid}
                | {f"{k}_flops": v for k, v in counts.items()}
                | _paper_columns(meta, counts)
            )
        by_grid[grid] = rows
    table = [by_grid[g][i] for i in range(len(setups)) for g in grids]
    reference = table[0]["paper_flops"]
    for row in table:
        row["pruned"] = 1.0 - row["paper_flops"] / reference if reference else 0.0
    return table
