"""Every written figure is labelled: titles, legends with class names, depth colour bars in metres, no overprinting."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
import torch.nn as nn
from PIL import Image

from freqdense.errors import ConfigError, ShapeError
from freqdense.viz import (
    colorize_depth_range,
    depth_range_of,
    loss_curves_figure,
    plot_loss_curves,
    prediction_figure,
    prediction_panel,
    save_depth_colorbar,
    save_prediction_panels,
)
from freqdense.viz.depth_scale import depth_ticks, draw_depth_colorbar
from freqdense.viz.ticks import boxes_overlap, tick_label_boxes

PALETTE = np.array([[200, 100, 50], [20, 200, 20], [0, 0, 250]], dtype=np.uint8)
CLASSES = ("floor", "wall", "ceiling")


def _texts(fig) -> list[str]:
    """Every text the figure draws: titles, labels, legend entries, tick labels (after a draw)."""
    fig.canvas.draw()
    from matplotlib.text import Text

    return [t.get_text() for t in fig.findobj(match=Text) if t.get_text()]


def _overlaps(ax, which: str) -> list[tuple[float, float]]:
    boxes = tick_label_boxes(ax, which)
    return [(a, b) for i, (a, ba) in enumerate(boxes) for b, bb in boxes[i + 1 :] if boxes_overlap(ba, bb)]


def _sample(h: int = 12, w: int = 16, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    gt = np.zeros((h, w), dtype=np.int64)
    gt[:, w // 2 :] = 1
    gt[0, 0] = 255
    depth = np.linspace(1.0, 8.0, h * w).reshape(h, w).astype(np.float32)
    depth[0, :3] = 0.0  # invalid
    return {
        "image": rng.random((3, h, w)).astype(np.float32),
        "gt_semantic": gt,
        "pred_semantic": np.full((h, w), 2),
        "gt_depth": depth,
        "pred_depth": depth * 1.5,
        "name": f"img{seed}",
    }


# -- prediction panel ------------------------------------------------------------------------------------------


def test_prediction_figure_has_column_titles_class_legend_and_depth_colour_bar():
    fig = prediction_figure([_sample(), _sample(seed=1)], palette=PALETTE, class_names=CLASSES, title="val")
    texts = _texts(fig)
    for column in ("image", "ground truth", "prediction"):
        assert texts.count(column) == 1  # titles on the top row only
    for entry in ("0: floor", "1: wall", "2: ceiling", "ignore label / invalid depth"):
        assert entry in texts  # the classes shown, by name, and what black means
    assert "val" in texts
    bars = [ax for ax in fig.axes if ax.get_ylabel() == "depth [m]"]
    assert len(bars) == 2  # one colour bar per depth row
    near, far = depth_range_of(_sample()["gt_depth"])
    row_labels = [t for t in texts if t.startswith("img0\ndepth")]
    assert row_labels == [f"img0\ndepth, {near:g}-{far:g} m\n(range of the ground truth)"]
    for bar in bars:
        labels = [t.get_text() for t in bar.get_yticklabels() if t.get_text()]
        assert f"{near:g}" in labels and f"{far:g}" in labels  # the range is stated on the bar
        assert not _overlaps(bar, "y")


def test_ground_truth_and_prediction_share_the_rows_fixed_range():
    sample = _sample()
    sample["pred_depth"] = sample["gt_depth"].copy()  # same depths must get the same colours in both tiles
    fig = prediction_figure([{k: v for k, v in sample.items() if "semantic" not in k}], depth_range=(1.0, 8.0))
    gt_tile, pred_tile = (ax.get_images()[0].get_array() for ax in fig.axes[1:3])
    np.testing.assert_array_equal(gt_tile, pred_tile)
    np.testing.assert_array_equal(gt_tile, colorize_depth_range(sample["gt_depth"], (1.0, 8.0)))
    assert "fixed" in fig.axes[0].get_ylabel()


def test_legend_lists_only_the_shown_classes_and_caps_long_lists():
    many = np.arange(40 * 2).reshape(8, 10) % 40
    palette = np.stack([np.arange(40) * 6, np.arange(40)[::-1] * 6, np.full(40, 90)], axis=1).astype(np.uint8)
    fig = prediction_figure([{"image": np.zeros((8, 10, 3), np.uint8), "pred_semantic": many}], palette=palette)
    texts = _texts(fig)
    assert sum(t.startswith(tuple(f"{i}: " for i in range(40))) for t in texts) == 30
    assert any("10 rarer classes present but not listed" in t for t in texts)
    assert "class 0" in " ".join(texts)  # no names given: "class <id>"
    assert any("no ground truth" == t for t in texts)  # missing tiles say what is missing


def test_saved_panels_are_png_of_the_expected_shape(tmp_path):
    path = save_prediction_panels(
        [_sample(), _sample(seed=1)], tmp_path / "p.png", palette=PALETTE, class_names=CLASSES
    )
    with Image.open(path) as img:
        assert img.format == "PNG"
        width, height = img.size
    assert height > width  # four 12x16 rows over three columns (plus legend): taller than wide
    one = prediction_panel(
        np.zeros((12, 16, 3), np.uint8), None, None, None, _sample()["pred_depth"], None, tmp_path / "d.png"
    )
    with Image.open(one) as img:
        assert img.size[0] > img.size[1]  # one depth row: wider than tall
    with pytest.raises(ShapeError, match="palette"):
        prediction_figure([{"image": np.zeros((4, 4, 3), np.uint8), "gt_semantic": np.zeros((4, 4), int)}])
    with pytest.raises(ShapeError, match="no semantic or depth"):
        prediction_figure([{"image": np.zeros((4, 4, 3), np.uint8)}])


# -- depth scale -----------------------------------------------------------------------------------------------


def test_depth_range_is_rounded_outwards_and_validated():
    depth = np.linspace(0.734, 14.27, 1000).reshape(20, 50)
    near, far = depth_range_of(depth, np.zeros((2, 2)))
    assert near <= np.percentile(depth, 5) and far >= depth.max()
    assert (near, far) == (1.4, 15.0)
    assert depth_range_of(np.zeros((3, 3))) is None
    assert depth_ticks(0.73, 15)[0] == 0.73 and depth_ticks(0.73, 15)[-1] == 15
    with pytest.raises(ConfigError, match="0 < near < far"):
        colorize_depth_range(depth, (5.0, 1.0))
    rgb = colorize_depth_range(np.array([[0.0, 1.0, 100.0]]), (1.0, 10.0))
    assert rgb[0, 0].tolist() == [0, 0, 0]  # invalid: black
    assert rgb[0, 2].sum() > 0  # far and beyond: the darkest colour, still not the black of invalid pixels


def test_depth_colour_bar_png_states_the_range_in_metres(tmp_path):
    path = save_depth_colorbar(tmp_path / "depth_colorbar.png", (0.73, 15.0))
    with Image.open(path) as img:
        assert img.size == (600, 160)  # 6 x 1.6 in at 100 dpi: a horizontal bar

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 1.6))
    FigureCanvasAgg(fig)
    bar = draw_depth_colorbar(fig, fig.add_axes((0.05, 0.5, 0.9, 0.2)), (0.73, 15.0), orientation="horizontal")
    labels = [t.get_text() for t in bar.ax.get_xticklabels() if t.get_text()]
    assert "0.73" in labels and "15" in labels and bar.ax.get_xlabel() == "depth [m]"
    assert not _overlaps(bar.ax, "x")  # the far depths bunch up on an inverse scale: thinned


# -- curves ----------------------------------------------------------------------------------------------------


def test_loss_curves_have_titles_axis_labels_legends_and_log_losses(tmp_path):
    history = [
        {"kind": "train", "step": s, "loss/total": 5.0 / s, "loss/depth": 2.0 / s, "lr": 0.01 * (1 - s / 50)}
        for s in range(1, 50)
    ]
    history += [{"kind": "eval", "step": 25, "semantic/miou": 0.2}, {"kind": "eval", "step": 49, "semantic/miou": 0.3}]
    fig = loss_curves_figure(history, title="run x")
    losses = fig.axes[0]
    assert losses.get_title() == "training losses" and losses.get_yscale() == "log"
    assert losses.get_xlabel() == "step" and losses.get_ylabel() == "loss (log scale)"
    assert [t.get_text() for t in losses.get_legend().get_texts()] == ["loss/total", "loss/depth"]
    titles = [ax.get_title() for ax in fig.axes]
    assert "learning rate" in titles and "semantic/miou (validation)" in titles
    assert all(ax.get_legend() is not None and ax.get_xlabel() == "step" for ax in fig.axes)
    assert fig.get_suptitle() == "run x"
    fig.canvas.draw()
    assert not _overlaps(losses, "y")
    path = plot_loss_curves(history, tmp_path / "curves.png", figsize=(6.0, 4.0), dpi=50)
    with Image.open(path) as img:
        assert img.size == (300, 200)


# -- CE spectrum: symlog tick labels never overlap -------------------------------------------------------------


def _realistic_spectrum():
    """A trained-like CE spectrum: a large positive DC term, negative low frequencies, small values of both signs."""
    from freqdense.spectral import SpectrumAccumulator

    gen = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 5, (4, 1, 6, 8), generator=gen).float()
    labels = nn.functional.interpolate(labels, size=(48, 64), mode="nearest")[:, 0].long()
    onehot = nn.functional.one_hot(labels, 5).permute(0, 3, 1, 2).float()
    blurred = nn.functional.avg_pool2d(onehot, 9, stride=1, padding=4)
    logits = 6.0 * blurred + 0.3 * torch.randn(4, 5, 48, 64, generator=gen)
    acc = SpectrumAccumulator()
    acc.update(logits, labels)
    return acc.compute()


def test_ce_spectrum_symlog_tick_labels_do_not_overlap(tmp_path):
    from freqdense.spectral import plot_ce_spectrum
    from freqdense.spectral.plot import ce_spectrum_figure

    spectrum = _realistic_spectrum()
    assert (spectrum.loss > 0).any() and (spectrum.loss < 0).any()  # both signs: symlog around 0
    fig = ce_spectrum_figure({"model": spectrum})
    fig.savefig(io.BytesIO(), format="png")  # the layout as written
    fig.canvas.draw()
    for ax in fig.axes:
        assert ax.get_yscale() == "symlog"
        assert not _overlaps(ax, "y"), ax.get_title()
        assert ax.get_title() and "cycles per image" in ax.get_xlabel()
    loss_ax = fig.axes[0]
    labels = [t.get_text() for t in loss_ax.get_yticklabels() if t.get_text()]
    assert "$\\mathdefault{0}$" in labels and any("-" in t or "−" in t for t in labels)  # 0 and negatives kept
    assert fig.axes[0].get_legend() is not None
    assert plot_ce_spectrum({"model": spectrum}, tmp_path / "spectrum.png").stat().st_size > 2000


def test_spectral_gradient_figure_has_a_colour_bar(tmp_path):
    from freqdense.spectral import plot_spectral_gradient, spectral_gradient

    model = nn.Sequential(nn.Identity(), nn.Conv2d(3, 4, 1)).eval()
    grad = spectral_gradient(model, torch.rand(1, 3, 16, 16), torch.randint(0, 4, (1, 16, 16)), layer=model[0])
    path = plot_spectral_gradient({"conv": grad}, tmp_path / "grad.png")
    with Image.open(path) as img:
        assert img.size[1] > img.size[0]  # one column, one row per probed frequency
