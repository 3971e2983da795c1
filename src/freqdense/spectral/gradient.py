"""Spectral gradient ``d L_ce(nu_i) / d x(nu_j)`` of the CE frequency components w.r.t. an intermediate feature.

Chen, Chiu, Wu, AAAI 2020, Sec. 2.3 (Eq. 10-12) and Fig. 4. The feature ``X`` of any layer is captured with a
forward hook; autograd gives the spatial gradient ``d Re L_ce(nu_i) / d X`` (``L_ce(nu_i)`` = one shell of
:func:`freqdense.spectral.spectrum.ce_spectrum`, in cycles per image), and its unitary DFT is the gradient w.r.t.
the feature spectrum ``x(nu_j) = F(X)``. The paper's claim is that this is close to a delta: the energy sits on
the feature shell ``nu_j = nu_i``. Frequencies are cycles per image on both sides, so a 33 x 33 feature and
513 x 513 logits are compared at the same physical frequency.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import torch
import torch.nn as nn

from ..errors import ConfigError, ShapeError
from ..ops.fft import Shells, Units, frequency_shells, shell_reduce
from .spectrum import ce_spectrum

__all__ = ["SpectralGradient", "spectral_gradient"]


class SpectralGradient(NamedTuple):
    """Result of :func:`spectral_gradient`; ``F`` = number of probed CE shells ``nu_i``."""

    frequencies: tuple[int, ...]  # the CE shells nu_i
    magnitude: torch.Tensor  # (F, Hx, Wx) |DFT_ortho(dRe L(nu_i)/dX)| summed over batch and channels, FFT order
    energy_profile: torch.Tensor  # (F, Sx) gradient energy per feature shell nu_j (sum of |.|^2)

    def concentration(self) -> torch.Tensor:
        """``(F,)`` fraction of each row's gradient energy on the feature shell ``nu_j = nu_i`` (1 = a delta)."""
        total = self.energy_profile.sum(dim=-1).clamp_min(torch.finfo(self.energy_profile.dtype).tiny)
        on_shell = torch.stack(
            [
                row[nu] if nu < row.shape[-1] else row.new_zeros(())
                for row, nu in zip(self.energy_profile, self.frequencies)
            ]
        )
        return on_shell / total


def spectral_gradient(
    model: nn.Module,
    inputs: Any,
    labels: torch.Tensor,
    *,
    layer: nn.Module,
    frequencies: Sequence[int] | None = None,
    output_key: str = "semantic",
    ignore_index: int = 255,
    shells: Shells = "square",
    units: Units = "index",
) -> SpectralGradient:
    """Spectral gradient of ``L_ce(nu_i)`` w.r.t. the output of ``layer``, by autograd (Fig. 4).

    Put the model in eval mode first (dropout would make each backward pass see different features). The
    model's parameters need not require gradients.

    Args:
        model: returns ``dict[str, Tensor]`` (``output_key`` holds ``(B, C, H, W)`` logits) or a logits tensor,
            at the labels' size.
        inputs: what ``model`` is called with (a tensor, or a tuple of positional arguments).
        labels: ``(B, H, W)`` class ids.
        layer: the submodule whose output ``X`` (a ``(B, C', Hx, Wx)`` tensor) is differentiated, e.g. the ASPP.
        frequencies: CE shells ``nu_i``; default ``(0, M // 4, M // 2)`` with ``M = min(Hx, Wx)`` (paper Fig. 4).
        output_key: key of the logits when the model returns a dict.
        ignore_index, shells, units: as in :func:`~freqdense.spectral.spectrum.ce_spectrum`.

    Returns:
        :class:`SpectralGradient`.
    """
    captured: list[torch.Tensor] = []

    def hook(_module: nn.Module, _args: Any, output: Any) -> Any:
        if not isinstance(output, torch.Tensor) or output.dim() != 4:
            raise ShapeError(
                f"spectral_gradient: {type(_module).__name__} returned {type(output).__name__}, expected a "
                "(B, C, H, W) tensor; hook a layer with a single feature-map output"
            )
        if not output.requires_grad:
            output = output.detach().requires_grad_(True)
        captured.append(output)
        return output

    handle = layer.register_forward_hook(hook)
    try:
        with torch.enable_grad():
            out = model(*inputs) if isinstance(inputs, tuple) else model(inputs)
    finally:
        handle.remove()
    if not captured:
        raise ConfigError("spectral_gradient: the hooked layer was not called; pass a submodule used in forward()")
    feature = captured[-1]
    logits = out[output_key] if isinstance(out, dict) else out
    if not isinstance(logits, torch.Tensor):
        raise ShapeError(f"model output {output_key!r} is {type(logits).__name__}, expected a logits tensor")
    with torch.enable_grad():
        spec = ce_spectrum(logits, labels, ignore_index=ignore_index, shells=shells, units=units)
    hx, wx = feature.shape[-2:]
    if frequencies is None:
        m = min(hx, wx)
        frequencies = (0, m // 4, m // 2)
    freqs = tuple(int(f) for f in frequencies)
    num_shells = spec.loss.shape[-1]
    if any(f < 0 or f >= num_shells for f in freqs):
        raise ConfigError(f"frequencies {freqs} must lie in [0, {num_shells}) (the CE spectrum's shells)")
    feat_shells = frequency_shells((hx, wx), shells=shells, units=units, device=feature.device)
    magnitudes, profiles = [], []
    for k, nu in enumerate(freqs):
        with torch.enable_grad():
            target = spec.loss[:, nu].sum()
        (grad,) = torch.autograd.grad(target, feature, retain_graph=k < len(freqs) - 1)
        g = torch.fft.fft2(grad.detach().to(torch.float64), norm="ortho")
        power = (g.real.square() + g.imag.square()).sum(dim=(0, 1))
        magnitudes.append(g.abs().sum(dim=(0, 1)))
        profiles.append(shell_reduce(power, feat_shells))
    return SpectralGradient(frequencies=freqs, magnitude=torch.stack(magnitudes), energy_profile=torch.stack(profiles))
