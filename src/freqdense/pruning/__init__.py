"""Soft filter pruning (SFP, IJCAI 2018) and physical filter removal, as combined with feature truncation in
the spectral-analysis paper. See docs/methods/soft_filter_pruning.md. Writing pruned checkpoints of a run lives in
the engine layer (:func:`freqdense.engine.prune.prune_checkpoint`)."""

from __future__ import annotations

from .physical import ConstantInputConv2d, find_chains, remove_pruned_filters
from .residual import IndexAddBasicBlock, IndexAddBottleneck
from .soft_filter import (
    SoftFilterPruner,
    default_exclude,
    encoder_decoder_scopes,
    filter_norms,
    filters_to_prune,
    num_pruned_filters,
)
from .structure import pruned_model, pruned_structure

__all__ = [
    "ConstantInputConv2d",
    "IndexAddBasicBlock",
    "IndexAddBottleneck",
    "SoftFilterPruner",
    "default_exclude",
    "encoder_decoder_scopes",
    "filter_norms",
    "filters_to_prune",
    "find_chains",
    "num_pruned_filters",
    "remove_pruned_filters",
    "pruned_model",
    "pruned_structure",
]
