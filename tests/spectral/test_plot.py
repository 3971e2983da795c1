from __future__ import annotations

import subprocess
import sys

import torch
import torch.nn as nn

from freqdense.spectral import (
    SpectrumAccumulator,
    plot_ce_spectrum,
    plot_relative_iou,
    plot_spectral_gradient,
    spectral_gradient,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _is_png(path) -> bool:
    data = path.read_bytes()
    return data[:8] == PNG_MAGIC and len(data) > 2000


def test_importing_the_package_does_not_import_matplotlib():
    code = "import sys, freqdense.spectral; print('matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_figures_are_written(tmp_path):
    spectra = {}
    for name, scale in (("init", 0.1), ("final", 3.0)):
        acc = SpectrumAccumulator()
        labels = torch.randint(0, 4, (2, 1, 4, 4)).float()
        labels = nn.functional.interpolate(labels, size=(24, 24), mode="nearest")[:, 0].long()
        logits = scale * nn.functional.one_hot(labels, 4).permute(0, 3, 1, 2).float() + torch.randn(2, 4, 24, 24)
        acc.update(logits, labels)
        spectra[name] = acc.compute()
    assert _is_png(plot_ce_spectrum(spectra, tmp_path / "fig1.png", title="toy"))

    model = nn.Sequential(nn.Identity(), nn.Conv2d(3, 4, 1)).eval()
    grads = {
        "Conv": spectral_gradient(model, torch.rand(1, 3, 16, 16), torch.randint(0, 4, (1, 16, 16)), layer=model[0]),
    }
    assert _is_png(plot_spectral_gradient(grads, tmp_path / "sub" / "fig4.png"))

    points = {"deeplab": ([0.275, 0.04, 0.018], [0.868, 0.949, 0.986])}
    assert _is_png(plot_relative_iou(points, tmp_path / "fig6.png", annotations={"deeplab": ["8", "16", "32"]}))


def test_relative_iou_figure_labels_ticks_inside_a_range_narrower_than_a_decade():
    # R between 0.17 and 0.49 holds no power of ten: plain symlog ticks would leave the x axis unlabelled.
    from freqdense.spectral.plot import relative_iou_figure

    points = {"keep": ([0.17, 0.35], [0.967, 0.912]), "fill": ([0.17, 0.35], [0.934, 0.907])}
    fig = relative_iou_figure(points, annotations={"keep": ["8", "4"], "fill": ["8", "4"]})
    ax = fig.axes[0]
    fig.canvas.draw()
    lo, hi = ax.get_xlim()
    shown = [t.get_text() for t in ax.get_xticklabels() if t.get_text() and lo <= t.get_position()[0] <= hi]
    assert {"0.2", "0.3"} <= set(shown), shown
    # the two series' annotations of the same setting sit on opposite sides of their points
    assert sorted(a.xyann[1] for a in ax.texts if a.get_text() == "8") == [-11, 4]


def test_relative_iou_annotations_at_the_same_r_go_apart_whatever_the_series_order():
    # DAN at lr 0.1: fill (0.960) is the first series and lies below keep (0.995) at the same R; alternating by series
    # order put fill's label above its point and keep's below, both between the two points.
    from freqdense.spectral.plot import relative_iou_figure

    points = {"fill": ([0.28, 0.62], [0.960, 0.871]), "keep": ([0.28, 0.62], [0.995, 0.840]), "grid": ([0.89], [0.57])}
    fig = relative_iou_figure(points, annotations={"fill": ["8", "4"], "keep": ["8", "4"], "grid": ["7"]})
    side = {(a.get_text(), tuple(map(float, a.xy))): a.xyann[1] for a in fig.axes[0].texts}
    assert side[("8", (0.28, 0.995))] == 4 and side[("8", (0.28, 0.960))] == -11
    assert side[("4", (0.62, 0.871))] == 4 and side[("4", (0.62, 0.840))] == -11
    assert side[("7", (0.89, 0.57))] == 4  # alone at its R: series alternate as before (the third: above)
