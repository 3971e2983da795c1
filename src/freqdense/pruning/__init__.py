"""Soft filter pruning (SFP, IJCAI 2018) and physical filter removal, as combined with feature truncation in
the spectral-analysis paper. See docs/methods/soft_filter_pruning.md."""

from __future__ import annotations

from .physical import ConstantInputConv2d, find_chains, remove_pruned_filters
from .soft_filter import (
    SoftFilterPruner,
    default_exclude,
    encoder_decoder_scopes,
    filter_norms,
    filters_to_prune,
    num_pruned_filters,
)
from .training import prune_checkpoint, pruned_model, pruned_structure

__all__ = [
    "ConstantInputConv2d",
    "SoftFilterPruner",
    "default_exclude",
    "encoder_decoder_scopes",
    "filter_norms",
    "filters_to_prune",
    "find_chains",
    "num_pruned_filters",
    "remove_pruned_filters",
    "prune_checkpoint",
    "pruned_model",
    "pruned_structure",
]
