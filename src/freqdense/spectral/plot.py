"""Figures in the style of Chen, Chiu, Wu, AAAI 2020: Fig. 1/2 (CE spectrum, R, |y_hat|, |b|), Fig. 4 (spectral
gradients) and Fig. 6 (relative IoU vs. R).

matplotlib is imported inside each function and drawn through the Agg canvas directly (no pyplot, no global
backend switch), so importing this module is free and plotting works headless.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from .gradient import SpectralGradient
from .spectrum import DatasetSpectrum

__all__ = [
    "ce_spectrum_figure",
    "plot_ce_spectrum",
    "plot_relative_iou",
    "plot_spectral_gradient",
    "relative_iou_figure",
]


def _new_figure(width: float, height: float) -> Any:
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as err:  # pragma: no cover - matplotlib is a core dependency
        raise ImportError("plotting needs matplotlib: pip install matplotlib") from err
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _thin_symlog_ticks(fig: Any) -> None:
    """Drop tick labels that would overprint on symlog axes (``10^1``, ``0``, ``-10^1`` a few pixels apart)."""
    from ..viz.ticks import thin_overlapping_ticks

    for ax in fig.axes:
        for which in ("x", "y"):
            if (ax.get_xscale() if which == "x" else ax.get_yscale()) == "symlog":
                thin_overlapping_ticks(ax, which, keep=(0.0,), pad_px=3.0)


def _save(fig: Any, path: str | Path) -> Path:
    _thin_symlog_ticks(fig)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    return path


def _normalised(x: torch.Tensor) -> torch.Tensor:
    peak = x.abs().max()
    return x / peak if peak > 0 else x


def plot_ce_spectrum(
    spectra: Mapping[str, DatasetSpectrum],
    path: str | Path,
    *,
    max_frequency: int | None = None,
    title: str | None = None,
) -> Path:
    """Fig. 1 / Fig. 2 layout: ``L_ce(nu)``, ``R(nu_max)``, ``|y_hat(nu)|`` and ``|b(nu)|`` (both normalised by
    their maxima), one curve per entry (e.g. datasets, models, or ``"init"``/``"final"`` training stages).

    The axes are symlog (``L_ce`` has negative components); their tick labels are thinned so that they never
    overprint (:func:`freqdense.viz.ticks.thin_overlapping_ticks`, ``0`` kept).

    Args:
        spectra: label -> :class:`~freqdense.spectral.spectrum.DatasetSpectrum`.
        path: output image (``.png``, ``.pdf``, ...).
        max_frequency: clip the frequency axis.
        title: figure title (default: names the quantities).

    Returns:
        ``path``.
    """
    return _save(ce_spectrum_figure(spectra, max_frequency=max_frequency, title=title), path)


def ce_spectrum_figure(
    spectra: Mapping[str, DatasetSpectrum], *, max_frequency: int | None = None, title: str | None = None
) -> Any:
    """The matplotlib Figure of :func:`plot_ce_spectrum` (Agg canvas, tick labels already thinned)."""
    fig = _new_figure(10, 7)
    axes = fig.subplots(2, 2)
    panels = [
        (axes[0, 0], "loss", r"$L_{ce}(\nu)$", False, "CE loss per frequency shell"),
        (axes[0, 1], "relative_discrepancy", r"$R(\nu_{max})$", False, r"share of the CE above $\nu_{max}$"),
        (axes[1, 0], "logit_magnitude", r"$|\hat{y}(\nu)|$ / max", True, "logit spectrum magnitude (normalised)"),
        (axes[1, 1], "label_magnitude", r"$|b(\nu)|$ / max", True, "label spectrum magnitude (normalised)"),
    ]
    for ax, field, ylabel, normalise, panel_title in panels:
        for name, spec in spectra.items():
            y = getattr(spec, field).detach().cpu().to(torch.float64)
            if normalise:
                y = _normalised(y)
            n = len(y) if max_frequency is None else min(len(y), max_frequency + 1)
            ax.plot(range(n), y[:n].tolist(), label=name, linewidth=1.2)
        frequency = r"$\nu$" if field != "relative_discrepancy" else r"$\nu_{max}$"
        ax.set_xlabel(f"{frequency} [cycles per image]")
        if field == "loss":  # the DC term dwarfs the rest; symlog keeps the negative components visible
            peak = max(float(getattr(s, field).abs().max()) for s in spectra.values())
            linthresh = max(peak * 1e-4, 1e-12)
            ylabel += f"\n(symlog: linear within $\\pm${linthresh:.2g})"
        else:
            linthresh = 1e-3
        ax.set_yscale("symlog", linthresh=linthresh)
        ax.set_ylabel(ylabel)
        ax.set_title(panel_title, fontsize=10)
        ax.grid(alpha=0.3)
    axes[0, 0].legend(fontsize=8)
    fig.suptitle(title or r"CE spectrum $L_{ce}(\nu)$ and $R(\nu_{max})$")
    _thin_symlog_ticks(fig)
    return fig


def plot_spectral_gradient(gradients: Mapping[str, SpectralGradient], path: str | Path) -> Path:
    """Fig. 4 layout: one column per entry, one row per probed CE frequency ``nu_i``; each panel shows
    ``|d L_ce(nu_i) / d x(nu_j)|`` over the 2-D feature frequencies ``nu_j`` (zero frequency centred, each panel
    normalised to its maximum).

    Returns:
        ``path``.
    """
    if not gradients:
        raise ValueError("plot_spectral_gradient needs at least one SpectralGradient")
    rows = max(len(g.frequencies) for g in gradients.values())
    cols = len(gradients)
    fig = _new_figure(2.6 * cols + 1.4, 2.4 * rows + 0.7)
    axes = fig.subplots(rows, cols, squeeze=False)
    image = None
    for c, (name, grad) in enumerate(gradients.items()):
        for r in range(rows):
            ax = axes[r, c]
            if r >= len(grad.frequencies):
                ax.set_axis_off()
                continue
            mag = torch.fft.fftshift(grad.magnitude[r].detach().cpu(), dim=(-2, -1))
            hx, wx = mag.shape
            extent = (-(wx // 2) - 0.5, (wx - 1) // 2 + 0.5, (hx - 1) // 2 + 0.5, -(hx // 2) - 0.5)
            image = ax.imshow(_normalised(mag).numpy(), cmap="viridis", extent=extent, vmin=0.0, vmax=1.0)
            ax.tick_params(labelsize=7)
            if r == 0:
                ax.set_title(name, fontsize=9)
            if r == len(grad.frequencies) - 1:
                ax.set_xlabel(r"$\nu_j$ horizontal", fontsize=8)
            ylabel = r"$\nu_j$ vertical"
            ax.set_ylabel(rf"$\nu_i$ = {grad.frequencies[r]}" + "\n" + ylabel if c == 0 else ylabel, fontsize=8)
    if image is not None:
        bar = fig.colorbar(image, ax=axes, shrink=0.8)
        bar.ax.tick_params(labelsize=7)
        bar.set_label(r"$|\partial L_{ce}(\nu_i) / \partial x(\nu_j)|$ / max", fontsize=8)
    fig.suptitle("spectral gradient\n" + r"rows: CE frequency $\nu_i$; axes: feature frequency $\nu_j$", fontsize=9)
    return _save(fig, path)


def plot_relative_iou(
    points: Mapping[str, tuple[Sequence[float], Sequence[float]]],
    path: str | Path,
    *,
    annotations: Mapping[str, Sequence[str]] | None = None,
    xlabel: str = "R(ν_max)",
    ylabel: str = "relative IoU (mIoU / pixel-wise mIoU)",
) -> Path:
    """Fig. 6 layout: relative IoU (y) against ``R(nu_max)`` (x, log scale), one marker series per entry.

    Args:
        points: label -> ``(R values, relative IoU values)``.
        path: output image.
        annotations: optional label -> per-point text (e.g. the ``nu_max`` of each point).
        xlabel, ylabel: axis titles (the x title gets the symlog note appended).

    Returns:
        ``path``.
    """
    return _save(relative_iou_figure(points, annotations=annotations, xlabel=xlabel, ylabel=ylabel), path)


def relative_iou_figure(
    points: Mapping[str, tuple[Sequence[float], Sequence[float]]],
    *,
    annotations: Mapping[str, Sequence[str]] | None = None,
    xlabel: str = "R(ν_max)",
    ylabel: str = "relative IoU (mIoU / pixel-wise mIoU)",
) -> Any:
    """The matplotlib Figure of :func:`plot_relative_iou` (Agg canvas). The x ticks are at 1, 2 and 5 times each
    power of ten (every multiple when the values span less than a decade), so a narrow range still gets labelled
    ticks; a point's annotation goes above it, or below when another series has a higher point at the same R (so
    that two series do not overprint), and otherwise alternates by series."""
    from matplotlib.ticker import FuncFormatter, SymmetricalLogLocator

    above, below = (4, 4), (4, -11)
    every = [(name, float(x), float(y)) for name, (r, rel) in points.items() for x, y in zip(r, rel)]
    fig = _new_figure(5, 4)
    ax = fig.subplots()
    for index, (name, (r, rel)) in enumerate(points.items()):
        ax.plot(list(r), list(rel), marker="o", linestyle="-", label=name)
        for text, x, y in zip((annotations or {}).get(name, ()), r, rel):
            x, y = float(x), float(y)
            same_r = [oy for other, ox, oy in every if other != name and abs(ox - x) <= 0.02 * max(abs(x), 1e-3)]
            if same_r:
                offset = above if y >= max(same_r) else below
            else:
                offset = above if index % 2 == 0 else below
            ax.annotate(str(text), (x, y), fontsize=7, textcoords="offset points", xytext=offset)
    ax.axhline(1.0, color="0.5", linewidth=0.8, linestyle="--")
    ax.set_xscale("symlog", linthresh=1e-3)
    positive = [float(x) for r, _ in points.values() for x in r if float(x) > 0]
    narrow = bool(positive) and max(positive) < 10 * min(positive)  # under a decade: label every multiple
    subs = [float(m) for m in range(1, 10)] if narrow else [1.0, 2.0, 5.0]
    ax.xaxis.set_major_locator(SymmetricalLogLocator(base=10, linthresh=1e-3, subs=subs))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    ax.set_xlabel(f"{xlabel}\n(symlog: linear within ±0.001)")
    ax.set_ylabel(ylabel)
    ax.set_title(r"relative IoU vs. $R(\nu_{max})$", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return fig
