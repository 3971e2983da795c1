"""The backbone contract and the backbone registry (names exist only at the string boundary)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

import torch
import torch.nn as nn

from ..._registry import Registry

__all__ = ["BACKBONES", "Backbone", "create_backbone", "list_backbones", "register_backbone"]


@runtime_checkable
class Backbone(Protocol):
    """What every freqdense backbone provides.

    Attributes:
        in_channels: channels of the input image tensor.
        out_channels: channels of each returned feature map, in the order ``forward`` returns them.
        strides: input-to-feature downsampling factor of each returned feature map (exact for sizes divisible by
            the largest stride; other sizes give ``ceil(H / stride)``).
        first_conv: state-dict key of the convolution that sees the input (adapted by ``load_pretrained`` when
            ``in_channels != 3``).
        checkpoint_ignore_prefixes: extra key prefixes of a full ImageNet checkpoint that this instance does not
            build (e.g. ``layer4.`` when ``out_indices`` stops at layer3); ``load_pretrained`` drops them.
    """

    in_channels: int
    out_channels: tuple[int, ...]
    strides: tuple[int, ...]
    first_conv: str
    checkpoint_ignore_prefixes: tuple[str, ...]

    def __call__(self, x: torch.Tensor) -> list[torch.Tensor]: ...


BACKBONES: Registry[nn.Module] = Registry("backbone")


def register_backbone(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    """Register a backbone factory under its function name. A duplicate name fails at import."""
    return BACKBONES.register(fn)


def create_backbone(name: str, **kwargs: Any) -> nn.Module:
    """Build a registered backbone; unknown names raise UnknownNameError, bad keywords ConfigError."""
    return BACKBONES.create(name, **kwargs)


def list_backbones(pattern: str = "*") -> list[str]:
    """Sorted names of the registered backbones matching a glob pattern."""
    return BACKBONES.names(pattern)
