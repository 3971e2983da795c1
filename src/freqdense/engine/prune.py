"""``prune_checkpoint``: final soft-filter-pruning mask and physical removal of a trained run, saved as a checkpoint
of the registered ``pruned_model`` (``freqdense prune``). See docs/methods/soft_filter_pruning.md."""

from __future__ import annotations

from pathlib import Path

import torch.nn as nn

from ..errors import ConfigError
from ..pruning import SoftFilterPruner, encoder_decoder_scopes, pruned_structure, remove_pruned_filters
from .checkpoint import load_model, save_checkpoint

__all__ = ["prune_checkpoint"]


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
    small = remove_pruned_filters(model.eval()).eval()
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
