"""Soft filter pruning (He et al., "Soft Filter Pruning for Accelerating Deep CNNs", IJCAI 2018).

Rules (docs/reference_code.md#soft-filter-pruning, he-y/soft-filter-pruning ``Mask``):

- criterion: the L2 norm of every output filter of a 4-D conv weight (``weight.view(out, -1).norm(dim=1)``, the
  whole ``in x k x k`` filter; the conv bias, if any, does not enter the norm);
- per layer: the ``floor(n_filters * rate)`` filters with the smallest norms are set to zero (ties: lower index
  first). **Here ``rate`` is the pruned fraction of filters** (0.4 = 40 % of each layer's filters zeroed), i.e.
  ``1 - --rate`` of the reference code, whose ``--rate`` is the *keep* ratio. It counts filters, not parameters,
  and applies to every selected layer separately (same rate for all layers of one scope);
- selected layers: every ``nn.Conv2d`` in scope, the ResNet stem and the last 1x1 of each bottleneck included,
  except the shortcut projections (``downsample`` convs) and the classifier (``exclude``);
- only the conv weight is zeroed: BN parameters, biases and gradients are untouched, so a zeroed filter keeps
  training and may come back at the next :meth:`SoftFilterPruner.step` ("soft");
- schedule: :meth:`~SoftFilterPruner.step` once before training, after every epoch and after the last one (the
  training loop also masks before every evaluation, so evaluated and saved models are pruned ones).

The spectral-analysis paper prunes the encoder (backbone + ASPP) by 20/40/60 % and the decoder by 20 %: give one rate
per scope (module-name prefix), e.g. :func:`encoder_decoder_scopes`.
"""

from __future__ import annotations

import fnmatch
import logging
import math
from collections.abc import Iterable, Mapping
from typing import Literal

import torch
import torch.nn as nn

from ..errors import ConfigError

log = logging.getLogger(__name__)

__all__ = [
    "SoftFilterPruner",
    "filter_norms",
    "filters_to_prune",
    "num_pruned_filters",
    "encoder_decoder_scopes",
    "default_exclude",
]

#: Name patterns (fnmatch) never pruned: shortcut projections, as ``--skip_downsample 1`` of the reference.
DOWNSAMPLE_PATTERNS = ("*downsample*",)


def filter_norms(weight: torch.Tensor) -> torch.Tensor:
    """L2 norm of each output filter of a ``(out, in, kh, kw)`` conv weight -> ``(out,)``."""
    if weight.ndim != 4:
        raise ConfigError(f"filter_norms needs a 4-D conv weight (out, in, kh, kw), got shape {tuple(weight.shape)}")
    return weight.detach().reshape(weight.shape[0], -1).norm(p=2, dim=1)


def num_pruned_filters(n_filters: int, rate: float) -> int:
    """``floor(n_filters * rate)`` (with a 1e-9 tolerance against float error, so 0.3 * 10 gives 3)."""
    if not 0.0 <= rate < 1.0:
        raise ConfigError(f"pruning rate must be in [0, 1) (the pruned fraction of filters), got {rate!r}")
    return int(math.floor(n_filters * rate + 1e-9))


def filters_to_prune(weight: torch.Tensor, rate: float) -> torch.Tensor:
    """Indices of the ``num_pruned_filters(out, rate)`` filters with the smallest L2 norm (stable order)."""
    norms = filter_norms(weight)
    k = num_pruned_filters(norms.numel(), rate)
    order = torch.sort(norms.float().cpu(), stable=True).indices
    return order[:k].sort().values


def _classifier_names(model: nn.Module) -> list[str]:
    num_classes = getattr(model, "num_classes", None)
    if num_classes is None:
        return []
    return [
        name
        for name, m in model.named_modules()
        if isinstance(m, nn.Conv2d) and m.out_channels == int(num_classes) and m.kernel_size == (1, 1)
    ]


def default_exclude(model: nn.Module) -> tuple[str, ...]:
    """Downsample convs (``*downsample*``) and the classifier: 1x1 convs with ``model.num_classes`` outputs."""
    return DOWNSAMPLE_PATTERNS + tuple(_classifier_names(model))


