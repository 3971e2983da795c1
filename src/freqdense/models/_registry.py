"""The model registry: names exist only at the string boundary (configs and CLI)."""

from __future__ import annotations

from collections.abc import Callable

import torch.nn as nn

from .._registry import Registry

MODELS: Registry[nn.Module] = Registry("model")


def register_model(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    """Register a model factory under its function name. A duplicate name fails at import."""
    return MODELS.register(fn)


__all__ = ["MODELS", "register_model"]
