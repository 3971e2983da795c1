"""Learned and fixed feature up-samplers behind one interface (``module(hr, lr).hr_feat / .lr_feat``).

``build_upsampler(name, hr_channels, lr_channels, **kwargs)`` builds a member by name; :data:`UPSAMPLERS` lists the
names. Members are imported on first use, so a decoder that uses bilinear never imports the others. The interface,
the odd-size rule and each method's equations: docs/methods/upsamplers.md.
"""

from __future__ import annotations

import difflib
import importlib
from typing import Any

from torch import nn

from ...errors import ConfigError
from ._base import Upsampler, UpsamplerOutput, double_size

__all__ = [
    "UPSAMPLERS",
    "Upsampler",
    "UpsamplerOutput",
    "build_upsampler",
    "check_upsampler",
    "double_size",
    "upsampler_class",
]

#: name -> (module in this package, class, fixed keywords). Variants are names with fixed keywords.
_REGISTRY: dict[str, tuple[str, str, dict[str, Any]]] = {
    "bilinear": ("classical", "BilinearUpsampler", {}),
    "nearest": ("classical", "NearestUpsampler", {}),
    "deconv": ("classical", "DeconvUpsampler", {}),
    "pixel_shuffle": ("classical", "PixelShuffleUpsampler", {}),
    "carafe": ("carafe", "CARAFEUpsampler", {}),
    "indexnet": ("indexnet", "IndexNetUpsampler", {}),
    "a2u": ("a2u", "A2UUpsampler", {}),
    "fade": ("fade", "FADEUpsampler", {}),
    "fade_lite": ("fade", "FADEUpsampler", {"lite": True}),
    "sapa": ("sapa", "SAPAUpsampler", {}),
    "sapa_g": ("sapa", "SAPAUpsampler", {"variant": "G"}),
    "dysample": ("dysample", "DySampleUpsampler", {"style": "lp", "dyscope": False}),
    "dysample_plus": ("dysample", "DySampleUpsampler", {"style": "lp", "dyscope": True}),
    "dysample_s": ("dysample", "DySampleUpsampler", {"style": "pl", "dyscope": False}),
    "dysample_s_plus": ("dysample", "DySampleUpsampler", {"style": "pl", "dyscope": True}),
    "freqfusion": ("..freq_fusion", "FreqFusion", {}),
}

#: Every up-sampler name, in the order the docs and the benchmark list them.
UPSAMPLERS: tuple[str, ...] = tuple(_REGISTRY)


def check_upsampler(name: str) -> str:
    """Return ``name`` if it is in the family, else raise naming the family and the closest name."""
    if name not in _REGISTRY:
        close = difflib.get_close_matches(str(name), UPSAMPLERS, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError(f"unknown up-sampler {name!r}{hint}; the family: {', '.join(UPSAMPLERS)}")
    return name


def upsampler_class(name: str) -> type[nn.Module]:
    """The class behind ``name`` (imported on first use)."""
    module, cls, _ = _REGISTRY[check_upsampler(name)]
    return getattr(importlib.import_module(module if module.startswith(".") else f".{module}", __name__), cls)


def build_upsampler(name: str, hr_channels: int, lr_channels: int, **kwargs: Any) -> nn.Module:
    """Build family member ``name`` fusing ``hr_channels`` (guide) and ``lr_channels`` (up-sampled) features.

    ``kwargs`` are the member's keywords; a variant's fixed keywords (e.g. ``dysample_plus``'s ``dyscope=True``)
    cannot be overridden.
    """
    cls = upsampler_class(name)
    fixed = _REGISTRY[name][2]
    clash = sorted(set(fixed) & set(kwargs))
    if clash:
        raise ConfigError(
            f"up-sampler {name!r} fixes {', '.join(f'{k}={fixed[k]!r}' for k in clash)}; drop "
            f"{', '.join(clash)} from its keywords or pick the variant you want"
        )
    try:
        return cls(int(hr_channels), int(lr_channels), **fixed, **kwargs)
    except TypeError as err:
        raise ConfigError(f"up-sampler {name!r}: {err}") from err