def encoder_decoder_scopes(
    model: nn.Module,
    encoder_rate: float,
    decoder_rate: float,
    *,
    encoder_output: Literal["encoder", "decoder"] = "decoder",
) -> dict[str, float]:
    """Scopes for the spectral-analysis paper's split: encoder = ``model.encoder_modules`` (default ``("backbone",)``)
    at ``encoder_rate``, every other top-level child at ``decoder_rate``.

    ``encoder_output`` sets the rate of the encoder's output layers, ``model.encoder_output_modules`` (DeepLab v3+:
    the ASPP projection ``aspp.conv1``, whose 256 filters are the decoder's input channels): ``"decoder"`` (default)
    prunes them at the decoder rate, ``"encoder"`` at the encoder rate. Table 2's FLOPs follow the paper accounting
    of :func:`freqdense.models.flops.pruned_flops` (docs/models/deeplabv3plus.md), not the physically removed model;
    see docs/methods/soft_filter_pruning.md.
    """
    if encoder_output not in ("encoder", "decoder"):
        raise ConfigError(f"encoder_output must be 'encoder' or 'decoder', got {encoder_output!r}")
    encoder = tuple(getattr(model, "encoder_modules", ("backbone",)))
    scopes: dict[str, float] = {}
    for name, child in model.named_children():
        if not any(isinstance(m, nn.Conv2d) for m in child.modules()):
            continue
        scopes[name + "."] = encoder_rate if name in encoder else decoder_rate
    if not any(name + "." in scopes for name in encoder):
        raise ConfigError(
            f"{type(model).__name__} has none of the encoder children {encoder}; its children are "
            f"{[n for n, _ in model.named_children()]}. Pass scopes= explicitly"
        )
    if encoder_output == "decoder":
        for name in getattr(model, "encoder_output_modules", ()):
            scopes[name] = decoder_rate
    return scopes


class SoftFilterPruner:
    """Zero the weakest filters of every selected conv, SFP style; keeps the masks.

    Args:
        model: any ``nn.Module``; convs are selected by name.
        rate: pruned fraction of filters for all convs (same as ``scopes={"": rate}``).
        scopes: module-name prefix -> pruned fraction; a conv takes the rate of its longest matching prefix, convs
            outside every scope are not pruned (``{"backbone.": 0.4, "aspp.": 0.4, "decoder.": 0.2}``).
        exclude: fnmatch patterns of conv names never pruned. ``None``: :func:`default_exclude` (downsample convs
            and the classifier).

    Attributes:
        rates: conv name -> pruned fraction, for the selected convs.
        masks: conv name -> bool ``(out,)`` tensor, True = filter kept (after the last :meth:`step`).
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        rate: float | None = None,
        scopes: Mapping[str, float] | None = None,
        exclude: Iterable[str] | None = None,
    ) -> None:
        if (rate is None) == (scopes is None):
            raise ConfigError("SoftFilterPruner needs exactly one of rate= or scopes= (prefix -> pruned fraction)")
        scopes = {"": float(rate)} if rate is not None else {str(k): float(v) for k, v in scopes.items()}
        for r in scopes.values():
            num_pruned_filters(1, r)  # validates the range
        patterns = tuple(default_exclude(model) if exclude is None else exclude)
        self.model = model
        self.rates: dict[str, float] = {}
        self._convs: dict[str, nn.Conv2d] = {}
        for name, m in model.named_modules():
            if not isinstance(m, nn.Conv2d) or any(fnmatch.fnmatchcase(name, p) for p in patterns):
                continue
            matches = [p for p in scopes if name.startswith(p)]
            if not matches:
                continue
            r = scopes[max(matches, key=len)]
            if r > 0:
                self.rates[name] = r
                self._convs[name] = m
        self.masks: dict[str, torch.Tensor] = {}
        log.debug("SFP selected %d convs: %s", len(self.rates), list(self.rates))

    @torch.no_grad()
    def step(self) -> dict[str, torch.Tensor]:
        """Recompute the norms, choose new weakest filters per layer and zero them; returns the masks."""
        for name, conv in self._convs.items():
            keep = torch.ones(conv.out_channels, dtype=torch.bool)
            keep[filters_to_prune(conv.weight, self.rates[name])] = False
            self.masks[name] = keep
        self.apply_masks()
        return self.masks

    @torch.no_grad()
    def apply_masks(self) -> None:
        """Zero the filters of the current masks again (without recomputing them)."""
        for name, keep in self.masks.items():
            weight = self._convs[name].weight
            weight[~keep.to(weight.device)] = 0.0

    def pruned_filters(self) -> int:
        """Total number of zeroed filters in the current masks."""
        return int(sum(int((~k).sum()) for k in self.masks.values()))
