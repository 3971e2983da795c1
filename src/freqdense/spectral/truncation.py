"""Truncated cross-entropy, its relative discrepancy R(nu_max), and feature truncation of a decoder.

Chen, Chiu, Wu, AAAI 2020: Eq. 13-14 (Sec. 2.4, Table 1) and the feature truncation of Sec. 3.2 (Table 2):
"down-sample the decoder features, including the ASPP high-level features and the backbone low-level features,
from 129 x 129 to 65 x 65 or 33 x 33", run the whole decoder at that grid, upsample the logits
(docs/reference_code.md#feature-truncation). A grid of ``n = 2 nu_max + 1`` points carries ``|nu| <= nu_max``
cycles per image, so truncating a 513-input decoder to 65 x 65 corresponds to ``R(32)``.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any, Literal

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import ConfigError, ShapeError

__all__ = [
    "GridMode",
    "truncated_ce",
    "relative_discrepancy",
    "resize_to_grid",
    "run_at_grid",
    "TruncatedDecoder",
    "truncate_decoder",
]

GridMode = Literal["bilinear_align_corners", "area", "bilinear_antialias"]
_GRID_MODES = ("bilinear_align_corners", "area", "bilinear_antialias")


def _check_spectrum(loss: torch.Tensor) -> None:
    if not isinstance(loss, torch.Tensor) or loss.dim() < 1:
        raise ShapeError("expected a (..., S) tensor of per-shell CE components, e.g. ce_spectrum(...).loss")


def truncated_ce(loss: torch.Tensor, nu_max: int | None = None) -> torch.Tensor:
    """Eq. 13: ``L_hat(nu_max) = sum_{nu <= nu_max} L_ce(nu)``.

    Args:
        loss: ``(..., S)`` per-shell components ``L_ce(nu)`` (shell ``nu`` at index ``nu``).
        nu_max: band limit; ``None`` returns the whole curve ``(..., S)``. Values past the last shell give the
            full CE.

    Returns:
        ``(...)`` for an int ``nu_max``, else ``(..., S)``.
    """
    _check_spectrum(loss)
    curve = loss.cumsum(dim=-1)
    if nu_max is None:
        return curve
    if nu_max < 0:
        raise ConfigError(f"nu_max must be >= 0, got {nu_max}")
    return curve[..., min(int(nu_max), loss.shape[-1] - 1)]


def relative_discrepancy(loss: torch.Tensor, nu_max: int | None = None) -> torch.Tensor:
    """Eq. 14: ``R(nu_max) = |(L_hat(nu_max) - L_ce) / L_ce|``.

    Computed as ``|sum_{nu > nu_max} L_ce(nu)| / |L_ce|``, so ``R`` is exactly 0 at (and beyond) the full band.
    A spectrum whose total is 0 (e.g. an all-void image) has ``R = 0``.

    Args:
        loss: ``(..., S)`` per-shell components (or any additive spectrum, e.g. label energy).
        nu_max: band limit; ``None`` returns the whole curve.

    Returns:
        ``(...)`` for an int ``nu_max``, else ``(..., S)``.

    Example:
        >>> relative_discrepancy(torch.tensor([3.0, 0.5, 0.5])).tolist()
        [0.25, 0.125, 0.0]
    """
    _check_spectrum(loss)
    suffix = loss.flip(-1).cumsum(dim=-1).flip(-1)  # sum_{nu' >= nu}
    total = suffix[..., :1]
    tail = F.pad(suffix[..., 1:], (0, 1))  # sum_{nu' > nu}; exactly 0 for the last shell
    r = torch.where(total != 0, tail.abs() / total.abs().clamp_min(torch.finfo(loss.dtype).tiny), 0.0)
    if nu_max is None:
        return r
    if nu_max < 0:
        raise ConfigError(f"nu_max must be >= 0, got {nu_max}")
    return r[..., min(int(nu_max), loss.shape[-1] - 1)]


def _size2(size: int | tuple[int, int]) -> tuple[int, int]:
    h, w = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
    if h < 1 or w < 1:
        raise ConfigError(f"grid size must be positive, got {size!r}")
    return h, w


def resize_to_grid(x: torch.Tensor, size: int | tuple[int, int], *, mode: GridMode = "bilinear_align_corners"):
    """Resize a ``(B, C, H, W)`` feature to the ``size`` grid.

    Args:
        x: feature map.
        size: ``n`` or ``(n_h, n_w)``.
        mode: ``"bilinear_align_corners"`` (jfzhang95 DeepLab v3+; exact subsampling for ``129 -> 65 -> 33``, no
            anti-aliasing), ``"area"`` (block average), ``"bilinear_antialias"`` (half-pixel bilinear with an
            anti-aliasing low-pass when shrinking). The paper does not state its mode.

    Returns:
        ``(B, C, n_h, n_w)``.
    """
    if not isinstance(x, torch.Tensor) or x.dim() != 4:
        raise ShapeError(f"resize_to_grid expects a (B, C, H, W) tensor, got {getattr(x, 'shape', type(x))}")
    size2 = _size2(size)
    if tuple(x.shape[-2:]) == size2:
        return x
    if mode == "bilinear_align_corners":
        return F.interpolate(x, size=size2, mode="bilinear", align_corners=True)
    if mode == "area":
        return F.interpolate(x, size=size2, mode="area")
    if mode == "bilinear_antialias":
        return F.interpolate(x, size=size2, mode="bilinear", align_corners=False, antialias=True)
    raise ConfigError(f"grid mode must be one of {', '.join(_GRID_MODES)}, got {mode!r}")


def _map_tensors(obj: Any, fn: Callable[[torch.Tensor], torch.Tensor]) -> Any:
    if isinstance(obj, torch.Tensor):
        return fn(obj) if obj.dim() == 4 else obj
    if isinstance(obj, dict):
        return {k: _map_tensors(v, fn) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)) and not hasattr(obj, "_fields"):
        return type(obj)(_map_tensors(v, fn) for v in obj)
    return obj


def run_at_grid(
    decoder: Callable[..., Any],
    *features: Any,
    size: int | tuple[int, int],
    mode: GridMode = "bilinear_align_corners",
    output_size: tuple[int, int] | None = None,
    **kwargs: Any,
) -> Any:
    """Run ``decoder(*features, **kwargs)`` with every 4-D tensor input resized to the ``size`` grid.

    Args:
        decoder: callable taking feature maps (e.g. DeepLab v3+'s ``decoder(aspp_out, low_level_feat)``).
        features: its positional inputs; 4-D tensors are resized, anything else passes unchanged.
        size: grid ``n`` or ``(n_h, n_w)``, e.g. 65 or 33 for a 129-grid decoder.
        mode: feature resizing, see :func:`resize_to_grid`.
        output_size: if given, 4-D tensor outputs are upsampled bilinearly to it (``align_corners=True`` with the
            ``"bilinear_align_corners"`` mode, else ``False``); otherwise they stay at the grid.
        kwargs: keyword inputs, resized like ``features``.

    Returns:
        The decoder's output (tensor, dict, list or tuple), with 4-D tensors upsampled if ``output_size``.
    """
    resize = lambda t: resize_to_grid(t, size, mode=mode)  # noqa: E731
    out = decoder(*_map_tensors(list(features), resize), **_map_tensors(dict(kwargs), resize))
    if output_size is None:
        return out
    ac = mode == "bilinear_align_corners"
    up = lambda t: F.interpolate(t, size=tuple(output_size), mode="bilinear", align_corners=ac)  # noqa: E731
    return _map_tensors(out, up)


class TruncatedDecoder(nn.Module):
    """Wraps a decoder so that it always runs on a reduced ``size`` grid (paper Sec. 3.2).

    Args:
        decoder: the module to wrap (kept as ``self.decoder``; its parameters keep their names under it).
        size: grid ``n`` or ``(n_h, n_w)``.
        mode: feature resizing, see :func:`resize_to_grid`.
        restore_size: upsample 4-D outputs back to the largest input grid (for consumers that expect the
            original decoder resolution); default ``False``, the model's own final upsampling takes the logits
            from the grid to the image size, as in the paper.
    """

    def __init__(
        self,
        decoder: nn.Module,
        size: int | tuple[int, int],
        *,
        mode: GridMode = "bilinear_align_corners",
        restore_size: bool = False,
    ) -> None:
        super().__init__()
        if mode not in _GRID_MODES:
            raise ConfigError(f"grid mode must be one of {', '.join(_GRID_MODES)}, got {mode!r}")
        self.decoder = decoder
        self.size = _size2(size)
        self.mode = mode
        self.restore_size = restore_size
        self._warned = False

    def forward(self, *features: Any, **kwargs: Any) -> Any:
        sizes = [
            tuple(t.shape[-2:]) for t in (*features, *kwargs.values()) if isinstance(t, torch.Tensor) and t.dim() == 4
        ]
        largest = max(sizes, key=lambda s: s[0] * s[1]) if sizes else None
        if largest is not None and not self._warned and (self.size[0] > largest[0] or self.size[1] > largest[1]):
            self._warned = True  # once per module: evaluation loops call it every batch
            warnings.warn(
                f"TruncatedDecoder: the {self.size[0]}x{self.size[1]} grid is larger than the decoder's largest input "
                f"map ({largest[0]}x{largest[1]}) on at least one axis; the features are upsampled there, not "
                "truncated. Use a grid no larger than the decoder map (e.g. 2 nu_max + 1 <= its shorter side)",
                stacklevel=2,
            )
        output_size = largest if self.restore_size else None
        return run_at_grid(self.decoder, *features, size=self.size, mode=self.mode, output_size=output_size, **kwargs)

    def extra_repr(self) -> str:
        return f"size={self.size}, mode={self.mode!r}, restore_size={self.restore_size}"


def truncate_decoder(
    model: nn.Module,
    size: int | tuple[int, int],
    *,
    attribute: str = "decoder",
    mode: GridMode = "bilinear_align_corners",
    restore_size: bool = False,
) -> nn.Module:
    """Replace ``model.<attribute>`` (dotted path) by a :class:`TruncatedDecoder` in place; returns ``model``.

    An already truncated decoder is re-wrapped at the new size (not nested). The original module lives on as
    ``model.<attribute>.decoder``, so its state-dict keys gain a ``decoder.`` level: load weights before
    truncating.

    Raises:
        ConfigError: ``attribute`` does not name a submodule; the message lists the model's children.
    """
    parent = model
    *path, leaf = attribute.split(".")
    for name in path:
        parent = getattr(parent, name, None)
        if not isinstance(parent, nn.Module):
            break
    target = getattr(parent, leaf, None) if isinstance(parent, nn.Module) else None
    if not isinstance(target, nn.Module):
        children = ", ".join(n for n, _ in model.named_children()) or "none"
        raise ConfigError(
            f"{type(model).__name__} has no submodule {attribute!r} to truncate; its children are: {children}. "
            "Pass attribute= the decoder's (dotted) name"
        )
    if isinstance(target, TruncatedDecoder):
        target = target.decoder
    setattr(parent, leaf, TruncatedDecoder(target, size, mode=mode, restore_size=restore_size))
    return model
