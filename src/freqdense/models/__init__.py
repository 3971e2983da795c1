"""Dense prediction models. Importing this package registers every model (add new model modules below)."""

from __future__ import annotations

from typing import Any

import torch.nn as nn

from ..pruning import structure as _pruned  # noqa: F401, E402  (registers pruned_model: physically pruned checkpoints)
from . import (
    dan,  # noqa: F401  (registers dan: a reconstruction of DAN)
    deeplabv3plus,  # noqa: F401  (registers deeplabv3plus)
    fafnet,  # noqa: F401  (registers fafnet, two_stream_deeplabv3plus)
    fcos,  # noqa: F401  (registers fcos: FCOS detection on the FreqFusion FPN neck)
    fpn,  # noqa: F401  (registers fpn, segformer_head)
    monodepth,  # noqa: F401  (registers monodepth)
    mti_net,  # noqa: F401  (registers mti_net)
    multitask,  # noqa: F401  (registers multitask_baseline, segmentation_baseline, depth_baseline)
    pad_net,  # noqa: F401  (registers pad_net, pad_net_3predict)
    segnext,  # noqa: F401  (registers segnext: MSCAN + light Hamburger head, plain or with FreqFusion)
)
from ._registry import MODELS, register_model

__all__ = ["MODELS", "create_model", "list_models", "register_model"]


def create_model(name: str, **kwargs: Any) -> nn.Module:
    """Build a registered model; unknown names raise UnknownNameError (with suggestions), bad keywords ConfigError."""
    return MODELS.create(name, **kwargs)


def list_models(pattern: str = "*") -> list[str]:
    """Sorted names of the registered models matching a glob pattern."""
    return MODELS.names(pattern)
